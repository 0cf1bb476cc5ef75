"""The remediator against the simulated AMS (2.8.2 and 3.0.0): eviction order, safety, outages, clock skew."""
import io
import json
import time
from typing import Callable

import httpx
import pytest
from remediator_support import APP, notification, post, remediator_config, sample
from remediator_support import alert as payload_alert

from ams.server import AmsServer
from remediator.app import build_deps, close_deps, create_app
from remediator.decisions import AuditLog
from service.config import Config as Settings
from simulator import ManualClock, Simulator
from stack.writes import record_targets

VERSIONS = ("2.8.2", "3.0.0")
SERVER_SECRET = "the-ams-server-secret-of-32-bytes!!"
GRACE = 2.0  # the simulated webRTCClientStartTimeoutMs, and the config's reconnect_grace_seconds
THRESHOLD = 3 * 1.0 + GRACE + 0.5 + 3.0  # stale_heartbeats x period + grace + AMS's write delay and read cache


class RecordingTransport(httpx.HTTPTransport):
    """A real transport that remembers every host:port it was asked to reach."""

    def __init__(self) -> None:
        super().__init__()
        self.hosts: list[tuple[str, int]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.hosts.append((request.url.host, request.url.port))
        if not request.url.host.startswith("127."):  # tests reach loopback only; a simulated 10.0.0.x node is unreachable
            raise httpx.ConnectError(f"{request.url.host} is not on this machine", request=request)
        return super().handle_request(request)


class OwnClock:
    """The remediator's monotonic clock in these tests; sleep() is time passing between two deliveries of
    Alertmanager, on AMS too, so a live publisher writes its heartbeats meanwhile."""

    def __init__(self, ams_clock: ManualClock) -> None:
        self.ams_clock, self.now = ams_clock, 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.ams_clock.advance(seconds)


class World:
    """A started simulator with one room, a ghost, a healthy participant and a remediator app."""

    def __init__(self, version: str, offset: float = 0.0, timeout: float = 2.0, jwt_secret: str | None = None,
                 sim: dict | None = None, server_secret: str | None = None,
                 transport: Callable[[Simulator], RecordingTransport] = lambda sim: RecordingTransport(),
                 **config) -> None:
        self.clock = ManualClock(start=time.time(), offset_seconds=offset)
        self.sim = Simulator(ams_version=version, heartbeat_seconds=1.0, clock=self.clock, jwt_secret=jwt_secret,
                             reconnect_grace_seconds=GRACE, server_jwt_secret=SERVER_SECRET,
                             **(sim or {})).start()
        self.sim.create_room(APP, "room1")
        assert self.sim.join(APP, "room1", "ghost1") and self.sim.join(APP, "room1", "alive1")
        self.transport = transport(self.sim)
        server = AmsServer(name="main", url=self.sim.url, apps=(APP,), heartbeat_seconds=1.0,
                           stale_heartbeats=3, reconnect_grace_seconds=GRACE, timeout_seconds=timeout,
                           server_jwt_secret=server_secret, node_url=f"http://{{ip}}:{self.sim.port}")
        self.audit = io.StringIO()
        self.own = OwnClock(self.clock)
        self.deps = build_deps(Settings(ams=(server,), remediator=remediator_config(**config)),
                               ams_transport=self.transport, audit=AuditLog(self.audit),
                               monotonic=self.own)
        self.client = create_app(self.deps).test_client()
        self.client.retry_clock = self.own  # post() delivers again while the remediator waits, as Alertmanager does

    def make_ghost(self, stream: str = "ghost1") -> None:
        """Drop the network, then let AMS time pass beyond the threshold (what the rule waits for)."""
        assert self.sim.drop(APP, stream)
        self.clock.advance(THRESHOLD + 2.0)

    def alert(self, stream: str, behind: float = 0.0, **kw) -> dict:
        """An alert whose evidence is the updateTime AMS holds now, or one `behind` seconds older.

        behind > 0 is what a rule that saw an earlier heartbeat would carry: the stream advanced since.
        """
        record = self.sim.broadcast(APP, stream)
        seen = (record or {}).get("updateTime") or 0
        return payload_alert(stream, heartbeat=max(seen / 1000 - behind, 0.001), **kw)

    def writes(self) -> list[tuple[str, str, str]]:
        return [(w.method, w.path, w.query) for w in self.sim.writes]

    def close(self) -> None:
        close_deps(self.deps)
        self.sim.stop()


@pytest.fixture
def world():
    worlds = []

    def make(version: str = "2.8.2", offset: float = 0.0, **kw) -> World:
        worlds.append(World(version, offset, **kw))
        return worlds[-1]

    yield make
    for w in worlds:
        w.close()


def _outcome(response):
    (only,) = response.get_json()["outcomes"]
    return only["decision"], only["reason"]


def test_ghost_on_2_8_2_is_evicted_in_the_reference_order(world):
    w = world("2.8.2")
    w.make_ghost()
    response = post(w.client, notification(w.alert("ghost1")))
    assert response.status_code == 200 and _outcome(response) == ("evicted", "ok")
    base = f"/{APP}/rest/v2/broadcasts"
    # The last write frees the id (2.8.2 refuses a rejoin while the stored status is live): none can follow a rejoin.
    assert [(m, p) for m, p, _ in w.writes()] == [
        ("POST", f"{base}/ghost1/stop"),
        ("DELETE", f"{base}/room1/subtrack"),
        ("DELETE", f"{base}/conference-rooms/room1/ghost1"),
        ("DELETE", f"{base}/ghost1"),
    ]
    assert "id=ghost1" in w.writes()[1][2]
    assert sample(w.deps, "antmedia_remediator_eviction_latency_seconds_count") == 1
    assert sample(w.deps, "antmedia_remediator_last_eviction_timestamp_seconds", ams="main", app=APP) > 0
    assert w.sim.broadcast(APP, "ghost1") is None and "ghost1" not in w.sim.room_members(APP, "room1")
    assert w.sim.reconnect(APP, "ghost1"), "the participant can rejoin with the same id"


class RejoiningTransport(RecordingTransport):
    """The participant's page retrying its own stream id, and landing at the worst moment: just after each
    read the remediator makes, before the write that read decides. Once the id is free it is live again."""

    def __init__(self, sim: Simulator, stream: str) -> None:
        super().__init__()
        self.sim, self.stream, self.rejoined_after = sim, stream, None

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        response.read()
        if request.method == "GET" and self.rejoined_after is None and self.sim.reconnect(APP, self.stream):
            self.rejoined_after = len(self.sim.writes)
        return response


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("zombi", [True, False], ids=["zombi", "created-by-rest"])
def test_a_participant_rejoining_the_moment_its_id_is_free_gets_no_write(world, version, zombi):
    """No write may follow the one that frees the id: AMS has no conditional DELETE or room removal, so a
    write after it can land on the participant who rejoined in between (kicked, or dropped from its room)."""
    w = world(version, transport=lambda sim: RejoiningTransport(sim, "ghost1" if zombi else "booked"))
    if not zombi:
        created = httpx.post(f"{w.sim.url}/{APP}/rest/v2/broadcasts/create", json={"streamId": "booked"}, timeout=5)
        assert created.status_code == 200 and w.sim.join(APP, "room1", "booked")
    stream = "ghost1" if zombi else "booked"
    w.make_ghost(stream)
    rejoining = w.transport
    post(w.client, notification(w.alert(stream)))
    after = w.sim.writes[rejoining.rejoined_after:] if rejoining.rejoined_after is not None else []
    assert [f"{r.method} {r.path}" for r in after if stream in record_targets(r)] == []
    # Freed by the eviction's last write, the participant rejoins after it.
    assert rejoining.rejoined_after is not None or w.sim.reconnect(APP, stream), "the id was never freed"
    assert w.sim.broadcast(APP, stream)["status"] == "broadcasting" and stream in w.sim.room_members(APP, "room1")


def test_ghost_on_3_0_0_is_evicted_without_touching_the_room(world):
    w = world("3.0.0")
    w.make_ghost()
    response = post(w.client, notification(w.alert("ghost1")))
    assert _outcome(response) == ("evicted", "ok")
    base = f"/{APP}/rest/v2/broadcasts"
    writes = w.writes()
    assert [(m, p) for m, p, _ in writes] == [
        ("POST", f"{base}/ghost1/stop"), ("DELETE", f"{base}/room1/subtrack"), ("DELETE", f"{base}/ghost1")]
    assert "stopSubtracks=false" in writes[0][2] and "deleteSubtracks=false" in writes[2][2]
    assert w.sim.broadcast(APP, "room1") is not None and "alive1" in w.sim.room_members(APP, "room1")


@pytest.mark.parametrize("version", VERSIONS)
def test_no_partial_put_and_no_room_delete_ever(world, version):
    w = world(version)
    created = httpx.post(f"{w.sim.url}/{APP}/rest/v2/broadcasts/create", json={"streamId": "booked"}, timeout=5)
    assert created.status_code == 200 and w.sim.join(APP, "room1", "booked") and w.sim.drop(APP, "booked")
    w.make_ghost()
    post(w.client, notification(w.alert("ghost1"), w.alert("booked"), w.alert("room1", room=None),
                                w.alert("alive1", behind=5.0)))
    # The one PUT finishes the record created by REST. 2.8.x: it carries the whole fresh record (a partial
    # body wipes fields, BroadcastRestService L232-242).
    (put,) = [json.loads(write.body) for write in w.sim.writes if write.method == "PUT"]
    if version == "2.8.2":
        assert {"streamId", "type", "updateTime", "mainTrackStreamId"} <= set(put)
    else:
        assert put == {"status": "finished"}
    assert all(not p.endswith("/room1") for _, p, _ in w.writes())
    assert w.sim.broadcast(APP, "room1") is not None


@pytest.mark.parametrize("version", VERSIONS)
def test_healthy_stream_named_in_a_firing_alert_is_not_touched(world, version):
    w = world(version)
    w.clock.advance(10.0)
    response = post(w.client, notification(w.alert("alive1", behind=5.0)))
    assert _outcome(response) == ("skipped", "not_ghost") and w.writes() == []


@pytest.mark.parametrize("version", VERSIONS)
def test_main_track_is_never_touched_even_when_it_looks_stale(world, version):
    w = world(version)
    w.clock.advance(60.0)
    response = post(w.client, notification(w.alert("room1", room=None)))
    assert _outcome(response) == ("skipped", "main_track") and w.writes() == []


def test_empty_room_on_2_8_2_is_still_a_room(world):
    w = world("2.8.2")
    w.sim.create_room(APP, "empty")
    w.clock.advance(60.0)
    response = post(w.client, notification(w.alert("empty", room=None)))
    assert _outcome(response)[0] == "skipped" and w.writes() == []


def test_labels_carrying_urls_send_no_request_anywhere_else(world):
    w = world("2.8.2")
    w.make_ghost()
    evil = "http://127.0.0.1:1/steal"
    body = notification(w.alert("ghost1", ams=evil), w.alert(evil), w.alert("ghost1", room=evil),
                        w.alert("ghost1", app="http:"), w.alert("ghost1", generator="http://x", runbook=evil))
    response = post(w.client, body)
    assert response.status_code == 200
    assert w.transport.hosts and set(w.transport.hosts) == {("127.0.0.1", w.sim.port)}
    # A URL for a name is refused unmapped; for an id on a configured ams/app it is a visible failure there.
    assert [(o["decision"], o["reason"]) for o in response.get_json()["outcomes"]] == [
        ("skipped", "invalid_labels"), ("failed", "invalid_id"), ("failed", "invalid_id"),
        ("skipped", "invalid_labels"), ("evicted", "ok")]


def test_triple_delivery_evicts_once(world):
    w = world("2.8.2")
    w.make_ghost()
    codes = [post(w.client, notification(w.alert("ghost1"))).status_code for _ in range(3)]
    assert codes == [200] * 3
    deletes = [p for m, p, _ in w.writes() if (m, p) == ("DELETE", f"/{APP}/rest/v2/broadcasts/ghost1")]
    assert len(deletes) == 1 and sample(w.deps, "antmedia_remediator_duplicates_total") == 2


@pytest.mark.parametrize("version", VERSIONS)
def test_dry_run_writes_nothing(world, version):
    w = world(version, dry_run=True)
    w.make_ghost()
    response = post(w.client, notification(w.alert("ghost1")))
    assert _outcome(response) == ("dry_run", "ok") and w.writes() == []
    assert w.sim.broadcast(APP, "ghost1") is not None


@pytest.mark.parametrize("fault", [dict(kind="status", status=503), dict(kind="timeout", seconds=3.0)])
def test_ams_down_answers_503_without_a_write_then_evicts_after_recovery(world, fault):
    w = world("2.8.2", timeout=0.3)
    w.make_ghost()
    w.sim.faults.inject(path_regex=".*", **fault)
    response = post(w.client, notification(w.alert("ghost1")))
    assert response.status_code == 503 and _outcome(response) == ("deferred", "ams_unavailable")
    assert w.writes() == []
    w.sim.faults.clear()
    response = post(w.client, notification(w.alert("ghost1")))
    assert response.status_code == 200 and _outcome(response) == ("evicted", "ok")


def test_ams_failing_mid_eviction_is_retried_to_completion(world):
    w = world("2.8.2")
    w.make_ghost()
    w.sim.faults.inject(kind="status", status=503, path_regex=r"/conference-rooms/room1/ghost1$", count=1)
    assert post(w.client, notification(w.alert("ghost1"))).status_code == 503
    response = post(w.client, notification(w.alert("ghost1")))
    assert response.status_code == 200 and _outcome(response) == ("evicted", "ok")
    assert w.sim.broadcast(APP, "ghost1") is None and "ghost1" not in w.sim.room_members(APP, "room1")


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("offset", [-300.0, 300.0])
def test_clock_skew_of_five_minutes_evicts_ghosts_and_spares_healthy_streams(world, version, offset):
    w = world(version, offset=offset)
    w.make_ghost()
    response = post(w.client, notification(w.alert("ghost1"), w.alert("alive1", behind=5.0)))
    decisions = [(o["stream_id"], o["decision"]) for o in response.get_json()["outcomes"]]
    assert decisions == [("ghost1", "evicted"), ("alive1", "skipped")]
    assert w.sim.broadcast(APP, "alive1") is not None


def test_ams_refusing_the_remediator_is_a_failure_not_a_retry(world):
    w = world("2.8.2", jwt_secret="the-ams-secret")
    w.make_ghost()
    response = post(w.client, notification(w.alert("ghost1")))
    assert response.status_code == 200 and _outcome(response) == ("failed", "ams_auth")
    assert w.writes() == []
    assert sample(w.deps, "antmedia_remediator_decisions_total", ams="main", app=APP,
                  outcome="failed", reason="ams_auth") == 1


def test_blast_radius_counts_live_streams_on_ams(world):
    w = world("2.8.2", blast_radius={"max_share": 0.3, "min_count": 3})
    ids = w.sim.populate(APP, live=8, rooms=2, prefix="p")
    for stream in ids[:4]:
        w.sim.drop(APP, stream)
    w.clock.advance(10.0)
    response = post(w.client, notification(*[w.alert(s, room=None) for s in ids[:4]]))
    outcomes = response.get_json()["outcomes"]
    assert {o["reason"] for o in outcomes} == {"blast_radius"} and w.writes() == []
    assert "4 of 10 live streams" in outcomes[0]["detail"]


@pytest.mark.parametrize("version", VERSIONS)
def test_precreated_ghost_is_finished_never_with_a_partial_put_on_2_8_2(world, version):
    w = world(version)
    created = httpx.post(f"{w.sim.url}/{APP}/rest/v2/broadcasts/create", json={"streamId": "booked"}, timeout=5)
    assert created.status_code == 200
    assert w.sim.join(APP, "room1", "booked")
    w.make_ghost("booked")
    response = post(w.client, notification(w.alert("booked")))
    assert _outcome(response) == ("evicted", "ok")
    puts = [write for write in w.sim.writes if write.method == "PUT"]
    assert len(puts) == 1 and puts[0].path.endswith("/booked")
    body = json.loads(puts[0].body)
    assert body["status"] == "finished"
    if version == "2.8.2":
        assert {"streamId", "subTrackStreamIds", "updateTime", "receivedBytes", "metaData"} <= set(body)
    assert w.sim.broadcast(APP, "booked")["status"] == "finished"
    assert "booked" not in w.sim.room_members(APP, "room1")


# ---------------------------------------------------------------- what AMS would keep is never written to

SOURCE_TYPES = ("ipCamera", "streamSource", "playlist")


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("kind", SOURCE_TYPES)
def test_a_stuck_pulled_source_is_never_written_even_when_a_crafted_alert_names_it(world, version, kind):
    w = world(version)
    w.sim.add_source(APP, "cam1", type=kind)
    assert w.sim.stick_source(APP, "cam1")
    w.clock.advance(THRESHOLD + 25.0)  # past 3.x's computed terminated_unexpectedly (2 periods)
    response = post(w.client, notification(w.alert("cam1", room=None), w.alert("cam1", room="room1")))
    assert [(o["decision"], o["reason"]) for o in response.get_json()["outcomes"]][0] == ("skipped", "not_pushed")
    assert w.writes() == [] and w.sim.broadcast(APP, "cam1") is not None


@pytest.mark.parametrize("version", VERSIONS)
def test_a_participant_resuming_within_the_grace_is_never_written(world, version):
    """Drop right after a heartbeat, resume at the very end of AMS's grace; the rule's alert cannot precede it."""
    w = world(version)
    evidence = w.alert("alive1")  # the heartbeat the rule would have seen frozen
    assert w.sim.blink(APP, "alive1", GRACE - 0.01)
    w.clock.advance(THRESHOLD - 0.1)  # just inside the threshold: the resume has written a heartbeat
    response = post(w.client, notification(evidence))
    assert _outcome(response) == ("skipped", "not_ghost") and w.writes() == []
    assert w.sim.broadcast(APP, "alive1")["status"] == "broadcasting"


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("proxy", [-30.0, 30.0])
def test_a_proxy_dating_answers_with_its_own_clock_changes_no_verdict(world, version, proxy):
    w = world(version, sim={"proxy_clock_offset_seconds": proxy})
    w.make_ghost()
    healthy = w.alert("alive1", behind=1.0)  # a rule that saw alive1's previous heartbeat
    response = post(w.client, notification(w.alert("ghost1"), healthy))
    decisions = [(o["stream_id"], o["decision"], o["reason"]) for o in response.get_json()["outcomes"]]
    assert decisions == [("ghost1", "evicted", "ok"), ("alive1", "skipped", "not_ghost")]
    assert {write.stream_id for write in w.sim.writes} == {"ghost1"}


CLUSTER = [{"address": "10.0.0.1", "clock_offset_seconds": 0.0},
           {"address": "10.0.0.2", "clock_offset_seconds": 30.0},
           {"address": "10.0.0.3", "clock_offset_seconds": -45.0}]


@pytest.mark.parametrize("version", VERSIONS)
def test_a_cluster_with_skewed_node_clocks_loses_every_ghost_and_no_healthy_stream(world, version):
    w = world(version, sim={"nodes": CLUSTER})
    ghosts = [f"g{i}" for i in range(3)]
    healthy = [f"h{i}" for i in range(3)]
    for i, node in enumerate(n["address"] for n in CLUSTER):
        assert w.sim.join(APP, "room1", ghosts[i], node=node) and w.sim.join(APP, "room1", healthy[i], node=node)
    evidence = {s: w.alert(s) for s in healthy}  # what a rule saw before their next heartbeats
    for stream in ghosts:
        assert w.sim.drop(APP, stream)
    w.clock.advance(THRESHOLD + 2.0)
    response = post(w.client, notification(*[w.alert(s) for s in ghosts], *evidence.values()))
    decisions = {o["stream_id"]: (o["decision"], o["reason"]) for o in response.get_json()["outcomes"]}
    assert decisions == {**{s: ("evicted", "ok") for s in ghosts}, **{s: ("skipped", "not_ghost") for s in healthy}}
    assert {write.stream_id for write in w.sim.writes} == set(ghosts)
    assert not set(ghosts) & set(w.sim.room_members(APP, "room1"))
    assert set(healthy) <= set(w.sim.room_members(APP, "room1"))


@pytest.mark.parametrize("version", VERSIONS)
def test_an_alert_without_evidence_or_from_another_rule_writes_nothing(world, version):
    w = world(version)
    w.make_ghost()
    bare = w.alert("ghost1")
    bare["annotations"].pop("heartbeat_timestamp")
    other = w.alert("ghost1", alertname="MyOwnStaleRule")
    response = post(w.client, notification(bare, other))
    assert [(o["decision"], o["reason"]) for o in response.get_json()["outcomes"]] == [
        ("skipped", "not_ghost"), ("skipped", "not_remediable")]
    assert w.writes() == []


@pytest.mark.parametrize("version", VERSIONS)
def test_an_alert_naming_a_healthy_participant_with_its_current_heartbeat_writes_nothing(world, version):
    """Evidence that matches a live stream (a rule edited by hand, a replayed notification): the remediator
    first sees the heartbeat stand still itself, and a live publisher writes within that time."""
    w = world(version)
    assert w.sim.drop(APP, "ghost1")
    w.clock.advance(THRESHOLD + 2.0)
    response = post(w.client, notification(w.alert("alive1"), w.alert("ghost1")))
    outcomes = {o["stream_id"]: (o["decision"], o["reason"]) for o in response.get_json()["outcomes"]}
    assert outcomes == {"alive1": ("skipped", "not_ghost"), "ghost1": ("evicted", "ok")}
    assert {write.stream_id for write in w.sim.writes} == {"ghost1"}
    assert w.own.now > 1000.0, "the remediator waited on its own clock"
    assert "alive1" in w.sim.room_members(APP, "room1") and w.deps.remediator.holds.all() == {}


# ---------------------------------------------------------------- a dead node's participants

NODES = ["127.0.0.31", "127.0.0.32", "127.0.0.33"]  # each answers on its own loopback address
DEAD = NODES[1]


def _dead_node_world(world, version: str, participants: int = 6, **config):
    """3 nodes; node DEAD carried `participants` in room1 and died long enough ago for AMS to say so."""
    w = world(version, sim={"nodes": NODES}, server_secret=SERVER_SECRET,
              blast_radius={"enabled": True, "max_share": 0.25, "min_count": 3}, **config)
    doomed = [f"n2p{i}" for i in range(participants)]
    for stream in doomed:
        assert w.sim.join(APP, "room1", stream, node=DEAD)
    post(w.client, notification())  # the remediator reads nothing yet; AMS's registry is first read below
    w.deps.remediator.revalidators["main"].registry()
    w.sim.kill_node(DEAD)
    w.own.sleep(max(THRESHOLD, 25.0) + 2.0)  # dead after 4 x 5 s on 3.x (2 x 5 s on 2.8.x)
    return w, doomed


def _dead_alert(w, stream):
    return w.alert(stream, node=DEAD, origin="dead")


@pytest.mark.parametrize("version", VERSIONS)
def test_a_dead_nodes_participants_are_evicted_past_the_blast_radius_once_ams_confirms_the_death(world, version):
    w, doomed = _dead_node_world(world, version)
    response = post(w.client, notification(*[_dead_alert(w, s) for s in doomed]))
    assert {(o["decision"], o["reason"]) for o in response.get_json()["outcomes"]} == {("evicted", "dead_node")}
    assert not set(doomed) & set(w.sim.room_members(APP, "room1"))
    assert {write.stream_id for write in w.sim.writes} == set(doomed)
    assert not any(write.path.endswith("/stop") for write in w.sim.writes), "nothing runs on a dead node"
    assert sample(w.deps, "antmedia_remediator_decisions_total", ams="main", app=APP,
                  outcome="evicted", reason="dead_node") == len(doomed)


@pytest.mark.parametrize("version", VERSIONS)
def test_the_same_ghosts_without_the_dead_node_verdict_stay_held_by_the_blast_radius(world, version):
    w, doomed = _dead_node_world(world, version)
    response = post(w.client, notification(*[w.alert(s) for s in doomed]))
    assert {o["reason"] for o in response.get_json()["outcomes"]} <= {"blast_radius", "node_unconfirmed"}
    assert w.writes() == []


@pytest.mark.parametrize("version", VERSIONS)
def test_a_node_that_came_back_stops_the_eviction_of_its_ghosts(world, version):
    w, doomed = _dead_node_world(world, version)
    w.sim.revive_node(DEAD)
    w.own.sleep(1.0)
    alerts = [_dead_alert(w, s) for s in doomed]
    response = post(w.client, notification(*alerts))
    assert {o["reason"] for o in response.get_json()["outcomes"]} <= {"not_found", "not_ghost",
                                                                       "node_unconfirmed"}
    assert w.writes() == []


@pytest.mark.parametrize("version", VERSIONS)
def test_an_alert_that_calls_a_live_nodes_ghost_dead_is_judged_as_a_ghost_of_its_live_node(world, version):
    w = world(version, sim={"nodes": NODES}, server_secret=SERVER_SECRET)
    assert w.sim.join(APP, "room1", "n1ghost", node=NODES[0])
    assert w.sim.drop(APP, "n1ghost")
    w.deps.remediator.revalidators["main"].registry()
    w.own.sleep(THRESHOLD + 2.0)
    response = post(w.client, notification(w.alert("n1ghost", node=DEAD, origin="dead")))
    # The node is the record's own originAdress, never the alert's label; that node writes, so the ghost
    # goes as any ghost of a live node does: stop on its origin, then the record.
    assert _outcome(response) == ("evicted", "ok")
    stops = [write for write in w.sim.writes if write.path.endswith("/stop")]
    assert [(write.stream_id, write.node) for write in stops] == [("n1ghost", NODES[0])]


def test_the_dead_node_budget_bounds_evictions_per_ams(world):
    w, doomed = _dead_node_world(world, "3.0.0", dead_node={"max_evictions": 2, "window_seconds": 600})
    response = post(w.client, notification(*[_dead_alert(w, s) for s in doomed]))
    reasons = sorted(o["reason"] for o in response.get_json()["outcomes"])
    assert reasons == ["dead_node"] * 2 + ["rate_limited"] * (len(doomed) - 2)


def test_without_a_server_secret_origin_dead_is_only_a_label(world):
    w = world("3.0.0", sim={"nodes": NODES}, blast_radius={"enabled": True, "max_share": 0.25, "min_count": 3})
    doomed = [f"n2p{i}" for i in range(6)]
    for stream in doomed:
        assert w.sim.join(APP, "room1", stream, node=DEAD)
    w.sim.kill_node(DEAD)
    w.own.sleep(30.0)
    response = post(w.client, notification(*[_dead_alert(w, s) for s in doomed]))
    assert {o["reason"] for o in response.get_json()["outcomes"]} == {"blast_radius"} and w.writes() == []


@pytest.mark.parametrize("store", ["mapdb", "mongodb"])
@pytest.mark.parametrize("version", VERSIONS)
def test_a_ghost_is_evicted_and_listed_nowhere_on_either_store(world, version, store):
    w = world(version, sim={"store": store})
    w.make_ghost()
    response = post(w.client, notification(w.alert("ghost1")))
    assert _outcome(response) == ("evicted", "ok")
    assert "ghost1" not in w.sim.room_members(APP, "room1") and w.sim.broadcast(APP, "ghost1") is None
    assert {write.stream_id for write in w.sim.writes} == {"ghost1"}
    assert w.sim.reconnect(APP, "ghost1")


@pytest.mark.parametrize("version", VERSIONS)
def test_a_live_node_whose_clock_lags_reads_dead_on_ams_but_is_never_treated_as_dead(world, version):
    """AMS compares the answering node's clock with the registry heartbeat the node wrote with its own."""
    w = world(version, sim={"nodes": [{"address": NODES[0]}, {"address": DEAD, "clock_offset_seconds": -60.0},
                                      {"address": NODES[2]}]},
              server_secret=SERVER_SECRET, blast_radius={"enabled": True, "max_share": 0.25, "min_count": 3})
    doomed = [f"lag{i}" for i in range(6)]
    for stream in doomed:
        assert w.sim.join(APP, "room1", stream, node=DEAD)
        assert w.sim.drop(APP, stream)
    for _ in range(4):  # AMS keeps calling it dead; its registry heartbeat keeps moving
        w.own.sleep(THRESHOLD)
        response = post(w.client, notification(*[_dead_alert(w, s) for s in doomed]))
        # A live node's ghosts: six of eight live publishers at once is a storm the blast radius holds.
        assert {o["reason"] for o in response.get_json()["outcomes"]} <= {"node_unconfirmed", "blast_radius"}
    assert w.writes() == []


@pytest.mark.parametrize("store", ["mapdb", "mongodb"])
@pytest.mark.parametrize("first", ["roomB", "roomA"])
def test_a_participant_listed_in_two_rooms_is_listed_in_neither_at_the_end(world, store, first):
    """2.8.2: a participant created through REST left room A cleanly (AMS keeps it listed there, finished,
    AntMediaApplicationAdapter L508-514) and later dropped in room B. Either room's alert may come first."""
    w = world("2.8.2", sim={"store": store})
    for room in ("roomA", "roomB"):
        w.sim.create_room(APP, room)
    assert w.sim.join(APP, "roomA", "p1", zombi=False) and w.sim.leave(APP, "p1")
    assert w.sim.join(APP, "roomB", "p1", zombi=False) and w.sim.drop(APP, "p1")
    w.clock.advance(THRESHOLD + 2.0)
    second = "roomA" if first == "roomB" else "roomB"
    decisions = [_outcome(post(w.client, notification(w.alert("p1", room=room)))) for room in (first, second)]
    assert decisions[0] == ("evicted", "ok") and decisions[1][1] != "duplicate", decisions
    for room in ("roomA", "roomB"):
        assert "p1" not in w.sim.room_members(APP, room), w.sim.room_listing(APP, room)
    assert w.sim.can_publish(APP, "p1")
    assert w.sim.broadcast(APP, "room1") is not None and "alive1" in w.sim.room_members(APP, "room1")
