"""Per-node behaviour: node listeners, RestProxyFilter forwarding, local stop, lost database, clock steps, scopes."""
import socket
from email.utils import parsedate_to_datetime

import httpx
import pytest

from simulator.__main__ import build, parse_args

APP = "WebRTCAppEE"
L1, L2, L3 = "127.0.0.11", "127.0.0.12", "127.0.0.13"
N1, N2 = "10.0.0.1", "10.0.0.2"
ALL_MINUS_ONE = {"totalRTMPWatchersCount": -1, "totalHLSWatchersCount": -1, "totalWebRTCWatchersCount": -1,
                 "totalDASHWatchersCount": -1}


def loopback_cluster(make_sim, version="2.8.2", **kwargs):
    """Three nodes on 127.0.0.11-13, 1 s heartbeat, each with its own listener."""
    kwargs.setdefault("nodes", [L1, L2, L3])
    return make_sim(version, heartbeat_seconds=1.0, **kwargs)


def two_nodes(make_sim, version, offsets=(0.0, 0.0), **kwargs):
    """Two nodes 10.0.0.1-2 (no listeners of their own), 1 s heartbeat."""
    nodes = [{"address": a, "clock_offset_seconds": o} for a, o in zip((N1, N2), offsets)]
    return make_sim(version, heartbeat_seconds=1.0, nodes=nodes, **kwargs)


def at(client, sim, address):
    """A client on one node's own REST base."""
    return client(sim, base=f"{sim.node_url(address)}/{APP}/rest/v2/broadcasts")


def stats(c, sid):
    """GET /{id}/broadcast-statistics."""
    return c.get(f"/{sid}/broadcast-statistics").json()


def api_writes(sim):
    """AMS writes in the log (no control calls)."""
    return [w for w in sim.writes if not w.path.startswith("/_sim/")]


# --- per-node listeners -------------------------------------------------------------------------------------


def test_each_loopback_node_answers_on_its_own_address_as_itself(make_sim, client):
    sim = loopback_cluster(make_sim, nodes=[{"address": L1}, {"address": L2, "clock_offset_seconds": 30.0}])
    assert [n["url"] for n in sim.nodes] == [f"http://{L1}:{sim.port}", f"http://{L2}:{sim.port}"]
    c2 = client(sim, base=sim.node_url(L2))
    dates = [parsedate_to_datetime(c2.get(f"/{APP}/rest/v2/version").headers["date"]).timestamp()
             for _ in range(3)]
    assert {d - sim.clock.now() for d in dates} == {30.0}  # always node 2: no balancer in front


def test_killed_node_refuses_connections_and_leaves_the_balancer(make_sim, client):
    sim = loopback_cluster(make_sim)
    url = sim.node_url(L2)
    kept = client(sim, base=url)
    assert kept.get(f"/{APP}/rest/v2/broadcasts/count").status_code == 200  # a keep-alive connection
    sim.kill_node(L2)
    assert sim.node_url(L2) is None
    with pytest.raises(httpx.TransportError):
        kept.get(f"/{APP}/rest/v2/broadcasts/count")
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/{APP}/rest/v2/version", timeout=2.0)
    sim.create_room(APP, "room1")
    sim.join(APP, "room1", "a", node=L1)
    balancer = client(sim)
    balancer.post("/a/stop"), balancer.post("/b/stop"), balancer.post("/c/stop")
    assert {w.received_by for w in api_writes(sim)} == {L1, L3}
    sim.revive_node(L2)
    assert sim.node_url(L2) == url
    assert httpx.get(f"{url}/{APP}/rest/v2/version", timeout=2.0).status_code == 200


def test_non_loopback_nodes_get_no_listener(make_sim):
    sim = two_nodes(make_sim, "2.8.2")
    assert [n["url"] for n in sim.nodes] == [None, None]
    assert sim.node_url(N1) is None


# --- stop is local, RestProxyFilter forwarding ----------------------------------------------------------------


def test_stop_sent_to_another_node_is_forwarded_while_the_stream_is_fresh(make_sim, client, version):
    sim = loopback_cluster(make_sim, version)
    assert sim.publish(APP, "a", node=L2)
    sim.clock.advance(0.5)
    assert at(client, sim, L1).post("/a/stop").json()["success"] is True
    (write,) = api_writes(sim)
    assert (write.received_by, write.node, write.forwarded, write.live_target) == (L1, L2, True, True)
    assert sim.live_session(APP, "a") is None


def test_stop_off_the_origin_fails_once_the_record_looks_stale_and_the_publisher_lives_on(make_sim, client, version):
    sim = loopback_cluster(make_sim, version)
    assert sim.publish(APP, "a", node=L2)
    sim.lose_database(L2)  # the publisher stays connected; its heartbeat no longer reaches the store
    sim.clock.advance(2.0)  # 2 periods: not streaming any more for RestProxyFilter
    assert at(client, sim, L1).post("/a/stop").json()["success"] is False
    (write,) = api_writes(sim)
    assert (write.received_by, write.node, write.forwarded, write.live_target) == (L1, L1, False, True)
    assert sim.live_session(APP, "a")["node"] == L2


def test_forwarding_reads_freshness_with_the_receiving_node_clock_on_282(make_sim, client):
    sim = two_nodes(make_sim, "2.8.2", offsets=(0.0, 30.0))
    assert sim.publish(APP, "a", node=N1)
    c = client(sim)
    c.get("/count")  # the balancer's next pick is node 2, whose clock is 30 s ahead
    assert c.post("/a/stop").json()["success"] is False
    assert (api_writes(sim)[0].node, api_writes(sim)[0].live_target) == (N2, True)
    assert c.post("/a/stop").json()["success"] is True  # node 1 is the origin


def test_no_forwarding_to_a_dead_origin_or_for_finished_records(make_sim, client):
    sim = two_nodes(make_sim, "2.8.2")
    assert sim.publish(APP, "a", node=N2) and sim.publish(APP, "b", node=N2)
    sim.leave(APP, "b")
    sim.kill_node(N2)
    c = client(sim)
    assert c.post("/a/stop").json()["success"] is False
    assert [(w.node, w.forwarded, w.live_target) for w in api_writes(sim)] == [(N1, False, False)]


def test_forwarding_follows_the_record_not_the_session(make_sim, client, version):
    sim = two_nodes(make_sim, version)
    assert sim.publish(APP, "a", node=N2)
    sim.drop(APP, "a")  # a WebRTC ghost: no session, the record still reads as streaming for 2 periods
    c = client(sim)
    assert c.post("/a/stop").json()["success"] is False
    sim.clock.advance(2.0)
    c.get("/count")
    assert c.post("/a/stop").json()["success"] is False
    assert [(w.received_by, w.node, w.live_target) for w in api_writes(sim)] == [(N1, N2, False), (N1, N1, False)]


def test_delete_off_the_origin_removes_the_record_but_leaves_the_publisher(make_sim, client, version):
    sim = loopback_cluster(make_sim, version)
    assert sim.publish(APP, "a", node=L2)
    sim.lose_database(L2)
    sim.clock.advance(3.0)
    body = at(client, sim, L1).delete("/a").json()
    assert body["success"] is True and "could not stopped" in body["message"]
    assert sim.broadcast(APP, "a") is None and api_writes(sim)[0].live_target is True


def test_forwarded_write_refreshes_only_the_origin_cache_on_3(make_sim, client):
    sim = loopback_cluster(make_sim, "3.0.3")
    assert sim.publish(APP, "a", node=L2)
    c1, c2 = at(client, sim, L1), at(client, sim, L2)
    assert c1.get("/a").json()["name"] == "a" and c2.get("/a").json()["name"] == "a"
    assert c1.put("/a", json={"name": "renamed"}).json()["success"] is True
    assert api_writes(sim)[0].node == L2
    assert c2.get("/a").json()["name"] == "renamed"  # the writer refreshed its own copy
    assert c1.get("/a").json()["name"] == "a"  # node 1 keeps its copy for 3 s (MongoStore L105-109)
    sim.clock.advance(3.0)
    assert c1.get("/a").json()["name"] == "renamed"


def test_main_track_paths_and_create_are_not_forwarded(make_sim, client):
    sim = two_nodes(make_sim, "2.8.2")
    sim.create_room(APP, "room1")
    assert sim.join(APP, "room1", "a", node=N2)
    c = client(sim)
    c.delete("/room1/subtrack", params={"id": "a"})  # stream id "room1": a main track, no origin
    c.post("/create", json={"streamId": "new"})
    assert [(w.node, w.forwarded) for w in api_writes(sim)] == [(N1, False), (N2, False)]
    assert api_writes(sim)[0].live_target is True and api_writes(sim)[1].live_target is False


# --- a node without its database ------------------------------------------------------------------------------


def test_node_without_database_keeps_its_sessions_but_reads_dead(make_sim, client, version):
    sim = loopback_cluster(make_sim, version, webrtc_broadcast_scope=True)
    assert sim.publish(APP, "a", node=L2)
    sim.lose_database(L2)
    sim.clock.advance(25.0)  # beyond 2 (2.8.x) or 4 (3.x) registry periods
    registry = client(sim, base=f"{sim.node_url(L1)}/rest/v2").get("/cluster/nodes/0/10").json()
    assert [n["status"] for n in registry] == ["alive", "dead", "alive"]
    assert sim.live_session(APP, "a") == {"node": L2, "publish_type": "WebRTC", "writing": False, "silent": False,
                                          "scope": True}
    own = at(client, sim, L2)
    assert own.get("/a").status_code == 500 and own.post("/a/stop").status_code == 500
    assert (api_writes(sim)[0].received_by, api_writes(sim)[0].live_target) == (L2, True)
    assert client(sim, base=sim.node_url(L2)).get(f"/{APP}/rest/v2/version").status_code == 200
    balancer = client(sim)
    assert {balancer.post("/x/stop").status_code for _ in range(4)} == {200}
    assert [w.received_by for w in api_writes(sim)] == [L2, L1, L3, L1, L3]
    frozen = sim.broadcast(APP, "a")["updateTime"]
    sim.restore_database(L2)
    sim.clock.advance(1.0)
    assert sim.broadcast(APP, "a")["updateTime"] > frozen and sim.live_session(APP, "a")["writing"]
    registry = client(sim, base=f"{sim.node_url(L1)}/rest/v2").get("/cluster/nodes/0/10").json()
    assert [n["status"] for n in registry] == ["alive"] * 3
    assert at(client, sim, L2).post("/a/stop").json()["success"] is True


def test_a_write_forwarded_to_an_origin_without_database_fails_there(make_sim, client):
    sim = two_nodes(make_sim, "3.0.3")
    assert sim.publish(APP, "a", node=N2)
    sim.lose_database(N2)  # the record still looks fresh to node 1 for 2 periods
    response = client(sim).post("/a/stop")
    assert response.status_code == 500
    (write,) = api_writes(sim)
    assert (write.received_by, write.node, write.forwarded, write.stream_id) == (N1, N2, True, "a")


def test_database_over_the_control_api(make_sim, client):
    sim = two_nodes(make_sim, "3.0.3")
    control = client(sim, base=sim.url)
    nodes = control.post("/_sim/nodes/lose_database", json={"address": N2}).json()
    assert [n["database"] for n in nodes] == [True, False]
    nodes = control.post("/_sim/nodes/restore_database", json={"address": N2}).json()
    assert [n["database"] for n in nodes] == [True, True]
    nodes = control.post("/_sim/nodes/step_clock", json={"address": N1, "seconds": -30}).json()
    assert nodes[0]["clock_offset_seconds"] == -30.0
    assert control.post("/_sim/publish", json={"stream_id": "r", "publish_type": "RTMP", "node": N1}).json()["ok"]
    assert control.get(f"/_sim/session/{APP}/r").json()["session"]["node"] == N1
    assert control.get(f"/_sim/can_publish/{APP}/r", params={"node": N1}).json() == {"can_publish": False}
    assert control.get(f"/_sim/can_publish/{APP}/r").json() == {"can_publish": True}  # 30 s stale by the sim clock
    assert control.post("/_sim/nodes/lose_database", json={"address": "nope"}).status_code == 400


# --- clock stepped back ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["2.8.2", "3.0.3"])
def test_clock_step_back_gates_the_sessions_that_existed(make_sim, version):
    sim = two_nodes(make_sim, version)
    assert sim.publish(APP, "old", node=N1)
    sim.clock.advance(0.5)
    sim.step_node_clock(N1, -30.0)
    assert sim.publish(APP, "new", node=N1)
    written = sim.broadcast(APP, "old")["updateTime"]
    sim.clock.advance(30.0)  # the node clock has not passed the last write + 1 period yet
    assert sim.broadcast(APP, "old")["updateTime"] == written
    assert sim.broadcast(APP, "new")["updateTime"] == int((sim.clock.now() - 30.0) * 1000)
    sim.clock.advance(1.5)
    assert sim.broadcast(APP, "old")["updateTime"] > written
    assert sim.nodes[0]["clock_offset_seconds"] == -30.0


def test_clock_step_moves_the_registry_heartbeat_at_once(make_sim, client):
    sim = two_nodes(make_sim, "2.8.2")
    sim.step_node_clock(N2, -30.0)
    registry = client(sim, base=f"{sim.url}/rest/v2").get("/cluster/nodes/0/10").json()
    assert registry[1]["lastUpdateTime"] == int((sim.clock.now() - 30.0) * 1000)
    assert registry[1]["status"] == "dead"  # read by node 1, 30 s ahead of node 2's new clock


# --- broadcast-statistics -------------------------------------------------------------------------------------


def test_rtmp_publisher_shows_its_scope_on_its_origin_only(make_sim, client, version):
    sim = loopback_cluster(make_sim, version)
    assert sim.publish(APP, "r", publish_type="RTMP", node=L1)
    assert sim.publish(APP, "w", node=L1)
    origin, other = at(client, sim, L1), at(client, sim, L2)
    assert stats(origin, "r") == {"totalRTMPWatchersCount": 0, "totalHLSWatchersCount": 0,
                                  "totalWebRTCWatchersCount": 0, "totalDASHWatchersCount": 0}
    assert stats(other, "r")["totalRTMPWatchersCount"] == -1
    assert stats(origin, "w")["totalRTMPWatchersCount"] == -1  # webrtc_broadcast_scope defaults to False
    assert stats(origin, "missing") == ALL_MINUS_ONE
    assert origin.get("/missing/broadcast-statistics").status_code == 200


def test_webrtc_scope_switch(make_sim, client):
    sim = two_nodes(make_sim, "3.0.3", webrtc_broadcast_scope=True)
    assert sim.publish(APP, "w", node=N1)
    c = client(sim)
    assert [stats(c, "w")["totalRTMPWatchersCount"] for _ in range(2)] == [0, -1]
    sim.drop(APP, "w")
    assert stats(c, "w")["totalRTMPWatchersCount"] == -1


# --- RTMP silence -------------------------------------------------------------------------------------------------


def test_silent_rtmp_keeps_its_scope_for_red5_inactivity_on_282(make_sim, client):
    sim = two_nodes(make_sim, "2.8.2")
    assert sim.publish(APP, "r", publish_type="RTMP", node=N1)
    sim.clock.advance(2.5)
    sim.drop(APP, "r")
    frozen = sim.broadcast(APP, "r")["updateTime"]
    sim.clock.advance(59.0)
    assert sim.live_session(APP, "r")["silent"] and sim.broadcast(APP, "r")["updateTime"] == frozen
    assert sim.can_publish(APP, "r") is False
    assert stats(client(sim), "r")["totalRTMPWatchersCount"] == 0
    sim.clock.advance(1.0)  # 60 s after the drop Red5 closes it: closeBroadcast (zombi: deleted)
    assert sim.live_session(APP, "r") is None and sim.broadcast(APP, "r") is None


def test_silent_rtmp_stop_on_its_origin_succeeds_within_the_window(make_sim, client):
    sim = two_nodes(make_sim, "2.8.2", rtmp_inactivity_seconds=5.0)
    assert sim.publish(APP, "r", publish_type="RTMP", node=N1)
    sim.drop(APP, "r")
    sim.clock.advance(3.0)  # stale: not forwarded; the balancer sends the first request to node 1
    assert client(sim).post("/r/stop").json()["success"] is True
    assert api_writes(sim)[0].live_target is True


def test_silent_rtmp_closes_after_two_periods_on_3(make_sim):
    sim = two_nodes(make_sim, "3.0.3")
    assert sim.publish(APP, "r", publish_type="RTMP", node=N1, zombi=False)
    sim.clock.advance(3.2)
    sim.drop(APP, "r")  # last write at +3.0
    sim.clock.advance(1.7)
    assert sim.live_session(APP, "r")["silent"]
    sim.clock.advance(0.2)  # STREAM_TIMEOUT (2 periods) after the last write
    assert sim.live_session(APP, "r") is None and sim.broadcast(APP, "r")["status"] == "finished"


def test_silent_rtmp_can_come_back_while_the_connection_is_open(make_sim):
    sim = two_nodes(make_sim, "2.8.2")
    assert sim.publish(APP, "r", publish_type="RTMP", node=N1)
    sim.drop(APP, "r")
    sim.clock.advance(30.0)
    assert sim.resume(APP, "r") is True
    sim.clock.advance(40.0)  # past the old 60 s deadline: the connection carried packets again
    assert sim.live_session(APP, "r")["writing"] is True


# --- rejoin ------------------------------------------------------------------------------------------------------


def test_can_publish_follows_the_stored_status_on_282_and_the_computed_one_on_3(make_sim, version):
    sim = two_nodes(make_sim, version)
    assert sim.can_publish(APP, "a") is True
    assert sim.publish(APP, "a", node=N1)
    sim.drop(APP, "a")
    sim.clock.advance(600.0)
    assert sim.can_publish(APP, "a") is (version != "2.8.2")
    assert sim.reconnect(APP, "a") is (version != "2.8.2")


# --- command line ---------------------------------------------------------------------------------------------


def test_flags_reach_the_simulator():
    sim = build(parse_args(["--nodes", f"{L1},{L2}", "--rtmp-inactivity-seconds", "6", "--webrtc-broadcast-scope",
                            "--ams-version", "3.0.3"]))
    assert [n["address"] for n in sim.nodes] == [L1, L2]
    assert sim.world.rtmp_inactivity == 6.0 and sim.world.webrtc_broadcast_scope is True


def test_a_port_taken_on_a_node_address_is_retried_or_refused(monkeypatch):
    from simulator import listeners

    blocker = socket.socket()
    blocker.bind((L2, 0))
    blocker.listen()
    taken = blocker.getsockname()[1]
    real = listeners.Listener
    calls = []

    def first_port_taken(host, port, app, name):
        calls.append((host, port))
        return real(host, taken if host == L2 and len(calls) == 2 else port, app, name)

    try:
        with pytest.raises(OSError):
            listeners.open_together(L1, taken, _app, {L2: _app})
        assert httpx_refused(f"http://{L1}:{taken}/")
        monkeypatch.setattr(listeners, "Listener", first_port_taken)
        main, nodes = listeners.open_together(L1, 0, _app, {L2: _app})
        try:
            assert len(calls) == 4 and nodes[L2].port == main.port != taken
        finally:
            listeners.close_all([main, *nodes.values()])
    finally:
        blocker.close()


def _app(environ, start_response):
    """A WSGI app answering 204."""
    start_response("204 No Content", [])
    return [b""]


def httpx_refused(url: str) -> bool:
    """True when nothing listens at url."""
    try:
        httpx.get(url, timeout=2.0)
    except httpx.ConnectError:
        return True
    return False


def test_writes_resume_on_the_writer_cadence_once_the_database_is_back(make_sim):
    sim = two_nodes(make_sim, "2.8.2")
    assert sim.publish(APP, "a", node=N1)
    start = sim.clock.now()
    sim.clock.advance(0.5)
    sim.lose_database(N1)
    sim.clock.advance(3.0)
    sim.restore_database(N1)  # at +3.5: the writer's next try is at +4
    assert sim.broadcast(APP, "a")["updateTime"] == int(start * 1000)
    sim.clock.advance(0.5)
    assert sim.broadcast(APP, "a")["updateTime"] == int((start + 4.0) * 1000)
