"""An in-process HTTP server on 127.0.0.1, on a port the kernel picks, serving in a background thread."""
from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class LoopbackServer:
    """Serves one handler class on 127.0.0.1; binding port 0 leaves no window for another process to take it."""

    def __init__(self, handler: type[BaseHTTPRequestHandler], name: str = "loopback-http"):
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, name=name, daemon=True)
        self._serving = False

    @property
    def address(self) -> str:
        """127.0.0.1:PORT."""
        host, port = self.server.server_address[:2]
        return f"{host}:{port}"

    @property
    def url(self) -> str:
        """Base URL."""
        return f"http://{self.address}"

    def start(self) -> "LoopbackServer":
        """Serve in the background thread."""
        self._thread.start()
        self._serving = True
        return self

    def stop(self) -> None:
        """Stop serving and close the socket; safe to call twice or before start."""
        if self._serving:
            self._serving = False
            self.server.shutdown()
            self._thread.join(timeout=5)
        self.server.server_close()

    def __enter__(self) -> "LoopbackServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
