"""A local webhook receiver standing in for the humans' pager in the Alertmanager example config."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Handler(BaseHTTPRequestHandler):
    """Records every POST body and answers 200."""

    def do_POST(self) -> None:  # noqa: N802 (http.server naming)
        """Store the notification."""
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        try:
            payload = json.loads(body)
        except ValueError:
            payload = {"raw": body.decode(errors="replace")}
        self.server.notifications.append(payload)  # type: ignore[attr-defined]
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args) -> None:
        """Quiet: the stack's output is the timeline, not access logs."""


class WebhookSink:
    """In-process HTTP server on 127.0.0.1 collecting Alertmanager notifications."""

    def __init__(self):
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.notifications = []  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._server.serve_forever, name="webhook-sink", daemon=True)

    @property
    def url(self) -> str:
        """URL to configure as a webhook."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/notify"

    @property
    def notifications(self) -> list[dict]:
        """Payloads received so far."""
        return list(self._server.notifications)  # type: ignore[attr-defined]

    def start(self) -> "WebhookSink":
        """Serve in a background thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
