"""The ghost predicate: pushed publishers only, never main tracks, live claims whose heartbeat is stale on one clock."""

from __future__ import annotations

import pytest

from ams.ghost import (
    AMS_READ_CACHE_SECONDS, AMS_WRITE_DELAY_SECONDS, claims_live, find_ghosts, ghost_candidates, ghost_verdict,
    heartbeat_period, is_main_track, is_pushed, stale_threshold,
)
from ams.model import AmsVersion, AppSnapshot, Broadcast, build_rooms, parse_broadcast_page, parse_version
from ams.server import AmsServer
from fakeams import fixture


def publisher(**kw) -> Broadcast:
    values = {"stream_id": "p1", "status": "broadcasting", "type": "liveStream", "update_time_ms": 1_000_000}
    values.update(kw)
    return Broadcast(**values)


def test_stale_broadcasting_publisher_is_a_ghost():
    assert ghost_verdict(publisher(), stale=True) == ghost_verdict(publisher(), True)
    verdict = ghost_verdict(publisher(), True)
    assert (verdict.is_ghost, verdict.reason) == (True, "stale")


def test_a_heartbeat_that_advanced_is_not_a_ghost():
    assert ghost_verdict(publisher(), False).reason == "fresh"


def test_without_one_clock_evidence_nothing_is_a_ghost():
    assert ghost_verdict(publisher(), None).reason == "no_evidence"


@pytest.mark.parametrize("kind", ["ipCamera", "streamSource", "playlist", "VoD", "unknown"])
def test_pulled_sources_and_unknown_types_are_never_ghosts(kind):
    source = publisher(type=kind, status="terminated_unexpectedly", main_track_id="room1")
    assert not is_pushed(source)
    assert ghost_verdict(source, True, listed=True).reason == "not_pushed"


@pytest.mark.parametrize("main", [publisher(virtual=True), publisher(subtrack_ids=("a",))])
def test_main_tracks_are_never_ghosts(main):
    assert ghost_verdict(main, True).reason == "main_track"


def test_a_record_named_as_someones_main_track_is_a_room():
    room = publisher(stream_id="room1")
    assert is_main_track(room, {"room1"})
    assert ghost_verdict(room, True, is_room=True).reason == "main_track"


def test_finished_record_still_listed_in_a_room_claims_live():
    finished = publisher(status="finished")
    assert not claims_live(finished)
    assert claims_live(finished, {"p1"})
    assert ghost_verdict(finished, True).reason == "not_live"
    assert ghost_verdict(finished, True, listed=True).is_ghost


def test_finished_record_that_only_points_at_its_room_is_not_a_member():
    # A non-zombi participant that left cleanly keeps mainTrackStreamId (status finished);
    # AMS no longer counts it as active, so neither a room listing nor a ghost.
    left = publisher(status="finished", main_track_id="room1")
    assert not claims_live(left)
    assert ghost_verdict(left, True).reason == "not_live"
    assert build_rooms([left, publisher(stream_id="room1", virtual=True)]) == {"room1": frozenset()}
    live = publisher(stream_id="p2", main_track_id="room1")
    assert build_rooms([live]) == {"room1": frozenset({"p2"})}


def test_terminated_unexpectedly_claims_live():
    assert ghost_verdict(publisher(status="terminated_unexpectedly"), True).is_ghost


def test_missing_record_or_heartbeat_never_convicts():
    assert ghost_verdict(publisher(update_time_ms=0), True).reason == "no_heartbeat"
    assert ghost_verdict(None, True).reason == "not_found"


def test_threshold_holds_the_spacing_the_reconnect_grace_and_amss_delays():
    server = AmsServer(name="a", url="http://h", apps=("x",))
    delays = AMS_WRITE_DELAY_SECONDS + AMS_READ_CACHE_SECONDS
    assert delays == 3.5
    assert stale_threshold(server, parse_version({"versionName": "2.8.2"})) == 2 * 5 + 10 + delays
    assert stale_threshold(server, parse_version({"versionName": "3.0.0"})) == 2 * 10 + 10 + delays
    fast = AmsServer(name="a", url="http://h", apps=("x",), heartbeat_seconds=1.0, stale_heartbeats=4,
                     reconnect_grace_seconds=1.0)
    assert heartbeat_period(fast, AmsVersion("3.0.0", 3)) == 1.0
    assert stale_threshold(fast, AmsVersion("3.0.0", 3)) == 4 * 1 + 1 + delays


@pytest.mark.parametrize("version", ["2.8.2", "3.0.0"])
def test_a_participant_inside_amss_grace_never_reaches_the_threshold(version):
    """Last write, drop one period later, resume at the end of the grace, first write after AMS's delays."""
    server = AmsServer(name="a", url="http://h", apps=("x",))
    ams = parse_version({"versionName": version})
    period = heartbeat_period(server, ams)
    longest_silence = period + server.reconnect_grace_seconds + AMS_WRITE_DELAY_SECONDS + AMS_READ_CACHE_SECONDS
    assert stale_threshold(server, ams) - longest_silence == period  # one spare period on top


@pytest.mark.parametrize("version", ["2.8.2", "3.0.0"])
def test_recorded_scenarios_have_exactly_one_ghost_candidate(version):
    envelope = fixture(f"v{version}_broadcasts_list.json")
    broadcasts, rejected = parse_broadcast_page(envelope["body"])
    conference = [("room1", ("f3kQ9xLmPa2W", "g7hGhost0001", "danglingId99"))] if version == "2.8.2" else []
    snap = AppSnapshot(app="WebRTCAppEE", version=parse_version({"versionName": version}), server_time=None,
                       broadcasts=tuple(broadcasts), rooms=build_rooms(broadcasts, conference))
    assert rejected == 0
    ghostly = {"g7hGhost0001"}
    candidates = {b.stream_id for b in ghost_candidates(snap)}
    assert ghostly <= candidates
    assert [b.stream_id for b in find_ghosts(snap, lambda b: b.stream_id in ghostly)] == ["g7hGhost0001"]
    assert find_ghosts(snap, lambda b: None) == []
