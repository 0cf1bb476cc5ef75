"""Serving both services: cheroot's threaded WSGI server, TLS, basic auth, and bounds on what a client can hold.

Why not the server as it comes: cheroot (like waitress) lets a connection that has sent nothing,
or half a request line, occupy a worker thread (cheroot) or a connection slot (waitress) for as
long as it keeps trickling bytes, and cheroot does the TLS handshake in its accepting thread, so
one silent TLS client stalls every new connection. Here the accepting thread reads every
request head (and does every TLS handshake) without blocking; a connection reaches a worker
thread only with its request line and headers complete, within `request_timeout_seconds` of
its start. The application is called before the body is read, so the remediator refuses an
unauthenticated or oversized body without reading it; reading the body has the same deadline.
When `max_connections` are open, the least recently active connection still waiting for its
head (or idling between requests) is closed to make room: new connections are never refused
because silent ones hold the slots.
"""

from __future__ import annotations

import base64
import hashlib
import _pyio
import io
import logging
import selectors
import socket
import ssl
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import bcrypt
from cheroot import connections as cheroot_connections
from cheroot import server as cheroot_server
from cheroot import wsgi as cheroot_wsgi
from cheroot.makefile import StreamReader

from service.config import ServerLimits
from service.webconfig import WebConfig

__all__ = ["Server", "guard"]

log = logging.getLogger("service.web")
Wsgi = Callable[[dict, Callable], Iterable[bytes]]
HEAD_END = b"\r\n\r\n"
RECV_SIZE = 65536
_HEADER_FIELDS_TOO_LARGE = (b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\n"
                            b"Connection: close\r\n\r\n")


# --- connections -----------------------------------------------------------------------


class _ReplayIO(io.RawIOBase):
    """The bytes already read while waiting for the request head, then the socket."""

    def __init__(self, sock: socket.socket, head: bytes) -> None:
        super().__init__()
        self._head = memoryview(head)
        self._sock = socket.SocketIO(sock, "rb")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int | None:
        if self._head:
            size = min(len(buffer), len(self._head))
            buffer[:size] = self._head[:size]
            self._head = self._head[size:]
            return size
        return self._sock.readinto(buffer)

    def close(self) -> None:
        self._sock.close()
        super().close()


class _ReplayReader(StreamReader):
    """cheroot's buffered reader over _ReplayIO."""

    def __init__(self, sock: socket.socket, head: bytes, bufsize: int) -> None:  # noqa: D107
        _pyio.BufferedReader.__init__(self, _ReplayIO(sock, head), bufsize)  # cheroot's reader is _pyio's
        self.bytes_read = 0


class _Request(cheroot_server.HTTPRequest):
    """A response that says Connection: close closes the connection, and never drains an unread body first."""

    def send_headers(self) -> None:
        if any(k.lower() == b"connection" and v.lower() == b"close" for k, v in self.outheaders):
            self.close_connection = True
        super().send_headers()


class _Connection(cheroot_server.HTTPConnection):
    """An HTTP connection whose body reads have a deadline and whose close is counted once."""

    RequestHandlerClass = _Request

    deadline: float | None = None  # monotonic; past it, the watchdog shuts the socket down
    closed = False

    def communicate(self) -> bool:
        """Serve one request; the body must arrive within the request timeout."""
        manager: _Manager = self.server.manager
        _current.conn = self
        manager.arm(self)
        try:
            return super().communicate()
        finally:
            manager.disarm(self)
            _current.conn = None

    def close(self) -> None:
        """Close once, and free its slot."""
        if self.closed:
            return
        self.closed = True
        try:
            super().close()
        finally:
            self.server.manager.released()


_current = threading.local()


@dataclass(eq=False)
class _Pending:
    """A connection waiting in the selector for its request head (or idling between requests)."""

    sock: socket.socket
    addr: tuple
    conn: _Connection | None  # None until its first request
    since: float  # monotonic: accepted, or put back after a response
    head: bytearray
    first_byte: float | None = None
    handshaken: bool = True

    def close(self) -> None:
        """Close the socket (through its connection, once there is one)."""
        if self.conn is not None:
            self.conn.close()
            return
        try:
            self.sock.close()
        finally:
            self.conn = None


class _Manager(cheroot_connections.ConnectionManager):
    """Accepts, handshakes and reads request heads without blocking; enforces deadlines and the connection cap."""

    def __init__(self, server: "_CherootServer") -> None:
        super().__init__(server)
        self.limits: ServerLimits = server.limits
        self.tls: ssl.SSLContext | None = server.tls
        self._lock = threading.Lock()
        self._open = 0
        self._busy: dict[_Connection, float] = {}  # connection in a worker -> body deadline
        self._pending: dict[int, _Pending] = {}

    # bookkeeping -----------------------------------------------------------------------

    @property
    def open_connections(self) -> int:
        """Sockets open: waiting for a head, idle, queued or in a worker."""
        with self._lock:
            return self._open

    def released(self) -> None:
        """A socket was closed."""
        with self._lock:
            self._open -= 1

    def arm(self, conn: _Connection) -> None:
        """A worker starts on conn: its body must arrive within the request timeout."""
        with self._lock:
            self._busy[conn] = time.monotonic() + self.limits.request_timeout_seconds

    def disarm(self, conn: _Connection) -> None:
        """The body is read (or will not be): no deadline any more."""
        with self._lock:
            self._busy.pop(conn, None)

    # the selector loop -----------------------------------------------------------------

    def put(self, conn: _Connection) -> None:
        """A connection kept alive after a response waits for its next request head here."""
        if conn.rfile.has_data():  # a pipelined request: its head may be in, the worker reads it
            self.server.process_conn(conn)
            return
        self._register(_Pending(conn.socket, (conn.remote_addr, conn.remote_port), conn, time.monotonic(),
                                bytearray()))

    def _register(self, pending: _Pending) -> None:
        pending.sock.setblocking(False)
        fd = pending.sock.fileno()
        with self._lock:
            self._pending[fd] = pending
        self._selector.register(fd, selectors.EVENT_READ, data=pending)

    def _forget(self, fd: int) -> _Pending | None:
        try:
            self._selector.unregister(fd)
        except (KeyError, ValueError):
            pass
        with self._lock:
            return self._pending.pop(fd, None)

    def _waiting(self) -> list[tuple[int, _Pending]]:
        with self._lock:
            return list(self._pending.items())

    def _run(self, expiration_interval: float) -> None:
        last_check = time.monotonic()
        while not self._stop_requested:
            try:
                ready = list(self._selector.select(timeout=expiration_interval))
            except OSError:
                self._remove_invalid_sockets()
                continue
            for fd, item in ready:
                if item is self.server:
                    self._accept()
                elif isinstance(item, _Pending):
                    self._read_head(fd, item)
            now = time.monotonic()
            if now - last_check >= expiration_interval:
                self._expire(now)
                last_check = now

    def _accept(self) -> None:
        try:
            sock, addr = self.server.socket.accept()
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:  # EMFILE and the like: make room, the client retries
            log.warning("accepting a connection failed: %s", exc)
            self._evict_oldest()
            return
        cheroot_connections.prevent_socket_inheritance(sock)
        with self._lock:
            self._open += 1
            full = self._open > self.limits.max_connections
        if full and not self._evict_oldest():
            log.debug("%s: refused, %d connections busy", addr, self.limits.max_connections)
            self._close_socket(sock)
            return
        handshaken = True
        if self.tls is not None:
            sock.setblocking(False)
            sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
            handshaken = False
        self._register(_Pending(sock, addr, None, time.monotonic(), bytearray(), handshaken=handshaken))

    def _close_socket(self, sock: socket.socket) -> None:
        try:
            sock.close()
        finally:
            self.released()

    def _drop(self, fd: int, pending: _Pending, why: str) -> None:
        self._forget(fd)
        log.debug("%s: closed, %s", pending.addr[0] if pending.addr else "?", why)
        if pending.conn is None:
            self._close_socket(pending.sock)
        else:
            pending.close()

    def _evict_oldest(self) -> bool:
        """Close the waiting connection least recently active; False when none waits."""
        waiting = self._waiting()
        if not waiting:
            return False
        fd, pending = min(waiting, key=lambda item: item[1].first_byte or item[1].since)
        self._drop(fd, pending, "connection limit reached, least recently active")
        return True

    def _read_head(self, fd: int, pending: _Pending) -> None:
        sock = pending.sock
        try:
            if not pending.handshaken:
                sock.do_handshake()
                pending.handshaken = True
            while len(pending.head) <= self.limits.max_header_bytes and HEAD_END not in pending.head:
                chunk = sock.recv(RECV_SIZE)
                if not chunk:
                    self._drop(fd, pending, "closed by the client")
                    return
                if pending.first_byte is None:
                    pending.first_byte = time.monotonic()
                pending.head += chunk
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError, InterruptedError):
            return  # more later
        except (ssl.SSLError, OSError) as exc:
            self._drop(fd, pending, f"{type(exc).__name__}: {exc}")
            return
        end = pending.head.find(HEAD_END)
        if end < 0 or end > self.limits.max_header_bytes:
            try:
                sock.send(_HEADER_FIELDS_TOO_LARGE)
            except (ssl.SSLError, OSError):
                pass
            self._drop(fd, pending, "request head larger than max_header_bytes")
            return
        self._forget(fd)
        self._dispatch(pending)

    def _dispatch(self, pending: _Pending) -> None:
        """The head is complete: hand the connection to a worker."""
        sock = pending.sock
        sock.settimeout(self.server.timeout)
        conn = pending.conn
        if conn is None:
            conn = self.server.ConnectionClass(self.server, sock, cheroot_server.MakeFile)
            conn.remote_addr, conn.remote_port = (pending.addr[0], pending.addr[1]) if pending.addr else ("", 0)
            conn.ssl_env = {"wsgi.url_scheme": "https", "HTTPS": "on"} if self.tls is not None else {}
        conn.rfile = _ReplayReader(sock, bytes(pending.head), conn.rbufsize)
        conn.last_used = time.time()
        self.server.process_conn(conn)

    def _expire(self, now: float) -> None:  # type: ignore[override]
        """Close heads past their deadline and idle connections past theirs; cut body reads past theirs."""
        limits = self.limits
        for fd, pending in self._waiting():
            if pending.first_byte is not None or pending.conn is None:
                deadline = (pending.first_byte or pending.since) + limits.request_timeout_seconds
                why = "request head not complete within request_timeout_seconds"
            else:
                deadline = pending.since + limits.idle_timeout_seconds
                why = "idle longer than idle_timeout_seconds"
            if now >= deadline:
                self._drop(fd, pending, why)
        with self._lock:
            late = [conn for conn, deadline in self._busy.items() if now >= deadline]
            for conn in late:
                del self._busy[conn]
        for conn in late:
            log.debug("%s: body not complete within request_timeout_seconds", conn.remote_addr)
            try:
                socket.socket.shutdown(conn.socket, socket.SHUT_RDWR)  # the worker's read returns at once
            except OSError:
                pass

    def close(self) -> None:
        """Close every waiting connection and the selector (the server closes its own socket)."""
        for fd, pending in self._waiting():
            self._drop(fd, pending, "server stopping")
        self._selector.close()


class _CherootServer(cheroot_wsgi.Server):
    """cheroot's WSGI server with the manager above and its messages in our log."""

    ConnectionClass = _Connection

    def __init__(self, app: Wsgi, host: str, port: int, limits: ServerLimits, tls: ssl.SSLContext | None,
                 threads: int, ident: str, max_body_bytes: int) -> None:
        super().__init__((host, port), app, numthreads=threads, max=threads, server_name=ident,
                         timeout=int(max(1, limits.request_timeout_seconds)),
                         shutdown_timeout=int(max(1, limits.request_timeout_seconds)))
        self.limits, self.tls = limits, tls
        self.manager: _Manager | None = None
        self.max_request_header_size = limits.max_header_bytes
        self.max_request_body_size = max_body_bytes  # larger Content-Length: 413 before the body is read
        self.keep_alive_conn_limit = limits.max_connections
        self.expiration_interval = 0.25

    def prepare(self) -> None:
        """Bind, then swap in the manager."""
        super().prepare()
        self._connections._selector.close()  # the stock manager's selector; the listening socket stays open
        self.manager = self._connections = _Manager(self)
        self.socket.setblocking(False)

    def error_log(self, msg: str = "", level: int = logging.INFO, traceback: bool = False) -> None:
        """cheroot's messages are about single clients: debug, except real errors."""
        log.log(level if level >= logging.ERROR else logging.DEBUG, "%s", msg, exc_info=traceback)


class Server:
    """One service's HTTP(S) server: bind at construction, serve() in any thread, stop() from another."""

    def __init__(self, app: Wsgi, host: str, port: int, limits: ServerLimits, web: WebConfig | None,
                 threads: int, ident: str, max_body_bytes: int, exempt: Iterable[str] = ()) -> None:
        web = web or WebConfig()
        self.tls = web.tls_context()
        wrapped = guard(app, web.basic_auth_users, exempt=frozenset(exempt), realm=ident)
        self._server = _CherootServer(wrapped, host, port, limits, self.tls, threads, ident, max_body_bytes)
        self._server.prepare()  # binds now, so a taken port fails here
        self.host, self.port = self._server.bind_addr[:2]
        self._stopped = threading.Event()

    @property
    def scheme(self) -> str:
        return "http" if self.tls is None else "https"

    @property
    def open_connections(self) -> int:
        return self._server.manager.open_connections

    def serve(self) -> None:
        """Serve until stop()."""
        try:
            self._server.serve()
        finally:
            self._stopped.set()

    def stop(self) -> None:
        """Stop accepting, let workers finish their request (bounded), close everything."""
        self._server.stop()


# --- the WSGI layer: basic auth, body deadline, connection close on unread bodies ---------


def guard(app: Wsgi, users: dict[str, str], exempt: frozenset[str] = frozenset(), realm: str = "") -> Wsgi:
    """Basic auth (except on exempt paths), and a response that leaves a body unread closes the connection."""
    check = _BasicAuth(users) if users else None
    challenge = f'Basic realm="{realm}"'

    def wrapped(environ: dict, start_response: Callable) -> Iterable[bytes]:
        conn: _Connection | None = getattr(_current, "conn", None)
        length = environ.get("CONTENT_LENGTH") or "0"
        expects_body = length not in ("", "0") or "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "")
        if conn is not None and not expects_body:
            conn.server.manager.disarm(conn)
        elif conn is not None:
            environ["wsgi.input"] = _Input(environ["wsgi.input"], conn)
        state = {"read": not expects_body}

        def start(status: str, headers: list, exc_info=None):
            body_input = environ.get("wsgi.input")
            unread = not state["read"] and not getattr(body_input, "done", False)
            if conn is not None:
                conn.server.manager.disarm(conn)
            if unread and not any(k.lower() == "connection" for k, _ in headers):
                headers = [*headers, ("Connection", "close")]  # never drain a body we refused
            return start_response(status, headers, exc_info)

        if check is not None and environ.get("PATH_INFO", "") not in exempt:
            if not check(environ.get("HTTP_AUTHORIZATION", "")):
                start("401 Unauthorized", [("Content-Type", "text/plain; charset=utf-8"),
                                           ("WWW-Authenticate", challenge)])
                return [b"unauthorized\n"]
        return app(environ, start)

    return wrapped


class _Input:
    """wsgi.input that lifts the body deadline once the body is read."""

    def __init__(self, raw, conn: _Connection) -> None:
        self.raw, self.conn, self.done = raw, conn, False

    def _seen(self, data: bytes, size: int | None) -> bytes:
        if not data or size is None or size < 0 or getattr(self.raw, "remaining", 1) == 0:
            self.done = True
            self.conn.server.manager.disarm(self.conn)
        return data

    def read(self, size: int | None = None) -> bytes:
        return self._seen(self.raw.read(size) if size is not None else self.raw.read(), size)

    def readline(self, size: int | None = None) -> bytes:
        return self._seen(self.raw.readline(size), size)

    def __iter__(self):
        return iter(self.read, b"")


class _BasicAuth:
    """bcrypt check of user:password, with successful checks remembered (bcrypt costs ~0.1 s each)."""

    CACHE = 256
    _DUMMY = bcrypt.hashpw(b"unused", bcrypt.gensalt(rounds=10))  # same work for unknown users

    def __init__(self, users: dict[str, str]) -> None:
        self.users = {name: hashed.encode() for name, hashed in users.items()}
        self._ok: OrderedDict[bytes, None] = OrderedDict()
        self._lock = threading.Lock()

    def __call__(self, header: str) -> bool:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, sep, password = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        if not sep:
            return False
        key = hashlib.sha256(f"{user}\0{password}".encode()).digest()
        with self._lock:
            if key in self._ok and user in self.users:
                self._ok.move_to_end(key)
                return True
        hashed = self.users.get(user, self._DUMMY)
        try:
            ok = bcrypt.checkpw(password.encode(), hashed) and user in self.users
        except ValueError:  # a password beyond bcrypt's 72 bytes
            ok = False
        if ok:
            with self._lock:
                self._ok[key] = None
                if len(self._ok) > self.CACHE:
                    self._ok.popitem(last=False)
        return ok


def serve_until(server: Server, stop: threading.Event) -> None:
    """Serve in a thread until stop is set (by a signal handler in the main thread), then stop the server."""
    thread = threading.Thread(target=server.serve, name="http-server", daemon=True)
    thread.start()
    while not stop.wait(0.5) and thread.is_alive():
        pass
    server.stop()
    thread.join(timeout=5)
