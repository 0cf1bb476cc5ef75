"""The Grafana dashboards as data: panels, variables, and their queries with variables substituted.

Used by the dashboard tests here and by the end-to-end tests, which run every query
against a real Prometheus:

    from tests.grafana.dashboards import dashboard_paths, panel_queries
    for path in dashboard_paths():
        for title, expr in panel_queries(path, {"ams": "main", "app": "WebRTCAppEE", "room": "room1"}):
            ...

`python tests/grafana/dashboards.py ams=main app=WebRTCAppEE room=room1` prints them as JSON lines.
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence, Union

REPO = Path(__file__).resolve().parents[2]
DASHBOARD_DIR = REPO / "grafana" / "dashboards"
PROVISIONING_DIR = REPO / "grafana" / "provisioning"

Value = Union[str, Sequence[str]]

# Grafana's built-in variables, at values that suit a one-hour view of a 10 s scrape.
BUILTIN_DEFAULTS: dict[str, str] = {
    "__interval": "15s", "__interval_ms": "15000", "__rate_interval": "1m",
    "__range": "1h", "__range_s": "3600", "__range_ms": "3600000",
}
# $name, ${name}, ${name:format} and the deprecated [[name]] / [[name:format]]; ${__data.fields.x} has dots.
VARIABLE = re.compile(r"\$\{(?P<braced>[\w.]+)(?::(?P<fmt>\w+))?\}|\$(?P<plain>\w+)|\[\[(?P<old>\w+)(?::(?P<oldfmt>\w+))?\]\]")
LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(?:(?P<selector>.+?)\s*,\s*)?(?P<label>[a-zA-Z_]\w*)\s*\)\s*$", re.S)
# Characters RE2 treats as syntax; escaped with a doubled backslash because the value lands in a PromQL string.
REGEX_SYNTAX = re.compile(r"([\\^$.|?*+()\[\]{}])")


class DashboardError(ValueError):
    """A dashboard file or query that cannot be read."""


def dashboard_paths(directory: Path = DASHBOARD_DIR) -> list[Path]:
    """Every dashboard JSON file, sorted."""
    return sorted(directory.glob("*.json"))


def load(path: Path) -> dict[str, Any]:
    """One dashboard model."""
    try:
        model = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise DashboardError(f"{path}: {error}") from error
    if not isinstance(model, dict) or not isinstance(model.get("panels"), list):
        raise DashboardError(f"{path}: not a dashboard model (no panels list)")
    return model


def panels(model: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those folded inside collapsed rows."""
    for panel in model.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def variables(model: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The dashboard's template variables."""
    return list(model.get("templating", {}).get("list", []))


def variable_query(variable: Mapping[str, Any]) -> str:
    """A query variable's query text (Grafana stores it as a string or as {query: ...})."""
    query = variable.get("query", "")
    return query.get("query", "") if isinstance(query, dict) else str(query)


def names_used(text: str) -> set[str]:
    """Variable names a string refers to."""
    found = set()
    for match in VARIABLE.finditer(text):
        found.add(match.group("braced") or match.group("plain") or match.group("old"))
    return found


def format_value(value: Value) -> str:
    """A value as Grafana's Prometheus data source writes it: one value raw, several as (a|b)."""
    if isinstance(value, str):
        return value
    return "(" + "|".join(REGEX_SYNTAX.sub(r"\\\\\1", item) for item in value) + ")"


def substitute(text: str, values: Mapping[str, Value]) -> str:
    """Text with every variable replaced; DashboardError names a variable without a value."""
    merged = {**BUILTIN_DEFAULTS, **values}

    def replace(match: re.Match) -> str:
        name = match.group("braced") or match.group("plain") or match.group("old")
        if name not in merged:
            raise DashboardError(f"no value for variable {name!r} in {text!r}")
        return format_value(merged[name])

    return VARIABLE.sub(replace, text)


def panel_queries(path: Path, values: Mapping[str, Value]) -> list[tuple[str, str]]:
    """(panel title, PromQL) for every target of every panel, variables substituted."""
    queries = []
    for panel in panels(load(path)):
        for target in panel.get("targets", []):
            if target.get("expr"):
                queries.append((panel.get("title", ""), substitute(target["expr"], values)))
    return queries


def annotation_queries(path: Path, values: Mapping[str, Value]) -> list[tuple[str, str]]:
    """(annotation name, PromQL) for every Prometheus annotation, variables substituted."""
    annotations = load(path).get("annotations", {}).get("list", [])
    return [(item.get("name", ""), substitute(item["expr"], values)) for item in annotations if item.get("expr")]


def variable_queries(path: Path, values: Mapping[str, Value]) -> list[tuple[str, str]]:
    """(variable name, query) for every query variable, variables substituted."""
    return [(variable["name"], substitute(variable_query(variable), values))
            for variable in variables(load(path)) if variable.get("type") == "query"]


def label_values_args(query: str) -> tuple[str | None, str]:
    """(series selector or None, label) of label_values(selector, label) or label_values(label)."""
    match = LABEL_VALUES.match(query)
    if not match:
        raise DashboardError(f"not a label_values() query: {query!r}")
    return match.group("selector"), match.group("label")


def main(argv: list[str]) -> int:
    """Print every query of every dashboard as JSON lines, for NAME=VALUE pairs given."""
    try:
        values = dict(arg.split("=", 1) for arg in argv)
    except ValueError:
        print("usage: dashboards.py NAME=VALUE ...", file=sys.stderr)
        return 2
    try:
        lines = [json.dumps({"dashboard": path.name, "kind": kind, "title": title, "query": query})
                 for path in dashboard_paths()
                 for kind, pairs in (("panel", panel_queries), ("annotation", annotation_queries),
                                     ("variable", variable_queries))
                 for title, query in pairs(path, values)]
    except DashboardError as error:
        print(f"dashboards.py: {error}", file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
