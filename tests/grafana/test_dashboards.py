"""The dashboards are valid Grafana dashboard models and the provisioning files load them."""
from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from .dashboards import (DASHBOARD_DIR, PROVISIONING_DIR, REPO, DashboardError, dashboard_paths, label_values_args,
                         load, names_used, panels, substitute, variable_query, variables)

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
EXPECTED_UIDS = {"antmedia-overview.json": "antmedia-overview", "antmedia-room.json": "antmedia-room",
                 "antmedia-remediation.json": "antmedia-remediation"}
RUNBOOK = REPO / "rules" / "RUNBOOK.md"
PATHS = dashboard_paths()


def items(node: Any, key: str | None = None) -> Iterator[tuple[str | None, Any]]:
    """Every (key, value) pair anywhere in a JSON document; list elements keep their list's key."""
    if isinstance(node, dict):
        for child_key, value in node.items():
            yield child_key, value
            yield from items(value, child_key)
    elif isinstance(node, list):
        for value in node:
            yield key, value
            yield from items(value, key)


def strings(node: Any) -> list[str]:
    """Every string anywhere in a JSON document."""
    return [value for _, value in items(node) if isinstance(value, str)]


def datasource_refs(node: Any) -> list[Any]:
    """The value of every `datasource` key in a JSON document."""
    return [value for key, value in items(node) if key == "datasource" and not isinstance(value, list)]


def overlaps(a: dict, b: dict) -> bool:
    """True when two grid rectangles share a cell."""
    return (a["x"] < b["x"] + b["w"] and b["x"] < a["x"] + a["w"]
            and a["y"] < b["y"] + b["h"] and b["y"] < a["y"] + a["h"])


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def by_name(path: Path) -> dict[str, dict]:
    """A dashboard's variables by name."""
    return {variable["name"]: variable for variable in variables(load(path))}


def test_the_three_dashboards_exist_with_stable_uids():
    assert {path.name: load(path)["uid"] for path in PATHS} == EXPECTED_UIDS


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_dashboard_declares_schema_version_title_and_no_instance_id(path):
    model = load(path)
    assert model["schemaVersion"] == 39
    assert model["title"].startswith("Ant Media Server")
    assert "antmedia" in model["tags"]
    assert model.get("id") is None, "a provisioned dashboard must not carry a database id"


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_panel_ids_and_titles_are_unique(path):
    ids = [panel["id"] for panel in panels(load(path))]
    titles = [panel["title"] for panel in panels(load(path))]
    assert len(ids) == len(set(ids)), ids
    assert len(titles) == len(set(titles)), titles


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_panels_sit_inside_the_grid_without_overlapping(path):
    placed = [(panel["title"], panel["gridPos"]) for panel in panels(load(path))]
    for title, grid in placed:
        assert {"x", "y", "w", "h"} <= grid.keys(), title
        assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24 and grid["w"] > 0 and grid["h"] > 0, title
    for (first, a), (second, b) in itertools.combinations(placed, 2):
        assert not overlaps(a, b), f"{first!r} overlaps {second!r}"


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_every_variable_used_is_defined(path):
    model = load(path)
    defined = {variable["name"] for variable in variables(model)}
    used = set().union(*(names_used(text) for text in strings(model)))
    # Names starting with __ are Grafana's own ($__rate_interval, ${__data.fields.room}, ...).
    assert {name for name in used if not name.startswith("__")} <= defined


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_every_datasource_reference_is_the_datasource_variable(path):
    model = load(path)
    refs = list(datasource_refs(model))
    assert refs and all(ref == DATASOURCE for ref in refs), [ref for ref in refs if ref != DATASOURCE]
    source = by_name(path)["datasource"]
    assert (source["type"], source["query"]) == ("datasource", "prometheus")


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_ams_app_and_room_variables_list_label_values(path):
    expected = {"ams", "app", "room"} if path.name == "antmedia-room.json" else {"ams", "app"}
    found = {name: variable for name, variable in by_name(path).items() if variable["type"] == "query"}
    assert found.keys() == expected
    for name, variable in found.items():
        assert variable["datasource"] == DATASOURCE
        assert label_values_args(variable_query(variable))[1] == name


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_every_panel_has_a_title_and_a_promql_target(path):
    for panel in panels(load(path)):
        assert panel.get("title"), panel["id"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == DATASOURCE, panel["title"]
        exprs = [target.get("expr", "").strip() for target in panel.get("targets", [])]
        assert exprs and all(exprs), panel["title"]
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_every_panel_links_to_the_runbook(path):
    assert "runbook_base" in by_name(path) and by_name(path)["runbook_base"]["type"] == "constant"
    for panel in panels(load(path)):
        if panel["type"] != "row":
            urls = [link["url"] for link in panel.get("links", [])]
            assert any(url.startswith("${runbook_base}#") for url in urls), panel["title"]


@pytest.mark.skipif(not RUNBOOK.exists(), reason="rules/RUNBOOK.md not written yet")
def test_runbook_links_point_at_sections_of_the_runbook():
    anchors = {github_anchor(line.lstrip("#")) for line in RUNBOOK.read_text().splitlines() if line.startswith("#")}
    for path in PATHS:
        for panel in panels(load(path)):
            for link in panel.get("links", []):
                assert link["url"].split("#", 1)[1] in anchors, f"{path.name}: {panel['title']}: {link['url']}"


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_evictions_are_annotated(path):
    annotations = load(path)["annotations"]["list"]
    evictions = [item for item in annotations if 'outcome="evicted"' in item.get("expr", "")]
    assert evictions and all(item["enable"] and item["datasource"] == DATASOURCE for item in evictions)


def test_datasource_provisioning_declares_one_default_prometheus():
    document = yaml.safe_load((PROVISIONING_DIR / "datasources" / "prometheus.yml").read_text())
    assert document["apiVersion"] == 1
    [source] = document["datasources"]
    assert source["type"] == "prometheus" and source["isDefault"] is True
    assert source["url"].startswith("http")


def test_dashboard_provider_loads_the_folder_the_grafana_readme_mounts_dashboards_at():
    document = yaml.safe_load((PROVISIONING_DIR / "dashboards" / "antmedia.yml").read_text())
    assert document["apiVersion"] == 1
    [provider] = document["providers"]
    assert provider["type"] == "file"
    mount = provider["options"]["path"]
    assert f"grafana/dashboards:{mount}" in (REPO / "grafana" / "README.md").read_text()
    assert DASHBOARD_DIR.name == "dashboards" and len(PATHS) == len(EXPECTED_UIDS)


def test_substitution_writes_several_values_as_an_escaped_alternation():
    text = 'antmedia_up{ams=~"$ams", app=~"${app}"}[$__rate_interval]'
    assert (substitute(text, {"ams": ["main", "eu.1"], "app": "WebRTCAppEE"})
            == r'antmedia_up{ams=~"(main|eu\\.1)", app=~"WebRTCAppEE"}[1m]')


def test_substitution_names_a_variable_without_a_value():
    with pytest.raises(DashboardError, match="'room'"):
        substitute('antmedia_room_members{room="$room"}', {})


def test_label_values_queries_split_into_selector_and_label():
    assert label_values_args('label_values(antmedia_up{ams="main"}, app)') == ('antmedia_up{ams="main"}', "app")
    assert label_values_args("label_values(ams)") == (None, "ams")
    with pytest.raises(DashboardError):
        label_values_args("query_result(up)")


def test_a_file_that_is_not_a_dashboard_is_reported(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text('{"title": "no panels"')
    with pytest.raises(DashboardError, match="broken.json"):
        load(broken)
