"""Revalidation on recorded AMS answers: the shared predicate, with the alert's heartbeat as its evidence."""
from __future__ import annotations

import pytest
from fakeams import FakeAms

from remediator.revalidation import revalidate

APP = "WebRTCAppEE"


@pytest.mark.parametrize("version", ["2.8.2", "3.0.0"])
def test_revalidate_judges_ghost_fresh_and_room(connect, version):
    client = connect(FakeAms.from_fixtures(version))
    seen = client.get_broadcast(APP, "g7hGhost0001").broadcast.update_time_ms
    ghost = revalidate(client, APP, "g7hGhost0001", None, seen)
    assert (ghost.verdict.is_ghost, ghost.verdict.reason, ghost.rooms) == (True, "stale", ("room1",))
    fresh = client.get_broadcast(APP, "f3kQ9xLmPa2W").broadcast.update_time_ms
    assert revalidate(client, APP, "f3kQ9xLmPa2W", None, fresh - 5000).verdict.reason == "fresh"
    assert revalidate(client, APP, "g7hGhost0001", None, None).verdict.reason == "no_evidence"
    assert revalidate(client, APP, "room1", None, seen).verdict.reason == "main_track"
    assert revalidate(client, APP, "oldMeeting01", None, seen).verdict.reason == "not_live"
    assert revalidate(client, APP, "gone", None, seen).verdict.reason == "not_found"
