"""The AMS client against the simulator's two stores, served in process: failed queries are failed
collections, and a record missed by one scrape comes back on the next."""

from __future__ import annotations

import httpx
import pytest

from ams.client import AmsClient
from ams.errors import AmsIncompleteError, AmsUnavailableError
from ams.server import AmsServer
from simulator import ManualClock, Simulator

APP = "WebRTCAppEE"
VERSIONS = ("2.8.2", "3.0.0")
STORES = ("mapdb", "mongodb")


@pytest.fixture
def rig():
    """rig(version, store, records=N) -> (sim, client): N finished records r0000..; clients closed afterwards."""
    clients = []

    def make(version: str, store: str, records: int = 0, **server):
        sim = Simulator(ams_version=version, store=store, clock=ManualClock())
        sim.add_records(APP, records, prefix="r")
        client = AmsClient(AmsServer(name="main", url="http://ams.test", apps=(APP,), **server),
                           transport=httpx.WSGITransport(app=sim.wsgi_app()))
        clients.append(client)
        return sim, client

    yield make
    for client in clients:
        client.close()


def stream_ids(snapshot) -> list[str]:
    return sorted(b.stream_id for b in snapshot.broadcasts)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("store", STORES)
def test_both_stores_give_the_whole_app(rig, version, store):
    sim, client = rig(version, store, records=600)
    assert len(client.snapshot(APP).broadcasts) == 600


@pytest.mark.parametrize("page", [r"/list/0/", r"/list/250/"])
def test_282_mongodb_204_on_any_list_page_is_an_incomplete_collection(rig, page):
    sim, client = rig("2.8.2", "mongodb", records=600)
    sim.faults.inject("db_error", page, count=1)
    with pytest.raises(AmsIncompleteError, match="HTTP 204") as caught:
        client.snapshot(APP)
    assert caught.value.reason == "incomplete" and isinstance(caught.value, AmsUnavailableError)
    assert len(client.snapshot(APP).broadcasts) == 600  # the next scrape is whole again


def test_282_mongodb_204_on_the_conference_room_list_is_incomplete(rig):
    sim, client = rig("2.8.2", "mongodb", records=3)
    sim.create_room(APP, "room1")
    sim.faults.inject("db_error", r"/conference-rooms/list/", count=1)
    with pytest.raises(AmsIncompleteError):
        client.snapshot(APP)


@pytest.mark.parametrize("page", [r"/list/0/", r"/list/250/", r"/list/500/"])
def test_3x_mongodb_empty_page_short_of_count_is_an_incomplete_collection(rig, page):
    sim, client = rig("3.0.0", "mongodb", records=600)
    sim.faults.inject("db_error", page, count=1)  # MongoStore answers [] with HTTP 200
    with pytest.raises(AmsIncompleteError, match="/count says 600"):
        client.snapshot(APP)


def test_a_small_app_whose_only_page_failed_is_not_empty(rig):
    sim, client = rig("3.0.0", "mongodb", records=2)
    sim.faults.inject("db_error", r"/list/", count=1)
    with pytest.raises(AmsIncompleteError):
        client.snapshot(APP)


def test_an_empty_app_is_empty(rig):
    _, client = rig("3.0.0", "mongodb")
    assert client.snapshot(APP).broadcasts == ()


@pytest.mark.parametrize("store", STORES)
def test_a_failed_list_query_is_never_a_smaller_world(rig, store):
    sim, client = rig("2.8.2", store, records=10)
    sim.faults.inject("db_error", r"/list/", count=1)
    with pytest.raises(AmsUnavailableError):
        client.snapshot(APP)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("store", STORES)
def test_records_leaving_during_a_scrape_are_not_a_failure(rig, version, store):
    sim, client = rig(version, store, records=600)
    sim.during_list(APP, remove=[f"r-{i:07d}" for i in range(0, 40, 2)])  # 20 leave after the first page
    snap = client.snapshot(APP)
    assert 578 <= len(snap.broadcasts) <= 600


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("store", STORES)
def test_a_record_missed_for_one_scrape_is_back_on_the_next(rig, version, store):
    """A record before the page boundary goes away after page one: the next page starts one later."""
    sim, client = rig(version, store, records=600)
    boundary = "r-0000250"  # the first record of page two
    sim.during_list(APP, remove=["r-0000010"])
    first = stream_ids(client.snapshot(APP))
    assert boundary not in first and "r-0000010" in first and len(first) == 599  # no error: within the slack
    second = stream_ids(client.snapshot(APP))
    assert boundary in second and "r-0000010" not in second and len(second) == 599


@pytest.mark.parametrize("version", VERSIONS)
def test_mapdb_new_id_mid_scrape_repeats_a_record_and_the_client_keeps_one(rig, version):
    sim, client = rig(version, "mapdb", records=600)
    sim.during_list(APP, publish=["a-new"])  # sorts before every r-...: pages two and three shift by one
    first = client.snapshot(APP)
    assert "a-new" not in stream_ids(first) and len(first.broadcasts) == 600
    assert "a-new" in stream_ids(client.snapshot(APP))


def test_mapdb_subtrack_pages_of_250_still_give_every_member(rig):
    sim, client = rig("3.0.0", "mapdb")
    sim.populate(APP, live=300, rooms=1)
    assert len(client.get_room_members(APP, "pop-room-00000")) == 300
