"""End to end on AMS 2.8.2 with each store: listings AMS itself leaves behind, and listings it doubles.

MapDB (the standalone default) and MongoDB behave differently on the writes an eviction makes
(a no-op write answers success=false on MongoDB; MapDB removes one copy of an id per call).
Real Prometheus and Alertmanager, accelerated timing.
"""
from __future__ import annotations

import pytest

from stack.conference import is_removed, wait_members_seen, wait_removed
from stack.runner import Stack, StackOptions
from stack.waiting import wait_for
from stack.writes import describe_write, wrongly_touched

pytestmark = pytest.mark.e2e
APP = "WebRTCAppEE"
REMOVAL_TIMEOUT = 60.0


@pytest.fixture(scope="module", params=("mapdb", "mongodb"), ids=lambda s: f"ams-2.8.2-{s}")
def stack(request):
    running = Stack(StackOptions(ams_version="2.8.2", simulator={"store": request.param}))
    running.__enter__()
    yield running
    running.stop()


def test_a_participant_who_left_cleanly_but_stays_listed_is_cleared_from_the_room_and_keeps_its_record(stack):
    """2.8.2 pulls only zombi records from a room on a clean leave (AntMediaApplicationAdapter L508-511).

    The record created through REST (non-zombi) reads finished yet stays in subTrackStreamIds:
    others still see the participant in the room. It is a ghost to clear from the listing; the
    record, which the user created, is kept.
    """
    stack.sim.create_room(APP, "booked")
    assert stack.sim.join(APP, "booked", "host", zombi=False) and stack.sim.join(APP, "booked", "guest")
    wait_members_seen(stack.prometheus_url, "booked", 2)
    assert stack.sim.leave(APP, "host")
    assert "host" in stack.sim.room_members(APP, "booked") and stack.sim.broadcast(APP, "host")["status"] == "finished"
    wait_removed(stack.sim, APP, ["host"], REMOVAL_TIMEOUT)
    assert "host" not in stack.sim.room_members(APP, "booked") and "guest" in stack.sim.room_members(APP, "booked")
    assert stack.sim.broadcast(APP, "host")["status"] == "finished"
    assert not [w for w in stack.sim.writes if w.method in ("PUT", "DELETE")
                and w.path.endswith("/broadcasts/host")], "the user's record was rewritten or deleted"


def test_a_ghost_listed_twice_is_removed_until_ams_lists_it_nowhere(stack):
    stack.sim.create_room(APP, "multi", mode="multitrack")
    assert stack.sim.join(APP, "multi", "twice") and stack.sim.join(APP, "multi", "stays")
    assert stack.sim.room_listing(APP, "multi")["subTrackStreamIds"].count("twice") + \
        stack.sim.room_listing(APP, "multi")["roomStreamList"].count("twice") >= 2
    wait_members_seen(stack.prometheus_url, "multi", 2)
    assert stack.sim.drop(APP, "twice")
    wait_removed(stack.sim, APP, ["twice"], REMOVAL_TIMEOUT)
    listing = stack.sim.room_listing(APP, "multi")
    assert "twice" not in listing["subTrackStreamIds"] and "twice" not in listing["roomStreamList"]
    assert is_removed(stack.sim, APP, "twice")


def test_a_participant_listed_in_two_rooms_is_listed_in_neither_at_the_end(stack):
    """A participant created through REST left room A cleanly (still listed there, finished) and later
    dropped in room B: both rooms' alerts fire; whichever the remediator takes first, both listings go."""
    for room in ("roomA", "roomB"):
        stack.sim.create_room(APP, room)
    assert stack.sim.join(APP, "roomA", "twoRooms", zombi=False) and stack.sim.leave(APP, "twoRooms")
    assert stack.sim.join(APP, "roomB", "twoRooms", zombi=False) and stack.sim.join(APP, "roomB", "stays2")
    wait_members_seen(stack.prometheus_url, "roomB", 2)
    assert stack.sim.drop(APP, "twoRooms")
    wait_for(lambda: not any("twoRooms" in stack.sim.room_members(APP, room) for room in ("roomA", "roomB")),
             REMOVAL_TIMEOUT, "the participant is still listed in a room")
    assert stack.sim.can_publish(APP, "twoRooms"), "the id is not free again"
    assert "stays2" in stack.sim.room_members(APP, "roomB")


def test_nothing_but_those_was_written(stack):
    assert [describe_write(w) for w in wrongly_touched(stack.sim.writes, {"host", "twice", "twoRooms"}, {})] == []
