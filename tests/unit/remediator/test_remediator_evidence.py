"""Evidence before any write: the remediator's own clock, the origin node's own answers, holds after life.

Every case here is one where an alert, however it came about, names a stream whose publisher may be
alive: nothing may be written to it, and what showed life holds the writes of its app and node
(docs/design.md, "Evidence before any write").
"""
from __future__ import annotations

import msgspec
from remediator_support import (
    NOW,
    FakeAms,
    FakeNode,
    Monotonic,
    alert,
    app_client,
    build_deps,
    notification,
    post,
    server,
)

from ams.model import ClusterNode

SECRET = "server-secret"
NODE_A, NODE_B = "127.0.0.21", "127.0.0.22"


def _decisions(response) -> dict[str, tuple[str, str]]:
    return {o["stream_id"]: (o["decision"], o["reason"]) for o in response.get_json()["outcomes"]}


def _ghost_alert(ams: FakeAms, stream: str, **labels: str) -> dict:
    """An alert carrying the heartbeat the fake AMS holds now (what a rule that saw it frozen carries)."""
    return alert(stream, heartbeat=ams.records[stream].update_time_ms / 1000, **labels)


# ---------------------------------------------------------------- the remediator's own clock

def test_nothing_is_written_before_the_remediator_itself_saw_the_heartbeat_stand_still():
    for version, period in (("2.8.2", 5.0), ("3.0.0", 10.0)):
        ams = FakeAms(version)
        ams.add("ghost1")
        own = Monotonic()
        deps, _ = build_deps({"main": ams}, monotonic=own)
        client = app_client(deps, retry=False)
        first = post(client, notification(_ghost_alert(ams, "ghost1")))
        assert first.status_code == 503 and _decisions(first) == {"ghost1": ("deferred", "observing")}
        own.now += period + 0.5 + 3.0 - 0.1  # one period, AMS's 0.5 s write delay and 3 s read cache
        assert _decisions(post(client, notification(_ghost_alert(ams, "ghost1")))) == {
            "ghost1": ("deferred", "observing")}
        assert ams.writes == []
        own.now += 0.2
        assert _decisions(post(client, notification(_ghost_alert(ams, "ghost1")))) == {"ghost1": ("evicted", "ok")}


def test_a_heartbeat_that_moves_between_deliveries_is_not_a_ghost():
    ams = FakeAms()
    ams.add("alive1")
    own = Monotonic()
    own.meanwhile.append(lambda seconds: ams.beat("alive1"))  # a live publisher writes meanwhile
    deps, _ = build_deps({"main": ams}, monotonic=own)
    response = post(app_client(deps), notification(_ghost_alert(ams, "alive1")))
    assert _decisions(response) == {"alive1": ("skipped", "not_ghost")}
    assert ams.writes == [] and deps.remediator.holds.all() == {}


# ---------------------------------------------------------------- evidence of life, and the holds it takes

def test_a_live_scope_on_the_answering_node_writes_nothing_and_holds_the_app_until_its_heartbeat_moves():
    ams = FakeAms()
    ams.add("stalled")  # a live publisher whose heartbeat writes stall
    ams.add("ghost2", room="room2")
    ams.scopes.add("stalled")
    deps, _ = build_deps({"main": ams})
    client = app_client(deps)
    assert _decisions(post(client, notification(_ghost_alert(ams, "stalled")))) == {
        "stalled": ("skipped", "alive_on_origin")}
    # A real ghost of the same app waits: the heartbeats of this app have misled once.
    assert _decisions(post(client, notification(_ghost_alert(ams, "ghost2", room="room2")))) == {
        "ghost2": ("skipped", "held_after_life")}
    assert ams.writes == []
    text = client.get("/metrics").get_data(as_text=True)
    assert 'antmedia_remediator_hold{ams="main",name="WebRTCAppEE",reason="alive_on_origin",scope="app"} 1.0' in text
    ams.beat("stalled")  # its node writes again: the hold ends
    assert _decisions(post(client, notification(_ghost_alert(ams, "ghost2", room="room2")))) == {
        "ghost2": ("evicted", "ok")}
    assert deps.remediator.holds.all() == {}


def test_a_stop_that_finds_a_publisher_holds_the_app_before_the_decision_is_written():
    ams = FakeAms()
    ams.add("stalled")
    ams.add("ghost2", room="room2")
    ams.live.add("stalled")  # no scope to see beforehand (a WebRTC publisher may own none), but a stop finds it
    deps, _ = build_deps({"main": ams})
    client = app_client(deps)
    response = post(client, notification(_ghost_alert(ams, "stalled"), _ghost_alert(ams, "ghost2", room="room2")))
    decisions = _decisions(response)
    assert decisions["stalled"] == ("failed", "alive_on_stop")
    # The other ghost ran beside it in the same notification: either before the stop (evicted) or after (held);
    # never a second stop to a live publisher.
    assert [w for w in ams.writes if w[0] == "stop"].count(("stop", "stalled")) == 1
    assert ("finish", "stalled") not in ams.writes and ("delete", "stalled") not in ams.writes
    assert decisions["ghost2"] in {("evicted", "ok"), ("skipped", "held_after_life")}


def test_a_stop_left_unanswered_counts_as_life():
    ams = FakeAms()
    ams.add("ghost1")
    ams.add("ghost2", room="room2")
    deps, _ = build_deps({"main": ams})
    real_stop = ams.stop_broadcast

    def stop(app, stream):
        ams.down = True
        try:
            return real_stop(app, stream)
        finally:
            ams.down = False

    ams.stop_broadcast = stop
    client = app_client(deps)
    first = post(client, notification(_ghost_alert(ams, "ghost1")))
    assert first.status_code == 503 and _decisions(first) == {"ghost1": ("deferred", "ams_unavailable")}
    ams.stop_broadcast = real_stop
    assert _decisions(post(client, notification(_ghost_alert(ams, "ghost2", room="room2")))) == {
        "ghost2": ("skipped", "held_after_life")}
    assert ams.writes == []


def test_an_rtmp_connection_inside_red5s_window_waits_quietly_and_holds_nothing():
    ams = FakeAms()
    ams.add("rtmp1", publish_type="RTMP")
    ams.add("ghost2", room="room2")
    ams.scopes.add("rtmp1")  # Red5 keeps the silent connection for rtmp.max_inactivity
    own = Monotonic()
    deps, _ = build_deps({"main": ams}, monotonic=own)
    client = app_client(deps)
    first = post(client, notification(_ghost_alert(ams, "rtmp1")))
    assert first.status_code == 503 and _decisions(first) == {"rtmp1": ("deferred", "rtmp_window")}
    assert own.now < 1000.0 + 60.0
    assert _decisions(post(client, notification(_ghost_alert(ams, "ghost2", room="room2")))) == {
        "ghost2": ("evicted", "ok")}
    own.now += 60.0
    ams.scopes.discard("rtmp1")  # Red5 closed it; AMS itself left the record behind
    assert _decisions(post(client, notification(_ghost_alert(ams, "rtmp1")))) == {"rtmp1": ("evicted", "ok")}
    assert deps.remediator.holds.all() == {}


# ---------------------------------------------------------------- a cluster: ask the origin node

def _cluster(version: str = "2.8.2"):
    """A cluster of two nodes behind the balancer (the fake AMS) with their own REST (FakeNode)."""
    ams = FakeAms(version)
    nodes = {NODE_A: FakeNode(ams.ver, ams), NODE_B: FakeNode(ams.ver, ams)}
    own = Monotonic()
    registry = {NODE_A: int(NOW * 1000), NODE_B: int(NOW * 1000)}
    status = {NODE_A: "alive", NODE_B: "alive"}

    def tick(seconds: float, writing=None, own_too: bool = True) -> None:
        """Time passes on every clock; the nodes in `writing` (default: tick.writing) write their registry."""
        own.now += seconds if own_too else 0.0
        ams.now += seconds
        for ip in tick.writing if writing is None else writing:
            registry[ip] += int(seconds * 1000)
        ams.nodes = [ClusterNode(f"n-{ip}", ip, registry[ip], status[ip]) for ip in registry]

    tick.writing = {NODE_A, NODE_B}
    tick(0.0)
    deps, _ = build_deps({"main": ams}, servers={"main": server(server_jwt_secret=SECRET)}, monotonic=own,
                         node_clients=nodes)
    own.meanwhile.append(lambda seconds: tick(seconds, own_too=False))  # the nodes write while it waits
    tick.registry = registry
    return ams, nodes, own, tick, status, deps


def _watch(client, ams, stream, tick, writing=None, **labels):
    """Deliver the alert as Alertmanager does, every second until it is decided otherwise than deferred."""
    for _ in range(40):
        response = post(client, notification(_ghost_alert(ams, stream, **labels)))
        decision = _decisions(response)[stream]
        if decision[0] != "deferred":
            return decision
        tick(1.0, writing)
    return decision


def test_the_stop_goes_to_the_origin_node_and_nothing_else_is_written_when_it_finds_the_publisher():
    ams, nodes, own, tick, _, deps = _cluster()
    ams.add("p1", origin=NODE_A)
    nodes[NODE_A].live.add("p1")  # alive on its origin; any other node's stop would say success=false
    decision = _watch(app_client(deps), ams, "p1", tick)
    assert decision == ("failed", "alive_on_stop")
    assert nodes[NODE_A].writes == [("stop", "p1")] and ams.writes == [] and nodes[NODE_B].writes == []


def test_a_ghost_of_a_writing_node_is_evicted_with_its_stop_on_the_origin():
    ams, nodes, own, tick, _, deps = _cluster()
    ams.add("g1", origin=NODE_A)
    assert _watch(app_client(deps), ams, "g1", tick) == ("evicted", "ok")
    assert nodes[NODE_A].writes == [("stop", "g1")] and ("stop", "g1") not in ams.writes
    assert ("delete", "g1") in ams.writes


def test_a_node_that_serves_but_does_not_write_is_held_for_a_human():
    ams, nodes, own, tick, status, deps = _cluster()
    ams.add("p1", origin=NODE_A, age=0.0)  # its node lost the database: sessions live, no heartbeat, no registry write
    status[NODE_A] = "dead"
    tick.writing.discard(NODE_A)
    tick(0.0)
    decision = _watch(app_client(deps), ams, "p1", tick, writing=(NODE_B,), origin="dead")
    assert decision == ("skipped", "node_not_writing")
    decision = _watch(app_client(deps), ams, "p1", tick, writing=(NODE_B,))  # the same ghost, labelled alive
    assert decision == ("skipped", "node_not_writing")
    assert ams.writes == [] and nodes[NODE_A].writes == []


def test_a_dead_node_is_one_whose_host_does_not_answer_and_nothing_is_stopped_there():
    ams, nodes, own, tick, status, deps = _cluster()
    ams.add("p1", origin=NODE_A)
    status[NODE_A] = "dead"
    nodes[NODE_A].down = True
    tick.writing.discard(NODE_A)
    tick(0.0)
    assert _watch(app_client(deps), ams, "p1", tick, writing=(NODE_B,), origin="dead") == ("evicted", "dead_node")
    assert ("delete", "p1") in ams.writes and not any(w[0] == "stop" for w in ams.writes)


def test_a_node_read_dead_whose_registry_heartbeat_moves_takes_the_live_node_path():
    ams, nodes, own, tick, status, deps = _cluster()
    ams.add("g1", origin=NODE_A)
    status[NODE_A] = "dead"  # its clock lags the answering node's by more than AMS's window
    tick(0.0)
    assert _watch(app_client(deps), ams, "g1", tick, origin="dead") == ("evicted", "ok")
    assert nodes[NODE_A].writes == [("stop", "g1")]


def test_a_node_whose_clock_stepped_back_gets_no_stop_for_the_sessions_that_stopped_writing():
    """A step back of S seconds: sessions from before it write nothing until the node's clock passes their
    last heartbeat plus a period (MuxAdaptor L855-868 @2.8.2); the registry follows the node's clock."""
    ams, nodes, own, tick, _, deps = _cluster()
    ams.add("p1", origin=NODE_A, age=2.0)  # a live session, its last write just before the step
    ams.add("g2", origin=NODE_A, room="room2", age=60.0)  # a real ghost of the same node
    nodes[NODE_A].live.add("p1")
    tick.registry[NODE_A] -= 40_000  # the node's clock stepped back 40 s

    def session_writes_when_the_gate_opens(seconds: float) -> None:
        if tick.registry[NODE_A] > ams.records["p1"].update_time_ms + 5_000:
            ams.beat("p1", 5.0)

    own.meanwhile.append(session_writes_when_the_gate_opens)
    tick(0.0)
    client = app_client(deps)
    first = post(client, notification(_ghost_alert(ams, "p1")))
    assert _decisions(first)["p1"] == ("skipped", "node_clock_stepped")
    assert _watch(client, ams, "g2", tick, room="room2") == ("skipped", "held_after_life")
    for _ in range(60):  # Alertmanager keeps sending while the rule sees p1 frozen
        post(client, notification(_ghost_alert(ams, "p1")))
        tick(1.0)
        session_writes_when_the_gate_opens(1.0)
    assert ("stop", "p1") not in nodes[NODE_A].writes and not any(w[1] == "p1" for w in ams.writes)
    assert _watch(client, ams, "g2", tick, room="room2") == ("evicted", "ok")
    assert nodes[NODE_A].writes == [("stop", "g2")]


def test_a_stream_whose_origin_the_registry_does_not_list_is_held():
    ams, nodes, own, tick, _, deps = _cluster()
    ams.add("g1", origin="10.9.9.9")
    assert _watch(app_client(deps), ams, "g1", tick) == ("skipped", "node_unknown")
    assert ams.writes == []


def test_an_origin_that_does_not_answer_while_its_registry_moves_defers():
    ams, nodes, own, tick, _, deps = _cluster()
    ams.add("g1", origin=NODE_A)
    nodes[NODE_A].down = True  # a network between us and the node, not the node's death
    assert _watch(app_client(deps), ams, "g1", tick) == ("deferred", "origin_unreachable")
    assert ams.writes == []


# ---------------------------------------------------------------- every room, duplicates per room

def test_one_id_listed_in_two_rooms_is_two_alerts_and_each_room_is_cleared():
    ams = FakeAms()
    ams.add("p1", room="roomB")
    deps, _ = build_deps({"main": ams})
    client = app_client(deps)
    first = post(client, notification(_ghost_alert(ams, "p1", room="roomB")))
    assert _decisions(first) == {"p1": ("evicted", "ok")}
    second = post(client, notification(alert("p1", room="roomA", heartbeat=NOW - 60)))
    assert _decisions(second)["p1"][1] != "duplicate"


def test_a_hold_ends_when_its_witness_moves_even_if_no_alert_comes_any_more():
    ams = FakeAms()
    ams.add("stalled")
    ams.scopes.add("stalled")
    deps, _ = build_deps({"main": ams})
    assert _decisions(post(app_client(deps), notification(_ghost_alert(ams, "stalled")))) == {
        "stalled": ("skipped", "alive_on_origin")}
    deps.remediator.review_holds()
    assert len(deps.remediator.holds.all()) == 1, "the witness has not moved yet"
    ams.beat("stalled")
    deps.remediator.review_holds()  # what the remediator's review thread does every HOLD_REVIEW_SECONDS
    assert deps.remediator.holds.all() == {}


def test_a_clock_step_hold_ends_once_the_nodes_registry_heartbeat_has_passed_the_frozen_one():
    ams, nodes, own, tick, _, deps = _cluster()
    ams.add("p1", origin=NODE_A, age=2.0)
    tick.registry[NODE_A] -= 40_000
    tick(0.0)
    assert _decisions(post(app_client(deps), notification(_ghost_alert(ams, "p1")))) == {
        "p1": ("skipped", "node_clock_stepped")}
    tick(20.0)
    deps.remediator.review_holds()
    assert list(deps.remediator.holds.all()) == [("node", "main", NODE_A)]
    tick(30.0)  # 40 s back, the frozen heartbeat 2 s old: past it by the 8.5 s wait and a 6 s node period
    deps.remediator.review_holds()
    assert deps.remediator.holds.all() == {}


def test_on_3x_a_same_id_rejoin_seen_only_by_the_node_that_took_it_stops_the_eviction():
    """3.x MongoStore caches GET /{id} per node for 3 s; only the node that wrote refreshes its copy."""
    ams, nodes, own, tick, _, deps = _cluster("3.0.0")
    ams.add("g1", origin=NODE_A)
    real_remove = ams.remove_subtrack

    def rejoin_meanwhile(app, room, stream):
        # the participant republishes the id on node B while the eviction runs: B's copy is fresh, the
        # balancer's read still shows the frozen record
        frozen = ams.records["g1"]
        nodes[NODE_B].copies["g1"] = msgspec.structs.replace(frozen, update_time_ms=frozen.update_time_ms + 9000)
        return real_remove(app, room, stream)

    ams.remove_subtrack = rejoin_meanwhile
    assert _watch(app_client(deps), ams, "g1", tick) == ("failed", "heartbeat_resumed")
    assert ("delete", "g1") not in ams.writes
