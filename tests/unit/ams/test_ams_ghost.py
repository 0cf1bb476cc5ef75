"""The ghost predicate: main tracks never, live claims on AMS's clock beyond N heartbeat periods."""

from __future__ import annotations

import pytest

from ams.server import AmsServer
from ams.ghost import (
    claims_live, find_ghosts, ghost_verdict, heartbeat_age, heartbeat_period, is_main_track, stale_threshold,
)
from ams.model import AmsVersion, AppSnapshot, Broadcast, build_rooms, parse_broadcast_page, parse_version
from fakeams import fixture

NOW = 1000.0


def publisher(**kw) -> Broadcast:
    values = {"stream_id": "p1", "status": "broadcasting", "update_time_ms": int((NOW - 40) * 1000)}
    values.update(kw)
    return Broadcast(**values)


def test_stale_broadcasting_publisher_is_a_ghost():
    verdict = ghost_verdict(publisher(), NOW, 15.0)
    assert (verdict.is_ghost, verdict.reason, verdict.age_seconds) == (True, "stale", 40.0)


def test_fresh_publisher_is_not_a_ghost():
    assert ghost_verdict(publisher(update_time_ms=(NOW - 3) * 1000), NOW, 15.0).reason == "fresh"


def test_exactly_at_the_threshold_is_not_yet_stale():
    assert not ghost_verdict(publisher(update_time_ms=(NOW - 15) * 1000), NOW, 15.0).is_ghost


@pytest.mark.parametrize(
    "main",
    [publisher(virtual=True), publisher(subtrack_ids=("a",))],
)
def test_main_tracks_are_never_ghosts(main):
    assert ghost_verdict(main, NOW, 15.0).reason == "main_track"


def test_a_record_named_as_someones_main_track_is_a_room():
    room = publisher(stream_id="room1")
    assert is_main_track(room, {"room1"})
    assert ghost_verdict(room, NOW, 15.0, main_track_ids={"room1"}).reason == "main_track"


def test_finished_record_still_listed_in_a_room_claims_live():
    finished = publisher(status="finished")
    assert not claims_live(finished)
    assert claims_live(finished, {"p1"})
    assert ghost_verdict(finished, NOW, 15.0).reason == "not_live"
    assert ghost_verdict(finished, NOW, 15.0, room_member_of=("room1",)).is_ghost


def test_finished_record_that_only_points_at_its_room_is_not_a_member():
    # A non-zombi participant that left cleanly keeps mainTrackStreamId (status finished);
    # AMS no longer counts it as active, so neither a room listing nor a ghost.
    left = publisher(status="finished", main_track_id="room1")
    assert not claims_live(left)
    assert ghost_verdict(left, NOW, 15.0).reason == "not_live"
    assert build_rooms([left, publisher(stream_id="room1", virtual=True)]) == {"room1": frozenset()}
    live = publisher(stream_id="p2", main_track_id="room1")
    assert build_rooms([live]) == {"room1": frozenset({"p2"})}


def test_terminated_unexpectedly_claims_live():
    assert ghost_verdict(publisher(status="terminated_unexpectedly"), NOW, 15.0).is_ghost


def test_unknown_clock_or_missing_heartbeat_never_convicts():
    assert ghost_verdict(publisher(), None, 15.0).reason == "no_server_time"
    assert ghost_verdict(publisher(update_time_ms=0), NOW, 15.0).reason == "no_heartbeat"
    assert heartbeat_age(publisher(update_time_ms=0), NOW) is None
    assert ghost_verdict(None, NOW, 15.0).reason == "not_found"


def test_skewed_local_clock_does_not_matter_only_ams_clock_does():
    # updateTime far in our past but AMS's Date says it is fresh: fresh.
    b = publisher(update_time_ms=5_000_000)
    assert ghost_verdict(b, 5_002.0, 15.0).reason == "fresh"


def test_threshold_scales_with_the_heartbeat_period():
    server = AmsServer(name="a", url="http://h", apps=("x",))
    assert stale_threshold(server, parse_version({"versionName": "2.8.2"})) == 10.0
    assert stale_threshold(server, parse_version({"versionName": "3.0.0"})) == 20.0
    fast = AmsServer(name="a", url="http://h", apps=("x",), heartbeat_seconds=1.0, stale_heartbeats=4)
    assert heartbeat_period(fast, AmsVersion("3.0.0", 3)) == 1.0 and stale_threshold(fast, AmsVersion("3.0.0", 3)) == 4.0


@pytest.mark.parametrize(("version", "threshold"), [("2.8.2", 15.0), ("3.0.0", 30.0)])
def test_recorded_scenarios_have_exactly_one_ghost(version, threshold):
    envelope = fixture(f"v{version}_broadcasts_list.json")
    broadcasts, rejected = parse_broadcast_page(envelope["body"])
    conference = [("room1", ("f3kQ9xLmPa2W", "g7hGhost0001", "danglingId99"))] if version == "2.8.2" else []
    from email.utils import parsedate_to_datetime
    snap = AppSnapshot(app="WebRTCAppEE", version=parse_version({"versionName": version}),
                       server_time=parsedate_to_datetime(envelope["headers"]["Date"]).timestamp(),
                       broadcasts=tuple(broadcasts), rooms=build_rooms(broadcasts, conference))
    assert rejected == 0
    assert [(b.stream_id, v.reason) for b, v in find_ghosts(snap, threshold)] == [("g7hGhost0001", "stale")]
