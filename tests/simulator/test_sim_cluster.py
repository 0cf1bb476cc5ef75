"""A cluster: nodes with their own clocks over one store, round-robin serving, read cache, node death, registry."""
from email.utils import parsedate_to_datetime

import jwt
import pytest

from simulator.__main__ import node_spec

APP = "WebRTCAppEE"
SECRET = "a-server-secret-of-32-bytes-long!"
N1, N2, N3 = "10.0.0.1", "10.0.0.2", "10.0.0.3"


def date_of(response) -> float:
    """The reply's Date header in epoch seconds."""
    return parsedate_to_datetime(response.headers["date"]).timestamp()


def cluster(make_sim, version, offsets=(0.0, 0.0, 0.0), **kwargs):
    """A started cluster of len(offsets) nodes 10.0.0.1.. with a 1 s heartbeat and room1."""
    nodes = [{"address": f"10.0.0.{i + 1}", "clock_offset_seconds": o} for i, o in enumerate(offsets)]
    sim = make_sim(version, heartbeat_seconds=1.0, nodes=nodes, **kwargs)
    sim.create_room(APP, "room1")
    return sim


def registry(client, sim, **headers):
    """GET /rest/v2/cluster/nodes/0/50 through the load balancer."""
    return client(sim, base=f"{sim.url}/rest/v2").get("/cluster/nodes/0/50", headers=headers)


def test_requests_go_round_robin_each_dated_by_its_node(make_sim, client, version):
    sim = cluster(make_sim, version, offsets=(0.0, 30.0, -30.0))
    c = client(sim)
    offsets = [date_of(c.get("/count")) - sim.clock.now() for _ in range(4)]
    assert offsets == [0.0, 30.0, -30.0, 0.0]


def test_update_time_is_written_with_the_origin_node_clock(make_sim, client, version):
    sim = cluster(make_sim, version, offsets=(0.0, 30.0, -30.0))
    assert sim.join(APP, "room1", "a", node=N2) and sim.join(APP, "room1", "b", node=N3)
    sim.clock.advance(5.0)
    by_id = {b["streamId"]: b for b in client(sim).get("/list/0/50").json()}
    assert (by_id["a"]["originAdress"], by_id["b"]["originAdress"]) == (N2, N3)
    now_ms = sim.clock.now() * 1000
    assert (by_id["a"]["updateTime"] - now_ms, by_id["b"]["updateTime"] - now_ms) == (30000, -30000)
    assert by_id["room1"]["originAdress"] is None  # a main track has no origin node


def test_computed_status_uses_the_answering_node_clock_on_3(make_sim, client):
    sim = cluster(make_sim, "3.0.3", offsets=(0.0, 30.0))
    sim.join(APP, "room1", "a", node=N1)
    c = client(sim)
    assert [c.get("/list/0/50").json()[1]["status"] for _ in range(2)] == ["broadcasting", "terminated_unexpectedly"]


def test_publishers_are_placed_round_robin_on_live_nodes(make_sim):
    sim = cluster(make_sim, "2.8.2")
    for sid in ("a", "b", "c", "d"):
        sim.join(APP, "room1", sid)
    assert [sim.broadcast(APP, s)["originAdress"] for s in "abcd"] == [N1, N2, N3, N1]
    with pytest.raises(ValueError, match="not a live node"):
        sim.join(APP, "room1", "e", node="10.9.9.9")


def test_get_is_served_from_a_3s_per_node_cache_on_3(make_sim, client):
    sim = cluster(make_sim, "3.0.3")
    sim.join(APP, "room1", "a", node=N3)
    c = client(sim)
    assert c.get("/a").status_code == 200  # node 1 caches a
    assert c.delete("/a", params={"deleteSubtracks": "false"}).json()["success"] is True  # node 2
    assert c.get("/a").status_code == 404  # node 3 reads the store
    assert c.get("/a").status_code == 200  # node 1: its cached copy
    assert "a" not in [b["streamId"] for b in c.get("/list/0/50").json()]  # node 2: lists are never cached
    sim.clock.advance(3.0)
    assert c.get("/a").status_code == 404  # node 3
    assert c.get("/a").status_code == 404  # node 1: expired


def test_cached_copy_lags_a_resumed_heartbeat_except_on_its_origin_on_3(make_sim, client):
    sim = cluster(make_sim, "3.0.3", offsets=(0.0, 0.0))
    sim.join(APP, "room1", "a", node=N1)
    sim.blink(APP, "a", 3.0)
    c = client(sim)
    sim.clock.advance(2.0)
    c.get("/a"), c.get("/a")  # both nodes cache the silent record
    sim.clock.advance(2.0)  # resumed at t+3, beat at t+4
    origin, other = c.get("/a").json(), c.get("/a").json()
    assert origin["updateTime"] == sim.clock.now() * 1000
    assert other["updateTime"] == (sim.clock.now() - 4.0) * 1000


def test_no_read_cache_on_282(make_sim, client):
    sim = cluster(make_sim, "2.8.2")
    sim.join(APP, "room1", "a")
    c = client(sim)
    c.get("/a")
    c.delete("/a")
    assert [c.get("/a").status_code for _ in range(3)] == [404, 404, 404]


def test_writes_name_their_target_stream_and_serving_node(make_sim, client, version):
    sim = cluster(make_sim, version)
    sim.join(APP, "room1", "a")
    c = client(sim)
    c.post("/a/stop")
    c.delete("/room1/subtrack", params={"id": "a"})
    c.post("/create", json={"streamId": "booked"})
    assert [(w.stream_id, w.node) for w in sim.writes] == [("a", N1), ("a", N2), ("booked", N3)]


@pytest.mark.parametrize("version, dead_after", [("2.8.2", 10.0), ("3.0.3", 20.0)])
def test_killed_node_stops_heartbeats_and_reads_dead_in_the_registry(make_sim, client, version, dead_after):
    sim = cluster(make_sim, version, offsets=(0.0, 0.0))
    sim.join(APP, "room1", "a", node=N1), sim.join(APP, "room1", "b", node=N2)
    sim.clock.advance(2.5)
    sim.kill_node(N2)
    sim.clock.advance(dead_after + 0.5)  # 2 (2.8.x) or 4 (3.x) node periods of 5 s, plus the phase
    nodes = {n["ip"]: n for n in registry(client, sim).json()}
    assert (nodes[N1]["status"], nodes[N2]["status"]) == ("alive", "dead")
    assert nodes[N2]["lastUpdateTime"] == (sim.clock.now() - dead_after - 3.0) * 1000  # its last beat, at start
    ghost, alive = sim.broadcast(APP, "b"), sim.broadcast(APP, "a")
    assert ghost["status"] == ("broadcasting" if version == "2.8.2" else "terminated_unexpectedly")
    assert alive["status"] == "broadcasting" and "b" in sim.room_members(APP, "room1")


def test_registry_status_flips_only_after_the_version_threshold(make_sim, client, version):
    sim = cluster(make_sim, version, offsets=(0.0, 0.0))
    sim.kill_node(N2)
    threshold = 10.0 if version == "2.8.2" else 20.0
    sim.clock.advance(threshold)
    assert [n["status"] for n in registry(client, sim).json()] == ["alive", "alive"]  # not more than
    sim.clock.advance(0.001)
    assert [n["status"] for n in registry(client, sim).json()] == ["alive", "dead"]


def test_dead_node_is_out_of_the_load_balancer_and_can_come_back(make_sim, client, version):
    sim = cluster(make_sim, version, offsets=(0.0, 30.0))
    sim.join(APP, "room1", "a", node=N2)
    (done,) = sim.add_records(APP, 1, status="broadcasting", prefix="done")
    sim.kill_node(N2)
    c = client(sim)
    assert {date_of(c.get("/count")) - sim.clock.now() for _ in range(3)} == {0.0}
    sim.revive_node(N2)
    # the crash restart resets what that node (or no node) owns: zombi records go, the rest finish
    assert sim.broadcast(APP, "a") is None and sim.broadcast(APP, "room1") is None
    assert sim.broadcast(APP, done)["status"] == "broadcasting"  # its origin is node 1
    assert {n["alive"] for n in sim.nodes} == {True}
    assert sim.join(APP, "room1", "a", node=N2)


def test_killed_node_ends_its_sources_without_a_restart_on_3(make_sim):
    sim = cluster(make_sim, "3.0.3", offsets=(0.0, 0.0))
    sim.add_source(APP, "cam", node=N2)
    sim.stick_source(APP, "cam")
    sim.kill_node(N2)
    sim.clock.advance(30)
    assert sim.broadcast(APP, "cam")["status"] == "terminated_unexpectedly"
    assert sim.resume(APP, "cam") is False


def test_registry_fields_per_version(make_sim, client, version):
    sim = cluster(make_sim, version, offsets=(0.0,))
    (node,) = registry(client, sim).json()
    fields = ["id", "ip", "lastUpdateTime", "memory", "cpu", "status"]
    if version != "2.8.2":
        fields.insert(5, "dbQueryAveargeTimeMs")
    assert list(node) == fields and node["ip"] == N1
    root = client(sim, base=f"{sim.url}/rest/v2")
    assert root.get("/cluster/node-count").json() == {"number": 1}
    assert root.get("/cluster-mode-status").json()["success"] is True


def test_registry_needs_a_server_jwt_when_configured(make_sim, client):
    sim = cluster(make_sim, "3.0.3", server_jwt_secret=SECRET)
    assert "Not authenticated user" in registry(client, sim).text
    assert registry(client, sim, ProxyAuthorization="x").status_code == 403
    token = jwt.encode({"name": "exporter"}, SECRET, algorithm="HS256")
    assert registry(client, sim, ProxyAuthorization=token).status_code == 200


def test_standalone_server_has_no_registry(make_sim, client, version):
    sim = make_sim(version)
    root = client(sim, base=f"{sim.url}/rest/v2")
    assert root.get("/cluster/nodes/0/10").status_code == 500
    assert root.get("/cluster/node-count").status_code == 500
    assert root.get("/cluster-mode-status").json()["success"] is False


def test_nodes_over_the_control_api(make_sim, client):
    sim = cluster(make_sim, "3.0.3", offsets=(0.0, 0.0))
    control = client(sim, base=sim.url)
    assert control.post("/_sim/join", json={"room_id": "room1", "stream_id": "a", "node": N2}).json() == {"ok": True}
    assert [n["alive"] for n in control.post("/_sim/nodes/kill", json={"address": N2}).json()] == [True, False]
    assert control.post("/_sim/nodes/clock", json={"address": N1, "offset_seconds": 5}).json()[0][
        "clock_offset_seconds"] == 5.0
    assert control.post("/_sim/nodes/revive", json={"address": N2}).json()[1]["alive"] is True
    assert control.post("/_sim/nodes/kill", json={"address": "nope"}).status_code == 400
    assert control.get("/_sim/state").json()["cluster"] is True


def test_every_node_down_is_a_503_from_the_load_balancer(make_sim, client):
    sim = cluster(make_sim, "2.8.2", offsets=(0.0,))
    sim.kill_node(N1)
    assert client(sim).get("/count").status_code == 503


def test_node_flags_build_the_cluster():
    assert node_spec(None, None) is None
    assert node_spec("2", "0,30") == [{"address": N1, "clock_offset_seconds": 0.0},
                                      {"address": N2, "clock_offset_seconds": 30.0}]
    with pytest.raises(ValueError, match="clock offsets"):
        node_spec("a,b", "1")
