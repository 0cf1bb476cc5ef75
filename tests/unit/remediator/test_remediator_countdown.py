"""The early path (remediator/countdown.py): a candidate alert arms a countdown; the guarded eviction runs at
its deadline, on the remediator's own clock, unless the stream changes first."""
from __future__ import annotations

import copy

import httpx
import msgspec
import pytest
from remediator_support import (
    APP,
    NOW,
    FakeAms,
    alert,
    app_client,
    audit_lines,
    build_deps,
    notification,
    post,
    remediator_config,
    sample,
)

from remediator.alerts import AlertmanagerCheck

THRESHOLD = 23.5   # 2.8.2 production: 2 x 5 s + 10 s grace + 3.5 s
FROZEN = 10.0      # the candidate fired after one period and one 10 s scrape


def candidate(stream: str, frozen: float = FROZEN, threshold: float = THRESHOLD, heartbeat: float = NOW - 60,
              **kw) -> dict:
    """An AntMediaGhostCandidate alert as the rule sends it."""
    item = alert(stream, heartbeat=heartbeat, alertname="AntMediaGhostCandidate", remediation="countdown",
                 severity="info", **kw)
    item["annotations"].update({"frozen_seconds": f"{frozen:.3f}", "threshold_seconds": f"{threshold:.3f}"})
    return item


class FakeAlertmanager:
    """Alertmanager's API v2 /alerts over a list of alerts, each active or silenced."""

    def __init__(self) -> None:
        self.alerts: list[dict] = []
        self.silenced: set[str] = set()
        self.down = False

    def check(self) -> AlertmanagerCheck:
        return AlertmanagerCheck("http://alertmanager.test", 1.0, transport=httpx.MockTransport(self._handle))

    def _handle(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            return httpx.Response(503)
        filters = request.url.params.get_list("filter")
        if request.url.params.get("receiver", "^antmedia\\-remediator$") != "^antmedia\\-remediator$":
            return httpx.Response(200, json=[])
        hide_silenced = request.url.params.get("silenced") == "false"
        entries = []
        for item in self.alerts:
            if not all(f'{k}="{v}"' in filters or k not in {f.split("=")[0] for f in filters}
                       for k, v in item["labels"].items()):
                continue
            silenced = item["fingerprint"] in self.silenced
            if silenced and hide_silenced:
                continue
            entry = copy.deepcopy(item)
            entry.pop("status")
            entry["status"] = {"state": "suppressed" if silenced else "active",
                               "silencedBy": ["s1"] if silenced else [], "inhibitedBy": []}
            entries.append(entry)
        return httpx.Response(200, json=entries)


def listed(stream: str = "ghost1") -> tuple[FakeAlertmanager, dict]:
    """An Alertmanager that holds the stream's candidate alert, and that alert."""
    manager = FakeAlertmanager()
    manager.alerts.append(candidate(stream))
    return manager, manager.alerts[-1]


@pytest.fixture
def ams():
    fake = FakeAms("2.8.2")
    fake.add("ghost1")
    fake.add("alive1", age=1.0)
    return fake


def run(deps, seconds: float, step: float = 1.0) -> None:
    """Let the remediator's clock pass, reading every armed countdown once a step (the read loop)."""
    clock, countdowns = deps.remediator.own_clock, deps.remediator.countdowns
    waited = 0.0
    while waited < seconds - 1e-9:
        clock.now += step
        waited += step
        for future in countdowns.tick():
            future.result(timeout=10)


def decisions(audit) -> list[tuple[str, str, str]]:
    return [(r["stream_id"], r["decision"], r["reason"]) for r in audit_lines(audit)]


def test_arming_answers_at_once_writes_nothing_and_is_exported(ams):
    deps, audit = build_deps({"main": ams})
    response = post(app_client(deps, retry=False), notification(candidate("ghost1")))
    assert response.status_code == 200
    assert decisions(audit) == [("ghost1", "armed", "countdown")] and ams.writes == []
    assert sample(deps, "antmedia_remediator_countdowns", ams="main", app=APP) == 1


def test_the_ghost_is_evicted_at_its_deadline_and_not_one_read_earlier(ams):
    deps, audit = build_deps({"main": ams})
    post(app_client(deps, retry=False), notification(candidate("ghost1")))
    run(deps, THRESHOLD - FROZEN - 0.5)
    assert ams.writes == []
    run(deps, 1.0)
    assert ("stop", "ghost1") in ams.writes and ams.writes[-1] == ("delete", "ghost1")
    assert decisions(audit)[-1] == ("ghost1", "evicted", "ok")
    assert sample(deps, "antmedia_remediator_countdowns", ams="main", app=APP) == 0


def test_a_heartbeat_that_advances_half_a_second_before_the_deadline_disarms_it(ams):
    deps, audit = build_deps({"main": ams})
    post(app_client(deps, retry=False), notification(candidate("ghost1")))
    run(deps, THRESHOLD - FROZEN - 1.0)
    ams.beat("ghost1", 0.5)
    run(deps, 0.5, step=0.5)
    run(deps, 30.0)
    assert ams.writes == []
    assert decisions(audit)[-1] == ("ghost1", "disarmed", "heartbeat_moved")
    assert sample(deps, "antmedia_remediator_decisions_total", ams="main", app=APP, outcome="disarmed",
                  reason="heartbeat_moved") == 1


def test_a_participant_resuming_a_moment_before_the_deadline_is_not_written(ams):
    deps, audit = build_deps({"main": ams})
    post(app_client(deps, retry=False), notification(candidate("ghost1")))
    run(deps, THRESHOLD - FROZEN - 1.0)
    deps.remediator.own_clock.now += 0.9
    ams.beat("ghost1", 0.2)  # resumes between the last read and the deadline
    run(deps, 10.0)
    assert ams.writes == [] and ("ghost1", "evicted", "ok") not in decisions(audit)


def test_a_stream_that_flaps_and_freezes_again_is_evicted_at_its_new_deadline(ams):
    deps, audit = build_deps({"main": ams})
    client = app_client(deps, retry=False)
    post(client, notification(candidate("ghost1")))
    run(deps, 3.0)
    ams.beat("ghost1", 30.0)  # back for a moment: the heartbeat is now 30 s old on AMS's clock
    run(deps, 1.0)
    assert decisions(audit)[-1] == ("ghost1", "disarmed", "heartbeat_moved")
    # Frozen again: a new alert (a new startsAt) with the new heartbeat.
    post(client, notification(candidate("ghost1", frozen=6.0, heartbeat=NOW - 30, starts_at="2026-11-25T00:01:00Z")))
    run(deps, THRESHOLD - 6.0 - 1.0)
    assert ams.writes == []
    run(deps, 2.0)
    assert ams.writes[-1] == ("delete", "ghost1") and decisions(audit)[-1] == ("ghost1", "evicted", "ok")


def test_a_silence_added_after_arming_stops_the_eviction(ams):
    manager, item = listed()
    deps, audit = build_deps({"main": ams}, alertmanager=manager.check())
    post(app_client(deps, retry=False), notification(item))
    run(deps, 5.0)
    manager.silenced.add(item["fingerprint"])
    run(deps, 30.0)
    assert ams.writes == [] and ("ghost1", "skipped", "silenced") in decisions(audit)
    assert sample(deps, "antmedia_remediator_countdowns", ams="main", app=APP) == 0


def test_a_restarted_remediator_rebuilds_the_countdown_from_alertmanager_and_evicts_once(ams):
    manager, item = listed()
    first, _ = build_deps({"main": ams}, alertmanager=manager.check())
    post(app_client(first, retry=False), notification(item))
    run(first, 5.0)
    first.remediator.close()  # stopped mid-countdown: nothing written
    assert ams.writes == []
    second, audit = build_deps({"main": ams}, alertmanager=manager.check())
    assert second.remediator.countdowns.rebuild() == 1
    assert sample(second, "antmedia_remediator_countdowns", ams="main", app=APP) == 1
    run(second, THRESHOLD)  # the arrival is now: the deadline can only be later than the first one's
    assert [w for w in ams.writes if w[0] == "delete"] == [("delete", "ghost1")]
    assert decisions(audit)[-1] == ("ghost1", "evicted", "ok")


def test_two_remediators_evict_each_ghost_once(ams):
    manager, item = listed()
    pair = [build_deps({"main": ams}, alertmanager=manager.check()) for _ in range(2)]
    post(app_client(pair[0][0], retry=False), notification(item))
    assert pair[1][0].remediator.countdowns.rebuild() == 1
    for _ in range(int(THRESHOLD) + 2):
        for deps, _ in pair:
            run(deps, 1.0)
    assert [w for w in ams.writes if w[0] in ("stop", "delete")] == [("stop", "ghost1"), ("delete", "ghost1")]
    # The second one's read finds the record gone: disarmed, nothing written.
    outcomes = sorted(decisions(audit)[-1][1:] for _, audit in pair)
    assert outcomes == [("disarmed", "gone"), ("evicted", "ok")]


def test_countdowns_are_bounded_and_the_backstop_takes_the_rest(ams):
    ams.add("ghost2")
    ams.add("ghost3")
    config = remediator_config(countdown={"max_armed": 2})
    deps, audit = build_deps({"main": ams}, config=config)
    post(app_client(deps, retry=False), notification(*(candidate(s) for s in ("ghost1", "ghost2", "ghost3"))))
    assert sorted(d[1:] for d in decisions(audit)) == [("armed", "countdown"), ("armed", "countdown"),
                                                       ("skipped", "countdown_full")]


@pytest.mark.parametrize("annotation", ["frozen_seconds", "threshold_seconds", "heartbeat_timestamp"])
@pytest.mark.parametrize("value", [None, "", "soon", "-3", "1e9", "NaN"])
def test_a_candidate_without_usable_durations_arms_nothing(ams, annotation, value):
    item = candidate("ghost1")
    if value is None:
        item["annotations"].pop(annotation)
    else:
        item["annotations"][annotation] = value
    deps, audit = build_deps({"main": ams})
    response = post(app_client(deps, retry=False), notification(item))
    assert response.status_code == 200 and ams.writes == []
    assert decisions(audit) == [("ghost1", "skipped", "no_evidence")]
    assert sample(deps, "antmedia_remediator_countdowns", ams="main", app=APP) == 0


@pytest.mark.parametrize("annotation", ["frozen_seconds", "threshold_seconds"])
def test_a_duration_over_a_day_arms_nothing(ams, annotation):
    item = candidate("ghost1")
    item["annotations"][annotation] = "86400.5"
    deps, audit = build_deps({"main": ams})
    post(app_client(deps, retry=False), notification(item))
    assert decisions(audit) == [("ghost1", "skipped", "no_evidence")]


def test_a_candidate_for_a_healthy_participant_is_disarmed_at_its_first_read(ams):
    deps, audit = build_deps({"main": ams})
    post(app_client(deps, retry=False), notification(candidate("alive1", heartbeat=NOW - 5)))
    run(deps, 30.0)
    assert ams.writes == [] and decisions(audit)[-1] == ("alive1", "disarmed", "heartbeat_moved")


def test_the_early_path_can_be_turned_off(ams):
    deps, audit = build_deps({"main": ams}, config=remediator_config(countdown={"enabled": False}))
    post(app_client(deps, retry=False), notification(candidate("ghost1")))
    assert decisions(audit) == [("ghost1", "skipped", "countdown_disabled")] and ams.writes == []


def test_rebuild_leaves_out_silenced_alerts_and_survives_alertmanager_down(ams):
    manager = FakeAlertmanager()
    manager.alerts += [candidate("ghost1"), candidate("alive1")]
    manager.silenced.add(manager.alerts[1]["fingerprint"])
    deps, _ = build_deps({"main": ams}, alertmanager=manager.check())
    assert deps.remediator.countdowns.rebuild() == 1
    assert deps.remediator.countdowns.armed() == {("main", APP): 1}
    manager.down = True
    deps.remediator.countdowns._rebuild_quietly()  # logged, nothing raised, nothing lost
    assert deps.remediator.countdowns.armed() == {("main", APP): 1}


def test_a_candidate_already_settled_or_disarmed_is_not_armed_again(ams):
    manager, item = listed()
    deps, audit = build_deps({"main": ams}, alertmanager=manager.check(), config=remediator_config(dry_run=True))
    client = app_client(deps, retry=False)
    post(client, notification(item))
    run(deps, THRESHOLD)
    assert decisions(audit)[-1] == ("ghost1", "dry_run", "ok")
    # Alertmanager still lists it (dry-run leaves the ghost): neither the read-back nor a resend arms it again.
    deps.remediator.countdowns.rebuild()
    post(client, notification(item))
    assert decisions(audit)[-1] == ("ghost1", "skipped", "duplicate")
    assert deps.remediator.countdowns.armed() == {}
    # A heartbeat seen to move on is not armed again from Alertmanager's stale copy of the alert.
    ams.add("alive2", age=60.0)
    moved = candidate("alive2", starts_at="2026-11-25T00:02:00Z")
    post(client, notification(moved))
    ams.beat("alive2")
    run(deps, 1.0)
    assert decisions(audit)[-1] == ("alive2", "disarmed", "heartbeat_moved")
    manager.alerts.append(moved)
    deps.remediator.countdowns.rebuild()
    assert deps.remediator.countdowns.armed() == {}


def test_a_deadline_before_the_remediators_own_witness_waits_for_it_without_deferring(ams):
    deps, audit = build_deps({"main": ams})
    # Frozen for longer than the threshold already: the deadline is now, the witness (8.5 s on 2.8.2) is not.
    post(app_client(deps, retry=False), notification(candidate("ghost1", frozen=THRESHOLD + 5)))
    run(deps, 8.0)
    assert ams.writes == [] and [d[1] for d in decisions(audit)] == ["armed"]
    run(deps, 2.0)  # the first read came a second after arming
    assert decisions(audit)[-1] == ("ghost1", "evicted", "ok")


def test_a_deadline_met_by_an_unreachable_alertmanager_is_tried_again_backing_off(ams):
    manager, item = listed()
    deps, audit = build_deps({"main": ams}, alertmanager=manager.check())
    post(app_client(deps, retry=False), notification(item))
    run(deps, THRESHOLD - FROZEN - 1.0)
    manager.down = True  # silences and inhibitions cannot be asked: nothing is decided
    run(deps, 20.0)
    deferred = [d for d in decisions(audit) if d[1] == "deferred"]
    assert 2 <= len(deferred) <= 5 and ams.writes == [], deferred  # 2, 4, 8 s apart: not one a second
    manager.down = False
    run(deps, 20.0)
    assert decisions(audit)[-1] == ("ghost1", "evicted", "ok")


def test_a_3x_record_turning_terminated_unexpectedly_while_armed_stays_armed():
    ams = FakeAms("3.0.0")
    ams.add("ghost1")
    deps, audit = build_deps({"main": ams})
    post(app_client(deps, retry=False), notification(candidate("ghost1", threshold=33.5)))
    run(deps, 5.0)
    # AMS computes terminated_unexpectedly once the heartbeat is old enough: the ghost ageing, nothing else.
    record = ams.records["ghost1"]
    ams.records["ghost1"] = msgspec.structs.replace(record, status="terminated_unexpectedly")
    run(deps, 33.5 - FROZEN)
    assert decisions(audit)[-1] == ("ghost1", "evicted", "ok")
    assert not any(d[1] == "disarmed" for d in decisions(audit))


def test_heartbeats_frozen_all_at_once_are_held_as_a_storm_before_the_first_deadline_writes(ams):
    """A step back of AMS's clock freezes every heartbeat at once: the candidates all arm together, and the
    storm alert, which fires only at the threshold, could come after the first deadline."""
    streams = [f"p{i}" for i in range(10)]
    for stream in streams:
        ams.add(stream)
    deps, audit = build_deps({"main": ams}, config=remediator_config(blast_radius={"enabled": True}))
    post(app_client(deps, retry=False), notification(*(candidate(s) for s in streams)))
    run(deps, THRESHOLD)
    assert ams.writes == []
    assert {d[2] for d in decisions(audit) if d[0] in streams and d[1] != "armed"} == {"blast_radius"}
