"""A local webhook receiver standing in for the humans' pager in the Alertmanager example config."""
from __future__ import annotations

import json
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler

from stack.loopback import LoopbackServer


@dataclass(frozen=True)
class Notification:
    """One webhook request as Alertmanager sent it."""

    headers: dict[str, str]
    payload: dict


class _Handler(BaseHTTPRequestHandler):
    """Records every POST and answers 200."""

    def do_POST(self) -> None:  # noqa: N802 (http.server naming)
        """Store the notification."""
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        try:
            payload = json.loads(body)
        except ValueError:
            payload = {"raw": body.decode(errors="replace")}
        self.server.notifications.append(Notification(dict(self.headers), payload))  # type: ignore[attr-defined]
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args) -> None:
        """Quiet: the stack's output is the timeline, not access logs."""


class WebhookSink(LoopbackServer):
    """Collects Alertmanager notifications on 127.0.0.1."""

    def __init__(self):
        super().__init__(_Handler, name="webhook-sink")
        self.server.notifications = []  # type: ignore[attr-defined]

    @property
    def url(self) -> str:
        """URL to configure as a webhook."""
        return f"http://{self.address}/notify"

    @property
    def notifications(self) -> list[Notification]:
        """Requests received so far, oldest first."""
        return list(self.server.notifications)  # type: ignore[attr-defined]
