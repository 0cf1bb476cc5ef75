"""Configuration files of one stack run: Prometheus, Alertmanager, exporter and remediator."""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Iterable
from urllib.parse import urlsplit

import yaml

from stack.timing import Timing, duration

REPO = Path(__file__).resolve().parent.parent
RULES_DIR = REPO / "rules"
RULE_FILE = RULES_DIR / "antmedia.rules.yml"
ALERTMANAGER_EXAMPLE = RULES_DIR / "alertmanager.example.yml"
PROMETHEUS_EXAMPLE = RULES_DIR / "prometheus.example.yml"
EXPORTER_JOB = "antmedia"
REMEDIATOR_JOB = "antmedia-remediator"



def write_yaml(path: Path, document: Any) -> Path:
    """Write a YAML document, creating the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def rule_files() -> list[str]:
    """Absolute paths of the rule files as they ship, as the example Prometheus config lists them."""
    names: list[str] = []
    if PROMETHEUS_EXAMPLE.exists():
        example = yaml.safe_load(PROMETHEUS_EXAMPLE.read_text()) or {}
        names = [Path(entry).name for entry in example.get("rule_files") or []]
    paths = [RULES_DIR / name for name in names if (RULES_DIR / name).exists()]
    return [str(p) for p in (paths or [RULE_FILE])]


def prometheus_config(timing: Timing, exporter: str, remediator: str, alertmanagers: Iterable[str],
                      replica: str | None = None, rules: list[str] | None = None) -> dict:
    """prometheus.yml for one server; replica set means one member of an HA pair."""
    interval = duration(timing.scrape_interval)
    config: dict[str, Any] = {
        "global": {
            "scrape_interval": interval,
            "scrape_timeout": duration(timing.scrape_timeout),
            "evaluation_interval": duration(timing.evaluation_interval),
        },
        "rule_files": rules if rules is not None else rule_files(),
        "scrape_configs": [
            {"job_name": EXPORTER_JOB, "static_configs": [{"targets": [exporter]}]},
            {"job_name": REMEDIATOR_JOB, "static_configs": [{"targets": [remediator]}]},
        ],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": list(alertmanagers)}]}]},
    }
    if replica is not None:
        config["global"]["external_labels"] = {"replica": replica}
        # Both replicas must send identical alerts so Alertmanager merges them.
        config["alerting"]["alert_relabel_configs"] = [{"action": "labeldrop", "regex": "replica"}]
    return config


def is_remediator_url(url: str) -> bool:
    """True for the example's remediator webhook (path /alerts)."""
    return urlsplit(url).path.rstrip("/").endswith("/alerts")


def _rewrite_http_config(http_config: dict, token_file: str) -> dict:
    """Point every credentials file of a webhook at this run's token file."""
    rewritten = copy.deepcopy(http_config)
    authorization = rewritten.get("authorization")
    if isinstance(authorization, dict) and "credentials_file" in authorization:
        authorization["credentials_file"] = token_file
    if "bearer_token_file" in rewritten:
        rewritten["bearer_token_file"] = token_file
    return rewritten


def _rewrite_webhook(webhook: dict, remediator_url: str, token_file: str, sink_url: str) -> dict:
    """The remediator's webhook goes to this run's remediator; any other to the local sink."""
    rewritten = dict(webhook)
    if "url" in webhook and is_remediator_url(str(webhook["url"])):
        rewritten["url"] = remediator_url.rstrip("/") + "/alerts"
    elif "url" in webhook:
        rewritten["url"] = sink_url
    if isinstance(webhook.get("http_config"), dict):
        rewritten["http_config"] = _rewrite_http_config(webhook["http_config"], token_file)
    return rewritten


def _rewrite_receiver(receiver: dict, remediator_url: str, token_file: str, sink_url: str) -> dict:
    """Rewrite the URLs and credentials of one receiver, nothing else."""
    rewritten = dict(receiver)
    if "webhook_configs" in receiver:
        rewritten["webhook_configs"] = [
            _rewrite_webhook(w, remediator_url, token_file, sink_url) for w in receiver["webhook_configs"]]
    return rewritten


def alertmanager_config(example: dict, remediator_url: str, token_file: str, sink_url: str) -> dict:
    """The example Alertmanager config with this run's URLs and token path; nothing else changes.

    Its timers stay as shipped in every profile: the remediation route already
    notifies 1 s after an alert arrives and flushes (and so retries a failed
    webhook) every 10 s, short enough for accelerated runs too.
    """
    config = copy.deepcopy(example)
    config["receivers"] = [_rewrite_receiver(r, remediator_url, token_file, sink_url)
                           for r in example.get("receivers") or []]
    return config


def without_early_route(config: dict) -> dict:
    """The config without the route of the candidates (remediation="countdown")."""
    trimmed = copy.deepcopy(config)
    routes = trimmed.get("route", {}).get("routes") or []
    trimmed["route"]["routes"] = [r for r in routes if 'remediation="countdown"' not in (r.get("matchers") or [])]
    return trimmed


def load_alertmanager_example() -> dict:
    """The shipped example Alertmanager config."""
    return yaml.safe_load(ALERTMANAGER_EXAMPLE.read_text()) or {}


def service_config(ams_url: str, apps: Iterable[str], timing: Timing, token_file: str,
                   alertmanager_url: str, audit_log: str, jwt_secret_file: str | None = None,
                   remediator: dict | None = None, ams_overrides: dict | None = None) -> dict:
    """The one YAML file the exporter and the remediator read."""
    ams: dict[str, Any] = {"name": "main", "url": ams_url, "apps": list(apps),
                           "timeout_seconds": timing.ams_timeout_seconds}
    if timing.heartbeat_seconds is not None:
        ams["heartbeat_seconds"] = timing.heartbeat_seconds
    if timing.reconnect_grace_seconds is not None:
        ams["reconnect_grace_seconds"] = timing.reconnect_grace_seconds
    if jwt_secret_file:
        ams["jwt_secret_file"] = jwt_secret_file
    ams.update(ams_overrides or {})
    section = {"dry_run": False, "webhook_token_file": token_file,
               "alertmanager_url": alertmanager_url, "audit_log": audit_log}
    section.update(remediator or {})
    return {"ams": [ams], "remediator": section}
