"""Decisions: how each alert's decision is ended (Decided), recorded (Outcome, the audit log) and counted
(the remediator's metrics, pre-initialised from the table of every outcome and reason)."""
from __future__ import annotations

import json
import sys
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, TextIO

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily

from service.build import register_process_metrics

__all__ = ["AMS_ACTIONS", "AMS_RESULTS", "AuditLog", "DECISIONS", "Decided", "Outcome", "RemediatorMetrics",
    "WEBHOOK_CODES", "open_audit_log"]

class Decided(Exception):
    """Ends the pipeline for one alert with an outcome and a reason."""

    def __init__(self, outcome: str, reason: str, detail: str = "") -> None:
        super().__init__(f"{outcome}/{reason}")
        self.outcome, self.reason, self.detail = outcome, reason, detail


@dataclass
class Outcome:
    """What happened to one alert; also the audit record."""

    fingerprint: str
    ams: str
    app: str
    stream_id: str
    room: str | None
    outcome: str
    reason: str
    dry_run: bool
    detail: str = ""
    calls: list[dict[str, Any]] = field(default_factory=list)
    alertname: str = ""  # AntMediaGhostStream, or AntMediaGhostCandidate (the early path)
    # True once (ams, app) is a configured pair: only then do they become metric labels.
    mapped: bool = False

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (the webhook answer and the audit line)."""
        return {
            "fingerprint": self.fingerprint, "alertname": self.alertname, "ams": self.ams, "app": self.app,
            "stream_id": self.stream_id, "room": self.room, "decision": self.outcome,
            "reason": self.reason, "detail": self.detail, "dry_run": self.dry_run, "calls": self.calls,
        }


class AuditLog:
    """Writes decisions as JSON lines; thread-safe, flushed per line."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._lock = threading.Lock()

    def write(self, record: dict[str, Any]) -> None:
        """Append one decision, stamped with the local time."""
        line = {"time": datetime.now(timezone.utc).isoformat(timespec="milliseconds")}
        line.update(record)
        text = json.dumps(line, sort_keys=False, default=str, separators=(",", ":"))
        with self._lock:
            self.stream.write(text + "\n")
            self.stream.flush()

    def close(self) -> None:
        """Close a file (never stdout)."""
        if self.stream is not sys.stdout:
            self.stream.close()


def open_audit_log(target: str) -> AuditLog:
    """'-' for stdout, else append to a file."""
    if target == "-":
        return AuditLog(sys.stdout)
    return AuditLog(open(target, "a", encoding="utf-8"))


# (outcome, reason) pairs a configured (ams, app) can produce; created at start so that
# increase() sees the first event.
DECISIONS = (
    ("evicted", "ok"), ("evicted", "dead_node"),
    ("dry_run", "ok"), ("dry_run", "dead_node"), ("skipped", "node_unknown"),
    ("deferred", "node_unconfirmed"), ("skipped", "held_after_life"), ("deferred", "observing"),
    ("skipped", "alive_on_origin"), ("deferred", "rtmp_window"), ("skipped", "node_not_writing"),
    ("skipped", "node_clock_stepped"), ("deferred", "origin_unreachable"),
    ("skipped", "not_ghost"), ("skipped", "main_track"), ("skipped", "not_pushed"), ("skipped", "denied"),
    ("skipped", "silenced"), ("skipped", "inhibited"), ("skipped", "not_active"),
    ("skipped", "rate_limited"), ("skipped", "blast_radius"), ("skipped", "duplicate"),
    ("skipped", "not_found"), ("skipped", "kill_switch"),
    ("failed", "alive_on_stop"), ("failed", "heartbeat_resumed"),
    ("failed", "write_failed"), ("failed", "ams_error"), ("failed", "ams_auth"), ("failed", "internal_error"),
    ("deferred", "ams_unavailable"), ("deferred", "alertmanager_unavailable"),
    ("failed", "invalid_id"), ("deferred", "timeout"), ("deferred", "busy"),
    ("armed", "countdown"), ("skipped", "countdown_full"), ("skipped", "countdown_disabled"),
    ("skipped", "no_evidence"), ("skipped", "disarmed_before"), ("disarmed", "heartbeat_moved"), ("disarmed", "record_changed"),
    ("disarmed", "room_changed"), ("disarmed", "gone"),
)
# Decisions made before an alert maps to a configured (ams, app): labels are left empty
# so that arbitrary label values from a payload cannot create series.
UNMAPPED_DECISIONS = (
    ("skipped", "resolved"), ("skipped", "not_remediable"), ("skipped", "invalid_labels"),
    ("skipped", "unknown_ams"), ("skipped", "unknown_app"), ("skipped", "kill_switch"),
    ("failed", "internal_error"), ("deferred", "timeout"), ("deferred", "busy"),
)
AMS_ACTIONS = ("get", "probe", "stop", "finish", "remove_subtrack", "remove_room_member", "name_room", "delete")
AMS_RESULTS = ("success", "failure", "not_found", "unavailable")
WEBHOOK_CODES = ("200", "400", "401", "413", "503")
LATENCY_BUCKETS = (5, 10, 15, 30, 45, 60, 90, 120, 180, 300, 600, 1200, 3600)


class RemediatorMetrics:
    """Counters, gauges and the latency histogram of one remediator."""

    def __init__(self, apps: Iterable[tuple[str, str]], dry_run: bool,
                 registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self._build()
        self.dry_run.set(1 if dry_run else 0)
        self._preinit(list(apps))

    def _build(self) -> None:
        """Create the families."""
        reg = self.registry
        self.webhook_requests = Counter(
            "antmedia_remediator_webhook_requests", "Webhook requests by HTTP status code.", ["code"], registry=reg)
        self.decisions = Counter(
            "antmedia_remediator_decisions", "Decisions per alert by outcome and reason.",
            ["ams", "app", "outcome", "reason"], registry=reg)
        self.ams_requests = Counter(
            "antmedia_remediator_ams_requests", "AMS REST calls by action and result.",
            ["ams", "action", "result"], registry=reg)
        self.duplicates = Counter(
            "antmedia_remediator_duplicates", "Duplicate alert deliveries absorbed.", registry=reg)
        self.truncated_alerts = Counter(
            "antmedia_remediator_truncated_alerts", "Alerts Alertmanager left out of notifications.", registry=reg)
        self.eviction_latency = Histogram(
            "antmedia_remediator_eviction_latency_seconds", "Alert start to eviction done.",
            buckets=LATENCY_BUCKETS, registry=reg)
        self.dry_run = Gauge("antmedia_remediator_dry_run", "1 in dry-run, 0 when enforcing.", registry=reg)
        self.last_eviction = Gauge(
            "antmedia_remediator_last_eviction_timestamp_seconds", "Time of the last eviction.",
            ["ams", "app"], registry=reg)
        register_process_metrics(reg, "antmedia_remediator_build_info", "remediator")

    def watch_holds(self, holds: Callable[[], dict]) -> None:
        """Export the holds that evidence of life put on apps and nodes, read at each scrape."""
        self.registry.register(_HoldsCollector(holds))

    def watch_countdowns(self, armed: Callable[[], dict], apps: Iterable[tuple[str, str]]) -> None:
        """Export the armed countdowns per configured (ams, app), read at each scrape."""
        self.registry.register(_CountdownsCollector(armed, list(apps)))

    def _preinit(self, apps: list[tuple[str, str]]) -> None:
        """Create every labelled child at zero."""
        for code in WEBHOOK_CODES:
            self.webhook_requests.labels(code=code)
        for outcome, reason in UNMAPPED_DECISIONS:
            self.decisions.labels(ams="", app="", outcome=outcome, reason=reason)
        for ams, app in apps:
            for outcome, reason in DECISIONS:
                self.decisions.labels(ams=ams, app=app, outcome=outcome, reason=reason)
        for ams in sorted({ams for ams, _ in apps}):
            for action in AMS_ACTIONS:
                for result in AMS_RESULTS:
                    self.ams_requests.labels(ams=ams, action=action, result=result)


class _HoldsCollector:
    """antmedia_remediator_hold{ams,scope,name,reason}: 1 for each app or node whose writes are held."""

    def __init__(self, holds: Callable[[], dict]) -> None:
        self.holds = holds

    def describe(self):
        return []

    def collect(self):
        family = GaugeMetricFamily(
            "antmedia_remediator_hold", "Apps (scope app) and cluster nodes (scope node) whose writes are held "
            "after evidence of life, until the witness stream's heartbeat moves.", labels=["ams", "scope", "name", "reason"])
        for (scope, ams, name), hold in sorted(self.holds().items()):
            family.add_metric([ams, scope, name, hold.reason], 1.0)
        yield family


class _CountdownsCollector:
    """antmedia_remediator_countdowns{ams,app}: countdowns armed now (0 for every configured app)."""

    def __init__(self, armed: Callable[[], dict], apps: list[tuple[str, str]]) -> None:
        self.armed, self.apps = armed, apps

    def describe(self):
        return []

    def collect(self):
        family = GaugeMetricFamily(
            "antmedia_remediator_countdowns", "Countdowns armed by AntMediaGhostCandidate alerts, waiting for "
            "their deadline.", labels=["ams", "app"])
        armed = self.armed()
        for ams, app in self.apps:
            family.add_metric([ams, app], float(armed.get((ams, app), 0)))
        yield family
