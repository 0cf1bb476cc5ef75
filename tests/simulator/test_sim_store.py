"""MapDB and MongoDB as AMS runs them: list order, write results, subtrack removal, failures."""
import httpx
import pytest

from simulator import ManualClock, Simulator
from simulator.__main__ import build, parse_args
from sim_helpers import APP


def ids(page) -> list[str]:
    return [b["streamId"] for b in page]


# --- choosing the store ---------------------------------------------------------------------

def test_standalone_defaults_to_mapdb_and_a_cluster_to_mongodb():
    assert Simulator(clock=ManualClock()).store == "mapdb"
    assert Simulator(nodes=2, clock=ManualClock()).store == "mongodb"
    assert Simulator(store="mongodb", clock=ManualClock()).store == "mongodb"
    with pytest.raises(ValueError, match="cluster shares one MongoDB"):
        Simulator(nodes=2, store="mapdb")
    with pytest.raises(ValueError, match="unknown store"):
        Simulator(store="redis")


def test_store_is_a_flag_and_shown_in_state(make_sim, client):
    assert build(parse_args(["--store", "mongodb"])).store == "mongodb"
    assert build(parse_args([])).store == "mapdb"
    sim = make_sim(store="mongodb")
    assert client(sim, base=sim.url).get("/_sim/state").json()["store"] == "mongodb"


# --- list order (item 4) ----------------------------------------------------------------------

def test_mapdb_lists_in_key_order_mongodb_in_insertion_order(make_sim, client, version, store):
    sim = make_sim(version, store=store)
    for sid in ("m", "z", "a"):
        sim.publish(APP, sid)
    listed = ids(client(sim).get("/list/0/10").json())
    assert listed == (["a", "m", "z"] if store == "mapdb" else ["m", "z", "a"])


def _paged(sim, client, size=2):
    """Page like a scraper: offset += page length until a short page."""
    c, seen, offset = client(sim), [], 0
    while True:
        page = ids(c.get(f"/list/{offset}/{size}").json())
        seen += page
        offset += len(page)
        if len(page) < size:
            return seen


def test_a_record_deleted_mid_scrape_makes_the_next_page_skip_one(make_sim, client, version, store):
    sim = make_sim(version, store=store)
    for sid in ("a", "b", "c", "d", "e"):
        sim.publish(APP, sid)
    sim.during_list(APP, remove=["a"])  # deleted right after the first page was served
    assert _paged(sim, client) == ["a", "b", "d", "e"]  # "c" moved to offset 1: skipped this scrape
    assert _paged(sim, client) == ["b", "c", "d", "e"]  # and back on the next one


def test_a_new_id_shifts_later_pages_on_mapdb_only(make_sim, client, version, store):
    sim = make_sim(version, store=store)
    for sid in ("b", "c", "d", "e"):
        sim.publish(APP, sid)
    sim.during_list(APP, publish=["a"])
    seen = _paged(sim, client)
    if store == "mapdb":
        assert seen == ["b", "c", "c", "d", "e"]  # "a" sorts first: "c" is seen twice, "a" not at all
    else:
        assert seen == ["b", "c", "d", "e", "a"]  # appended at the end


def test_during_list_is_a_control_endpoint(make_sim, client):
    sim = make_sim(store="mapdb")
    for sid in ("b", "c", "d", "e"):
        sim.publish(APP, sid)
    control = client(sim, base=sim.url)
    assert control.post("/_sim/during_list", json={"publish": ["a"], "after_offset": 2}).json() == {"ok": True}
    assert control.post("/_sim/during_list", json={"publish": "a"}).status_code == 400
    assert _paged(sim, client) == ["b", "c", "d", "e", "e"]


# --- v2.8.2 clean leave (item 1) ----------------------------------------------------------------

def test_282_clean_leave_of_a_non_zombi_participant_stays_listed_and_finished(make_sim, client, store):
    sim = make_sim("2.8.2", store=store)
    sim.create_room(APP, "room1")
    assert sim.join(APP, "room1", "alice", zombi=False)
    assert sim.broadcast(APP, "alice")["zombi"] is False
    assert sim.leave(APP, "alice")
    alice = client(sim).get("/alice").json()
    assert (alice["status"], alice["mainTrackStreamId"]) == ("finished", "room1")
    main = client(sim).get("/room1").json()
    assert main["subTrackStreamIds"] == ["alice"] and main["status"] == "broadcasting"
    # the client's leave-room call still takes it out of the ConferenceRoom
    assert sim.room_listing(APP, "room1") == {"subTrackStreamIds": ["alice"], "roomStreamList": []}
    assert sim.lifecycle(APP, "alice").unlisted_at is None


def test_282_clean_leave_of_a_zombi_participant_deletes_it_and_its_empty_room(make_sim, client, store):
    sim = make_sim("2.8.2", store=store)
    sim.create_room(APP, "room1")
    sim.join(APP, "room1", "bob")
    assert sim.leave(APP, "bob")
    assert client(sim).get("/bob").status_code == 404
    assert client(sim).get("/room1").status_code == 404


def test_282_zombi_leave_with_its_main_track_gone_keeps_the_record_finished(make_sim, client, store):
    sim = make_sim("2.8.2", store=store)
    sim.create_room(APP, "room1")
    sim.join(APP, "room1", "bob")
    assert client(sim).delete("/room1").json()["success"]
    sim.leave(APP, "bob")
    assert client(sim).get("/bob").json()["status"] == "finished"


def test_3x_clean_leave_of_a_non_zombi_participant_keeps_its_main_track_id(make_sim, client, store):
    sim = make_sim("3.0.0", store=store)
    sim.create_room(APP, "room1")
    sim.join(APP, "room1", "alice", zombi=False)
    sim.join(APP, "room1", "bob")
    sim.leave(APP, "alice")
    alice = client(sim).get("/alice").json()
    assert (alice["status"], alice["mainTrackStreamId"]) == ("finished", "room1")
    assert ids(client(sim).get("/room1/subtracks/0/10").json()) == ["alice", "bob"]


# --- duplicates and removal (item 2) -----------------------------------------------------------

def _twice_listed(sim, mode="legacy"):
    """alice listed twice in room1's subTrackStreamIds: a multitrack ConferenceRoom adds her again."""
    sim.create_room(APP, "room1", mode=mode)
    sim.join(APP, "room1", "alice", zombi=False)
    return sim


def test_a_multitrack_room_lists_a_participant_twice_a_legacy_room_once(make_sim, store):
    legacy = _twice_listed(make_sim("2.8.2", store=store))
    assert legacy.room_listing(APP, "room1") == {"subTrackStreamIds": ["alice"], "roomStreamList": ["alice"]}
    multi = _twice_listed(make_sim("2.8.2", store=store), mode="multitrack")
    assert multi.room_listing(APP, "room1") == {"subTrackStreamIds": ["alice", "alice"],
                                                 "roomStreamList": ["alice"]}
    assert multi.room_members(APP, "room1") == ["alice"]


def test_a_rejoin_after_a_clean_leave_lists_the_id_again(make_sim, store):
    sim = _twice_listed(make_sim("2.8.2", store=store))
    sim.leave(APP, "alice")
    assert sim.reconnect(APP, "alice")
    assert sim.room_listing(APP, "room1")["subTrackStreamIds"] == ["alice", "alice"]


def test_282_subtrack_delete_pulls_one_copy_on_mapdb_every_copy_on_mongodb(make_sim, client, store):
    sim = _twice_listed(make_sim("2.8.2", store=store), mode="multitrack")
    c = client(sim)
    first = c.delete("/room1/subtrack", params={"id": "alice"}).json()
    assert first["success"] is True
    second = c.delete("/room1/subtrack", params={"id": "alice"}).json()
    if store == "mapdb":
        assert sim.room_listing(APP, "room1")["subTrackStreamIds"] == []
        assert second["success"] is True  # the second copy
        third = c.delete("/room1/subtrack", params={"id": "alice"}).json()
        assert third == {"success": False, "message": "Subtrack:alice cannot be removed from main track: room1",
                         "dataId": None, "errorId": 0}
    else:
        assert sim.room_listing(APP, "room1")["subTrackStreamIds"] == []
        # the sub no longer names room1: writing it back changes nothing, which MongoDB reports as failure
        assert second == {"success": False, "message": "Main track of the stream alice which is room1 cannot be updated",
                          "dataId": None, "errorId": 0}


def test_282_mapdb_leaves_a_copy_after_one_subtrack_delete(make_sim, client):
    sim = _twice_listed(make_sim("2.8.2", store="mapdb"), mode="multitrack")
    assert client(sim).delete("/room1/subtrack", params={"id": "alice"}).json()["success"]
    assert client(sim).get("/room1").json()["subTrackStreamIds"] == ["alice"]
    assert client(sim).get("/alice").json()["mainTrackStreamId"] == ""


def test_282_mongodb_cannot_pull_a_listed_id_whose_record_names_no_room(make_sim, client, store):
    sim = make_sim("2.8.2", store=store)
    sim.create_room(APP, "room1")
    sim.join(APP, "room1", "alice")
    c = client(sim)
    sim.drop(APP, "alice")
    assert c.delete("/alice").json()["success"]  # a ghost deleted without leaving the room: the id dangles
    assert sim.publish(APP, "alice")  # the same id again, outside any room
    reply = c.delete("/room1/subtrack", params={"id": "alice"}).json()
    listed = sim.room_listing(APP, "room1")["subTrackStreamIds"]
    if store == "mongodb":
        assert not reply["success"] and reply["message"].startswith("Main track of the stream alice")
        assert listed == ["alice"]
    else:
        assert reply["success"] and listed == []


def test_282_subtrack_delete_of_a_deleted_record_fails(make_sim, client, store):
    sim = make_sim("2.8.2", store=store)
    sim.create_room(APP, "room1")
    sim.join(APP, "room1", "alice")
    client(sim).delete("/alice")
    reply = client(sim).delete("/room1/subtrack", params={"id": "alice"}).json()
    assert reply["message"] == "There is no stream with id:alice" and not reply["success"]


def test_zombi_leave_pulls_only_the_first_copy(make_sim, client, store):
    sim = make_sim("2.8.2", store=store)
    sim.create_room(APP, "room1", mode="multitrack")
    sim.join(APP, "room1", "bob")
    sim.leave(APP, "bob")
    assert client(sim).get("/bob").status_code == 404
    assert client(sim).get("/room1").json()["subTrackStreamIds"] == ["bob"]  # a dangling copy keeps the room


def test_3x_subtrack_delete_failures_say_main_track_of_the_stream(make_sim, client, store):
    sim = make_sim("3.0.0", store=store)
    sim.create_room(APP, "room1")
    sim.join(APP, "room1", "alice")
    c = client(sim)
    assert c.delete("/room1/subtrack", params={"id": "alice"}).json() == {
        "success": True, "message": None, "dataId": None, "errorId": 0}
    again = c.delete("/room1/subtrack", params={"id": "alice"}).json()
    missing = c.delete("/room1/subtrack", params={"id": "nobody"}).json()
    for reply, sid in ((again, "alice"), (missing, "nobody")):
        assert reply["message"] == f"Main track of the stream {sid} which is room1 cannot be updated"
        assert not reply["success"]


def test_a_put_that_changes_nothing_fails_on_mongodb_only(make_sim, client, version, store):
    sim = make_sim(version, store=store)
    sim.publish(APP, "s")
    sim.leave(APP, "s")  # zombi: gone; make a record that stays
    c = client(sim)
    c.post("/create", json={"streamId": "s"})
    record = c.get("/s").json()
    body = {"status": "finished"} if version != "2.8.2" else {**record, "status": "finished"}
    assert c.put("/s", json=body).json()["success"] is True
    assert c.put("/s", json=body).json()["success"] is (store == "mapdb")
    assert c.get("/s").json()["status"] == "finished"


# --- database errors (item 3) -----------------------------------------------------------------

@pytest.mark.parametrize(("version", "store", "status", "body"), [
    ("2.8.2", "mongodb", 204, b""),
    ("3.0.0", "mongodb", 200, b"[]"),
    ("2.8.2", "mapdb", 500, None),
    ("3.0.0", "mapdb", 500, None),
])
def test_a_failed_list_query_answers_as_the_store_does(make_sim, client, version, store, status, body):
    sim = make_sim(version, store=store)
    sim.publish(APP, "s")
    sim.faults.inject("db_error", r"/broadcasts/list/", count=1)
    reply = client(sim).get("/list/0/50")
    assert reply.status_code == status
    if body is not None:
        assert reply.content == body
    assert ids(client(sim).get("/list/0/50").json()) == ["s"]


def test_282_mongodb_failed_conference_room_list_is_204(make_sim, client):
    sim = make_sim("2.8.2", store="mongodb")
    sim.create_room(APP, "room1")
    sim.faults.inject("db_error", r"/conference-rooms/list/", count=1)
    assert client(sim).get("/conference-rooms/list/0/50").status_code == 204


def test_3x_mongodb_failed_subtrack_query_is_500(make_sim, client):
    sim = make_sim("3.0.0", store="mongodb")
    sim.create_room(APP, "room1")
    sim.faults.inject("db_error", r"/subtracks/", count=1)
    assert client(sim).get("/room1/subtracks/0/50").status_code == 500


def test_db_error_is_a_fault_kind_of_the_control_api(make_sim, client):
    sim = make_sim(store="mongodb")
    control = client(sim, base=sim.url)
    assert control.post("/_sim/faults", json={"kind": "db_error", "path_regex": "/list/", "count": 1}).status_code == 200
    assert client(sim).get("/list/0/10").status_code == 204


# --- smaller fidelity gaps (item 5) ------------------------------------------------------------

def test_a_main_track_is_a_bare_record(make_sim, client, version, store):
    sim = make_sim(version, store=store)
    sim.create_room(APP, "room1")
    main = client(sim).get("/room1").json()
    assert (main["type"], main["publishType"], main["name"], main["originAdress"]) == (None, None, None, None)
    assert main["status"] == "broadcasting" and main["zombi"] is True
    assert (main["startTime"] > 0) is (version != "2.8.2")


def test_a_join_never_resets_the_main_tracks_status(make_sim, client, store):
    sim = make_sim("3.0.0", store=store)
    sim.create_room(APP, "room1")
    assert client(sim).put("/room1", json={"status": "finished"}).json()["success"]
    sim.join(APP, "room1", "alice")
    assert client(sim).get("/room1").json()["status"] == "finished"


def test_role_defaults_to_null_and_a_conference_room_to_legacy(make_sim, client):
    new = make_sim("3.0.0")
    new.publish(APP, "s")
    assert client(new).get("/s").json()["role"] is None
    old = make_sim("2.8.2")
    old.create_room(APP, "room1")
    assert client(old).get("/conference-rooms/room1").json()["mode"] == "legacy"


@pytest.mark.parametrize(("version", "written"), [("2.8.2", False), ("2.12.0", False), ("2.13.0", True),
                                                   ("3.0.0", True)])
def test_ingest_counters_are_written_from_2_13(make_sim, client, version, written):
    sim = make_sim(version)
    sim.publish(APP, "s")
    sim.clock.advance(sim.heartbeat_seconds * 2 + 0.1)
    record = client(sim).get("/s").json()
    assert (record["bitrate"] > 0, record["receivedBytes"] > 0) == (written, written)


@pytest.mark.parametrize("header", ["Bearer {t}", "bearer{t}", "BEARER   {t}", "Bearer{t}"])
def test_bearer_is_stripped_and_trimmed_with_no_space_needed(make_sim, header):
    import jwt
    secret = "a-jwt-secret-of-at-least-32-bytes!"
    sim = make_sim("3.0.0", jwt_secret=secret)
    token = jwt.encode({"exp": 4102444800}, secret, algorithm="HS256")
    reply = httpx.get(f"{sim.url}/{APP}/rest/v2/broadcasts/list/0/1",
                      headers={"Authorization": header.format(t=token)})
    assert reply.status_code == 200
