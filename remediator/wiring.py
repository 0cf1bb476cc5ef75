"""Build the remediator's dependencies from the config (shared by __main__, tests and the bench)."""
from __future__ import annotations

import time
from typing import Any, Callable

import httpx
import msgspec

from ams.client import AmsClient
from remediator.actions import Remediator
from remediator.app import Deps, Drain
from remediator.audit import AuditLog, open_audit_log
from remediator.metrics import RemediatorMetrics
from remediator.revalidation import Revalidator
from remediator.silences import AlertmanagerCheck
from service.config import Config, require_remediator

__all__ = ["abandon_in_flight", "build_deps", "close_deps"]


class _DrainedAudit:
    """The audit log, telling the drain which alerts have their decision line."""

    def __init__(self, audit: AuditLog, drain: Drain) -> None:
        self.audit, self.drain = audit, drain

    def write(self, record: dict[str, Any]) -> None:
        """Write the line, then mark the alert decided."""
        self.audit.write(record)
        self.drain.decided(record.get("fingerprint", ""))

    def close(self) -> None:
        """Close the underlying log."""
        self.audit.close()


def build_deps(settings: Config, ams_transport: httpx.BaseTransport | None = None,
               alertmanager_transport: httpx.BaseTransport | None = None,
               audit: AuditLog | None = None, clock: Callable[[], float] = time.time,
               monotonic: Callable[[], float] = time.monotonic) -> Deps:
    """One AmsClient per configured AMS (by name), metrics, audit log, Alertmanager check."""
    config = require_remediator(settings)
    pairs = [(server.name, app) for server in settings.ams for app in server.apps]
    metrics = RemediatorMetrics(pairs, dry_run=config.dry_run)
    def node_client(server):
        return lambda ip: AmsClient(msgspec.structs.replace(server, url=server.node_base(ip)), transport=ams_transport)

    revalidators = {
        server.name: Revalidator(server, AmsClient(server, transport=ams_transport), metrics,
                                 clock=monotonic, node_client=node_client(server))
        for server in settings.ams
    }
    alertmanager = None
    if config.alertmanager_url:
        alertmanager = AlertmanagerCheck(config.alertmanager_url, config.alertmanager_timeout_seconds,
                                         transport=alertmanager_transport)
    drain = Drain()
    audit_log = _DrainedAudit(audit or open_audit_log(config.audit_log), drain)
    remediator = Remediator(config, revalidators, metrics, audit_log,
                            alertmanager=alertmanager, clock=clock, concurrency=config.concurrency,
                            monotonic=monotonic)
    metrics.watch_holds(remediator.holds.all)
    metrics.watch_countdowns(remediator.countdowns.armed, pairs)
    return Deps(remediator=remediator, metrics=metrics, token=config.token,
                max_body_bytes=config.max_body_bytes, drain=drain)


def abandon_in_flight(deps: Deps) -> int:
    """Audit every alert still undecided at shutdown as abandoned; returns how many."""
    alerts = deps.drain.undecided()
    for alert in alerts:
        deps.remediator.audit.write({
            "fingerprint": alert.fingerprint, "alertname": alert.labels.get("alertname", ""),
            "ams": alert.labels.get("ams", ""),
            "app": alert.labels.get("app", ""), "stream_id": alert.labels.get("stream_id", ""),
            "room": alert.labels.get("room") or None, "decision": "abandoned", "reason": "shutdown",
            "detail": "in flight when the shutdown timeout ended; Alertmanager sends it again",
            "dry_run": deps.remediator.config.dry_run, "calls": [],
        })
    return len(alerts)


def close_deps(deps: Deps) -> None:
    """Close clients, worker threads and the audit file."""
    remediator = deps.remediator
    remediator.close()
    for revalidator in remediator.revalidators.values():
        revalidator.close()
    if remediator.alertmanager is not None:
        remediator.alertmanager.close()
    remediator.audit.close()
