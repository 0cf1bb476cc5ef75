"""deploy/helm/antmedia-exporter: linted and rendered by Helm's own code, core kinds validated
against Kubernetes schemas, rules and dashboards identical to rules/ and grafana/."""
from __future__ import annotations

import filecmp
import json
import re

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

from service.config import parse_document

from .tools import CHART, ROOT, run, tool

RELEASE, NAMESPACE = "ams", "monitoring"
FULLNAME = f"{RELEASE}-antmedia-exporter"
RULES = ROOT / "rules" / "antmedia.rules.yml"
DASHBOARDS = ROOT / "grafana" / "dashboards"
ALERTMANAGER_EXAMPLE = ROOT / "rules" / "alertmanager.example.yml"
# The chart's minimum (Chart.yaml kubeVersion) and the newest schemas the validator ships.
KUBERNETES_VERSIONS = ("1.25", kubernetes_validate.latest_version())
OPERATOR_KINDS = {"ServiceMonitor", "PrometheusRule", "AlertmanagerConfig"}
# A user's values: two AMS, their JWT secrets in the chart's Secret, the token in one of theirs.
USER_VALUES = {
    "image": {"repository": "registry.example.org/antmedia-exporter", "tag": "0.1.0"},
    "config": {
        "ams": [
            {"name": "main", "url": "http://ant-media-server-origin.antmedia.svc:5080", "apps": ["WebRTCAppEE"],
             "jwt_secret_file": "/etc/antmedia/secrets/jwt-secret-main"},
            {"name": "edge_eu", "url": "https://ams-eu.example.org", "apps": ["LiveApp", "WebRTCAppEE"],
             "jwt_secret_file": "/etc/antmedia/secrets/jwt-secret-eu", "heartbeat_seconds": 10},
        ],
        "remediator": {"dry_run": False, "alertmanager_url": "http://alertmanager-operated.monitoring.svc:9093"},
    },
    "secrets": {"ams": {"data": {"jwt-secret-main": "s3cret-main", "jwt-secret-eu": "s3cret-eu"}},
                "webhookToken": {"existingSecret": "antmedia-webhook", "key": "token"}},
}


def render(values: dict | None = None) -> list[dict]:
    """`helm template` of the chart: every object it renders."""
    with helm.Chart.load(CHART) as chart:
        manifests = chart.render(values=values, name=RELEASE, namespace=NAMESPACE)
    return [doc for path, text in manifests.items() if path.endswith(".yaml")
            for doc in yaml.safe_load_all(text) if doc]


@pytest.fixture(scope="module", params=["defaults", "user values"])
def objects(request) -> list[dict]:
    return render(None if request.param == "defaults" else USER_VALUES)


def of_kind(objects: list[dict], kind: str) -> list[dict]:
    return [o for o in objects if o["kind"] == kind]


def named(objects: list[dict], kind: str, name: str) -> dict:
    (found,) = [o for o in of_kind(objects, kind) if o["metadata"]["name"] == name]
    return found


def substituted_rules() -> dict:
    """rules/antmedia.rules.yml with the two job selectors the chart sets for the Operator's jobs."""
    text = RULES.read_text()
    text = text.replace('job="antmedia"', f'job="{FULLNAME}-exporter",namespace="{NAMESPACE}"')
    text = text.replace('job="antmedia-remediator"', f'job="{FULLNAME}-remediator",namespace="{NAMESPACE}"')
    return yaml.safe_load(text)


# ---------------------------------------------------------------- the chart itself


@pytest.mark.parametrize("values", [None, USER_VALUES], ids=["defaults", "user values"])
def test_chart_passes_helm_lint_strict(values):
    report = helm.lint(CHART, values, strict=True, namespace=NAMESPACE)
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert not report["errors"] and not problems, report


def test_chart_files_are_copies_of_the_rules_and_dashboards():
    copies = CHART / "files"
    stale = [] if filecmp.cmp(RULES, copies / RULES.name, shallow=False) else [RULES.name]
    originals = sorted(p.name for p in DASHBOARDS.glob("*.json"))
    assert sorted(p.name for p in (copies / "dashboards").glob("*.json")) == originals
    stale += [n for n in originals if not filecmp.cmp(DASHBOARDS / n, copies / "dashboards" / n, shallow=False)]
    assert not stale, (f"copy {', '.join(stale)} into {copies.relative_to(ROOT)} "
                       "(cp rules/antmedia.rules.yml deploy/helm/antmedia-exporter/files/; "
                       "cp grafana/dashboards/*.json deploy/helm/antmedia-exporter/files/dashboards/)")


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_core_kinds_are_valid_kubernetes_objects(objects, version):
    core = [o for o in objects if o["kind"] not in OPERATOR_KINDS]
    assert {o["kind"] for o in core} >= {"Deployment", "Service", "ConfigMap", "Secret", "NetworkPolicy"}
    for obj in core:
        kubernetes_validate.validate(obj, version, strict=True)


def test_operator_kinds_are_the_ones_kube_prometheus_stack_reads(objects):
    versions = {o["kind"]: o["apiVersion"] for o in objects if o["kind"] in OPERATOR_KINDS}
    assert versions == {"ServiceMonitor": "monitoring.coreos.com/v1", "PrometheusRule": "monitoring.coreos.com/v1",
                        "AlertmanagerConfig": "monitoring.coreos.com/v1alpha1"}
    for obj in objects:
        if obj["kind"] in {"ServiceMonitor", "PrometheusRule"}:
            assert obj["metadata"]["labels"]["release"] == "kube-prometheus-stack"


# ---------------------------------------------------------------- workloads


def test_both_services_run_non_root_read_only_without_capabilities(objects):
    for component in ("exporter", "remediator"):
        pod = named(objects, "Deployment", f"{FULLNAME}-{component}")["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
        assert container["args"][0] == f"antmedia-{component}"
        assert container["livenessProbe"]["httpGet"]["path"] == "/-/healthy"
        assert container["readinessProbe"]["httpGet"]["path"] == "/-/ready"


def mounted_secrets(objects, component: str) -> dict[str, str]:
    """Secret name -> mount path in one service's pod."""
    pod = named(objects, "Deployment", f"{FULLNAME}-{component}")["spec"]["template"]["spec"]
    volumes = {v["name"]: v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v}
    return {volumes[m["name"]]: m["mountPath"] for m in pod["containers"][0]["volumeMounts"] if m["name"] in volumes}


def test_only_the_remediator_mounts_the_webhook_token_and_both_the_ams_secrets():
    objects = render(USER_VALUES)
    ams = f"{FULLNAME}-ams"
    assert mounted_secrets(objects, "exporter") == {ams: "/etc/antmedia/secrets"}
    assert mounted_secrets(objects, "remediator") == {ams: "/etc/antmedia/secrets",
                                                      "antmedia-webhook": "/etc/antmedia/webhook"}
    secrets = {o["metadata"]["name"]: o for o in of_kind(objects, "Secret")}
    assert set(secrets) == {ams}  # the token's Secret is the user's own
    assert secrets[ams]["stringData"] == USER_VALUES["secrets"]["ams"]["data"]


def test_a_generated_webhook_token_is_a_secret_of_the_chart():
    (secret,) = of_kind(render(), "Secret")
    assert secret["metadata"]["name"] == f"{FULLNAME}-webhook"
    assert len(secret["data"]["webhook-token"]) >= 40


def test_the_rendered_config_is_valid_for_both_services_and_holds_no_secret(objects):
    document = rendered_config(objects)
    parse_document(document, base_dir="/etc/antmedia/config", env={}, read_secrets=())
    assert document["remediator"]["webhook_token_file"].startswith("/etc/antmedia/webhook/")
    assert "s3cret" not in json.dumps(document)


# ---------------------------------------------------------------- monitoring


def rendered_config(objects) -> dict:
    """The antmedia.yml the chart renders."""
    (config_map,) = [c for c in of_kind(objects, "ConfigMap") if "antmedia.yml" in c["data"]]
    return yaml.safe_load(config_map["data"]["antmedia.yml"])


def test_one_service_monitor_per_ams_scrapes_probe_with_its_name(objects):
    names = [server["name"] for server in rendered_config(objects)["ams"]]
    monitors = {m["metadata"]["name"]: m["spec"] for m in of_kind(objects, "ServiceMonitor")}
    probes = {n: s for n, s in monitors.items() if s["endpoints"][0]["path"] == "/probe"}
    assert sorted(e["params"]["target"] for s in probes.values() for e in s["endpoints"]) == sorted([n] for n in names)
    for spec in probes.values():
        assert spec["selector"]["matchLabels"]["app.kubernetes.io/component"] == "exporter"
        assert {"sourceLabels": ["__param_target"], "targetLabel": "instance"} in spec["endpoints"][0]["relabelings"]
    remediator = monitors[f"{FULLNAME}-remediator"]
    assert remediator["endpoints"][0]["path"] == "/metrics"
    assert remediator["selector"]["matchLabels"]["app.kubernetes.io/component"] == "remediator"


def test_prometheus_rule_is_rules_with_the_operators_job_selectors(objects):
    (rule,) = of_kind(objects, "PrometheusRule")
    assert rule["spec"] == substituted_rules()
    expressions = [r["expr"] for g in rule["spec"]["groups"] for r in g["rules"]]
    assert any(f'up{{job="{FULLNAME}-exporter",namespace="{NAMESPACE}"}}' in e for e in expressions)
    assert any(f'up{{job="{FULLNAME}-remediator",namespace="{NAMESPACE}"}}' in e for e in expressions)
    assert not any(re.search(r'job="antmedia(-remediator)?"', e) for e in expressions)


def test_prometheus_rule_groups_pass_promtool(tmp_path):
    (rule,) = of_kind(render(), "PrometheusRule")
    path = tmp_path / "rendered.rules.yml"
    path.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}, sort_keys=False))
    result = run([tool("promtool"), "check", "rules", str(path)], timeout=60)
    assert "SUCCESS" in result.stdout


def test_selectors_can_be_set_for_other_job_names():
    values = {"prometheusRule": {"exporterSelector": 'job="ams-probe"', "remediatorSelector": 'job="ams-rem"'}}
    (rule,) = of_kind(render(values), "PrometheusRule")
    text = json.dumps(rule["spec"])
    assert 'up{job=\\"ams-probe\\"}' in text and 'up{job=\\"ams-rem\\"}' in text


def test_dashboards_are_the_grafana_files_labelled_for_the_sidecar(objects):
    dashboards = [c for c in of_kind(objects, "ConfigMap") if c["metadata"]["labels"].get("grafana_dashboard") == "1"]
    rendered = {name: text for c in dashboards for name, text in c["data"].items()}
    assert rendered == {p.name: p.read_text() for p in DASHBOARDS.glob("*.json")}


def test_alertmanager_config_is_the_example_remediation_route(objects):
    example = yaml.safe_load(ALERTMANAGER_EXAMPLE.read_text())
    countdown, route = [r for r in example["route"]["routes"] if r["receiver"] == "antmedia-remediator"]
    (receiver,) = [r for r in example["receivers"] if r["name"] == "antmedia-remediator"]
    (config,) = of_kind(objects, "AlertmanagerConfig")
    spec = config["spec"]
    # One top route for both remediation values; the candidates' own timers on its child route.
    assert [f'{m["name"]}{m["matchType"]}"{m["value"]}"' for m in spec["route"]["matchers"]] == [
        'remediation=~"delete_stream|countdown"']
    assert route["matchers"] == ['remediation="delete_stream"'] and countdown["matchers"] == ['remediation="countdown"']
    assert spec["route"]["groupBy"] == route["group_by"] == countdown["group_by"]
    assert (spec["route"]["groupWait"], spec["route"]["groupInterval"], spec["route"]["repeatInterval"]) == (
        route["group_wait"], route["group_interval"], route["repeat_interval"])
    assert spec["route"]["continue"] is route["continue"] is True
    (child,) = spec["route"]["routes"]
    assert [f'{m["name"]}="{m["value"]}"' for m in child["matchers"]] == countdown["matchers"]
    assert (child["groupWait"], child["groupInterval"], child["repeatInterval"]) == (
        countdown["group_wait"], countdown["group_interval"], countdown["repeat_interval"])
    assert "continue" not in countdown
    (webhook,) = spec["receivers"][0]["webhookConfigs"]
    assert webhook["sendResolved"] is receiver["webhook_configs"][0]["send_resolved"] is False
    assert webhook["url"] == f"http://{FULLNAME}-remediator.{NAMESPACE}.svc:15081/alerts"
    assert webhook["httpConfig"]["authorization"]["type"] == "Bearer"
    def matcher(m: dict) -> str:
        """The Operator's matcher as Alertmanager's matcher string."""
        return f'{m["name"]}{m.get("matchType", "=")}"{m["value"]}"'
    inhibitions = [([matcher(m) for m in r["sourceMatch"]], [matcher(m) for m in r["targetMatch"]], r["equal"])
                   for r in spec["inhibitRules"]]
    assert inhibitions == [(r["source_matchers"], r["target_matchers"], r["equal"]) for r in example["inhibit_rules"]]


def test_network_policies_admit_alertmanager_to_the_remediator_and_prometheus_to_both(objects):
    policies = {p["metadata"]["name"]: p["spec"] for p in of_kind(objects, "NetworkPolicy")}
    exporter, remediator = policies[f"{FULLNAME}-exporter"], policies[f"{FULLNAME}-remediator"]
    def sources(spec):
        return [peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"]
                for rule in spec["ingress"] for peer in rule["from"]]
    assert sources(exporter) == ["prometheus"]
    assert sources(remediator) == ["alertmanager", "prometheus"]
    for spec in (exporter, remediator):
        assert spec["policyTypes"] == ["Ingress"]
        assert all(rule["ports"] == [{"port": "http", "protocol": "TCP"}] for rule in spec["ingress"])


def test_runbook_urls_point_where_the_values_say():
    base = "https://git.example.com/ops/antmedia/RUNBOOK.md"
    (rule,) = of_kind(render({"prometheusRule": {"runbookBaseURL": base}}), "PrometheusRule")
    urls = [r["annotations"]["runbook_url"] for g in rule["spec"]["groups"] for r in g["rules"] if "alert" in r]
    assert urls and all(url.startswith(base + "#antmedia") for url in urls)
    (default,) = of_kind(render(), "PrometheusRule")
    assert all(r["annotations"]["runbook_url"].startswith("rules/RUNBOOK.md#")
               for g in default["spec"]["groups"] for r in g["rules"] if "alert" in r)
