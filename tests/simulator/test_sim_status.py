"""Status semantics per version, heartbeats and republishing (docs/ams.md, "Status", "Heartbeat", "Why a ghost persists")."""
import pytest

from sim_helpers import APP, room_with


def test_update_time_is_the_last_heartbeat_tick(make_sim):
    sim = make_sim("2.8.2")
    sim.publish(APP, "s")
    start = sim.broadcast(APP, "s")["updateTime"]
    sim.clock.advance(4.9)
    assert sim.broadcast(APP, "s")["updateTime"] == start
    sim.clock.advance(0.2)
    assert sim.broadcast(APP, "s")["updateTime"] == start + 5000  # 5 s period on 2.8.2


def test_heartbeat_period_defaults_per_version_and_can_be_accelerated(make_sim):
    assert make_sim("2.8.2").heartbeat_seconds == 5.0
    assert make_sim("2.9.0").heartbeat_seconds == 10.0
    assert make_sim("3.0.0").heartbeat_seconds == 10.0
    sim = make_sim("3.0.0", heartbeat_seconds=0.2)
    sim.publish(APP, "s")
    start = sim.broadcast(APP, "s")["updateTime"]
    sim.clock.advance(1.0)
    assert sim.broadcast(APP, "s")["updateTime"] - start == 1000


def test_dropped_participant_keeps_its_last_tick(make_sim):
    sim = make_sim("2.8.2")
    room_with(sim, "ghost")
    sim.clock.advance(7)
    sim.drop(APP, "ghost")
    frozen = sim.broadcast(APP, "ghost")["updateTime"]
    sim.clock.advance(600)
    assert sim.broadcast(APP, "ghost")["updateTime"] == frozen


def test_ghost_stays_broadcasting_forever_on_282_s4(make_sim, client):
    sim = make_sim("2.8.2")
    room_with(sim, "a", "ghost")
    sim.drop(APP, "ghost")
    sim.clock.advance(3600)
    c = client(sim)
    assert c.get("/ghost").json()["status"] == "broadcasting"
    assert "ghost" in c.get("/room1").json()["subTrackStreamIds"]
    assert "ghost" in c.get("/conference-rooms/room1").json()["roomStreamList"]


def test_status_is_computed_terminated_unexpectedly_after_20s_on_3_s4(make_sim, client):
    sim = make_sim("3.0.0")
    room_with(sim, "a", "ghost")
    sim.drop(APP, "ghost")
    c = client(sim)
    sim.clock.advance(19.9)
    assert c.get("/ghost").json()["status"] == "broadcasting"
    sim.clock.advance(0.2)
    assert c.get("/ghost").json()["status"] == "terminated_unexpectedly"
    assert c.get("/a").json()["status"] == "broadcasting"


def test_computed_timeout_scales_with_an_accelerated_heartbeat(make_sim):
    sim = make_sim("3.0.0", heartbeat_seconds=1.0)
    sim.publish(APP, "ghost")
    sim.drop(APP, "ghost")
    sim.clock.advance(2.0)  # STREAM_TIMEOUT = 2 x STAT_UPDATE_PERIOD
    assert sim.broadcast(APP, "ghost")["status"] == "terminated_unexpectedly"


def test_main_track_is_never_computed_on_3(make_sim, client):
    sim = make_sim("3.0.0")
    room_with(sim, "a")
    sim.clock.advance(3600)
    main = client(sim).get("/room1").json()
    assert main["virtual"] is True and main["status"] == "broadcasting" and main["updateTime"] == 0


def test_stored_status_stays_broadcasting_behind_the_computed_one_on_3(make_sim, client):
    sim = make_sim("3.0.0")
    sim.publish(APP, "ghost")
    sim.add_records(APP, 1, status="finished", prefix="f")
    sim.drop(APP, "ghost")
    sim.clock.advance(60)
    c = client(sim)
    assert c.get("/ghost").json()["status"] == "terminated_unexpectedly"
    assert sim.world.app(APP).records["ghost"].fields["status"] == "broadcasting"


def test_subtracks_keep_a_stale_participant_on_3_s5_4(make_sim, client):
    sim = make_sim("3.0.0")
    room_with(sim, "a", "ghost")
    sim.drop(APP, "ghost")
    sim.clock.advance(25)
    c = client(sim)
    subs = c.get("/room1/subtracks/0/10").json()
    assert [(b["streamId"], b["status"]) for b in subs] == [("a", "broadcasting"), ("ghost", "terminated_unexpectedly")]


@pytest.mark.parametrize(("store", "page"), [("mongodb", 300), ("mapdb", 250)])
def test_subtrack_pages_are_capped_at_250_on_mapdb_only(make_sim, client, store, page):
    sim = make_sim("3.0.0", store=store)
    sim.populate(APP, live=300, rooms=1)
    assert len(client(sim).get("/pop-room-00000/subtracks/0/1000").json()) == page


def test_clean_leave_deletes_the_zombi_and_removes_it_from_the_room_on_282(make_sim, client):
    sim = make_sim("2.8.2")
    room_with(sim, "a", "b")
    assert sim.leave(APP, "b") is True
    c = client(sim)
    assert c.get("/b").status_code == 404
    assert c.get("/room1").json()["subTrackStreamIds"] == ["a"]
    assert c.get("/conference-rooms/room1").json()["roomStreamList"] == ["a"]


def test_last_clean_leave_deletes_the_zombi_main_track_on_282(make_sim):
    sim = make_sim("2.8.2")
    room_with(sim, "a")
    sim.leave(APP, "a")
    assert sim.broadcast(APP, "room1") is None


def test_a_ghost_keeps_the_282_main_track_alive(make_sim):
    sim = make_sim("2.8.2")
    room_with(sim, "a", "ghost")
    sim.drop(APP, "ghost")
    sim.leave(APP, "a")
    assert sim.broadcast(APP, "room1")["subTrackStreamIds"] == ["ghost"]


def test_idle_main_track_is_deleted_once_no_active_subtrack_is_left_on_3(make_sim):
    sim = make_sim("3.0.0")
    room_with(sim, "a", "ghost")
    sim.drop(APP, "ghost")
    sim.clock.advance(30)
    sim.leave(APP, "a")
    assert sim.broadcast(APP, "room1") is None
    assert sim.broadcast(APP, "ghost")["mainTrackStreamId"] == "room1"


def test_non_zombi_record_is_finished_not_deleted_on_leave(make_sim, client, version):
    sim = make_sim(version)
    client(sim).post("/create", json={"streamId": "cam"})
    sim.publish(APP, "cam")
    sim.leave(APP, "cam")
    assert sim.broadcast(APP, "cam")["status"] == "finished"


def test_republish_is_refused_while_the_stored_status_is_broadcasting_on_282_s5_2(make_sim, client):
    sim = make_sim("2.8.2")
    room_with(sim, "a", "ghost")
    sim.drop(APP, "ghost")
    sim.clock.advance(3600)
    assert sim.reconnect(APP, "ghost") is False
    assert sim.join(APP, "room1", "ghost") is False
    client(sim).delete("/ghost")
    assert sim.reconnect(APP, "ghost") is True
    assert sim.broadcast(APP, "ghost")["status"] == "broadcasting"


def test_full_put_finished_frees_the_id_on_282(make_sim, client):
    sim = make_sim("2.8.2")
    room_with(sim, "a", "ghost")
    sim.drop(APP, "ghost")
    c = client(sim)
    record = c.get("/ghost").json()
    record["status"] = "finished"
    c.put("/ghost", json=record)
    assert sim.reconnect(APP, "ghost") is True


def test_republish_is_allowed_once_the_computed_status_times_out_on_3(make_sim):
    sim = make_sim("3.0.0")
    room_with(sim, "a", "ghost")
    sim.drop(APP, "ghost")
    sim.clock.advance(5)
    assert sim.reconnect(APP, "ghost") is False
    sim.clock.advance(20)
    assert sim.reconnect(APP, "ghost") is True
    assert sim.broadcast(APP, "ghost")["status"] == "broadcasting"


def test_resume_restarts_the_heartbeat_of_the_same_session(make_sim):
    sim = make_sim("2.8.2")
    room_with(sim, "flap")
    sim.drop(APP, "flap")
    frozen = sim.broadcast(APP, "flap")["updateTime"]
    sim.clock.advance(3)
    assert sim.resume(APP, "flap") is True
    sim.clock.advance(5)
    assert sim.broadcast(APP, "flap")["updateTime"] >= frozen + 8000


def test_v3_counts_ingest_bytes_only_while_publishing(make_sim):
    sim = make_sim("3.0.0")
    sim.publish(APP, "s")
    sim.clock.advance(20)
    before = sim.broadcast(APP, "s")["receivedBytes"]
    sim.drop(APP, "s")
    sim.clock.advance(20)
    assert before > 0 and sim.broadcast(APP, "s")["receivedBytes"] == before


def test_populate_50k_is_fast_and_all_live(make_sim, client):
    import time
    sim = make_sim("2.8.2")
    t0 = time.monotonic()
    ids = sim.populate(APP, live=50000, rooms=500)
    assert time.monotonic() - t0 < 10  # ~0.7 s; the bound only catches quadratic behaviour
    assert len(ids) == 50000
    c = client(sim)
    assert c.get("/count").json()["number"] == 50500
    assert len(c.get("/list/49900/250").json()) == 250
    assert len(sim.room_members(APP, "pop-room-00007")) == 100
