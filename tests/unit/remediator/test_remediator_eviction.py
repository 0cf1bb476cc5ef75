"""Eviction steps against AMS answers that are not the happy path: doubled listings, no-op writes, signs of life."""
from __future__ import annotations

from msgspec.structs import replace
from remediator_support import (
    FakeAms,
    alert,
    app_client,
    build_deps,
    notification,
    post,
    remediator_config,
)

from ams.model import Result


def _decide(ams, **config):
    deps, _ = build_deps({"main": ams}, config=remediator_config(**config))
    response = post(app_client(deps), notification(alert("ghost1")))
    (only,) = response.get_json()["outcomes"]
    return only["decision"], only["reason"]


class DoubleListed(FakeAms):
    """A room that lists ghost1 twice; each removal takes one copy, and says success=false on the last one."""

    def __init__(self, copies: int) -> None:
        super().__init__()
        self.copies = copies

    def get_room_members(self, app, room):
        return super().get_room_members(app, room) | ({"ghost1"} if self.copies and room == "room1" else set())

    def remove_subtrack(self, app, room, stream):
        self._write("remove_subtrack", f"{room}/{stream}")
        self.copies = max(0, self.copies - 1)
        if not self.copies and stream in self.records:
            self.records[stream] = replace(self.records[stream], main_track_id="")
        return Result(success=False, message="update changed nothing")


def test_a_stream_listed_twice_is_removed_until_ams_lists_it_nowhere():
    ams = DoubleListed(copies=2)
    ams.add("ghost1")
    assert _decide(ams) == ("evicted", "ok")
    assert ams.writes.count(("remove_subtrack", "room1/ghost1")) == 2 and ("delete", "ghost1") in ams.writes


def test_a_listing_that_never_goes_is_a_failure_after_a_bounded_number_of_removals():
    ams = DoubleListed(copies=100)
    ams.add("ghost1")
    assert _decide(ams) == ("failed", "write_failed")
    assert ams.writes.count(("remove_subtrack", "room1/ghost1")) == 3 and ("delete", "ghost1") not in ams.writes


class StopFindsPublisher(FakeAms):
    def stop_broadcast(self, app, stream):
        self._write("stop", stream)
        return Result(success=True)


def test_a_stop_that_finds_a_publisher_writes_nothing_else():
    ams = StopFindsPublisher()
    ams.add("ghost1")
    assert _decide(ams) == ("failed", "alive_on_stop") and ams.writes == [("stop", "ghost1")]


class ResumesDuringEviction(FakeAms):
    def stop_broadcast(self, app, stream):
        result = super().stop_broadcast(app, stream)
        self.records[stream] = replace(self.records[stream], update_time_ms=self.records[stream].update_time_ms + 1000)
        return result


def test_a_heartbeat_that_moves_during_the_eviction_stops_it_before_room_and_record():
    ams = ResumesDuringEviction()
    ams.add("ghost1")
    assert _decide(ams) == ("failed", "heartbeat_resumed") and ams.writes == [("stop", "ghost1")]


def test_a_record_ams_already_reads_finished_gets_no_finishing_put():
    ams = FakeAms()
    ams.add("ghost1", zombi=False, status="finished")
    assert _decide(ams) == ("evicted", "ok")
    assert ("finish", "ghost1") not in ams.writes and ("remove_subtrack", "room1/ghost1") in ams.writes


class GoneWithTheStop(FakeAms):
    """AMS's own stop (or another replica) removes the record; the id is free for a new publisher."""

    def stop_broadcast(self, app, stream):
        result = super().stop_broadcast(app, stream)
        self.records.pop(stream, None)
        return result


def test_a_record_gone_after_the_stop_gets_no_further_write():
    ams = GoneWithTheStop()
    ams.add("ghost1")
    assert _decide(ams)[0] == "evicted" and ams.writes == [("stop", "ghost1")]


def test_a_stop_that_reached_a_live_publisher_holds_the_app_and_keeps_its_caps_slot():
    """Heartbeats misled once (evidence matched a live stream): the app's other "ghosts" may be alive too."""
    ams = StopFindsPublisher()
    for stream in ("b1", "b2", "b3"):
        ams.add(stream)
    deps, _ = build_deps({"main": ams}, config=remediator_config(caps={"max_evictions_per_app": 2}, concurrency=1))
    client = app_client(deps)
    assert [o["reason"] for o in post(client, notification(alert("b1"))).get_json()["outcomes"]] == ["alive_on_stop"]
    response = post(client, notification(alert("b2"), alert("b3")))
    assert [o["reason"] for o in response.get_json()["outcomes"]] == ["held_after_life"] * 2
    assert ams.writes == [("stop", "b1")]
    assert deps.remediator.caps.reserve(("main", "WebRTCAppEE"), deps.remediator.clock()) is None  # b1 kept its slot
    assert deps.remediator.caps.reserve(("main", "WebRTCAppEE"), deps.remediator.clock()) == "caps.max_evictions_per_app"
