"""Writes and their real effects, including the dangerous ones (docs/ams.md, "Conference rooms", "Writing")."""
from sim_helpers import APP, room_with


def test_partial_put_on_282_wipes_subtrack_ids_and_counters_s3_3(make_sim, client):
    sim = make_sim("2.8.2")
    room_with(sim, "a", "b")
    c = client(sim)
    r = c.put("/room1", json={"status": "finished"})
    assert r.json()["success"] is True
    main = c.get("/room1").json()
    assert main["status"] == "finished" and main["subTrackStreamIds"] == []
    assert main["webRTCViewerLimit"] == -1 and main["userAgent"] == "N/A"


def test_full_put_on_282_keeps_subtrack_ids(make_sim, client):
    sim = make_sim("2.8.2")
    room_with(sim, "a", "b")
    c = client(sim)
    record = c.get("/room1").json()
    record["description"] = "kept"
    c.put("/room1", json=record)
    assert c.get("/room1").json()["subTrackStreamIds"] == ["a", "b"]


def test_partial_put_on_282_resets_counters_of_a_participant(make_sim, client):
    sim = make_sim("2.8.2")
    c = client(sim)
    c.post("/create", json={"streamId": "s", "webRTCViewerLimit": 5, "userAgent": "obs"})
    c.put("/s", json={"name": "renamed"})
    body = c.get("/s").json()
    assert (body["name"], body["webRTCViewerLimit"], body["userAgent"]) == ("renamed", -1, "N/A")


def test_put_on_3_updates_only_the_given_fields(make_sim, client):
    sim = make_sim("3.0.0")
    c = client(sim)
    c.post("/create", json={"streamId": "s", "webRTCViewerLimit": 5, "userAgent": "obs"})
    c.put("/s", json={"status": "finished"})
    body = c.get("/s").json()
    assert (body["status"], body["webRTCViewerLimit"], body["userAgent"]) == ("finished", 5, "obs")


def test_delete_room_on_3_deletes_every_participant_by_default_s3_3(make_sim, client):
    sim = make_sim("3.0.0")
    room_with(sim, "a", "b")
    sim.drop(APP, "b")
    r = client(sim).delete("/room1")
    assert r.json()["success"] is True
    assert sim.broadcast(APP, "a") is None and sim.broadcast(APP, "b") is None


def test_delete_room_on_3_with_delete_subtracks_false_keeps_participants(make_sim, client):
    sim = make_sim("3.0.0")
    room_with(sim, "a", "b")
    client(sim).delete("/room1", params={"deleteSubtracks": "false"})
    assert sim.broadcast(APP, "room1") is None
    assert sim.broadcast(APP, "a")["mainTrackStreamId"] == "room1"


def test_delete_room_on_282_ignores_delete_subtracks_and_keeps_participants(make_sim, client):
    sim = make_sim("2.8.2")
    room_with(sim, "a")
    client(sim).delete("/room1")
    assert sim.broadcast(APP, "a")["status"] == "broadcasting"


def test_delete_on_282_leaves_the_id_in_room_lists_s3_3(make_sim, client):
    sim = make_sim("2.8.2")
    room_with(sim, "a", "ghost")
    sim.drop(APP, "ghost")
    c = client(sim)
    r = c.delete("/ghost")
    assert r.json() == {"success": True, "message": "broadcast is deleted but could not stopped ",
                        "dataId": None, "errorId": 0}
    assert c.get("/room1").json()["subTrackStreamIds"] == ["a", "ghost"]
    assert "ghost" in c.get("/conference-rooms/room1").json()["roomStreamList"]


def test_subtrack_remove_fails_once_the_record_is_deleted_on_282_s3_2(make_sim, client):
    sim = make_sim("2.8.2")
    room_with(sim, "a", "ghost")
    sim.drop(APP, "ghost")
    c = client(sim)
    c.delete("/ghost")
    r = c.delete("/room1/subtrack", params={"id": "ghost"})
    assert r.status_code == 200 and r.json()["success"] is False
    assert "There is no stream with id" in r.json()["message"]
    assert "ghost" in c.get("/room1").json()["subTrackStreamIds"]


def test_cleanup_in_reference_order_clears_a_282_ghost_s5_5(make_sim, client):
    sim = make_sim("2.8.2")
    room_with(sim, "a", "ghost")
    sim.drop(APP, "ghost")
    c = client(sim)
    assert c.post("/ghost/stop").json()["success"] is False  # no publisher left on this node
    assert c.delete("/room1/subtrack", params={"id": "ghost"}).json()["success"] is True
    assert c.delete("/conference-rooms/room1/ghost").json()["success"] is True
    assert c.delete("/ghost").json()["success"] is True
    assert c.get("/room1").json()["subTrackStreamIds"] == ["a"]
    assert c.get("/conference-rooms/room1").json()["roomStreamList"] == ["a"]
    assert sim.reconnect(APP, "ghost") is True


def test_stop_of_a_live_participant_runs_close_broadcast(make_sim, client):
    sim = make_sim("2.8.2")
    room_with(sim, "a", "b")
    r = client(sim).post("/a/stop")
    assert r.json()["success"] is True
    assert sim.broadcast(APP, "a") is None
    assert sim.broadcast(APP, "room1")["subTrackStreamIds"] == ["b"]


def test_remove_subtrack_on_3_blanks_main_track_id(make_sim, client):
    sim = make_sim("3.0.0")
    room_with(sim, "a", "b")
    c = client(sim)
    assert c.delete("/room1/subtrack", params={"id": "b"}).json()["success"] is True
    assert [s["streamId"] for s in c.get("/room1/subtracks/0/50").json()] == ["a"]
    assert c.delete("/room1/subtrack", params={"id": "b"}).json()["success"] is False


def test_room_membership_endpoints_on_282(make_sim, client):
    sim = make_sim("2.8.2")
    room_with(sim, "a")
    c = client(sim)
    assert c.get("/conference-rooms/list/0/10").json()[0]["roomStreamList"] == ["a"]
    assert c.delete("/conference-rooms/room1/a").json()["success"] is True
    assert c.delete("/conference-rooms/room1/a").json()["success"] is False
    assert c.get("/conference-rooms/room1").json()["roomStreamList"] == []
    assert sim.broadcast(APP, "a")["status"] == "broadcasting"  # the participant keeps running
