"""Child processes and loopback listeners: start, readiness, clustering, bounded stop, failure reports."""
import os
import sys
import time

import httpx
import pytest

from stack import api
from stack.configs import write_yaml
from stack.ports import free_port
from stack.process import ManagedProcess, StackError
from stack.services import Gossip, start_alertmanager, start_prometheus, wait_ready
from stack.waiting import wait_for

TRIVIAL_AM = {"route": {"receiver": "null"}, "receivers": [{"name": "null"}]}


def gone(pid: int) -> bool:
    """True once no process has this id (or it is a zombie awaiting its parent)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.mark.e2e
def test_prometheus_and_alertmanager_start_ready_and_stop(tmp_path):
    am = start_alertmanager("am", write_yaml(tmp_path / "am.yml", TRIVIAL_AM), tmp_path)
    prometheus_yml = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                      "alerting": {"alertmanagers": [{"static_configs": [{"targets": [am.address]}]}]}}
    prom = start_prometheus("prom", write_yaml(tmp_path / "p.yml", prometheus_yml), tmp_path)
    try:
        wait_ready(am, "/-/ready", 20)
        wait_ready(prom, "/-/ready", 20)
        assert am.address.startswith("127.0.0.1:") and prom.address.startswith("127.0.0.1:")
        assert api.query(prom.url, "vector(1)")[0]["value"][1] == "1"
        assert api.alertmanager_alerts(am.url) == []
    finally:
        prom.stop()
        am.stop()
    assert not prom.process.running() and not am.process.running()
    assert (tmp_path / "prom" / "data").is_dir() and (tmp_path / "prom.log").stat().st_size > 0


@pytest.mark.e2e
def test_bad_config_fails_fast_with_the_log_tail(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("global: [not, a, mapping]\n")
    prom = start_prometheus("prom", bad, tmp_path)
    started = time.monotonic()
    with pytest.raises(StackError) as failure:
        wait_ready(prom, "/-/ready", 20)
    assert time.monotonic() - started < 10
    assert "exited" in str(failure.value) and "prom.log" in str(failure.value)
    assert "error" in str(failure.value).lower()


def test_stop_kills_a_process_that_ignores_sigterm(tmp_path):
    code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); time.sleep(60)"
    process = ManagedProcess("stubborn", [sys.executable, "-c", code], tmp_path / "stubborn.log").start()
    deadline = time.monotonic() + 10
    while "up" not in process.tail() and time.monotonic() < deadline:
        time.sleep(0.05)
    started = time.monotonic()
    process.stop(timeout=1.0)
    assert time.monotonic() - started < 5
    assert gone(process.pid)


def test_readiness_wait_is_bounded(tmp_path):
    process = ManagedProcess("sleeper", [sys.executable, "-c", "import time; time.sleep(30)"],
                             tmp_path / "sleeper.log").start()
    try:
        with pytest.raises(StackError, match="not ready after 1 s"):
            process.wait_ready("http://127.0.0.1:9/-/ready", timeout=1.0)
    finally:
        process.stop(timeout=2.0)


def test_ports_handed_out_back_to_back_differ():
    ports = [free_port() for _ in range(20)]
    assert len(set(ports)) == len(ports)


def test_two_alertmanagers_form_a_gossip_cluster_on_loopback(tmp_path):
    config = write_yaml(tmp_path / "am.yml", TRIVIAL_AM)
    listens = [f"127.0.0.1:{free_port()}" for _ in range(2)]
    members = [start_alertmanager(f"am{i}", config, tmp_path,
                                  Gossip(listen=listens[i], peers=(listens[1 - i],), peer_timeout=1.0))
               for i in range(2)]

    def peers() -> list[int]:
        return [len(httpx.get(f"{am.url}/api/v2/status").json()["cluster"].get("peers") or []) for am in members]

    try:
        for am in members:
            wait_ready(am, "/-/ready", 30)
        wait_for(lambda: peers() == [2, 2], 20, "the two Alertmanagers did not see each other", interval=0.2)
        silence = api.create_silence(members[0].url, {"stream_id": "bob"}, 60, "maintenance")
        wait_for(lambda: silence in {s["id"] for s in api.silences(members[1].url)}, 10,
                 "the silence did not reach the other member", interval=0.2)
    finally:
        for am in members:
            am.stop()
