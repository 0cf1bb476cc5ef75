"""Label values are escaped exactly once on their way into the exposition, whichever family carries them."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from ams.model import ClusterNode
from exporter.collector import ClusterOutcome, Outcome, build_families
from exporter.exposition import RowFamily, escape, render_bytes
from fakeams import make_server

AWKWARD = ['a\\b', 'quote"d', "new\nline", "tail\\", "plain"]


def _samples(families) -> dict[str, list[dict[str, str]]]:
    """Every sample's labels per sample name, read back by prometheus_client's own parser."""
    text = render_bytes(families).decode()
    found: dict[str, list[dict[str, str]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append(dict(sample.labels))
    return found


def test_cluster_node_addresses_come_back_as_reported():
    server = make_server(server_jwt_secret="s")
    nodes = tuple(ClusterNode(f"id{i}", ip, 0, "alive") for i, ip in enumerate(AWKWARD))
    found = _samples(build_families([], {}, clusters=[ClusterOutcome(server, nodes, None)]))
    assert sorted(labels["node"] for labels in found["antmedia_cluster_node_up"]) == sorted(AWKWARD)
    assert found["antmedia_cluster_registry_up"] == [{"ams": "main"}]


def test_per_app_values_from_ams_come_back_as_reported():
    server = make_server()
    outcome = Outcome(server, "WebRTCAppEE", None, None, 0.1)
    errors = {("main", "WebRTCAppEE", "unavailable"): 1}
    found = _samples(build_families([outcome], errors))
    assert found["antmedia_up"] == [{"ams": "main", "app": "WebRTCAppEE"}]
    assert found["antmedia_scrape_errors_total"] == [{"ams": "main", "app": "WebRTCAppEE", "reason": "unavailable"}]


def test_rows_and_add_follow_one_convention():
    by_rows = RowFamily("antmedia_test", "h", ("node",), rows=[((escape(v),), 1.0) for v in AWKWARD])
    by_add = RowFamily("antmedia_test", "h", ("node",))
    for v in AWKWARD:
        by_add.add((escape(v),), 1.0)
    assert render_bytes([by_rows]) == render_bytes([by_add])
    assert [s.labels["node"] for s in by_add.samples] == AWKWARD
