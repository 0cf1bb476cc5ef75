"""Exporter and AMS client against the simulated AMS (both versions, auth, faults, clock offset)."""

from __future__ import annotations

import time

import pytest
from prometheus_client import CollectorRegistry

from ams.client import AmsAuthError, AmsClient
from exporter.collector import AmsCollector
from fakeams import make_server

simulator = pytest.importorskip("simulator")

APP = "WebRTCAppEE"
SECRET = "a-simulated-ams-jwt-secret-32-bytes!"
VERSIONS = ["2.8.2", "3.0.0"]


@pytest.fixture
def world(request):
    """A started simulator on a manual clock: room1 with alice (live) and bob (dropped)."""
    options = getattr(request, "param", {})
    clock = simulator.ManualClock()
    sim = simulator.Simulator(ams_version=options.get("version", "2.8.2"), clock=clock, heartbeat_seconds=1.0,
                              jwt_secret=options.get("jwt_secret"))
    sim.start("127.0.0.1", 0)
    sim.create_room(APP, "room1")
    assert sim.join(APP, "room1", "alice", name="Alice") and sim.join(APP, "room1", "bob", name="Bob")
    sim.drop(APP, "bob")
    yield sim, clock
    sim.stop()


def scrape(sim, collector: AmsCollector | None = None, **overrides):
    """One scrape of the simulator (by `collector`, which remembers heartbeats, or a fresh one)."""
    values = {"url": sim.url, "heartbeat_seconds": 1.0, "reconnect_grace_seconds": 1.0, "timeout_seconds": 2.0}
    values.update(overrides)
    server = make_server(**values)
    own = collector is None
    collector = collector or AmsCollector([server], {"main": AmsClient(server)})
    families = list(collector.collect())
    if own:
        collector.close()
    registry = CollectorRegistry()
    registry.register(type("Fixed", (), {"collect": lambda _self: families})())
    return registry


def collector_on(sim, clock) -> AmsCollector:
    """A collector whose own clock (for how long a heartbeat stood still) is the simulated one."""
    server = make_server(url=sim.url, heartbeat_seconds=1.0, reconnect_grace_seconds=1.0, timeout_seconds=2.0)
    return AmsCollector([server], {"main": AmsClient(server)}, clock=clock.now)


def sample(registry, name, **labels):
    return registry.get_sample_value(name, {"ams": "main", "app": APP, **labels})


@pytest.mark.parametrize("world", [{"version": v} for v in VERSIONS], indirect=True, ids=VERSIONS)
def test_dropped_participant_becomes_a_ghost_once_its_heartbeat_stood_still_beyond_the_threshold(world):
    sim, clock = world
    collector = collector_on(sim, clock)
    try:
        registry = scrape(sim, collector)
        threshold = sample(registry, "antmedia_stale_threshold_seconds")
        assert threshold == 2 * 1.0 + 1.0 + 3.5 and sample(registry, "antmedia_ghost_streams") == 0
        clock.advance(threshold - 0.5)
        assert sample(scrape(sim, collector), "antmedia_ghost_streams") == 0  # not yet: alice keeps beating
        clock.advance(1.0)
        registry = scrape(sim, collector)
    finally:
        collector.close()
    assert sample(registry, "antmedia_up") == 1 and sample(registry, "antmedia_ghost_streams") == 1
    assert sample(registry, "antmedia_room_member", room="room1", stream_id="bob") == 1
    assert sample(registry, "antmedia_broadcast_main_track", stream_id="room1") == 1
    assert sample(registry, "antmedia_broadcast_main_track", stream_id="bob") == 0


@pytest.mark.parametrize("world", [{"version": v} for v in VERSIONS], indirect=True, ids=VERSIONS)
def test_a_stuck_pulled_source_is_never_counted_as_a_ghost(world):
    sim, clock = world
    sim.add_source(APP, "cam1", type="ipCamera")
    assert sim.stick_source(APP, "cam1")
    collector = collector_on(sim, clock)
    try:
        scrape(sim, collector)
        clock.advance(60.0)
        registry = scrape(sim, collector)
    finally:
        collector.close()
    assert sample(registry, "antmedia_ghost_streams") == 1  # bob only
    record = sim.broadcast(APP, "cam1")
    assert sample(registry, "antmedia_broadcast_status", stream_id="cam1", status=record["status"],
                  type="ipCamera", node=record["originAdress"]) == 1


@pytest.mark.parametrize("world", [{"version": v} for v in VERSIONS], indirect=True, ids=VERSIONS)
def test_the_client_evicts_in_order_and_frees_the_stream_id(world):
    sim, clock = world
    clock.advance(10)
    with AmsClient(make_server(url=sim.url, heartbeat_seconds=1.0)) as client:
        client.stop_broadcast(APP, "bob")
        assert client.remove_subtrack(APP, "room1", "bob").success
        client.remove_room_member(APP, "room1", "bob")
        assert client.delete_broadcast(APP, "bob").success
        assert client.get_room_members(APP, "room1") == {"alice"}
    deletes = [w for w in sim.writes if w.method == "DELETE" and w.path.endswith("/bob")]
    assert deletes and all(("deleteSubtracks" in str(w.query)) == (sim.version.major >= 3) for w in deletes)
    assert sim.reconnect(APP, "bob")


@pytest.mark.parametrize("world", [{"version": v, "jwt_secret": SECRET} for v in VERSIONS], indirect=True,
                         ids=VERSIONS)
def test_jwt_filter_is_passed_with_minted_tokens_and_refused_without(world):
    sim, _ = world
    assert sample(scrape(sim, jwt_secret=SECRET), "antmedia_up") == 1
    denied = scrape(sim)
    assert sample(denied, "antmedia_up") == 0
    assert sample(denied, "antmedia_scrape_errors_total", reason="auth") == 1
    with pytest.raises(AmsAuthError), AmsClient(make_server(url=sim.url, jwt_secret="x" * 32)) as client:
        client.snapshot(APP)


@pytest.mark.parametrize("offset", [3600.0, -3600.0])
def test_skewed_ams_clock_convicts_nobody_and_tokens_still_pass(offset):
    with simulator.Simulator(ams_version="3.0.0", heartbeat_seconds=1.0, jwt_secret=SECRET,
                             clock_offset_seconds=offset) as sim:
        sim.create_room(APP, "room1")
        sim.join(APP, "room1", "alice")
        sim.join(APP, "room1", "bob")
        sim.drop(APP, "bob")  # just now: fresh on AMS's clock, an hour off on ours
        registry = scrape(sim, jwt_secret=SECRET)
    assert sample(registry, "antmedia_up") == 1
    assert abs(sample(registry, "antmedia_server_time_seconds") - (time.time() + offset)) < 5
    assert sample(registry, "antmedia_ghost_streams") == 0


@pytest.mark.parametrize(
    ("kind", "reason"), [("status", "unavailable"), ("malformed", "malformed"), ("timeout", "unavailable")]
)
def test_faults_take_one_app_down_cleanly(world, kind, reason):
    sim, _ = world
    sim.faults.inject(kind=kind, path_regex=r"/broadcasts/list/", seconds=5.0 if kind == "timeout" else None)
    started = time.monotonic()
    registry = scrape(sim, timeout_seconds=0.5)
    assert time.monotonic() - started < 0.5 + 1.0
    assert sample(registry, "antmedia_up") == 0
    assert sample(registry, "antmedia_scrape_errors_total", reason=reason) == 1


def test_latency_beyond_the_timeout_is_bounded(world):
    sim, _ = world
    sim.faults.inject(kind="latency", path_regex=r"/broadcasts/", seconds=0.4)
    started = time.monotonic()
    registry = scrape(sim, timeout_seconds=0.6, max_concurrency=1)
    assert time.monotonic() - started < 0.6 + 1.0
    assert sample(registry, "antmedia_up") == 0


@pytest.mark.parametrize("version", VERSIONS)
def test_a_database_error_on_a_list_page_is_a_failed_collection_not_a_smaller_world(version):
    with simulator.Simulator(ams_version=version, heartbeat_seconds=1.0, store="mongodb") as sim:
        sim.populate(APP, live=600, rooms=10)
        sim.faults.inject("db_error", r"/broadcasts/list/250/", count=1)
        registry = scrape(sim)
    assert sample(registry, "antmedia_up") == 0
    assert sample(registry, "antmedia_scrape_errors_total", reason="incomplete") == 1


SERVER_SECRET = "a-simulated-ams-server-secret-32-bytes"


@pytest.mark.parametrize("version", VERSIONS)
def test_cluster_nodes_carry_amss_own_verdict_and_streams_name_their_origin(version):
    clock = simulator.ManualClock()
    with simulator.Simulator(ams_version=version, heartbeat_seconds=1.0, nodes=3, clock=clock,
                             server_jwt_secret=SERVER_SECRET) as sim:
        sim.create_room(APP, "room1")
        assert sim.join(APP, "room1", "alice", node="10.0.0.2")
        sim.kill_node("10.0.0.2")
        clock.advance(25.0)
        registry = scrape(sim, server_jwt_secret=SERVER_SECRET)
    node = lambda address: registry.get_sample_value("antmedia_cluster_node_up", {"ams": "main", "node": address})
    assert registry.get_sample_value("antmedia_cluster_registry_up", {"ams": "main"}) == 1
    assert (node("10.0.0.1"), node("10.0.0.2"), node("10.0.0.3")) == (1, 0, 1)
    status = sim.broadcast(APP, "alice")["status"]
    assert sample(registry, "antmedia_broadcast_status", stream_id="alice", status=status, type="liveStream",
                  node="10.0.0.2") == 1


def test_a_standalone_server_has_a_readable_registry_and_no_nodes():
    with simulator.Simulator(ams_version="3.0.0", heartbeat_seconds=1.0, server_jwt_secret=SERVER_SECRET) as sim:
        registry = scrape(sim, server_jwt_secret=SERVER_SECRET)
        without_secret = scrape(sim)
    assert registry.get_sample_value("antmedia_cluster_registry_up", {"ams": "main"}) == 1
    assert not [s for f in registry.collect() if f.name == "antmedia_cluster_node_up" for s in f.samples]
    assert without_secret.get_sample_value("antmedia_cluster_registry_up", {"ams": "main"}) is None


def test_a_refused_registry_is_reported_and_costs_nothing_else():
    with simulator.Simulator(ams_version="3.0.0", heartbeat_seconds=1.0, nodes=2,
                             server_jwt_secret=SERVER_SECRET) as sim:
        registry = scrape(sim, server_jwt_secret="not-the-server-secret-of-this-cluster")
    assert registry.get_sample_value("antmedia_cluster_registry_up", {"ams": "main"}) == 0
    assert sample(registry, "antmedia_up") == 1
