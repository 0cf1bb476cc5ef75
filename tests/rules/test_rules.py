"""The alerting rules and the example configs, checked with promtool, amtool and a real Alertmanager."""
from __future__ import annotations

import re
import shutil
import subprocess
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
import yaml

from stack.services import start_alertmanager, wait_ready
from stack.sink import WebhookSink
from stack.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "rules" / "antmedia.rules.yml"
RUNBOOK = ROOT / "rules" / "RUNBOOK.md"
ALERTMANAGER_EXAMPLE = ROOT / "rules" / "alertmanager.example.yml"
PROMETHEUS_EXAMPLE = ROOT / "rules" / "prometheus.example.yml"
TEST_FILES = sorted(Path(__file__).parent.glob("*_test.yml"))
REMEDIATOR_URL = "http://127.0.0.1:15081/alerts"
TOKEN_PATH = "/etc/antmedia/webhook-token"
GHOST_LABELS = {"alertname": "AntMediaGhostStream", "remediation": "delete_stream", "severity": "warning"}


# ---------------------------------------------------------------- helpers

PACKAGES = {"promtool": "prometheus", "amtool": "prometheus-alertmanager"}


def find_tool(name: str) -> str:
    """Path of a Prometheus tool on PATH; a clear failure when it is missing."""
    path = shutil.which(name)
    if not path:
        pytest.fail(f"{name} not found on PATH: install the Debian package {PACKAGES[name]} "
                    "(`make system-deps` does)", pytrace=False)
    return path


def run_tool(argv: list[str], timeout: float = 60) -> subprocess.CompletedProcess:
    """Run a tool to completion and capture its output."""
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def rules() -> list[dict]:
    """Every rule of the rule file, in file order."""
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def alerts() -> list[dict]:
    """Every alerting rule of the rule file."""
    return [rule for rule in rules() if "alert" in rule]


def promtool_groups() -> list[dict]:
    """Every named test group of every promtool test file."""
    return [group for path in TEST_FILES for group in yaml.safe_load(path.read_text())["tests"]]


def promtool_test_cases(rule_text: str, case: str, tmp_path: Path) -> subprocess.CompletedProcess:
    """Run the production-timing ghost cases whose name contains `case` against the given rule text."""
    rule_path = tmp_path / "antmedia.rules.yml"
    rule_path.write_text(rule_text)
    suite = yaml.safe_load((Path(__file__).parent / "ghost_stream_test.yml").read_text())
    suite["tests"] = [group for group in suite["tests"] if case in group["name"]]
    assert suite["tests"], f"no ghost test case named like {case!r}"
    suite["rule_files"] = [str(rule_path)]
    test_path = tmp_path / "cases_test.yml"
    test_path.write_text(yaml.safe_dump(suite))
    return run_tool([find_tool("promtool"), "test", "rules", str(test_path)])


def runbook_anchors() -> set[str]:
    """GitHub-style anchors of the runbook's headings."""
    headings = re.findall(r"^#+\s+(.+?)\s*$", RUNBOOK.read_text(), flags=re.MULTILINE)
    return {re.sub(r"[^a-z0-9 _-]", "", h.lower()).replace(" ", "-") for h in headings}


# ---------------------------------------------------------------- promtool

def test_rule_file_passes_promtool_check_with_lint_fatal():
    result = run_tool([find_tool("promtool"), "check", "rules", "--lint-fatal", str(RULES)])
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("test_file", TEST_FILES, ids=lambda p: p.name)
def test_promtool_unit_tests_pass(test_file: Path):
    result = run_tool([find_tool("promtool"), "test", "rules", str(test_file)])
    assert result.returncode == 0, result.stdout + result.stderr


# What a user of other job names and a runbook elsewhere substitutes (the file's header says so).
SUBSTITUTIONS = {'job="antmedia"': 'job="monitoring/antmedia-exporter",namespace="monitoring"',
                 'job="antmedia-remediator"': 'job="ops-remediator"',
                 "rules/RUNBOOK.md": "https://git.example.com/ops/antmedia/RUNBOOK.md"}
# The same jobs as the test files spell them in expected labels and descriptions.
EXPECTED = {"job: antmedia-remediator": "job: ops-remediator", "(job antmedia-remediator)": "(job ops-remediator)",
            "job: antmedia,": "job: monitoring/antmedia-exporter, namespace: monitoring,",
            "(job antmedia)": "(job monitoring/antmedia-exporter)"}


def substituted(text: str) -> str:
    """text with every configurable string replaced."""
    for old, new in SUBSTITUTIONS.items():
        text = text.replace(old, new)
    return text


def test_every_promtool_case_passes_with_other_job_selectors_and_runbook_base(tmp_path: Path):
    rules = tmp_path / "rules" / "antmedia.rules.yml"
    rules.parent.mkdir()
    rules.write_text(substituted(RULES.read_text()))
    (tmp_path / "tests" / "rules").mkdir(parents=True)
    for test_file in TEST_FILES:
        # Test inputs carry job labels and expected runbook URLs: both follow the substitution.
        text = substituted(test_file.read_text())
        for old, new in EXPECTED.items():
            text = text.replace(old, new)
        (tmp_path / "tests" / "rules" / test_file.name).write_text(text)
    cases = sorted(str(p) for p in (tmp_path / "tests" / "rules").glob("*_test.yml"))
    result = run_tool([find_tool("promtool"), "test", "rules", *cases])
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert 'job="antmedia"' not in rules.read_text() and "rules/RUNBOOK.md" not in rules.read_text()


def test_jobs_and_urls_appear_only_where_the_header_says():
    exprs = "\n".join(rule["expr"] for rule in rules())
    assert set(re.findall(r'job="[^"]*"', exprs)) == {'job="antmedia"', 'job="antmedia-remediator"'}
    assert not re.search(r"instance=|https?://", exprs)
    assert all(rule["annotations"]["runbook_url"].startswith("rules/RUNBOOK.md#") for rule in alerts())


def test_every_test_case_is_named_after_what_it_shows():
    alert_names = "|".join(rule["alert"] for rule in alerts())
    for group in promtool_groups():
        assert re.match(rf"({alert_names}) (fires|fires on|does not fire) when |Dashboard records ", group["name"]), group["name"]


def test_every_alert_has_named_fires_and_does_not_fire_cases():
    groups = promtool_groups()
    for alert in (rule["alert"] for rule in alerts()):
        checks = [(g["name"], c) for g in groups for c in g.get("alert_rule_test", []) if c["alertname"] == alert]
        fires = [n for n, c in checks if n.startswith(f"{alert} fires when") and c["exp_alerts"]]
        quiet = [n for n, c in checks if n.startswith(f"{alert} does not fire when") and not c["exp_alerts"]]
        assert fires, f"no 'fires when' case for {alert}"
        assert quiet, f"no 'does not fire when' case for {alert}"


def test_every_alert_with_for_is_checked_one_evaluation_before_it_elapses():
    names = [g["name"] for g in promtool_groups()]
    for rule in alerts():
        if "for" in rule:
            assert any(n.startswith(rule["alert"]) and "not one evaluation earlier" in n for n in names), rule["alert"]


def test_every_alert_has_severity_summary_description_and_a_runbook_section():
    anchors = runbook_anchors()
    for rule in alerts():
        # The candidate goes to the remediator alone (its route), never to a human: severity info.
        allowed = {"info"} if rule["alert"] == "AntMediaGhostCandidate" else {"warning", "critical"}
        assert rule["labels"]["severity"] in allowed, rule["alert"]
        assert {"summary", "description", "runbook_url"} <= rule["annotations"].keys(), rule["alert"]
        path, _, anchor = rule["annotations"]["runbook_url"].partition("#")
        assert path == "rules/RUNBOOK.md" and anchor in anchors, rule["annotations"]["runbook_url"]


def test_ghost_detection_judges_on_prometheus_scrape_times_only_and_hard_codes_no_seconds():
    group = next(g for g in yaml.safe_load(RULES.read_text())["groups"] if g["name"] == "antmedia-ghost")
    ghost = next(r for r in group["rules"] if r.get("alert") == "AntMediaGhostStream")
    assert "for" not in ghost and "interval" not in group
    for rule in group["rules"]:
        name = rule.get("record", rule.get("alert"))
        # No clock but Prometheus's own scrape times: neither AMS's Date nor the evaluation time.
        assert "antmedia_server_time_seconds" not in rule["expr"] and "time()" not in rule["expr"], name
        # No duration edited in (the threshold is the exporter's): no offset, and a range only where
        # last_over_time bridges a scrape gap without judging time.
        bridged = re.sub(r"last_over_time\([^\[\]]+\[1m\]\)", "", rule["expr"])
        assert not re.search(r"\[\s*\d+[smh]", bridged) and " offset " not in rule["expr"], name
    records = {r["record"]: r["expr"] for r in group["rules"] if "record" in r}
    assert 'type="liveStream"' in records["stream:antmedia_live_claim:heartbeat_unchanged_seconds"]
    assert "stream:antmedia_live_claim:heartbeat_unchanged_seconds" in records["stream:antmedia_ghost:last_update_timestamp_seconds"]
    assert "antmedia_stale_threshold_seconds" in records["stream:antmedia_ghost:last_update_timestamp_seconds"]
    candidate = records["stream:antmedia_ghost_candidate:heartbeat_unchanged_seconds"]
    assert "stream:antmedia_live_claim:heartbeat_unchanged_seconds" in candidate
    assert "antmedia_heartbeat_period_seconds" in candidate
    assert ghost["annotations"]["heartbeat_timestamp"] == '{{ printf "%.3f" $value }}'


def test_storm_alert_goes_out_no_later_than_the_ghost_alerts_it_inhibits():
    group = next(g for g in yaml.safe_load(RULES.read_text())["groups"] if g["name"] == "antmedia-ghost")
    order = [r.get("alert") for r in group["rules"]]
    assert order.index("AntMediaGhostStorm") < order.index("AntMediaGhostStream")
    assert "for" not in group["rules"][order.index("AntMediaGhostStorm")]


def storm_case(name: str, ghosts: int, publishers: int, fires: bool) -> dict:
    """A promtool test group with many ghosts (heartbeat frozen from 0 s) among publishers whose heartbeat advances."""
    base = 'job="antmedia",instance="127.0.0.1:15080",ams="main",app="WebRTCAppEE"'
    series = [{"series": 'up{job="antmedia",instance="127.0.0.1:15080"}', "values": "1+0x6"},
              {"series": f"antmedia_up{{{base}}}", "values": "1+0x6"},
              {"series": f"antmedia_stale_threshold_seconds{{{base}}}", "values": "23.5+0x6"}]
    for i in range(publishers):
        stream = f'{base},stream_id="s{i:04d}"'
        ghost = i < ghosts
        series += [{"series": f"antmedia_broadcast_main_track{{{stream}}}", "values": "0+0x6"},
                   {"series": f"antmedia_broadcast_last_update_timestamp_seconds{{{stream}}}",
                    "values": "5+0x6" if ghost else "-3+10x6"},
                   {"series": f'antmedia_broadcast_status{{{stream},status="broadcasting",type="liveStream"}}',
                    "values": "1+0x6"}]
    expected = [{"exp_labels": {"ams": "main", "app": "WebRTCAppEE", "severity": "critical"},
                 "exp_annotations": storm_annotations(ghosts)}] if fires else []
    return {"name": name, "interval": "10s", "input_series": series,
            "alert_rule_test": [{"eval_time": "30s", "alertname": "AntMediaGhostStorm", "exp_alerts": expected}]}


def storm_annotations(count: int) -> dict:
    """The annotations AntMediaGhostStorm carries for this many ghosts."""
    rule = next(r for r in alerts() if r["alert"] == "AntMediaGhostStorm")
    text = {k: v.replace("{{ $labels.ams }}", "main").replace("{{ $labels.app }}", "WebRTCAppEE")
            .replace("{{ $value }}", str(count)) for k, v in rule["annotations"].items()}
    return {k: " ".join(v.split()) for k, v in text.items()}


def test_ghost_storm_fires_at_one_hundred_ghosts_whatever_their_share(tmp_path: Path):
    cases = [storm_case("AntMediaGhostStorm fires when 100 of 250 publishers are ghosts", 100, 250, True),
             storm_case("AntMediaGhostStorm does not fire when 99 of 250 publishers are ghosts", 99, 250, False)]
    test_file = tmp_path / "storm_many_test.yml"
    test_file.write_text(yaml.safe_dump({"rule_files": [str(RULES)], "evaluation_interval": "10s", "tests": cases}))
    result = run_tool([find_tool("promtool"), "test", "rules", str(test_file)])
    assert result.returncode == 0, result.stdout + result.stderr


# Each mutation breaks one property of the ghost rule; the named case must catch it.
MUTATIONS = {
    "main tracks are flagged": (
        "(antmedia_broadcast_main_track == 0)", "(antmedia_broadcast_main_track >= 0)",
        "does not fire when a main track is stale"),
    "staleness is judged against the evaluation clock": (
        "          stream:antmedia_broadcast_last_update_scrape_timestamp_seconds:current\n          - on",
        "          (time() + 0 * stream:antmedia_broadcast_last_update_scrape_timestamp_seconds:current)\n          - on",
        "does not fire when the exporter misses six scrapes of a healthy stream"),
    "staleness is judged as an age against AMS's clock": (
        "          or on (ams, app, stream_id)\n          stream:antmedia_broadcast_last_update_scrape_timestamp_seconds:current",
        "          or on (ams, app, stream_id)\n          stream:antmedia_broadcast_last_update_timestamp_seconds:current",
        "AMS's clock is 7 minutes behind Prometheus"),
    "a room member is reported twice": (
        "            unless on (ams, app, stream_id) (antmedia_room_member == 1)\n", "",
        "once, with its room"),
    "samples of an app that could not be collected still count": (
        "            and on (job, instance, ams, app) (antmedia_up == 1)\n", "",
        "does not fire when the exporter cannot collect the AMS app"),
    "the threshold is ignored": (
        "max by (ams, app) (antmedia_stale_threshold_seconds)", "0 * max by (ams, app) (antmedia_stale_threshold_seconds)",
        "does not fire when a stream is only briefly late"),
    "pulled sources are flagged": (
        '{type="liveStream", status=~', "{status=~", "does not fire when a pulled source"),
    "a heartbeat that advances is not noticed": (
        "last_over_time(stream:antmedia_broadcast_last_update_timestamp_seconds:previous[1m])",
        "stream:antmedia_broadcast_last_update_timestamp_seconds:current",
        "participants of 2.8.2 and 3.x are healthy"),
    "the newer of two exporters' heartbeats does not win": (
        "          max by (ams, app, stream_id) (\n              antmedia_broadcast_last_update_timestamp_seconds",
        "          min by (ams, app, stream_id) (\n              antmedia_broadcast_last_update_timestamp_seconds",
        "two exporters scrape the same AMS"),
}


@pytest.mark.parametrize("mutation", MUTATIONS, ids=lambda m: m.replace(" ", "_"))
def test_unit_tests_catch_a_broken_ghost_rule(mutation: str, tmp_path: Path):
    old, new, case = MUTATIONS[mutation]
    text = RULES.read_text()
    assert old in text, f"mutation target no longer in the rule file: {old!r}"
    result = promtool_test_cases(text.replace(old, new), case, tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and case in output, output


# ---------------------------------------------------------------- example configs

def test_alertmanager_example_passes_amtool_check_config(tmp_path: Path):
    # amtool 0.25 does not open credentials_file; point it at a real file anyway,
    # so that a version that does still checks the example and not the machine.
    token = tmp_path / "webhook-token"
    token.write_text("token\n")
    config = tmp_path / "alertmanager.yml"
    config.write_text(ALERTMANAGER_EXAMPLE.read_text().replace(TOKEN_PATH, str(token)))
    result = run_tool([find_tool("amtool"), "check-config", str(config)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 inhibit rules" in result.stdout and "2 receivers" in result.stdout


def routes_of(labels: dict[str, str]) -> list[str]:
    """Receivers Alertmanager's example config routes an alert with these labels to."""
    argv = [find_tool("amtool"), "config", "routes", "test", f"--config.file={ALERTMANAGER_EXAMPLE}"]
    result = run_tool(argv + [f"{k}={v}" for k, v in labels.items()])
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.strip().splitlines()[-1].split(",")


def test_ghost_alert_reaches_the_remediator_and_the_humans():
    labels = {**GHOST_LABELS, "ams": "main", "app": "WebRTCAppEE", "stream_id": "alice", "room": "room1"}
    assert routes_of(labels) == ["antmedia-remediator", "sre"]


def test_ghost_alert_without_room_reaches_the_remediator_and_the_humans():
    labels = {**GHOST_LABELS, "ams": "main", "app": "WebRTCAppEE", "stream_id": "rtmp1"}
    assert routes_of(labels) == ["antmedia-remediator", "sre"]


def test_ghost_candidate_reaches_only_the_remediator():
    labels = {"alertname": "AntMediaGhostCandidate", "severity": "info", "remediation": "countdown",
              "ams": "main", "app": "WebRTCAppEE", "stream_id": "alice", "room": "room1"}
    assert routes_of(labels) == ["antmedia-remediator"]


@pytest.mark.parametrize("alert", [r["alert"] for r in alerts()
                                   if r["alert"] not in ("AntMediaGhostStream", "AntMediaGhostCandidate")])
def test_other_alerts_reach_only_the_humans(alert: str):
    rule = next(r for r in alerts() if r["alert"] == alert)
    assert routes_of({"alertname": alert, **rule["labels"], "ams": "main", "app": "WebRTCAppEE"}) == ["sre"]


def prometheus_variant(variant: str) -> str:
    """The example Prometheus config with the chosen scrape variant active and the other removed."""
    text = PROMETHEUS_EXAMPLE.read_text()
    plain = re.search(r"  # ---- BEGIN plain variant.*?# ---- END plain variant\n", text, re.S)
    probe = re.search(r"  # ---- BEGIN /probe variant.*?# ---- END /probe variant\n", text, re.S)
    assert plain and probe, "variant markers missing in prometheus.example.yml"
    if variant == "plain":
        return text.replace(probe.group(0), "")
    block = re.sub(r"^  # (  |- )", r"  \1", probe.group(0), flags=re.M)
    return text.replace(probe.group(0), "").replace(plain.group(0), block)


@pytest.mark.parametrize("variant", ["plain", "probe"])
def test_prometheus_example_passes_promtool_check_config(variant: str, tmp_path: Path):
    config = tmp_path / "prometheus.yml"
    config.write_text(prometheus_variant(variant))
    shutil.copy(RULES, tmp_path / "antmedia.rules.yml")
    result = run_tool([find_tool("promtool"), "check", "config", str(config)])
    assert result.returncode == 0, result.stdout + result.stderr
    jobs = {job["job_name"]: job for job in yaml.safe_load(config.read_text())["scrape_configs"]}
    assert set(jobs) == {"antmedia", "antmedia-remediator"}
    assert jobs["antmedia"].get("metrics_path", "/metrics") == ("/probe" if variant == "probe" else "/metrics")


def test_prometheus_example_drops_the_replica_label_from_alerts():
    config = yaml.safe_load(PROMETHEUS_EXAMPLE.read_text())
    assert "replica" in config["global"]["external_labels"]
    assert {"action": "labeldrop", "regex": "replica"} in config["alerting"]["alert_relabel_configs"]


# ---------------------------------------------------------------- a real Alertmanager

def firing(labels: dict[str, str]) -> dict:
    """An alert as Prometheus posts it, firing for the next 5 minutes."""
    now = datetime.now(timezone.utc)
    return {"labels": labels, "annotations": {}, "startsAt": now.isoformat(),
            "endsAt": (now + timedelta(minutes=5)).isoformat()}


def ghost(app: str, stream_id: str, **labels: str) -> dict[str, str]:
    """Labels of a ghost alert on AMS main."""
    return {**GHOST_LABELS, "ams": "main", "app": app, "stream_id": stream_id, "room": "room1", **labels}


def test_api_down_and_ghost_storm_inhibit_ghost_remediation_of_their_app_only(tmp_path: Path):
    token = tmp_path / "webhook-token"
    token.write_text("s3cret\n")
    with WebhookSink() as sink:
        config = tmp_path / "alertmanager.yml"
        config.write_text(ALERTMANAGER_EXAMPLE.read_text().replace(REMEDIATOR_URL, sink.url)
                          .replace(TOKEN_PATH, str(token)))
        alertmanager = start_alertmanager("alertmanager", config, tmp_path)
        try:
            url = wait_ready(alertmanager, "/-/ready", 10).url
            # As Prometheus sends them: the storm and API alerts of an evaluation come first.
            posted = [firing({"alertname": "AntMediaApiDown", "severity": "critical", "ams": "main", "app": "DownApp"}),
                      firing({"alertname": "AntMediaGhostStorm", "severity": "critical", "ams": "main", "app": "StormApp"}),
                      firing(ghost("DownApp", "alice")), firing(ghost("StormApp", "bob", node="10.0.0.1", origin="alive")),
                      firing(ghost("LiveApp", "carol")),
                      firing(ghost("StormApp", "dora", node="10.0.0.2", origin="dead"))]
            assert httpx.post(f"{url}/api/v2/alerts", json=posted, timeout=5).status_code == 200
            wait_for(lambda: len(sink.notifications) >= 2, 10, "the remediator did not get both live ghosts",
                     interval=0.05)
            time.sleep(0.5)  # the other ghost groups flush at the same time: give them a chance to show up
            states = {a["labels"]["stream_id"]: a["status"] for a in httpx.get(
                f"{url}/api/v2/alerts", params={"filter": 'alertname="AntMediaGhostStream"'}, timeout=5).json()}
        finally:
            alertmanager.stop()
        notifications = sink.notifications
    delivered = sorted(a["labels"]["stream_id"] for n in notifications for a in n.payload["alerts"])
    # The storm holds bob (a live node) but not dora, whose node AMS reports dead.
    assert delivered == ["carol", "dora"]
    assert notifications[0].headers["Authorization"] == "Bearer s3cret"
    assert states["carol"]["state"] == "active" and states["dora"]["state"] == "active"
    for stream in ("alice", "bob"):
        assert states[stream]["state"] == "suppressed" and states[stream]["inhibitedBy"], states[stream]
