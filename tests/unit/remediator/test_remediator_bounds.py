"""The remediator against a slow AMS and big notifications: few AMS requests
per alert, a bounded time per notification, no starvation, bounded flags, visible failures for odd ids."""

from __future__ import annotations

import os
import threading
import time
import tracemalloc

import pytest
from remediator_support import (
    APP,
    Clock,
    FakeAms,
    Monotonic,
    alert,
    app_client,
    build_deps,
    notification,
    post,
    remediator_config,
    sample,
)
from test_remediator_simulator import world  # noqa: F401 - the simulator fixture

from remediator.decisions import AuditLog


class SlowFake(FakeAms):
    """The in-memory AMS, each call taking `delay` seconds."""

    def __init__(self, delay: float, **kw) -> None:
        super().__init__(**kw)
        self.delay = delay
        self.calls = 0

    def _check(self) -> None:
        time.sleep(self.delay)
        self.calls += 1
        super()._check()


def timed_post(deps, body) -> tuple[float, object]:
    started = time.monotonic()
    response = post(app_client(deps), body)
    return time.monotonic() - started, response


def test_one_ghost_alert_costs_few_ams_requests(world):  # noqa: F811
    counts = {}
    for version in ("2.8.2", "3.0.0"):
        w = world(version)
        w.make_ghost()
        before = len(w.transport.hosts)
        response = post(w.client, notification(w.alert("ghost1")))
        assert response.get_json()["outcomes"][0]["decision"] == "evicted"
        counts[version] = len(w.transport.hosts) - before
    # Two deliveries: the first shows the remediator the heartbeat (the version, read once then cached for
    # minutes; on 2.8.2 one list pass for the rooms that list the id: count, page, conference rooms; the
    # record, its room and itself as a room) and is answered 503; the second, after the remediator's own
    # wait, reads the same again, then the stream's scope on the node, stop, re-read, leave the room (2.8.2:
    # both room models), read the room back, re-read, delete: each write after the stop needs the record the
    # alert's evidence saw.
    assert counts == {"2.8.2": 24, "3.0.0": 14}, counts


@pytest.mark.slow
def test_a_slow_ams_cannot_hold_a_notification_past_its_timeout(world):  # noqa: F811
    w = world("3.0.0", notification_timeout_seconds=1.5, timeout=5.0)
    w.make_ghost()
    w.sim.faults.inject("latency", r"/rest/v2/", seconds=0.4)
    started = time.monotonic()
    response = post(w.client, notification(w.alert("ghost1")))
    elapsed = time.monotonic() - started
    # Eight calls of 0.4 s would take 3.2 s: what is not done at 1.5 s is deferred and answered 503.
    assert response.status_code == 503 and elapsed < 1.5 + 0.3, elapsed
    assert [(o["decision"], o["reason"]) for o in response.get_json()["outcomes"]] == [("deferred", "timeout")]
    assert sample(w.deps, "antmedia_remediator_decisions_total", ams="main", app=APP,
                  outcome="deferred", reason="timeout") == 1
    w.sim.faults.clear()
    again = post(w.client, notification(w.alert("ghost1")))  # Alertmanager's retries finish the job
    assert again.status_code == 200 and again.get_json()["outcomes"][0]["decision"] == "evicted"


@pytest.mark.slow
def test_a_single_alert_does_not_wait_behind_a_big_notification():
    ams = SlowFake(0.005)
    ams.add("ghost1")
    own = Monotonic()
    deps, _ = build_deps({"main": ams}, config=remediator_config(concurrency=2, notification_timeout_seconds=3.0),
                         monotonic=own)
    # The remediator saw ghost1's heartbeat stand still in earlier deliveries.
    deps.remediator.revalidators["main"].stillness.seen((APP, "ghost1", ams.records["ghost1"].update_time_ms))
    own.now += 10.0
    big = notification(*[alert(f"other{i}") for i in range(2000)])
    result = {}
    thread = threading.Thread(target=lambda: result.update(big=timed_post(deps, big)))
    thread.start()
    time.sleep(0.3)
    elapsed, response = timed_post(deps, notification(alert("ghost1")))
    thread.join(10)
    assert response.status_code == 200 and response.get_json()["outcomes"][0]["decision"] == "evicted"
    # It ran on its own thread at once (was 11.5 s behind 2,000 alerts on the shared pool).
    assert elapsed < 0.5, elapsed
    big_elapsed, big_response = result["big"]
    assert big_response.status_code == 503 and big_elapsed < 3.0 + 1.0, big_elapsed  # plus 2,000 answers and audit lines
    reasons = {o["reason"] for o in big_response.get_json()["outcomes"]}
    assert reasons == {"not_found", "timeout"}


@pytest.mark.slow
def test_notifications_beyond_the_cap_are_answered_at_once_and_sent_again():
    ams = SlowFake(0.01)
    deps, _ = build_deps({"main": ams}, config=remediator_config(
        concurrency=2, notification_timeout_seconds=4.0, max_concurrent_notifications=1))
    thread = threading.Thread(target=timed_post, args=(deps, notification(*[alert(f"s{i}") for i in range(1000)])))
    thread.start()
    time.sleep(0.3)
    elapsed, response = timed_post(deps, notification(alert("ghost1")))
    thread.join(10)
    # The HTTP server's other threads stay free for health checks and scrapes: this one waited 1 s, no more.
    assert response.status_code == 503 and elapsed < 1.0 + 0.3, elapsed
    assert response.get_json()["outcomes"][0]["reason"] == "busy"


@pytest.mark.slow
def test_flags_for_unconfigured_apps_are_not_kept():
    ams = FakeAms()
    deps, _ = build_deps({"main": ams}, config=remediator_config(blast_radius={"enabled": True}))
    # The audit lines go where a deployment sends them, out of this process, not into the test's in-memory
    # buffer: 15,000 of them (about 4.5 MB) would otherwise be counted as what the remediator keeps.
    devnull = open(os.devnull, "w")
    deps.remediator.audit = AuditLog(devnull)
    client = app_client(deps)
    tracemalloc.start()
    for n in range(30):  # each notification names a different unconfigured app
        post(client, notification(*[alert(f"s{i}", app=f"app{n}", room=None) for i in range(500)]))
    grown = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    devnull.close()
    assert deps.remediator.flagged.size() == 0
    assert grown < 8 * 2**20, grown / 2**20  # the 15,000 names were not kept
    assert sample(deps, "antmedia_remediator_decisions_total", ams="", app="", outcome="skipped",
                  reason="unknown_app") == 15000


def test_flags_expire_by_age_on_every_app():
    ams = FakeAms()
    clock = Clock()
    config = remediator_config(blast_radius={"enabled": True, "window_seconds": 60})
    deps, _ = build_deps({"main": ams}, config=config, clock=clock)
    flagged = deps.remediator.flagged
    for i in range(100):
        flagged.flag(("main", APP), f"s{i}", clock.now)
    clock.now += 61
    flagged.flag(("main", "OtherApp"), "x", clock.now)  # any flag sweeps every app
    assert flagged.size() == 1


def test_an_id_the_remediator_cannot_act_on_fails_on_its_own_ams_and_app():
    ams = FakeAms()
    deps, audit = build_deps({"main": ams})
    response = post(app_client(deps), notification(alert("tab%09here"), alert("ok1", room="room 1")))
    assert [(o["decision"], o["reason"]) for o in response.get_json()["outcomes"]] == [
        ("failed", "invalid_id"), ("failed", "invalid_id")]
    # AntMediaRemediationFailing reads outcome="failed" per ams/app: it now fires for this app.
    assert sample(deps, "antmedia_remediator_decisions_total", ams="main", app=APP, outcome="failed",
                  reason="invalid_id") == 2
    assert ams.writes == [] and all(o["calls"] == [] for o in response.get_json()["outcomes"])
