"""The write log and the ghost lifecycle, readable by tests and benchmarks."""
APP = "WebRTCAppEE"


def test_every_write_is_logged_with_its_result_and_reads_are_not(make_sim, client):
    sim = make_sim("3.0.0")
    sim.create_room(APP, "room1")
    sim.join(APP, "room1", "a")
    sim.join(APP, "room1", "b")  # keeps the zombi main track alive after a stops
    c = client(sim)
    c.get("/list/0/10")
    c.post("/a/stop")
    c.delete("/nope", params={"deleteSubtracks": "false"})
    c.put("/room1", json={"description": "x"})
    assert [(w.method, w.path, w.query, w.status_code, w.success) for w in sim.writes] == [
        ("POST", f"/{APP}/rest/v2/broadcasts/a/stop", "", 200, True),
        ("DELETE", f"/{APP}/rest/v2/broadcasts/nope", "deleteSubtracks=false", 200, False),
        ("PUT", f"/{APP}/rest/v2/broadcasts/room1", "", 200, True),
    ]
    assert sim.writes[-1].body == '{"description":"x"}'
    assert sim.writes[0].time == sim.clock.now()


def test_rejected_and_faulted_writes_are_logged_as_failures(make_sim, client):
    sim = make_sim(allowed_cidrs=("10.0.0.0/8",))
    client(sim).delete("/x")
    sim2 = make_sim()
    sim2.faults.inject("status", status=502)
    client(sim2).post("/x/stop")
    assert (sim.writes[0].status_code, sim.writes[0].success) == (403, False)
    assert (sim2.writes[0].status_code, sim2.writes[0].success) == (502, False)


def test_ghost_lifecycle_on_282_through_the_reference_cleanup(make_sim, client):
    sim = make_sim("2.8.2")
    sim.create_room(APP, "room1")
    sim.join(APP, "room1", "ghost")
    assert sim.lifecycle(APP, "ghost").dropped_at is None
    sim.clock.advance(7)
    t_drop = sim.clock.now()
    sim.drop(APP, "ghost")
    life = sim.lifecycle(APP, "ghost")
    assert life.dropped_at == t_drop and life.last_heartbeat_at == t_drop - 2  # ticks at +0, +5
    sim.clock.advance(30)
    c = client(sim)
    c.delete("/room1/subtrack", params={"id": "ghost"})
    assert sim.lifecycle(APP, "ghost").unlisted_at is None  # still in roomStreamList
    sim.clock.advance(1)
    c.delete("/conference-rooms/room1/ghost")
    t_unlisted = sim.clock.now()
    sim.clock.advance(1)
    c.delete("/ghost")
    life = sim.lifecycle(APP, "ghost")
    assert life.unlisted_at == t_unlisted
    assert life.deleted_at == life.rejoinable_at == sim.clock.now()


def test_ghost_is_never_rejoinable_on_282_without_cleanup(make_sim):
    sim = make_sim("2.8.2")
    sim.publish(APP, "ghost")
    sim.drop(APP, "ghost")
    sim.clock.advance(3600)
    life = sim.lifecycle(APP, "ghost")
    assert life.rejoinable_at is None and life.deleted_at is None


def test_ghost_becomes_rejoinable_when_the_computed_status_times_out_on_3(make_sim):
    sim = make_sim("3.0.0")
    sim.create_room(APP, "room1")
    sim.join(APP, "room1", "ghost")
    sim.drop(APP, "ghost")
    last = sim.lifecycle(APP, "ghost").last_heartbeat_at
    sim.clock.advance(10)
    assert sim.lifecycle(APP, "ghost").rejoinable_at is None
    sim.clock.advance(15)
    life = sim.lifecycle(APP, "ghost")
    assert life.rejoinable_at == last + 20 and life.unlisted_at is None  # still a subtrack of room1
    assert sim.reconnect(APP, "ghost") is True
    assert sim.lifecycle(APP, "ghost").rejoinable_at == last + 20  # history kept after the rejoin


def test_room_deletion_on_3_unlists_and_deletes_participants(make_sim, client):
    sim = make_sim("3.0.0")
    sim.create_room(APP, "room1")
    sim.join(APP, "room1", "ghost")
    sim.drop(APP, "ghost")
    client(sim).delete("/room1")
    life = sim.lifecycle(APP, "ghost")
    assert life.unlisted_at == life.deleted_at == sim.clock.now()


def test_partial_put_on_282_unlists_every_participant(make_sim, client):
    sim = make_sim("2.8.2")
    sim.create_room(APP, "room1")
    sim.join(APP, "room1", "a")
    client(sim).delete("/conference-rooms/room1/a")
    assert sim.lifecycle(APP, "a").unlisted_at is None  # still in the main track's subTrackStreamIds
    client(sim).put("/room1", json={"status": "broadcasting"})
    assert sim.lifecycle(APP, "a").unlisted_at == sim.clock.now()
