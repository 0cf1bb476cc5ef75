"""Fault injection: latency, status, timeout, malformed JSON, by path and count."""
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

APP = "WebRTCAppEE"


def test_status_fault_answers_5xx_for_count_requests_then_recovers(make_sim, client):
    sim = make_sim()
    sim.faults.inject("status", path_regex=r"/list/", status=503, count=2)
    c = client(sim)
    assert [c.get("/list/0/10").status_code for _ in range(3)] == [503, 503, 200]
    assert sim.faults.active() == []


def test_faults_only_hit_matching_paths(make_sim, client):
    sim = make_sim()
    sim.faults.inject("status", path_regex=r"/count$", status=500)
    c = client(sim)
    assert c.get("/count").status_code == 500
    assert c.get("/list/0/1").status_code == 200


def test_latency_fault_delays_the_answer(make_sim, client):
    sim = make_sim()
    sim.faults.inject("latency", seconds=0.3, count=1)
    c = client(sim)
    t0 = time.monotonic()
    assert c.get("/count").status_code == 200
    assert time.monotonic() - t0 >= 0.3


def test_timeout_fault_holds_the_request_past_the_client_timeout(make_sim, client):
    sim = make_sim()
    sim.faults.inject("timeout", count=1)
    c = client(sim, timeout=0.3)
    with pytest.raises(httpx.ReadTimeout):
        c.get("/count")
    assert c.get("/count").status_code == 200


def test_stop_releases_held_requests(make_sim):
    sim = make_sim()
    sim.faults.inject("timeout", seconds=60)
    url = f"{sim.url}/{APP}/rest/v2/broadcasts/count"
    result = {}
    thread = threading.Thread(target=lambda: result.update(r=httpx.get(url, timeout=10)))
    thread.start()
    time.sleep(0.2)
    t0 = time.monotonic()
    sim.stop()
    thread.join(5)
    assert time.monotonic() - t0 < 3 and not thread.is_alive()


def test_malformed_fault_returns_invalid_json_with_200(make_sim, client):
    sim = make_sim()
    sim.add_records(APP, 3)
    sim.faults.inject("malformed", path_regex="/list/", count=1)
    r = client(sim).get("/list/0/10")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    with pytest.raises(json.JSONDecodeError):
        json.loads(r.content)


def test_clear_removes_every_fault(make_sim, client):
    sim = make_sim()
    sim.faults.inject("status")
    sim.faults.clear()
    assert client(sim).get("/count").status_code == 200


def test_bad_fault_arguments_are_clear_errors(make_sim):
    sim = make_sim()
    with pytest.raises(ValueError, match="unknown fault kind"):
        sim.faults.inject("explode")
    with pytest.raises(ValueError):
        sim.faults.inject("status", count=0)


@pytest.mark.slow
def test_server_answers_other_requests_while_one_is_held(make_sim, client):
    sim = make_sim()
    sim.faults.inject("latency", path_regex="/count$", seconds=2.0, count=1)
    c = client(sim)
    with ThreadPoolExecutor(4) as pool:
        slow = pool.submit(c.get, "/count")
        time.sleep(0.1)
        fast = [pool.submit(c.get, "/list/0/5") for _ in range(3)]
        assert all(f.result().status_code == 200 for f in fast)
        assert not slow.done()
        assert slow.result().status_code == 200
