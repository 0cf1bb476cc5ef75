"""Flask app: POST /alerts, GET /metrics, GET /-/healthy, GET /-/ready."""
from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import httpx
import msgspec
from flask import Flask, Response, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ams.client import AmsClient
from remediator.actions import Outcome, Remediator
from remediator.alerts import (
    Alert,
    AlertmanagerCheck,
    Notification,
    PayloadError,
    parse_notification,
)
from remediator.decisions import AuditLog, RemediatorMetrics, open_audit_log
from remediator.revalidation import Revalidator
from service.config import Config, require_remediator
from service.guard import BEARER_CHECKED, Access, guard
from service.reload import Reloader, reload_endpoint
from service.webconfig import WebConfig

__all__ = ["Deps", "Drain", "PROBES", "abandon_in_flight", "access", "build_deps", "close_deps", "create_app"]

PROBES = ("/-/healthy", "/-/ready")  # orchestrator probes need no credentials; they reveal nothing
WEBHOOK = "/alerts"

_DRAINING = {"error": "shutting down; send again later"}


class Drain:
    """Notifications being handled; once draining, new ones are turned away so Alertmanager sends them later."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._ids = itertools.count()
        self._in_flight: dict[int, dict[str, Alert]] = {}
        self.draining = False

    def enter(self, notification: Notification) -> int | None:
        """Register a notification; None when draining."""
        with self._cond:
            if self.draining:
                return None
            ticket = next(self._ids)
            self._in_flight[ticket] = {alert.fingerprint: alert for alert in notification.alerts}
            return ticket

    def leave(self, ticket: int) -> None:
        """The notification is answered."""
        with self._cond:
            self._in_flight.pop(ticket, None)
            self._cond.notify_all()

    def decided(self, fingerprint: str) -> None:
        """An alert's decision is in the audit log."""
        with self._cond:
            for pending in self._in_flight.values():
                pending.pop(fingerprint, None)

    def start(self) -> None:
        """Turn away every notification from now on."""
        with self._cond:
            self.draining = True

    def wait(self, timeout: float) -> bool:
        """Wait until nothing is in flight; False when the timeout came first."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._in_flight, timeout=timeout)

    def undecided(self) -> list[Alert]:
        """Alerts of in-flight notifications that have no decision yet."""
        with self._cond:
            return [alert for pending in self._in_flight.values() for alert in pending.values()]


@dataclass(frozen=True)
class Deps:
    """What the web layer needs; built by remediator.app or by tests."""

    remediator: Remediator
    metrics: RemediatorMetrics
    token: str | None
    max_body_bytes: int
    drain: Drain = field(default_factory=Drain)


def access(deps: Deps, web: WebConfig | None = None) -> Access:
    """Who may call what: the webhook takes its own bearer token (Alertmanager sends one kind of
    credentials); without one, basic auth from the web config guards it like every other endpoint
    but the probes. Bodies up to max_body_bytes."""
    return Access(users=(web or WebConfig()).basic_auth_users,
                  bearer={WEBHOOK: deps.token} if deps.token is not None else {},
                  open_paths=frozenset(PROBES), max_body_bytes=deps.max_body_bytes, realm="antmedia-remediator")


def _status_for(outcomes: list[Outcome]) -> int:
    """503 when any alert waits for AMS or Alertmanager, so Alertmanager sends it again."""
    return 503 if any(o.outcome == "deferred" for o in outcomes) else 200


def _answer(deps: Deps, body: dict[str, Any], code: int) -> tuple[Response, int]:
    """JSON answer, counted by status code."""
    deps.metrics.webhook_requests.labels(code=str(code)).inc()
    return jsonify(body), code


def _receive(deps: Deps) -> tuple[Response, int]:
    """POST /alerts."""
    if deps.token is not None and request.environ.get(BEARER_CHECKED) != WEBHOOK:
        # The guard decides credentials; this write path also asks that it was the one it checked.
        return _answer(deps, {"error": "unauthorized"}, 401)
    if deps.drain.draining:
        return _answer(deps, _DRAINING, 503)
    body = request.get_data(cache=False)  # credentials and size were checked by the guard (access())
    try:
        notification = parse_notification(body)
    except PayloadError as exc:
        return _answer(deps, {"error": str(exc)[:500]}, 400)
    ticket = deps.drain.enter(notification)
    if ticket is None:
        return _answer(deps, _DRAINING, 503)
    try:
        outcomes = deps.remediator.handle(notification)
    finally:
        deps.drain.leave(ticket)
    code = _status_for(outcomes)
    answer = {"dry_run": deps.remediator.config.dry_run, "outcomes": [o.as_dict() for o in outcomes]}
    return _answer(deps, answer, code)


def create_app(deps: Deps, web: WebConfig | None = None, reloader: Reloader | None = None) -> Flask:
    """The WSGI app behind its guard (access(deps, web)); no globals, everything comes from deps.
    POST /-/reload reloads the config when a reloader is given (--web.enable-lifecycle)."""
    app = Flask("remediator")

    def refused(path: str, code: int) -> None:
        if path == WEBHOOK:
            deps.metrics.webhook_requests.labels(code=str(code)).inc()

    app.wsgi_app = guard(app.wsgi_app, access(deps, web), refused)  # Flask's documented middleware hook

    @app.post("/alerts")
    def alerts() -> tuple[Response, int]:
        """Alertmanager webhook."""
        return _receive(deps)

    @app.get("/metrics")
    def metrics() -> Response:
        """The remediator's own registry."""
        return Response(generate_latest(deps.metrics.registry), content_type=CONTENT_TYPE_LATEST)

    @app.route("/-/reload", methods=["GET", "POST", "PUT"])
    def reload() -> Response:
        """Configuration reload, as Prometheus's (403 unless lifecycle is enabled)."""
        status, text = reload_endpoint(reloader, request.method)
        return Response(text, status=status, mimetype="text/plain")

    @app.get("/-/healthy")
    def healthy() -> Response:
        """Liveness."""
        return Response("OK\n", mimetype="text/plain")

    @app.get("/-/ready")
    def ready() -> Response:
        """Readiness: deps exist (token read, AMS clients, audit log open), so notifications can be taken; 503 once draining."""
        if deps.drain.draining:
            return Response("stopping\n", status=503, mimetype="text/plain")
        return Response("OK\n", mimetype="text/plain")

    return app


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
