"""Guards on their own: lists, caps, flagged streams, the recently-settled set."""
from remediator.guards import EvictionCaps, FlaggedStreams, HandledAlerts, denied_by
from service.config import BlastRadius, Caps, Filters


def test_deny_wins_and_allowlists_admit_only_what_they_name():
    allow, deny = Filters(apps=("A",), rooms=("r1",)), Filters(streams=("bad",))
    assert denied_by(allow, deny, "A", ("r1",), "bad") == "deny.streams"
    assert denied_by(allow, deny, "B", ("r1",), "s") == "allow.apps"
    assert denied_by(allow, deny, "A", (), "s") == "allow.rooms"
    assert denied_by(allow, deny, "A", ("r1", "r2"), "s") == "allow.rooms"
    assert denied_by(allow, deny, "A", None, "s") is None
    assert denied_by(allow, deny, "A", ("r1",), "s") is None


def test_caps_slide_and_release_gives_a_slot_back():
    caps = EvictionCaps(Caps(window_seconds=10, max_evictions=2, max_evictions_per_app=None))
    assert caps.reserve("a", 0.0) is None and caps.reserve("b", 1.0) is None
    assert caps.reserve("a", 2.0) == "caps.max_evictions"
    caps.release("b", 1.0)
    assert caps.reserve("a", 3.0) is None
    assert caps.reserve("a", 10.5) is None


def test_flagged_streams_are_distinct_and_expire():
    flagged = FlaggedStreams(BlastRadius(window_seconds=60))
    for now, stream in ((0, "s1"), (1, "s1"), (2, "s2")):
        flagged.flag("app", stream, now)
    assert flagged.count("app", 3) == 2
    assert flagged.count("app", 61.5) == 1
    assert flagged.count("other", 3) == 0


def test_recently_settled_set_is_bounded():
    handled = HandledAlerts(max_entries=2)
    for key in ("k1", "k2", "k3"):
        handled.settle(key, "evicted")
    assert handled.outcome("k1") is None and handled.outcome("k3") == "evicted"
