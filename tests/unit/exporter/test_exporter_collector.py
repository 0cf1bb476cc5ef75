"""Collector: families from snapshots, failure isolation, golden exposition, promtool lint, HTTP endpoints."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from werkzeug.test import Client

from ams.client import AmsClient
from exporter.collector import AmsCollector
from exporter.exposition import render_bytes
from exporter.web import create_app
from fakeams import FakeAms, make_records, make_server

APP = "WebRTCAppEE"
EXPECTED = Path(__file__).resolve().parents[2] / "fixtures" / "expected"
GOLDEN = {False: EXPECTED / "metrics.prom", True: EXPECTED / "metrics_detail.prom"}
# Per-stream families by default: what the shipped rules and dashboards read.
DEFAULT_STREAM_FAMILIES = {"antmedia_broadcast_status", "antmedia_broadcast_last_update_timestamp_seconds",
                           "antmedia_broadcast_viewers", "antmedia_broadcast_main_track", "antmedia_room_member"}
DETAIL_STREAM_FAMILIES = {"antmedia_broadcast_start_timestamp_seconds", "antmedia_broadcast_speed_ratio",
                          "antmedia_broadcast_pending_packets", "antmedia_broadcast_bitrate_bytes_per_second",
                          "antmedia_broadcast_received_bytes", "antmedia_broadcast_info"}


def two_ams(detail: bool = False):
    """Two AMS: 'main' (2.8.2; WebRTCAppEE plus a LiveApp that does not exist) and 'next' (3.0.0)."""
    fakes = {"main": FakeAms.from_fixtures("2.8.2"), "next": FakeAms.from_fixtures("3.0.0")}
    servers = [make_server(name="main", apps=(APP, "LiveApp")), make_server(name="next", url="http://ams2.test")]
    clients = {s.name: AmsClient(s, transport=fakes[s.name].transport()) for s in servers}
    return fakes, AmsCollector(servers, clients, timer=lambda: 0.0, detail=detail)


@pytest.fixture
def scenario():
    """The two AMS, default exposition."""
    fakes, collector = two_ams()
    yield fakes, collector, lambda: Scrape(collector)
    collector.close()


@pytest.fixture(params=[False, True], ids=["default", "detail"])
def either(request):
    """The two AMS, once with each exposition."""
    _, collector = two_ams(detail=request.param)
    yield collector
    collector.close()


@pytest.fixture
def detailed():
    """The two AMS with the detail series on."""
    _, collector = two_ams(detail=True)
    yield Scrape(collector)
    collector.close()


class Scrape:
    """One scrape's families, queried with get_sample_value (each query on a live registry would re-scrape)."""

    def __init__(self, collector):
        families = list(collector.collect())
        self.registry = CollectorRegistry()
        self.registry.register(type("Fixed", (), {"collect": lambda _self: families})())

    def get_sample_value(self, name, labels):
        return self.registry.get_sample_value(name, labels)


def value(scrape, name, **labels):
    return scrape.get_sample_value(name, labels)


def test_building_the_exporter_touches_no_ams_until_a_scrape(scenario):
    fakes, collector, _ = scenario
    client = Client(create_app(collector))
    assert client.get("/-/healthy").status_code == 200 and client.get("/").status_code == 200
    assert fakes["main"].requests == [] and fakes["next"].requests == []
    assert client.get("/metrics").status_code == 200
    assert fakes["main"].requests and fakes["next"].requests


def test_one_failing_app_leaves_the_others_reporting(scenario):
    _, _, scrape = scenario
    registry = scrape()
    assert value(registry, "antmedia_up", ams="main", app=APP) == 1.0
    assert value(registry, "antmedia_up", ams="main", app="LiveApp") == 0.0
    assert value(registry, "antmedia_up", ams="next", app=APP) == 1.0
    assert value(registry, "antmedia_scrape_errors_total", ams="main", app="LiveApp", reason="error") == 1.0
    assert value(registry, "antmedia_scrape_errors_total", ams="main", app=APP, reason="unavailable") == 0.0


def test_clock_heartbeat_and_threshold_are_exported_per_version(scenario):
    _, _, scrape = scenario
    registry = scrape()
    assert value(registry, "antmedia_server_time_seconds", ams="main", app=APP) == 1709200305.0
    assert value(registry, "antmedia_heartbeat_period_seconds", ams="main", app=APP) == 5.0
    assert value(registry, "antmedia_stale_threshold_seconds", ams="next", app=APP) == 2 * 10 + 10 + 3.5
    assert value(registry, "antmedia_server_info", ams="next", app=APP, version="3.0.0", edition="enterprise") == 1


def test_heartbeat_override_from_config_is_in_force(fake300):
    server = make_server(heartbeat_seconds=1.0, stale_heartbeats=4, reconnect_grace_seconds=2.0)
    collector = AmsCollector([server], {"main": AmsClient(server, transport=fake300.transport())})
    registry = Scrape(collector)
    assert value(registry, "antmedia_heartbeat_period_seconds", ams="main", app=APP) == 1.0
    assert value(registry, "antmedia_stale_threshold_seconds", ams="main", app=APP) == 4 * 1.0 + 2.0 + 3.5
    collector.close()


def test_all_records_are_counted_but_only_live_members_and_rooms_are_listed_with_their_type(scenario):
    _, _, scrape = scenario
    registry = scrape()
    labels = {"ams": "main", "app": APP}
    assert value(registry, "antmedia_broadcasts", status="finished", type="liveStream", **labels) == 1
    assert value(registry, "antmedia_broadcasts", status="finished", type="VoD", **labels) == 1
    assert value(registry, "antmedia_broadcasts", status="terminated_unexpectedly", type="liveStream", **labels) == 0
    assert value(registry, "antmedia_broadcast_status", stream_id="g7hGhost0001", status="broadcasting",
                 type="liveStream", node="10.0.1.23", **labels) == 1
    assert value(registry, "antmedia_broadcast_status", stream_id="ipCamera01", status="preparing", type="ipCamera",
                 node="10.0.1.23", **labels) == 1
    for listed_never in ("oldMeeting01", "scheduled01", "vod-upload-7"):
        assert value(registry, "antmedia_broadcast_main_track", stream_id=listed_never, **labels) is None


def test_per_stream_values_come_from_their_fields(detailed):
    registry = detailed
    main = {"ams": "main", "app": APP, "stream_id": "f3kQ9xLmPa2W"}
    assert value(registry, "antmedia_broadcast_last_update_timestamp_seconds", **main) == 1709200303.12
    assert value(registry, "antmedia_broadcast_start_timestamp_seconds", **main) == 1709200000.456
    assert value(registry, "antmedia_broadcast_viewers", protocol="webrtc", **main) == 3
    assert value(registry, "antmedia_broadcast_speed_ratio", **main) == 1.001
    assert value(registry, "antmedia_broadcast_main_track", **main) == 0
    assert value(registry, "antmedia_broadcast_main_track", ams="main", app=APP, stream_id="room1") == 1
    assert value(registry, "antmedia_broadcast_info", origin="10.0.1.23", type="liveStream",
                 publish_type="WebRTC", **main) == 1
    nxt = {"ams": "next", "app": APP, "stream_id": "g7hGhost0001"}
    assert value(registry, "antmedia_broadcast_received_bytes_total", **nxt) == 98765432
    assert value(registry, "antmedia_broadcast_status", status="terminated_unexpectedly", type="liveStream",
                 node="10.0.2.7", **nxt) == 1


def test_room_membership_from_every_room_model(scenario):
    _, _, scrape = scenario
    registry = scrape()
    assert value(registry, "antmedia_room_members", ams="main", app=APP, room="room1") == 3
    assert value(registry, "antmedia_room_member", ams="main", app=APP, room="room1", stream_id="danglingId99") == 1
    assert value(registry, "antmedia_room_members", ams="next", app=APP, room="room1") == 2
    # A heartbeat seen for the first time has not yet stood still for anything: no ghost at once,
    # whatever the distance between its updateTime and AMS's Date.
    assert value(registry, "antmedia_ghost_streams", ams="main", app=APP) == 0
    assert value(registry, "antmedia_ghost_streams", ams="next", app=APP) == 0


def test_main_track_without_heartbeat_exports_no_timestamp(scenario):
    _, _, scrape = scenario
    registry = scrape()
    room = {"ams": "next", "app": APP, "stream_id": "room1"}
    assert value(registry, "antmedia_broadcast_main_track", **room) == 1
    assert value(registry, "antmedia_broadcast_last_update_timestamp_seconds", **room) is None


def test_samples_carry_no_timestamps(scenario):
    _, collector, _ = scenario
    assert all(s.timestamp is None for family in collector.collect() for s in family.samples)


def test_default_exposition_lists_what_rules_and_dashboards_read(scenario, detailed):
    _, collector, _ = scenario
    stream_families = {f.name for f in collector.collect() if any("stream_id" in s.labels for s in f.samples)}
    assert stream_families == DEFAULT_STREAM_FAMILIES
    detail_families = {f.name for f in detailed.registry.collect() if any("stream_id" in s.labels for s in f.samples)}
    assert detail_families == DEFAULT_STREAM_FAMILIES | DETAIL_STREAM_FAMILIES


def test_protocols_without_viewers_have_series_only_in_detail(scenario, detailed):
    _, _, scrape = scenario
    registry = scrape()
    main = {"ams": "main", "app": APP, "stream_id": "f3kQ9xLmPa2W"}
    assert value(registry, "antmedia_broadcast_viewers", protocol="webrtc", **main) == 3
    assert value(registry, "antmedia_broadcast_viewers", protocol="rtmp", **main) is None
    assert value(detailed, "antmedia_broadcast_viewers", protocol="rtmp", **main) == 0


def test_a_publisher_has_at_most_six_series_by_default(scenario):
    _, collector, _ = scenario
    per_stream = Counter((s.labels["ams"], s.labels["stream_id"]) for f in collector.collect() for s in f.samples
                         if "stream_id" in s.labels)
    assert per_stream and max(per_stream.values()) <= 6


def test_fast_rendering_matches_generate_latest(either):
    families = list(either.collect())

    class Fixed:
        def collect(self):
            return families

    assert render_bytes(families) == generate_latest(Fixed())


def test_golden_exposition(either):
    list(either.collect())  # a first scrape, so the error counter below reads 2
    text = render_bytes(either.collect()).decode()
    golden = GOLDEN[either.detail]
    if os.environ.get("UPDATE_GOLDEN") == "1":
        golden.write_text(text)
    assert text == golden.read_text(), "run with UPDATE_GOLDEN=1 to refresh after an intended change"


@pytest.mark.slow  # runs promtool: make test, not make check
@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
def test_promtool_finds_nothing_to_lint(either):
    result = subprocess.run(["promtool", "check", "metrics"], input=render_bytes(either.collect()),
                            capture_output=True, timeout=30)
    assert (result.returncode, result.stdout, result.stderr) == (0, b"", b"")


def test_failure_is_logged_once_per_streak(scenario, caplog):
    fakes, collector, scrape = scenario
    fakes["next"].fail(r"/list/", httpx.Response(503))
    with caplog.at_level(logging.INFO, logger="exporter.collector"):
        for _ in range(3):
            list(collector.collect())
        fakes["next"].faults.clear()
        registry = scrape()
    failures = [r for r in caplog.records if "ams=next" in r.getMessage() and "scrape failed" in r.getMessage()]
    recoveries = [r for r in caplog.records if "ams=next" in r.getMessage() and "collecting again" in r.getMessage()]
    assert len(failures) == 1 and "unavailable" in failures[0].getMessage()
    assert len(recoveries) == 1
    assert value(registry, "antmedia_scrape_errors_total", ams="next", app=APP, reason="unavailable") == 3


@pytest.mark.parametrize(
    ("response", "reason"),
    [(httpx.Response(403), "auth"), (httpx.Response(200, content=b"{oops"), "malformed"),
     (httpx.ConnectTimeout("x"), "unavailable"), (httpx.Response(418), "error")],
)
def test_failure_reason_is_labelled(scenario, response, reason):
    fakes, _, scrape = scenario
    fakes["next"].fail(r"/list/", response)
    registry = scrape()
    assert value(registry, "antmedia_up", ams="next", app=APP) == 0
    assert value(registry, "antmedia_scrape_errors_total", ams="next", app=APP, reason=reason) == 1


def test_a_hanging_ams_cannot_hold_metrics_beyond_its_timeout():
    fake = FakeAms.from_fixtures("3.0.0")
    inner = fake.handle
    fake.handle = lambda request: (time.sleep(2.0), inner(request))[1]  # MockTransport ignores timeouts
    server = make_server(timeout_seconds=0.3)
    collector = AmsCollector([server], {"main": AmsClient(server, transport=fake.transport())})
    started = time.monotonic()
    registry = Scrape(collector)
    assert value(registry, "antmedia_up", ams="main", app=APP) == 0
    assert time.monotonic() - started < 0.3 + 0.5
    collector.close()


def test_large_app_lists_only_live_streams(connect):
    records = make_records(600, rooms=20) + make_records(400, status="finished")[20:]
    fake = FakeAms(records={r["streamId"]: r for r in records}.values())
    server = make_server()
    collector = AmsCollector([server], {"main": connect(fake)})
    families = {f.name: f for f in collector.collect()}
    assert len(families["antmedia_broadcast_status"].samples) == 620
    assert families["antmedia_room_members"].samples[0].value == 30


def test_endpoints(scenario):
    _, collector, _ = scenario
    client = Client(create_app(collector))
    metrics = client.get("/metrics")
    assert metrics.status_code == 200 and metrics.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert 'antmedia_up{ams="next",app="WebRTCAppEE"} 1.0' in metrics.get_data(as_text=True)
    probe = client.get("/probe?target=next").get_data(as_text=True)
    assert 'ams="next"' in probe and 'ams="main"' not in probe
    assert client.get("/probe?target=nope").status_code == 404
    assert client.get("/probe").status_code == 400
    assert client.get("/probe?target=http://evil.example").status_code == 404
    assert client.get("/-/healthy").get_data() == b"OK\n"
    assert "/probe?target=main" in client.get("/").get_data(as_text=True)
    assert client.get("/nope").status_code == 404
    assert client.post("/metrics").status_code == 405


def test_metrics_are_gzipped_when_asked(scenario):
    import gzip

    _, collector, _ = scenario
    response = Client(create_app(collector)).get("/metrics", headers={"Accept-Encoding": "gzip"})
    assert response.headers["Content-Encoding"] == "gzip"
    assert b"antmedia_up" in gzip.decompress(response.get_data())
