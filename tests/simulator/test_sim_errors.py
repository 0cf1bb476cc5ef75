"""Error shapes (docs/ams.md, "Errors and limits")."""
APP = "WebRTCAppEE"


def test_get_unknown_broadcast_is_404_with_empty_body(make_sim, client, version):
    r = client(make_sim(version)).get("/nope")
    assert r.status_code == 404 and r.content == b""


def test_delete_unknown_is_http_200_with_success_false_and_null_message(make_sim, client, version):
    r = client(make_sim(version)).delete("/nope")
    assert r.status_code == 200
    assert r.json() == {"success": False, "message": None, "dataId": None, "errorId": 0}


def test_stop_unknown_is_http_200_with_success_false(make_sim, client, version):
    r = client(make_sim(version)).post("/nope/stop")
    assert r.status_code == 200 and r.json()["success"] is False


def test_remove_unknown_subtrack_is_200_with_a_message(make_sim, client, version):
    sim = make_sim(version)
    sim.create_room(APP, "room1")
    r = client(sim).delete("/room1/subtrack", params={"id": "nope"})
    assert r.status_code == 200 and r.json()["success"] is False and r.json()["message"]


def test_create_with_duplicate_id_is_400_with_a_result(make_sim, client, version):
    c = client(make_sim(version))
    assert c.post("/create", json={"streamId": "s1", "name": "one"}).status_code == 200
    r = c.post("/create", json={"streamId": "s1"})
    assert r.status_code == 400 and r.json()["success"] is False
    assert "already being used" in r.json()["message"]


def test_create_with_invalid_id_is_400(make_sim, client):
    r = client(make_sim()).post("/create", json={"streamId": "bad id!"})
    assert r.status_code == 400 and r.json()["message"] == "Stream id is not valid."


def test_create_without_id_generates_one_with_status_created(make_sim, client):
    r = client(make_sim()).post("/create", json={"name": "cam"})
    body = r.json()
    assert r.status_code == 200 and len(body["streamId"]) == 12
    assert body["status"] == "created" and body["zombi"] is False


def test_unreadable_json_body_is_400(make_sim, client):
    r = client(make_sim()).post("/create", content=b"{nope", headers={"Content-Type": "application/json"})
    assert r.status_code == 400


def test_unknown_conference_room_is_404_with_empty_body_on_282(make_sim, client):
    r = client(make_sim("2.8.2")).get("/conference-rooms/nope")
    assert r.status_code == 404 and r.content == b""


def test_conference_room_endpoints_are_gone_in_3(make_sim, client):
    c = client(make_sim("3.0.0"))
    assert c.get("/conference-rooms/list/0/10").status_code == 404
    # the path now reads as /{id}/{stream}, which no route serves
    assert c.delete("/conference-rooms/r/s").status_code == 404


def test_subtrack_lists_of_unknown_main_are_404_with_a_result_in_3(make_sim, client):
    c = client(make_sim("3.0.0"))
    r = c.get("/nope/subtracks/0/10")
    assert r.status_code == 404 and r.json()["message"] == "Broadcast not found with id: nope"


def test_subtrack_lists_do_not_exist_on_282(make_sim, client):
    sim = make_sim("2.8.2")
    sim.create_room(APP, "room1")
    assert client(sim).get("/room1/subtracks/0/10").status_code == 404


def test_unknown_application_is_a_404_html_page(make_sim, client):
    sim = make_sim()
    r = client(sim, base=sim.url).get("/NoSuchApp/rest/v2/broadcasts/list/0/10")
    assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")
