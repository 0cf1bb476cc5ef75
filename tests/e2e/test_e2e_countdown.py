"""The early path end to end: real Prometheus and Alertmanager send AntMediaGhostCandidate to the remediator,
which counts down to the stale threshold on its own clock and evicts then (remediator/countdown.py)."""
from __future__ import annotations

import time
from datetime import datetime, timezone

import pytest

from stack import api
from stack.conference import is_removed, start_populated, wait_members_seen, wait_removed
from stack.runner import StackOptions
from stack.waiting import hold_for, wait_for
from stack.writes import writes_to

pytestmark = pytest.mark.e2e
APP = "WebRTCAppEE"
CANDIDATE, GHOST = "AntMediaGhostCandidate", "AntMediaGhostStream"
TIMEOUT = 60.0
# Accelerated timing: the threshold is 3 x 1 s + 2 s grace + 3.5 s; a ghost goes a few seconds after it.
THRESHOLD = 8.5


def running(options: StackOptions):
    """A populated stack of its own for a module fixture, stopped after the module."""
    stack = start_populated(options, APP, 20, 2)
    try:
        yield stack
    finally:
        stack.stop()


def join(stack, room: str, names) -> None:
    stack.sim.create_room(APP, room)
    for name in names:
        assert stack.sim.join(APP, room, name, name=name.title())
    wait_members_seen(stack.prometheus_url, room, len(names))


def lines(stack, stream: str, index: int = 0) -> list[dict]:
    """The audit lines of one stream."""
    return [r for r in stack.audit(index) if r["stream_id"] == stream]


def armed(stack, stream: str) -> bool:
    return any(r["decision"] == "armed" for r in lines(stack, stream))


def evictions(stack, stream: str) -> list[str]:
    """The eviction writes (stop, record delete) that reached AMS for a stream."""
    record = f"/{APP}/rest/v2/broadcasts/{stream}"
    return [f"{w.method} {w.path}" for w in writes_to(stack.sim.writes, stream)
            if (w.method, w.path) in (("POST", f"{record}/stop"), ("DELETE", record))]


def seconds(stamp: str) -> float:
    """An audit line's time, in epoch seconds."""
    return datetime.fromisoformat(stamp).timestamp()


def evicted_by_its_deadline(stack, stream: str, since: str = "") -> None:
    """The last countdown armed for the stream ends in its eviction, by its deadline plus a read and the eviction.

    Which alert's decision evicts is a race in accelerated timing (1 s scrapes leave the ghost alert only a
    second or two behind the countdown); the deadline holds either way.
    """
    records = [r for r in lines(stack, stream) if r["time"] >= since]
    arms = [r for r in records if r["decision"] == "armed"]
    assert arms, records
    deadline = seconds(arms[-1]["time"]) + float(arms[-1]["detail"].split()[2])
    (evicted,) = [r for r in records if r["decision"] == "evicted"]
    assert seconds(evicted["time"]) <= deadline + 3.0, (evicted, arms[-1])


def test_a_ghost_goes_at_its_countdown_before_the_ghost_alert_is_needed(alive):
    join(alive, "early", ("ea-stay", "ea-drop"))
    dropped = alive.sim.clock.now()
    alive.sim.drop(APP, "ea-drop")
    wait_removed(alive.sim, APP, ["ea-drop"], TIMEOUT)
    gone_after = alive.sim.clock.now() - dropped
    evicted_by_its_deadline(alive, "ea-drop")
    assert gone_after < THRESHOLD + 6.0, gone_after
    assert writes_to(alive.sim.writes, "ea-stay") == []


def test_a_participant_back_half_a_second_before_the_deadline_is_not_written_to(alive):
    if alive.options.ams_version != "3.0.0":
        pytest.skip("2.8.2 refuses a same-id publish until the eviction frees the id")
    join(alive, "comeback", ("cb-stay", "cb-back"))
    alive.sim.drop(APP, "cb-back")
    wait_for(lambda: armed(alive, "cb-back"), TIMEOUT, "the candidate was never armed")
    (arm,) = [r for r in lines(alive, "cb-back") if r["decision"] == "armed"]
    deadline = seconds(arm["time"]) + float(arm["detail"].split()[2])
    time.sleep(max(0.0, deadline - 0.5 - time.time()))
    assert alive.sim.reconnect(APP, "cb-back"), "3.x takes the same id back from a stale record"
    wait_for(lambda: any(r["decision"] == "disarmed" for r in lines(alive, "cb-back")), TIMEOUT,
             "the countdown was not disarmed when the heartbeat moved")
    hold_for(lambda: writes_to(alive.sim.writes, "cb-back") == [], THRESHOLD + 5.0,
             "a participant back before its deadline was written to")
    assert alive.sim.broadcast(APP, "cb-back")["status"] == "broadcasting"


@pytest.fixture(scope="module")
def patient():
    """AMS's reconnect grace at 6 s (webRTCClientStartTimeoutMs, and the config's): a publisher can resume its
    session after its countdown was armed."""
    yield from running(StackOptions(ams_version="2.8.2", simulator={"reconnect_grace_seconds": 6.0},
                                    ams={"reconnect_grace_seconds": 6.0}))


def test_a_stream_that_flaps_and_freezes_again_is_evicted_at_its_new_deadline(patient):
    stack = patient
    join(stack, "refreeze", ("rf-stay", "rf-flap"))
    stack.sim.drop(APP, "rf-flap")
    wait_for(lambda: armed(stack, "rf-flap"), TIMEOUT, "the candidate was never armed")
    assert stack.sim.resume(APP, "rf-flap"), "resumed within AMS's grace"
    wait_for(lambda: any(r["decision"] == "disarmed" for r in lines(stack, "rf-flap")), TIMEOUT,
             "the countdown was not disarmed when the heartbeat moved")
    hold_for(lambda: writes_to(stack.sim.writes, "rf-flap") == [], 3.0, "a resumed stream was written to")
    frozen_again, since = stack.sim.clock.now(), datetime.now(timezone.utc).isoformat(timespec="milliseconds")
    stack.sim.drop(APP, "rf-flap")
    wait_removed(stack.sim, APP, ["rf-flap"], TIMEOUT)
    assert all(w.time >= frozen_again for w in writes_to(stack.sim.writes, "rf-flap"))
    evicted_by_its_deadline(stack, "rf-flap", since)


def test_a_silence_added_after_arming_stops_the_eviction(alive):
    join(alive, "hush", ("hu-stay", "hu-drop"))
    alive.sim.drop(APP, "hu-drop")
    wait_for(lambda: armed(alive, "hu-drop"), TIMEOUT, "the candidate was never armed")
    silence = api.create_silence(alive.alertmanager_url, {"stream_id": "hu-drop"}, 900, "looking at it")
    hold_for(lambda: writes_to(alive.sim.writes, "hu-drop") == [], THRESHOLD + 10.0,
             "a stream silenced after its countdown was armed was written to")
    assert any(r["reason"] == "silenced" for r in lines(alive, "hu-drop"))
    api.expire_silence(alive.alertmanager_url, silence)
    wait_removed(alive.sim, APP, ["hu-drop"], TIMEOUT)


def test_a_remediator_restarted_mid_countdown_evicts_the_ghost_once(alive):
    join(alive, "restart", ("rs-stay", "rs-drop"))
    alive.sim.drop(APP, "rs-drop")
    wait_for(lambda: armed(alive, "rs-drop"), TIMEOUT, "the candidate was never armed")
    alive.restart_remediator()
    wait_removed(alive.sim, APP, ["rs-drop"], TIMEOUT)
    hold_for(lambda: len(evictions(alive, "rs-drop")) == 2, 5.0,
             f"evicted more than once: {evictions(alive, 'rs-drop')} {lines(alive, 'rs-drop')}")
    assert writes_to(alive.sim.writes, "rs-stay") == []


@pytest.fixture(scope="module")
def pair():
    """2 Prometheus -> 2 Alertmanagers gossiping -> 2 remediators, each Alertmanager posting to its own."""
    yield from running(StackOptions(ams_version="2.8.2", ha=True, remediators=2))


def test_an_ha_pair_with_two_remediators_evicts_each_ghost_once(pair):
    ghosts = ("ha-1", "ha-2", "ha-3")
    join(pair, "pair", ("ha-stay", *ghosts))
    for ghost in ghosts:
        pair.sim.drop(APP, ghost)
    wait_removed(pair.sim, APP, list(ghosts), TIMEOUT)
    hold_for(lambda: all(len(evictions(pair, g)) == 2 for g in ghosts), 5.0,
             f"a ghost was evicted twice: {[evictions(pair, g) for g in ghosts]}")
    for ghost in ghosts:
        evicted = [r for i in (0, 1) for r in lines(pair, ghost, i) if r["decision"] == "evicted"]
        assert len(evicted) == 1, ghost
    assert writes_to(pair.sim.writes, "ha-stay") == []


@pytest.fixture(scope="module")
def backstop_only():
    """The Alertmanager config without the early path's route."""
    yield from running(StackOptions(ams_version="2.8.2", early_route=False))


def test_without_the_early_route_the_ghost_alert_still_evicts(backstop_only):
    stack = backstop_only
    join(stack, "late", ("la-stay", "la-drop"))
    stack.sim.drop(APP, "la-drop")
    wait_removed(stack.sim, APP, ["la-drop"], TIMEOUT)
    records = lines(stack, "la-drop")
    assert not any(r["alertname"] == CANDIDATE for r in records)
    assert [r["alertname"] for r in records if r["decision"] == "evicted"] == [GHOST]
    assert is_removed(stack.sim, APP, "la-drop") and writes_to(stack.sim.writes, "la-stay") == []

