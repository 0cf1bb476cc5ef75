"""SIGTERM and SIGINT: the exporter stops serving; the remediator drains, audits every decision, exits 0.

Each case runs the real command in a subprocess; every wait is bounded.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
APP = "WebRTCAppEE"
TOKEN = "hook-token"
HEADERS = {"Authorization": f"Bearer {TOKEN}"}


def start(module: str, config: Path) -> tuple[subprocess.Popen, int]:
    """Run `python -m module` on a free port; returns the process and its port."""
    env = {**os.environ, "HOOK": TOKEN}
    proc = subprocess.Popen([sys.executable, "-m", module, "--config.file", str(config),
                             "--web.listen-address", "127.0.0.1:0"], cwd=ROOT, env=env,
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        match = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
        if match:
            threading.Thread(target=proc.stderr.read, daemon=True).start()  # keep the pipe from filling
            return proc, int(match.group(1))
        if not line and proc.poll() is not None:
            break
    stop(proc)
    raise AssertionError(f"{module} did not start listening")


def stop(proc: subprocess.Popen) -> None:
    """Kill a process a test left running."""
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=10)


def wait_for(condition, seconds: float, what: str) -> None:
    """Poll until condition() holds."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def write(tmp_path: Path, ams_url: str, remediator: str = "") -> Path:
    path = tmp_path / "antmedia.yml"
    path.write_text(
        f"ams:\n  - name: main\n    url: {ams_url}\n    apps: [{APP}]\n    heartbeat_seconds: 1\n"
        "    reconnect_grace_seconds: 0\n    timeout_seconds: 60\n"
        "remediator:\n  dry_run: false\n  webhook_token_env: HOOK\n  audit_log: audit.jsonl\n"
        "  blast_radius: {enabled: false}\n" + remediator)
    return path


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
@pytest.mark.parametrize("service", ["exporter", "remediator"])
def test_an_idle_service_stops_serving_and_exits_0(tmp_path, service, signum):
    proc, port = start(service, write(tmp_path, "http://127.0.0.1:9"))
    try:
        assert httpx.get(f"http://127.0.0.1:{port}/-/healthy", timeout=5).status_code == 200
        proc.send_signal(signum)
        assert proc.wait(timeout=15) == 0
    finally:
        stop(proc)


class Ghost:
    """A simulated AMS 3.0.0 with one ghost in a room, whose stop call AMS holds for `hold` seconds."""

    def __init__(self, hold: float) -> None:
        simulator = pytest.importorskip("simulator")
        self.clock = simulator.ManualClock(start=time.time())
        self.sim = simulator.Simulator(ams_version="3.0.0", heartbeat_seconds=1.0, clock=self.clock).start()
        self.sim.create_room(APP, "room1")
        assert self.sim.join(APP, "room1", "ghost1") and self.sim.drop(APP, "ghost1")
        self.clock.advance(30.0)
        self.fault = self.sim.faults.inject("latency", path_regex=r"/ghost1/stop", seconds=hold, count=1)

    def notification(self, status: str = "firing") -> dict:
        """A webhook body for the ghost, its evidence the heartbeat AMS holds."""
        seen = self.sim.broadcast(APP, "ghost1")["updateTime"] / 1000
        labels = {"alertname": "AntMediaGhostStream", "remediation": "delete_stream", "ams": "main", "app": APP,
                  "stream_id": "ghost1", "room": "room1"}
        alert = {"status": status, "labels": labels, "annotations": {"heartbeat_timestamp": f"{seen:.3f}"},
                 "startsAt": "2026-01-01T00:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
                 "generatorURL": "", "fingerprint": f"fp-ghost1-{status}"}
        return {"version": "4", "groupKey": "{}:{}", "truncatedAlerts": 0, "status": status,
                "receiver": "antmedia-remediator", "groupLabels": {}, "commonLabels": labels,
                "commonAnnotations": {}, "externalURL": "http://am", "alerts": [alert]}

    def seen_still(self, url: str) -> None:
        """A first delivery shows the remediator the frozen heartbeat (503, observing); then its own wait
        (1 s heartbeat plus AMS's 3.5 s of delays) passes, so the next delivery goes on to the stop."""
        response = httpx.post(url, json=self.notification(), headers=HEADERS, timeout=10)
        assert response.status_code == 503 and response.json()["outcomes"][0]["reason"] == "observing"
        time.sleep(4.6)

    def stop_is_held(self) -> bool:
        """AMS has the stop call in hand."""
        return not any(f["id"] == self.fault.id for f in self.sim.faults.active())


@pytest.fixture
def ghost():
    made: list[Ghost] = []
    yield lambda hold: made.append(Ghost(hold)) or made[-1]
    for world in made:
        world.sim.stop()


def post_in_background(url: str, body: dict) -> dict:
    """POST in a thread; the dict gets 'response' or 'error'."""
    answer: dict = {}

    def send() -> None:
        try:
            answer["response"] = httpx.post(url, json=body, headers=HEADERS, timeout=30)
        except httpx.HTTPError as exc:
            answer["error"] = exc

    answer["thread"] = threading.Thread(target=send, daemon=True)
    answer["thread"].start()
    return answer


def audit(tmp_path: Path) -> list[dict]:
    return [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_sigterm_finishes_the_held_eviction_answers_503_meanwhile_and_exits_0(tmp_path, ghost):
    world = ghost(hold=2.0)
    proc, port = start("remediator", write(tmp_path, world.sim.url))
    url = f"http://127.0.0.1:{port}/alerts"
    try:
        world.seen_still(url)
        first = post_in_background(url, world.notification())
        wait_for(world.stop_is_held, 10, "the eviction to reach AMS")
        proc.send_signal(signal.SIGTERM)
        late: list[int] = []
        wait_for(lambda: late.append(
            httpx.post(url, json=world.notification("resolved"), headers=HEADERS, timeout=5).status_code
        ) or late[-1] == 503, 5, "new notifications to be turned away")
        assert proc.wait(timeout=20) == 0
        first["thread"].join(timeout=10)
        response = first["response"]
        assert response.status_code == 200 and response.json()["outcomes"][0]["decision"] == "evicted"
        assert [(line["stream_id"], line["decision"]) for line in audit(tmp_path)] == [
            ("ghost1", "deferred"), ("ghost1", "evicted")]
        assert world.sim.broadcast(APP, "ghost1") is None
    finally:
        stop(proc)


@pytest.mark.slow
def test_sigterm_abandons_a_call_held_past_the_bound_audits_it_and_exits_0(tmp_path, ghost):
    world = ghost(hold=60.0)
    proc, port = start("remediator", write(tmp_path, world.sim.url, "  shutdown_timeout_seconds: 1\n"))
    try:
        world.seen_still(f"http://127.0.0.1:{port}/alerts")
        first = post_in_background(f"http://127.0.0.1:{port}/alerts", world.notification())
        wait_for(world.stop_is_held, 10, "the eviction to reach AMS")
        signalled = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
        assert time.monotonic() - signalled < 10
        _, line = audit(tmp_path)
        assert (line["stream_id"], line["decision"], line["reason"]) == ("ghost1", "abandoned", "shutdown")
        first["thread"].join(timeout=10)
        assert "error" in first, "the held notification is not answered: Alertmanager sends it again"
    finally:
        stop(proc)
