"""Every dashboard query runs on a real Prometheus, with the shipped rules loaded, and finds what the sample data holds."""
from __future__ import annotations

import re
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Iterator

import httpx
import pytest
import yaml

from stack.api import ApiError, query, query_range
from stack.configs import rule_files
from stack.loopback import LoopbackServer
from stack.process import StackError
from stack.services import start_prometheus, wait_ready
from stack.waiting import wait_for

from .dashboards import (annotation_queries, dashboard_paths, label_values_args, panel_queries,
                         variable_queries)

FIXTURE = Path(__file__).parent / "fixtures" / "metrics.prom"
COUNTER_SAMPLE = re.compile(r"^(\w+(?:_total|_bucket|_count|_sum))(\{.*\})? (\S+)$")
HEARTBEAT_SAMPLE = re.compile(r'^(antmedia_broadcast_last_update_timestamp_seconds\{.*stream_id="(\w+)".*\}) (\S+)$')
# The publishers whose heartbeat advances (the fixture's header says so); every other heartbeat stands still.
ADVANCING = {"alice", "carol", "erin", "cam1"}
# The fixture's stale thresholds (antmedia_stale_threshold_seconds) per app.
THRESHOLD = {"WebRTCAppEE": 23.5, "LiveApp": 33.5}
ROOM = {"ams": "main", "app": "WebRTCAppEE", "room": "room1"}
# The values an operator picks: several apps (regex alternation), or All.
MULTI = {"ams": ["main"], "app": ["WebRTCAppEE", "LiveApp"]}
ALL = {"ams": ".*", "app": ".*"}
VALUE_SETS = {"antmedia-overview": [MULTI, ALL], "antmedia-remediation": [MULTI, ALL], "antmedia-room": [ROOM]}


def exposition(scrape: int) -> str:
    """The sample data: counters multiplied by the scrape number so that they increase, live heartbeats advanced by it."""
    lines = []
    for line in FIXTURE.read_text().splitlines():
        match = COUNTER_SAMPLE.match(line)
        if match:
            line = f"{match.group(1)}{match.group(2) or ''} {float(match.group(3)) * scrape:g}"
        heartbeat = HEARTBEAT_SAMPLE.match(line)
        if heartbeat and heartbeat.group(2) in ADVANCING:
            line = f"{heartbeat.group(1)} {float(heartbeat.group(3)) + scrape:.3f}"
        lines.append(line)
    return "\n".join(lines) + "\n"


class Exposition(BaseHTTPRequestHandler):
    """Serves the sample data on /metrics and counts scrapes."""

    scrapes = 0

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        """Answer one scrape."""
        type(self).scrapes += 1
        body = exposition(type(self).scrapes).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        """Keep test output quiet."""


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory) -> Iterator[str]:
    """A real Prometheus with the shipped rules that has scraped the sample data until both ghosts fire.

    The rules judge a heartbeat by how long it has stood still on Prometheus's own scrape times, so
    the fixture's still heartbeats turn into ghosts only once they have stood still past the stale
    threshold: about 35 s after the first scrape.
    """
    workdir = tmp_path_factory.mktemp("grafana-prometheus")
    server = LoopbackServer(type("Handler", (Exposition,), {"scrapes": 0})).start()
    target = {"targets": [server.address]}
    # A second job scrapes the same AMS again (HA exporters, or /metrics and /probe): no panel may count twice.
    twin = {"job_name": "antmedia-probe", "static_configs": [target],
            "metric_relabel_configs": [{"source_labels": ["__name__"], "regex": "antmedia_remediator_.*|ALERTS",
                                        "action": "drop"}]}
    config = {"global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
              "rule_files": rule_files(),
              "scrape_configs": [{"job_name": "antmedia", "static_configs": [target]}, twin]}
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
    service = None
    try:
        try:
            service = wait_ready(start_prometheus("prometheus", workdir / "prometheus.yml", workdir), "/-/ready", 20)
        except StackError as error:
            pytest.fail(str(error))
        wait_for(lambda: query(service.url, 'count_over_time(antmedia_remediator_dry_run[1m]) >= 2'), 20,
                 "Prometheus has not scraped the sample data twice")
        wait_for(lambda: query(service.url, 'count(ALERTS{alertname="AntMediaGhostStream", alertstate="firing"}) == 2'),
                 max(THRESHOLD.values()) + 30, "the rules never raised AntMediaGhostStream for both ghosts")
        yield service.url
    finally:
        if service:
            service.stop()
        server.stop()


def cases(kind) -> list:
    """One pytest param per query of one kind, for every set of values, named after dashboard and panel."""
    params = []
    for path in dashboard_paths():
        for values in VALUE_SETS[path.stem]:
            for number, (title, expr) in enumerate(kind(path, values)):
                label = "all" if values is ALL else "picked"
                params.append(pytest.param(expr, id=f"{path.stem}:{label}:{number}:{title}"))
    return params


def run(url: str, dashboard: str, title: str, values: dict) -> list[list[dict]]:
    """Instant results of one panel's targets, in target order."""
    [path] = [p for p in dashboard_paths() if p.stem == dashboard]
    found = [query(url, expr) for panel, expr in panel_queries(path, values) if panel == title]
    assert found, f"{dashboard} has no panel {title!r}"
    return found


def by_stream(result: list[dict]) -> dict[str, float]:
    """stream_id -> value of an instant vector."""
    return {sample["metric"]["stream_id"]: float(sample["value"][1]) for sample in result}


def value(result: list[dict]) -> float:
    """The value of a one-element instant vector."""
    [sample] = result
    return float(sample["value"][1])


@pytest.mark.parametrize("expr", cases(panel_queries))
def test_panel_query_runs_and_returns_data(prometheus, expr):
    assert query(prometheus, expr), "no data"
    end = time.time()
    assert query_range(prometheus, expr, end - 30, end, 5)["result"], "no data over the last 30 s"


@pytest.mark.parametrize("expr", cases(annotation_queries))
def test_annotation_query_runs_and_marks_the_events(prometheus, expr):
    assert query(prometheus, expr), "no event found"


@pytest.mark.parametrize("path", dashboard_paths(), ids=lambda p: p.stem)
def test_variable_queries_list_the_sample_values(prometheus, path):
    expected = {"ams": {"main", "edge"}, "app": {"WebRTCAppEE", "LiveApp"}, "room": {"room1"}}
    for name, text in variable_queries(path, ROOM if path.stem == "antmedia-room" else {"ams": ".*"}):
        selector, label = label_values_args(text)
        response = httpx.get(f"{prometheus}/api/v1/label/{label}/values", params={"match[]": selector}, timeout=5)
        assert response.json()["status"] == "success", response.text
        assert set(response.json()["data"]) == expected[name], text


def test_a_malformed_query_is_refused_by_prometheus(prometheus):
    with pytest.raises(ApiError, match="bad_data"):
        query(prometheus, "antmedia_up{ams=~\"$ams\"} - on(ams group_right x")


def labels(sample: dict, *names: str) -> tuple:
    """Some label values of one sample, '' for a missing label."""
    return tuple(sample["metric"].get(name, "") for name in names)


def test_overview_counts_ghosts_apart_from_healthy_live_publishers(prometheus):
    [alerting] = run(prometheus, "antmedia-overview", "Ghost streams alerting", ALL)
    [stale] = run(prometheus, "antmedia-overview", "Stale publishers", ALL)
    # Live: alice, carol, erin, cam1; bob still says broadcasting but is a ghost; gatecam is a pulled source.
    [live] = run(prometheus, "antmedia-overview", "Live publishers", ALL)
    assert (value(alerting), value(stale), value(live)) == (2, 2, 4)


def test_overview_tells_ghosts_on_live_nodes_from_those_of_dead_nodes(prometheus):
    alerting, detected, on_dead = run(prometheus, "antmedia-overview", "Ghost streams over time", ALL)
    per_app = lambda result: {labels(s, "ams", "app"): float(s["value"][1]) for s in result}  # noqa: E731
    assert per_app(alerting) == {("main", "WebRTCAppEE"): 1, ("main", "LiveApp"): 1, ("edge", "WebRTCAppEE"): 0}
    assert per_app(detected) == {("main", "WebRTCAppEE"): 1, ("main", "LiveApp"): 0}
    assert per_app(on_dead) == {("main", "WebRTCAppEE"): 0, ("main", "LiveApp"): 1}
    [dead] = run(prometheus, "antmedia-overview", "Ghosts on dead nodes", ALL)
    assert value(dead) == 1


def test_overview_lists_ghosts_with_their_origin_node_and_how_long_they_stood_still(prometheus):
    still, heartbeat = run(prometheus, "antmedia-overview", "Ghost streams now", ALL)
    # room1/room2 are main tracks (stale by design); frank is stale but finished and in no room; gatecam is pulled.
    assert {labels(s, "stream_id", "room", "node", "origin") for s in still} == {
        ("bob", "room1", "10.0.0.1", "alive"), ("dave", "room2", "10.0.0.2", "dead")}
    assert THRESHOLD["WebRTCAppEE"] < by_stream(still)["bob"] < 600
    assert THRESHOLD["LiveApp"] < by_stream(still)["dave"] < 600
    # The frozen updateTime, in milliseconds for Grafana's date unit.
    assert by_stream(heartbeat) == {"bob": 1763999960000, "dave": 1763999905000}


def test_overview_heartbeats_stand_still_only_for_the_stale_publishers(prometheus):
    [still] = run(prometheus, "antmedia-overview", "Heartbeats: how long each has stood still", ALL)
    ages = by_stream(still)
    assert set(ages) == {"alice", "bob", "carol", "dave", "erin", "cam1", "frank"}
    assert all(ages[stream] < 5 for stream in ADVANCING), ages
    assert all(ages[stream] > THRESHOLD["WebRTCAppEE"] for stream in ("bob", "dave", "frank")), ages
    longest, threshold = run(prometheus, "antmedia-overview", "Longest-still heartbeat vs stale threshold", ALL)
    assert {labels(s, "app"): float(s["value"][1]) for s in threshold} == {("WebRTCAppEE",): 23.5, ("LiveApp",): 33.5}
    assert {labels(s, "app") for s in longest} == {("WebRTCAppEE",), ("LiveApp",)}


def test_overview_shows_reachability_and_ghost_members_per_room(prometheus):
    [reach] = run(prometheus, "antmedia-overview", "AMS reachability", ALL)
    assert {(s["metric"]["ams"], s["metric"]["app"]): float(s["value"][1]) for s in reach} == {
        ("main", "WebRTCAppEE"): 1, ("main", "LiveApp"): 1, ("edge", "WebRTCAppEE"): 0}
    members, ghosts = run(prometheus, "antmedia-overview", "Rooms and their members", ALL)
    assert {s["metric"]["room"]: float(s["value"][1]) for s in members} == {"room1": 3, "room2": 2}
    assert {s["metric"]["room"]: float(s["value"][1]) for s in ghosts} == {"room1": 1, "room2": 1}


def test_overview_shows_ams_verdict_on_each_cluster_node(prometheus):
    [nodes] = run(prometheus, "antmedia-overview", "Cluster nodes", ALL)
    # edge's registry could not be read (-1); a server without one would read 2.
    assert {labels(s, "ams", "node"): float(s["value"][1]) for s in nodes} == {
        ("main", "10.0.0.1"): 1, ("main", "10.0.0.2"): 0, ("edge", "registry"): -1}
    [clock] = run(prometheus, "antmedia-overview", "Clock of the answering node or proxy", ALL)
    assert {labels(s, "ams", "app") for s in clock} == {("main", "WebRTCAppEE"), ("main", "LiveApp")}


def test_room_view_marks_only_the_stale_member_as_ghost(prometheus):
    still, ghost = run(prometheus, "antmedia-room", "Members and heartbeats", ROOM)
    assert {labels(s, "status", "node") for s in still + ghost} == {("broadcasting", "10.0.0.1")}
    assert set(by_stream(still)) == {"alice", "bob", "carol"}
    assert by_stream(still)["alice"] < 5 and by_stream(still)["carol"] < 5
    assert by_stream(still)["bob"] > THRESHOLD["WebRTCAppEE"]
    assert by_stream(ghost) == {"alice": 0, "bob": 1, "carol": 0}
    [count] = run(prometheus, "antmedia-room", "Ghost members", ROOM)
    assert value(count) == 1


def test_room_view_marks_a_dead_nodes_ghost_as_such(prometheus):
    room2 = {**ROOM, "app": "LiveApp", "room": "room2"}
    _, ghost = run(prometheus, "antmedia-room", "Members and heartbeats", room2)
    assert by_stream(ghost) == {"dave": 2, "erin": 0}


def test_remediation_view_reads_mode_and_latency(prometheus):
    [mode] = run(prometheus, "antmedia-remediation", "Mode", ALL)
    assert value(mode) == 0
    p50, p90 = run(prometheus, "antmedia-remediation", "Latency over the time range", ALL)
    assert 15 < value(p50) <= 30 and 30 < value(p90) <= 60
