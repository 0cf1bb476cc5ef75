"""The /_sim/ control API mirrors the library for subprocess use."""
APP = "WebRTCAppEE"


def test_control_api_drives_the_world(make_sim, client):
    sim = make_sim("3.0.0")
    ctl = client(sim, base=f"{sim.url}/_sim")
    assert ctl.post("/rooms", json={"app": APP, "room_id": "room1"}).json() == {"ok": True}
    assert ctl.post("/join", json={"room_id": "room1", "stream_id": "a", "name": "Alice"}).json() == {"ok": True}
    assert ctl.post("/join", json={"room_id": "room1", "stream_id": "a"}).json() == {"ok": False}
    assert ctl.post("/drop", json={"stream_id": "a"}).json() == {"ok": True}
    assert ctl.post("/clock", json={"advance_seconds": 25}).json()["manual"] is True
    assert client(sim).get("/a").json()["status"] == "terminated_unexpectedly"
    life = ctl.get(f"/lifecycle/{APP}/a").json()
    assert set(life) == {"dropped_at", "last_heartbeat_at", "unlisted_at", "deleted_at", "rejoinable_at"}
    assert ctl.post("/reconnect", json={"stream_id": "a"}).json() == {"ok": True}
    assert ctl.get(f"/broadcast/{APP}/a").json()["status"] == "broadcasting"
    assert ctl.post("/leave", json={"stream_id": "a"}).json() == {"ok": True}


def test_control_faults_writes_and_clock(make_sim, client):
    sim = make_sim()
    ctl = client(sim, base=f"{sim.url}/_sim")
    fault = ctl.post("/faults", json={"kind": "status", "status": 500, "count": 1, "path_regex": "/stop$"}).json()
    assert fault["remaining"] == 1 and ctl.get("/faults").json() == [fault]
    assert client(sim).post("/x/stop").status_code == 500
    assert ctl.get("/writes").json()[0]["status_code"] == 500
    assert ctl.delete("/writes").json() == {"ok": True} and ctl.get("/writes").json() == []
    assert ctl.post("/clock", json={"offset_seconds": 120}).json()["offset_seconds"] == 120
    assert sim.clock.offset_seconds == 120
    ctl.post("/faults", json={"kind": "status"})
    assert ctl.delete("/faults").json() == {"ok": True}
    assert ctl.get("/state").json()["ams_version"] == "2.8.2"


def test_control_bulk_records_and_populate(make_sim, client):
    sim = make_sim()
    ctl = client(sim, base=f"{sim.url}/_sim")
    assert ctl.post("/records", json={"count": 5, "type": "VoD", "prefix": "v"}).json()["count"] == 5
    assert ctl.post("/populate", json={"live": 20, "rooms": 2}).json() == {"count": 20}
    assert client(sim).get("/count").json()["number"] == 27


def test_control_rejects_bad_input_with_400(make_sim, client):
    sim = make_sim()
    ctl = client(sim, base=f"{sim.url}/_sim")
    assert ctl.post("/join", json={"room_id": "r"}).status_code == 400
    assert ctl.post("/join", json={"app": "Nope", "room_id": "r", "stream_id": "s"}).status_code == 400
    assert ctl.post("/faults", json={"kind": "explode"}).status_code == 400
    assert ctl.post("/rooms", content=b"[1]").status_code == 400
    assert ctl.get("/nothing").status_code == 404
    assert ctl.post("/clock", json={"advance_seconds": 1}).status_code == 200  # manual clock in tests


def test_faults_never_hit_the_control_api(make_sim, client):
    sim = make_sim()
    sim.faults.inject("status")
    assert client(sim, base=f"{sim.url}/_sim").get("/state").status_code == 200
