"""Build the remediator's dependencies from Settings (shared by __main__, tests and the bench)."""
from __future__ import annotations

import time
from typing import Callable

import httpx

from ams.client import AmsClient
from remediator.actions import Remediator
from remediator.app import Deps
from remediator.audit import AuditLog, open_audit_log
from remediator.config import Settings
from remediator.metrics import RemediatorMetrics
from remediator.revalidation import Revalidator
from remediator.silences import AlertmanagerCheck

__all__ = ["build_deps", "close_deps"]


def build_deps(settings: Settings, ams_transport: httpx.BaseTransport | None = None,
               alertmanager_transport: httpx.BaseTransport | None = None,
               audit: AuditLog | None = None, clock: Callable[[], float] = time.time) -> Deps:
    """One AmsClient per configured AMS (by name), metrics, audit log, Alertmanager check."""
    config = settings.remediator
    pairs = [(server.name, app) for server in settings.ams for app in server.apps]
    metrics = RemediatorMetrics(pairs, dry_run=config.dry_run)
    revalidators = {
        server.name: Revalidator(server, AmsClient(server, transport=ams_transport), metrics)
        for server in settings.ams
    }
    alertmanager = None
    if config.alertmanager_url:
        alertmanager = AlertmanagerCheck(config.alertmanager_url, config.alertmanager_timeout_seconds,
                                         transport=alertmanager_transport)
    remediator = Remediator(config, revalidators, metrics, audit or open_audit_log(config.audit_log),
                            alertmanager=alertmanager, clock=clock, concurrency=config.concurrency)
    return Deps(remediator=remediator, metrics=metrics, token=config.token,
                max_body_bytes=config.max_body_bytes)


def close_deps(deps: Deps) -> None:
    """Close clients, worker threads and the audit file."""
    remediator = deps.remediator
    remediator.close()
    for revalidator in remediator.revalidators.values():
        revalidator.client.close()
    if remediator.alertmanager is not None:
        remediator.alertmanager.close()
    remediator.audit.close()
