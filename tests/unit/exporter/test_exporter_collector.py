"""Collector: families from snapshots, failure isolation, golden exposition, promtool lint, HTTP endpoints."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import time
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
GOLDEN = Path(__file__).resolve().parents[2] / "fixtures" / "expected" / "metrics.prom"


@pytest.fixture
def scenario():
    """Two AMS: 'main' (2.8.2; WebRTCAppEE plus a LiveApp that does not exist) and 'next' (3.0.0)."""
    fakes = {"main": FakeAms.from_fixtures("2.8.2"), "next": FakeAms.from_fixtures("3.0.0")}
    servers = [make_server(name="main", apps=(APP, "LiveApp")), make_server(name="next", url="http://ams2.test")]
    clients = {s.name: AmsClient(s, transport=fakes[s.name].transport()) for s in servers}
    collector = AmsCollector(servers, clients, timer=lambda: 0.0)
    yield fakes, collector, lambda: Scrape(collector)
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


def test_registering_does_not_touch_ams(scenario):
    fakes, _, _ = scenario
    assert fakes["main"].requests == [] and fakes["next"].requests == []


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
    assert value(registry, "antmedia_stale_threshold_seconds", ams="next", app=APP) == 20.0
    assert value(registry, "antmedia_server_info", ams="next", app=APP, version="3.0.0", edition="enterprise") == 1


def test_heartbeat_override_from_config_is_in_force(fake300):
    server = make_server(heartbeat_seconds=1.0, stale_heartbeats=4)
    collector = AmsCollector([server], {"main": AmsClient(server, transport=fake300.transport())})
    registry = Scrape(collector)
    assert value(registry, "antmedia_heartbeat_period_seconds", ams="main", app=APP) == 1.0
    assert value(registry, "antmedia_stale_threshold_seconds", ams="main", app=APP) == 4.0
    collector.close()


def test_all_records_are_counted_but_only_live_members_and_rooms_are_listed(scenario):
    _, _, scrape = scenario
    registry = scrape()
    labels = {"ams": "main", "app": APP}
    assert value(registry, "antmedia_broadcasts", status="finished", type="liveStream", **labels) == 1
    assert value(registry, "antmedia_broadcasts", status="finished", type="VoD", **labels) == 1
    assert value(registry, "antmedia_broadcasts", status="terminated_unexpectedly", type="liveStream", **labels) == 0
    assert value(registry, "antmedia_broadcast_status", stream_id="g7hGhost0001", status="broadcasting", **labels) == 1
    assert value(registry, "antmedia_broadcast_status", stream_id="ipCamera01", status="preparing", **labels) == 1
    for listed_never in ("oldMeeting01", "scheduled01", "vod-upload-7"):
        assert value(registry, "antmedia_broadcast_main_track", stream_id=listed_never, **labels) is None


def test_per_stream_values_come_from_their_fields(scenario):
    _, _, scrape = scenario
    registry = scrape()
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
    assert value(registry, "antmedia_broadcast_status", status="terminated_unexpectedly", **nxt) == 1


def test_room_membership_from_every_room_model(scenario):
    _, _, scrape = scenario
    registry = scrape()
    assert value(registry, "antmedia_room_members", ams="main", app=APP, room="room1") == 3
    assert value(registry, "antmedia_room_member", ams="main", app=APP, room="room1", stream_id="danglingId99") == 1
    assert value(registry, "antmedia_room_members", ams="next", app=APP, room="room1") == 2
    assert value(registry, "antmedia_ghost_streams", ams="main", app=APP) == 1
    assert value(registry, "antmedia_ghost_streams", ams="next", app=APP) == 1


def test_main_track_without_heartbeat_exports_no_timestamp(scenario):
    _, _, scrape = scenario
    registry = scrape()
    room = {"ams": "next", "app": APP, "stream_id": "room1"}
    assert value(registry, "antmedia_broadcast_main_track", **room) == 1
    assert value(registry, "antmedia_broadcast_last_update_timestamp_seconds", **room) is None


def test_samples_carry_no_timestamps(scenario):
    _, collector, _ = scenario
    assert all(s.timestamp is None for family in collector.collect() for s in family.samples)


def test_fast_rendering_matches_generate_latest(scenario):
    _, collector, _ = scenario
    families = list(collector.collect())

    class Fixed:
        def collect(self):
            return families

    assert render_bytes(families) == generate_latest(Fixed())


def test_golden_exposition(scenario):
    _, collector, _ = scenario
    list(collector.collect())  # a first scrape, so the error counter below reads 2
    text = render_bytes(collector.collect()).decode()
    if os.environ.get("UPDATE_GOLDEN") == "1":
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text(), "run with UPDATE_GOLDEN=1 to refresh after an intended change"


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
def test_promtool_finds_nothing_to_lint(scenario):
    _, collector, _ = scenario
    result = subprocess.run(["promtool", "check", "metrics"], input=render_bytes(collector.collect()),
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
