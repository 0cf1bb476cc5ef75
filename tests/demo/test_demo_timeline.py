"""The demo's timeline lines and closing summary (no processes)."""
import io
from dataclasses import dataclass

from demo.summary import format_summary, ghost_outcome, summarize
from demo.timeline import Event, Timeline, alert_events, alert_states, audit_event


@dataclass
class Write:
    method: str
    path: str
    query: str = ""
    status_code: int = 200


@dataclass
class Lifecycle:
    dropped_at: float | None = None
    last_heartbeat_at: float | None = None
    unlisted_at: float | None = None
    deleted_at: float | None = None
    rejoinable_at: float | None = None


BASE = "/WebRTCAppEE/rest/v2/broadcasts"


def test_new_alert_is_firing_and_a_silenced_one_says_so():
    now = alert_states([
        {"labels": {"alertname": "AntMediaGhostStream", "stream_id": "bob", "room": "r"},
         "status": {"state": "active"}},
        {"labels": {"alertname": "AntMediaGhostStream", "stream_id": "eve"}, "status": {"state": "suppressed"}},
        {"labels": {"alertname": "AntMediaApiDown"}, "status": {"state": "active"}},
    ])
    assert alert_events({}, now) == [("firing", "bob", "AntMediaGhostStream firing (room r)"),
                                     ("silenced", "eve", "AntMediaGhostStream firing, silenced in Alertmanager")]


def test_unchanged_alert_says_nothing_and_a_vanished_one_resolves():
    before = {"bob": {"state": "active", "room": "r"}, "eve": {"state": "active", "room": ""}}
    assert alert_events(before, {"bob": {"state": "active", "room": "r"}}) == [
        ("resolved", "eve", "AntMediaGhostStream resolved")]


def test_audit_line_reads_as_decision_with_its_calls():
    record = {"stream_id": "bob", "decision": "evicted", "reason": "ok",
              "calls": [{"action": "get", "result": "success"}, {"action": "delete", "result": "success"}]}
    assert audit_event(record) == ("decision", "bob", "evicted (ok): get success, delete success")


def test_timeline_prints_each_event_with_its_offset():
    ticks = iter([100.0, 112.34])
    out = io.StringIO()
    timeline = Timeline(out=out, clock=lambda: next(ticks))
    timeline.add("firing", "bob", "AntMediaGhostStream firing")
    assert out.getvalue() == "  +  12.3s  ALERT      bob          AntMediaGhostStream firing\n"
    assert timeline.events == [Event(12.3, "firing", "bob", "AntMediaGhostStream firing")]


def test_ghost_lifetime_runs_from_last_heartbeat_to_removal():
    outcome = ghost_outcome("bob", Lifecycle(10, 9.5, 30.0, 30.5, 30.5))
    assert (outcome.removed_after, outcome.rejoinable_after) == (21.0, 21.0)


def test_ghost_still_listed_is_not_removed():
    assert ghost_outcome("bob", Lifecycle(10, 9.5)).removed_after is None
    assert ghost_outcome("bob", None).removed_after is None


def test_summary_counts_removed_ghosts_and_wrong_writes():
    lifecycles = {"bob": Lifecycle(10, 9, 20, 21, 21), "carol": Lifecycle(10, 9)}
    summary = summarize(["bob", "carol"], lifecycles, [Write("DELETE", f"{BASE}/alice")], kept=["eve"])
    assert not summary.ok and len(summary.removed) == 1
    lines = format_summary(summary)
    assert lines[0] == "Ghosts removed: 1 of 2"
    assert "Streams wrongly touched: 1" in lines
    assert f"  DELETE {BASE}/alice -> 200" in lines
    assert any("eve" in line and "silenced" in line for line in lines)


def test_clean_run_summary_is_ok():
    summary = summarize(["bob"], {"bob": Lifecycle(10, 9, 20, 21, 21)}, [])
    assert summary.ok
    assert "Streams wrongly touched: 0" in format_summary(summary)


def test_a_decision_names_the_alert_that_led_to_it():
    record = {"stream_id": "carol", "alertname": "AntMediaGhostCandidate", "decision": "armed", "reason": "countdown"}
    assert audit_event(record) == ("decision", "carol", "AntMediaGhostCandidate: armed (countdown)")
