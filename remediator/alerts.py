"""Alertmanager webhook payload (version 4) -> Alert dataclasses."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from types import MappingProxyType
from typing import Any, Mapping

import httpx

__all__ = ["Alert", "AlertmanagerCheck", "AlertmanagerUnavailableError", "Notification", "PayloadError",
    "SUPPRESSION_KEYS", "parse_notification", "parse_time"]

STATUSES = ("firing", "resolved")
# The ghost rule's annotation: updateTime / 1000 as Prometheus saw it unchanged (rules/antmedia.rules.yml).
HEARTBEAT_ANNOTATION = "heartbeat_timestamp"
# The candidate rule's durations, both from Prometheus's own scrape times: how long it has seen the
# heartbeat unchanged, and the stale threshold of the stream's app.
FROZEN_ANNOTATION = "frozen_seconds"
THRESHOLD_ANNOTATION = "threshold_seconds"
MAX_DURATION_SECONDS = 86400.0
_DECIMAL = re.compile(r"\d{1,16}(?:\.\d{1,6})?")
# Go's RFC 3339 output carries up to 9 fractional digits; Python parses at most 6.
_RFC3339 = re.compile(
    r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$"
)


class PayloadError(ValueError):
    """The request body is not a usable Alertmanager webhook payload."""


@dataclass(frozen=True)
class Alert:
    """One alert of a notification; labels and annotations are read-only."""

    status: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    starts_at: datetime
    ends_at: datetime | None
    fingerprint: str
    generator_url: str = ""

    @property
    def firing(self) -> bool:
        """True while the alert fires."""
        return self.status == "firing"

    @property
    def heartbeat_ms(self) -> int | None:
        """The alert's evidence: updateTime (ms) that the rule saw unchanged; None when absent or junk."""
        text = self.annotations.get(HEARTBEAT_ANNOTATION, "")
        if not _DECIMAL.fullmatch(text):
            return None
        ms = round(float(text) * 1000)
        return ms if 0 < ms < 2**63 else None

    @property
    def frozen_seconds(self) -> float | None:
        """Seconds Prometheus had seen the heartbeat unchanged when it evaluated the alert; None when junk."""
        return _duration(self.annotations.get(FROZEN_ANNOTATION, ""))

    @property
    def threshold_seconds(self) -> float | None:
        """The stale threshold the alert was judged against; None when absent or junk."""
        threshold = _duration(self.annotations.get(THRESHOLD_ANNOTATION, ""))
        return threshold if threshold else None


def _duration(text: str) -> float | None:
    """A non-negative decimal number of seconds, at most a day; None otherwise."""
    if not _DECIMAL.fullmatch(text):
        return None
    seconds = float(text)
    return seconds if seconds <= MAX_DURATION_SECONDS else None


@dataclass(frozen=True)
class Notification:
    """One webhook delivery: a group of alerts."""

    version: str
    status: str
    receiver: str
    group_key: str
    truncated_alerts: int
    alerts: tuple[Alert, ...] = field(default_factory=tuple)


def parse_time(value: Any, where: str) -> datetime | None:
    """RFC 3339 string -> aware datetime; Go's zero time -> None."""
    if not isinstance(value, str):
        raise PayloadError(f"{where}: expected an RFC 3339 string")
    match = _RFC3339.match(value)
    if match is None:
        raise PayloadError(f"{where}: not an RFC 3339 time: {value[:40]!r}")
    base, frac, zone = match.groups()
    text = base + ("." + (frac + "000000")[:6] if frac else "")
    text += "+00:00" if zone == "Z" else zone
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise PayloadError(f"{where}: {exc}") from None
    # Alertmanager writes 0001-01-01T00:00:00Z for "no end".
    if parsed.year <= 1:
        return None
    return parsed.astimezone(timezone.utc)


def _string_map(value: Any, where: str) -> Mapping[str, str]:
    """A JSON object of string values -> read-only mapping."""
    if value is None:
        return MappingProxyType({})
    if not isinstance(value, dict):
        raise PayloadError(f"{where}: expected an object")
    for key, item in value.items():
        if not isinstance(item, str):
            raise PayloadError(f"{where}.{key}: expected a string")
    return MappingProxyType(dict(value))


def _optional_str(obj: dict, key: str, where: str) -> str:
    """A string field that may be absent."""
    value = obj.get(key, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise PayloadError(f"{where}.{key}: expected a string")
    return value


def parse_alert(obj: Any, where: str) -> Alert:
    """One element of `alerts`."""
    if not isinstance(obj, dict):
        raise PayloadError(f"{where}: expected an object")
    status = obj.get("status")
    if status not in STATUSES:
        raise PayloadError(f"{where}.status: expected firing or resolved")
    starts_at = parse_time(obj.get("startsAt"), f"{where}.startsAt")
    if starts_at is None:
        raise PayloadError(f"{where}.startsAt: zero time")
    ends_raw = obj.get("endsAt")
    ends_at = None if ends_raw in (None, "") else parse_time(ends_raw, f"{where}.endsAt")
    return Alert(
        status=status,
        labels=_string_map(obj.get("labels"), f"{where}.labels"),
        annotations=_string_map(obj.get("annotations"), f"{where}.annotations"),
        starts_at=starts_at,
        ends_at=ends_at,
        fingerprint=_optional_str(obj, "fingerprint", where),
        generator_url=_optional_str(obj, "generatorURL", where),
    )


def _truncated(obj: dict) -> int:
    """The `truncatedAlerts` count (absent before Alertmanager 0.22)."""
    value = obj.get("truncatedAlerts", 0)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise PayloadError("truncatedAlerts: expected a non-negative integer")
    return value


def parse_notification(body: bytes | str) -> Notification:
    """Raw request body -> Notification; unknown fields are ignored."""
    try:
        obj = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise PayloadError(f"not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise PayloadError("expected a JSON object")
    version = obj.get("version", "4")
    if version != "4":
        raise PayloadError(f"version: expected \"4\", got {str(version)[:20]!r}")
    alerts = obj.get("alerts")
    if not isinstance(alerts, list):
        raise PayloadError("alerts: expected a list")
    return Notification(
        version=version,
        status=_optional_str(obj, "status", "notification"),
        receiver=_optional_str(obj, "receiver", "notification"),
        group_key=_optional_str(obj, "groupKey", "notification"),
        truncated_alerts=_truncated(obj),
        alerts=tuple(parse_alert(a, f"alerts[{i}]") for i, a in enumerate(alerts)),
    )


# Alerts of one name read back at once (the countdowns' rebuild); the rest wait for the next pass.
MAX_LISTED = 10_000

# Labels that identify the alert well enough for the server-side filter; the
# fingerprint (or the full label set) then picks the exact alert.
SUPPRESSION_KEYS = ("alertname", "ams", "app", "stream_id")


class AlertmanagerUnavailableError(Exception):
    """Alertmanager could not answer; the decision must wait."""


def _matcher(name: str, value: str) -> str:
    """One equality matcher in Alertmanager's filter syntax."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'{name}="{escaped}"'


def _same_alert(entry: Mapping, alert: Alert) -> bool:
    """Match by fingerprint when both have one, else by the full label set."""
    if alert.fingerprint and entry.get("fingerprint"):
        return entry["fingerprint"] == alert.fingerprint
    return entry.get("labels") == dict(alert.labels)


def verdict_of(entry: Mapping) -> str | None:
    """None when active and unsuppressed, else silenced / inhibited."""
    status = entry.get("status")
    if not isinstance(status, dict):
        raise AlertmanagerUnavailableError("alert without status")
    if status.get("silencedBy"):
        return "silenced"
    if status.get("inhibitedBy"):
        return "inhibited"
    if status.get("state") == "suppressed":
        return "silenced"
    if status.get("state") != "active":
        return "not_active"
    return None


class AlertmanagerCheck:
    """Asks one Alertmanager whether an alert may be acted on now."""

    def __init__(self, base_url: str, timeout: float, transport: httpx.BaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._client = httpx.Client(timeout=timeout, transport=transport, follow_redirects=False)

    def suppression(self, alert: Alert) -> str | None:
        """None when the alert is active and neither silenced nor inhibited."""
        params = [("active", "true"), ("silenced", "true"), ("inhibited", "true"), ("unprocessed", "true")]
        params += [("filter", _matcher(k, alert.labels[k])) for k in SUPPRESSION_KEYS if k in alert.labels]
        entries = self._alerts(params)
        for entry in entries:
            if isinstance(entry, dict) and _same_alert(entry, alert):
                return verdict_of(entry)
        # Not known to Alertmanager any more: resolved or expired since the notification.
        return "not_active"

    def firing(self, alertname: str, receiver: str) -> list[Alert]:
        """Active alerts of that name routed to that receiver that no silence or inhibition hides (malformed
        entries left out)."""
        params = [("active", "true"), ("silenced", "false"), ("inhibited", "false"), ("unprocessed", "false"),
                  ("receiver", f"^{re.escape(receiver)}$"), ("filter", _matcher("alertname", alertname))]
        alerts = []
        for i, entry in enumerate(self._alerts(params)[:MAX_LISTED]):
            if not isinstance(entry, dict) or verdict_of(entry) is not None:
                continue
            try:
                alerts.append(parse_alert({**entry, "status": "firing", "endsAt": None}, f"alerts[{i}]"))
            except PayloadError:
                continue
        return alerts

    def _alerts(self, params: list[tuple[str, str]]) -> list:
        """GET /api/v2/alerts with these parameters: the JSON list."""
        try:
            response = self._client.get(f"{self.base_url}/api/v2/alerts", params=params)
            response.raise_for_status()
            entries = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise AlertmanagerUnavailableError(str(exc)) from None
        if not isinstance(entries, list):
            raise AlertmanagerUnavailableError("unexpected answer from /api/v2/alerts")
        return entries

    def close(self) -> None:
        """Release connections."""
        self._client.close()
