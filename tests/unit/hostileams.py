"""A hostile AMS on 127.0.0.1: a tiny threaded HTTP/1.1 server whose answers drip, page forever or never end.

Every behaviour stops by itself (bounded bytes and seconds) and when the client goes away; the
server counts connections, requests and bytes sent, so tests can state bounds in those units.
"""

from __future__ import annotations

import json
import socket
import socketserver
import threading
import time
from collections.abc import Callable

MAX_SECONDS = 20.0  # no answer of this server lasts longer, whatever the client does


class Reply:
    """The connection of one request: send bytes (counted), and whether it may be kept alive."""

    def __init__(self, server: "HostileAms", sock: socket.socket):
        self.server, self.sock = server, sock
        self.started = time.monotonic()

    def send(self, data: bytes) -> bool:
        """Send data; False once the client is gone or the time is up."""
        if time.monotonic() - self.started > MAX_SECONDS:
            return False
        try:
            self.sock.sendall(data)
        except OSError:
            return False
        with self.server.lock:
            self.server.bytes_sent += len(data)
        return True

    def json(self, body, status: str = "200 OK") -> bool:
        """A complete JSON answer with Content-Length (kept alive)."""
        data = json.dumps(body).encode()
        head = f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
        return self.send(head.encode() + data)

    def drip(self, data: bytes, interval: float) -> bool:
        """One byte every interval seconds."""
        for i in range(len(data)):
            if not self.send(data[i:i + 1]):
                return False
            time.sleep(interval)
        return True

    def endless(self, head: bytes, chunk: bytes, total: int) -> bool:
        """head, then chunk repeated up to total bytes (or until the client stops reading)."""
        if not self.send(head):
            return False
        sent = 0
        while sent < total:
            if not self.send(chunk):
                return False
            sent += len(chunk)
        return True


class HostileAms:
    """Serve respond(path, reply) for every request; respond returns True to keep the connection."""

    def __init__(self, respond: Callable[[str, Reply], bool]):
        self.respond = respond
        self.lock = threading.Lock()
        self.connections = 0
        self.requests: list[str] = []
        self.bytes_sent = 0
        outer = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                with outer.lock:
                    outer.connections += 1
                self.request.settimeout(MAX_SECONDS)
                buffer = b""
                while True:
                    while b"\r\n\r\n" not in buffer:
                        try:
                            data = self.request.recv(65536)
                        except OSError:
                            return
                        if not data or len(buffer) > 65536:
                            return
                        buffer += data
                    head, _, buffer = buffer.partition(b"\r\n\r\n")
                    path = head.split(b" ", 2)[1].decode("latin-1")
                    with outer.lock:
                        outer.requests.append(path)
                    if not outer.respond(path, Reply(outer, self.request)):
                        return

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self._server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def paths(self, part: str) -> list[str]:
        """Requested paths containing part."""
        with self.lock:
            return [p for p in self.requests if part in p]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def records(start: int, count: int, **fields) -> list[dict]:
    """count publisher records with ids s{start}..."""
    return [{"streamId": f"s{i}", "status": "broadcasting", "type": "liveStream", "updateTime": 1709200000000,
             **fields} for i in range(start, start + count)]
