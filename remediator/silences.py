"""Re-check on the Alertmanager API v2 that an alert is still active, not silenced or inhibited."""
from __future__ import annotations

import re
from typing import Mapping

import httpx

from remediator.alerts import Alert, PayloadError, parse_alert

__all__ = ["AlertmanagerCheck", "AlertmanagerUnavailableError", "SUPPRESSION_KEYS"]

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
