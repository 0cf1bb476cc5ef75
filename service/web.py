"""Serving both services: a threaded WSGI server on h11, with TLS and bounds on what a client can hold.

Only public APIs: the standard library's selectors, ssl and threading, and h11 (the HTTP/1.1 state
machine of httpx, hypercorn and uvicorn) to parse requests and frame responses.

One thread accepts, does every TLS handshake and reads every request head without blocking; a
connection reaches one of the `threads` workers only with its request line and headers complete,
within `request_timeout_seconds` of its start (of its first byte, for a kept-alive connection, which
may idle `idle_timeout_seconds` between requests). So silent, half-sent or trickling clients and
silent TLS clients hold no worker and stall nobody. The worker calls the app (behind
service.guard) before reading the body, so a refused body stays unread: the answer says
`Connection: close` and the connection is closed, not drained; reading the body has the same
deadline. When `max_connections` are open, the least recently active connection still waiting for
its head (or idling between requests) is closed to make room: new connections are never refused
because silent ones hold the slots.
"""

from __future__ import annotations

import logging
import queue
import selectors
import socket
import ssl
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from email.utils import formatdate
from urllib.parse import unquote_to_bytes, urlsplit

import h11

from service.config import ServerLimits
from service.guard import Access, Wsgi, guard
from service.webconfig import WebConfig

__all__ = ["Server", "serve_until"]

log = logging.getLogger("service.web")
HEAD_END = b"\r\n\r\n"
RECV_SIZE = 65536
SEND_BATCH = 65536  # response bytes gathered before a send
SWEEP_SECONDS = 0.25  # how often deadlines are checked
_HEADER_FIELDS_TOO_LARGE = (b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\n"
                            b"Connection: close\r\n\r\n")
_BAD_REQUEST = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
_AGAIN = (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError, InterruptedError)


@dataclass(eq=False)
class _Waiting:
    """A connection in the selector: handshaking, reading its request head, or idle between requests."""

    sock: socket.socket
    addr: tuple
    since: float  # monotonic: accepted, or back from a worker
    kept: bool  # served a request before: may idle idle_timeout_seconds before its next one
    head: bytearray = field(default_factory=bytearray)
    first_byte: float | None = None
    handshaken: bool = True
    closed: bool = False

    def deadline(self, limits: ServerLimits) -> tuple[float, str]:
        """When it is closed, and why: its head is late, or it idled too long between requests."""
        late = "request head not complete within request_timeout_seconds"
        if not self.kept:  # from accept, TLS handshake included
            return self.since + limits.request_timeout_seconds, late
        if self.first_byte is not None:
            return self.first_byte + limits.request_timeout_seconds, late
        return self.since + limits.idle_timeout_seconds, "idle longer than idle_timeout_seconds"


# How long a complete request head may wait for a free worker, in request timeouts.
QUEUE_WAIT_TIMEOUTS = 3


class _Closed(OSError):
    """The connection is unusable (timed out, reset, or broke HTTP): close it without an answer.

    An OSError, as a socket's would be: a framework's body reader reports it as a client disconnect."""


class Server:
    """One service's HTTP(S) server: bind at construction, serve() in any thread, stop() from another.

    app is guarded with basic auth from web (except on `exempt` paths) and `max_body_bytes`;
    `guarded=True` when app applies service.guard itself (the remediator's, with its bearer token).
    """

    def __init__(self, app: Wsgi, host: str, port: int, limits: ServerLimits, web: WebConfig | None,
                 threads: int, ident: str, max_body_bytes: int | None = None, exempt: Iterable[str] = (),
                 guarded: bool = False) -> None:
        web = web or WebConfig()
        self.tls = web.tls_context()
        self.limits, self.ident = limits, ident
        if guarded:
            if max_body_bytes is not None or exempt:
                raise ValueError("a guarded app brings its own policy: no max_body_bytes or exempt here")
            self.app = app
        else:
            self.app = guard(app, Access(users=web.basic_auth_users, open_paths=frozenset(exempt),
                                         max_body_bytes=65536 if max_body_bytes is None else max_body_bytes,
                                         realm=ident))
        family, _, _, _, address = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                                      flags=socket.AI_PASSIVE)[0]
        self._listener = socket.create_server(address, family=family, backlog=1024)  # a taken port fails here
        self._listener.setblocking(False)
        self.host, self.port = self._listener.getsockname()[:2]
        self._wake_in, self._wake_out = socket.socketpair()
        self._wake_in.setblocking(False)
        self._wake_out.setblocking(False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ, data="listen")
        self._selector.register(self._wake_in, selectors.EVENT_READ, data="wake")
        self._waiting: dict[int, _Waiting] = {}  # touched by the selector thread only
        self._returned: queue.SimpleQueue = queue.SimpleQueue()  # kept-alive connections back from workers
        self._work: queue.SimpleQueue = queue.SimpleQueue()  # complete heads for the workers
        self._lock = threading.Lock()
        self._open = 0
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        self._serving = False
        self._workers = [threading.Thread(target=self._worker, name=f"{ident}-http-{i}", daemon=True)
                         for i in range(threads)]

    @property
    def scheme(self) -> str:
        return "http" if self.tls is None else "https"

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    @property
    def open_connections(self) -> int:
        """Sockets open: waiting for a head, idle, queued or in a worker."""
        with self._lock:
            return self._open

    # --- lifecycle ----------------------------------------------------------------------------

    def serve(self) -> None:
        """Serve until stop()."""
        with self._lock:
            if self._stopping.is_set():
                return
            self._serving = True
        for worker in self._workers:
            worker.start()
        last_sweep = time.monotonic()
        try:
            while not self._stopping.is_set():
                pause = max(0.0, last_sweep + SWEEP_SECONDS - time.monotonic())
                for key, _ in self._selector.select(timeout=pause):
                    try:
                        if key.data == "listen":
                            self._accept()
                        elif key.data == "wake":
                            self._take_returned()
                        else:
                            self._read_head(key.data)
                    except Exception:  # noqa: BLE001 - a bug with one connection must not stop the server
                        log.exception("serving connections failed")
                        if isinstance(key.data, _Waiting):
                            self._drop(key.data, "internal error")
                now = time.monotonic()
                if now - last_sweep >= SWEEP_SECONDS:
                    self._expire(now)
                    last_sweep = now
        finally:
            self._shut_down()

    def stop(self) -> None:
        """Stop accepting, let workers finish their request (bounded by the request timeout), close everything."""
        with self._lock:
            self._stopping.set()
            serving = self._serving
        if not serving:
            self._shut_down()
            return
        self._wake()
        self._stopped.wait(timeout=self.limits.request_timeout_seconds + 5)

    def _shut_down(self) -> None:
        if self._stopped.is_set():
            return
        for waiting in list(self._waiting.values()):
            self._drop(waiting, "server stopping")
        for worker in self._workers:
            if worker.is_alive():
                self._work.put(None)
        deadline = time.monotonic() + self.limits.request_timeout_seconds
        for worker in self._workers:
            if worker.is_alive():
                worker.join(timeout=max(0.0, deadline - time.monotonic()))
        while True:  # connections handed back or queued after the workers left
            try:
                item = self._returned.get_nowait()
            except queue.Empty:
                break
            self._close(item[0])
        self._selector.close()
        for sock in (self._listener, self._wake_in, self._wake_out):
            sock.close()
        self._stopped.set()

    # --- the selector thread ------------------------------------------------------------------

    def _wake(self) -> None:
        try:
            self._wake_out.send(b"\0")
        except OSError:  # the buffer is full: a wake-up is pending anyway
            pass

    def _close(self, sock: socket.socket) -> None:
        """Close a socket and free its slot (each socket is closed once, by whoever holds it)."""
        try:
            sock.close()
        finally:
            with self._lock:
                self._open -= 1

    def _accept(self) -> None:
        for _ in range(64):
            try:
                sock, addr = self._listener.accept()
            except _AGAIN:
                return
            except OSError as exc:  # EMFILE and the like: make room, the client retries
                log.warning("accepting a connection failed: %s", exc)
                self._evict_oldest()
                return
            with self._lock:
                self._open += 1
                full = self._open > self.limits.max_connections
            if full and not self._evict_oldest():
                log.debug("%s: refused, %d connections busy", addr, self.limits.max_connections)
                self._close(sock)
                continue
            waiting = _Waiting(sock, addr, time.monotonic(), kept=False)
            try:
                sock.setblocking(False)
                if sock.family in (socket.AF_INET, socket.AF_INET6):
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if self.tls is not None:
                    waiting.sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
                    waiting.handshaken = False
            except OSError as exc:  # reset already
                log.debug("%s: closed, %s", addr, exc)
                self._close(sock)
                continue
            self._register(waiting)

    def _register(self, waiting: _Waiting) -> None:
        self._waiting[waiting.sock.fileno()] = waiting
        self._selector.register(waiting.sock, selectors.EVENT_READ, data=waiting)

    def _forget(self, waiting: _Waiting) -> None:
        fd = waiting.sock.fileno()
        if self._waiting.pop(fd, None) is not None:
            self._selector.unregister(waiting.sock)

    def _drop(self, waiting: _Waiting, why: str) -> None:
        if waiting.closed:
            return
        waiting.closed = True
        self._forget(waiting)
        log.debug("%s: closed, %s", waiting.addr[0] if waiting.addr else "?", why)
        self._close(waiting.sock)

    def _evict_oldest(self) -> bool:
        """Close the waiting connection least recently active; False when none waits."""
        if not self._waiting:
            return False
        oldest = min(self._waiting.values(), key=lambda w: w.first_byte or w.since)
        self._drop(oldest, "connection limit reached, least recently active")
        return True

    def _take_returned(self) -> None:
        try:
            while self._wake_in.recv(4096):
                pass
        except _AGAIN:
            pass
        while True:
            try:
                sock, addr, leftover = self._returned.get_nowait()
            except queue.Empty:
                return
            if self._stopping.is_set():
                self._close(sock)
                continue
            sock.setblocking(False)
            waiting = _Waiting(sock, addr, time.monotonic(), kept=True, head=bytearray(leftover))
            if leftover:
                waiting.first_byte = waiting.since
            self._register(waiting)
            self._read_head(waiting)  # a pipelined head, or bytes the TLS layer holds, are not signalled

    def _read_head(self, waiting: _Waiting) -> None:
        sock, limit = waiting.sock, self.limits.max_header_bytes
        try:
            if not waiting.handshaken:
                sock.do_handshake()
                waiting.handshaken = True
            while len(waiting.head) <= limit and HEAD_END not in waiting.head:
                chunk = sock.recv(RECV_SIZE)
                if not chunk:
                    self._drop(waiting, "closed by the client")
                    return
                if waiting.first_byte is None:
                    waiting.first_byte = time.monotonic()
                waiting.head += chunk
        except _AGAIN:
            return  # more later
        except (ssl.SSLError, OSError) as exc:
            self._drop(waiting, f"{type(exc).__name__}: {exc}")
            return
        end = waiting.head.find(HEAD_END)
        if end < 0 or end > limit:
            try:
                sock.send(_HEADER_FIELDS_TOO_LARGE)
            except (ssl.SSLError, OSError):
                pass
            self._drop(waiting, "request head larger than max_header_bytes")
            return
        self._forget(waiting)
        self._work.put((sock, waiting.addr, bytes(waiting.head), time.monotonic()))

    def _expire(self, now: float) -> None:
        """Close connections past their head or idle deadline."""
        for waiting in list(self._waiting.values()):
            deadline, why = waiting.deadline(self.limits)
            if now >= deadline:
                self._drop(waiting, why)

    # --- the workers --------------------------------------------------------------------------

    def _worker(self) -> None:
        while True:
            item = self._work.get()
            if item is None:
                return
            sock, addr, head, queued = item
            if time.monotonic() - queued > QUEUE_WAIT_TIMEOUTS * self.limits.request_timeout_seconds:
                # Waited for a free worker longer than one exchange can hold a worker (its body, then its
                # answer, each within the request timeout): every worker is held by clients that read or
                # send slowly; closing it keeps the queue, and the connections it holds, bounded.
                log.debug("%s: no free worker within the request timeout", addr[0] if addr else "?")
                self._close(sock)
                continue
            try:
                leftover = _Exchange(self, sock, addr, head).run()
            except Exception:  # noqa: BLE001 - a bug in one exchange must not kill the worker
                log.exception("serving %s failed", addr[0] if addr else "?")
                leftover = None
            if leftover is None or self._stopping.is_set():
                self._close(sock)
            else:
                self._returned.put((sock, addr, leftover))
                self._wake()


class _Exchange:
    """One request and its response on a worker thread; run() returns the bytes read past it to keep the
    connection, or None to close it."""

    def __init__(self, server: Server, sock: socket.socket, addr: tuple, head: bytes) -> None:
        self.server, self.sock, self.addr = server, sock, addr
        self.deadline = time.monotonic() + server.limits.request_timeout_seconds
        self.send_deadline = self.deadline + server.limits.request_timeout_seconds
        self.http = h11.Connection(h11.SERVER, max_incomplete_event_size=server.limits.max_header_bytes + 4)
        self.http.receive_data(head)
        self.out = bytearray()
        self.body_done = False
        self.broken = False  # the body could not be read: no answer is owed

    def run(self) -> bytes | None:
        try:
            request = self.http.next_event()
        except h11.RemoteProtocolError as exc:
            log.debug("%s: bad request: %s", self.addr[0] if self.addr else "?", exc)
            self._send_raw(_BAD_REQUEST)
            return None
        if not isinstance(request, h11.Request):  # a head we counted as complete that h11 does not
            self._send_raw(_BAD_REQUEST)
            return None
        names = {name for name, _ in request.headers}
        environ = self._environ(request)
        # Both lengths (RFC 9112 6.1: the server must close), or a target that is no path: 400, closed.
        if environ is None or {b"content-length", b"transfer-encoding"} <= names:
            self._send_raw(_BAD_REQUEST)
            return None
        try:
            self._respond(request, environ)
        except (_Closed, OSError, h11.ProtocolError) as exc:
            log.debug("%s: closed, %s: %s", self.addr[0] if self.addr else "?", type(exc).__name__, exc)
            return None
        if self.http.our_state is not h11.DONE or self.http.their_state is not h11.DONE:
            return None
        leftover, _ = self.http.trailing_data
        self.http.start_next_cycle()
        return leftover

    # the request ---------------------------------------------------------------------------------

    def _environ(self, request: h11.Request) -> dict | None:
        """The WSGI environ, or None for a request target that is neither "/path" nor "scheme://host/path"."""
        target = request.target
        if not target.startswith(b"/"):  # absolute form
            try:
                parts = urlsplit(target)
            except ValueError:
                return None
            if not (parts.scheme and parts.netloc) or (parts.path and not parts.path.startswith(b"/")):
                return None
            target = (parts.path or b"/") + (b"?" + parts.query if parts.query else b"")
        path, _, query = target.partition(b"?")
        server = self.server
        environ = {
            "REQUEST_METHOD": request.method.decode("ascii"),
            "SCRIPT_NAME": "",
            "PATH_INFO": unquote_to_bytes(path).decode("latin-1"),
            "QUERY_STRING": query.decode("latin-1"),
            "SERVER_NAME": str(server.host),
            "SERVER_PORT": str(server.port),
            "SERVER_PROTOCOL": "HTTP/" + request.http_version.decode("ascii"),
            "REMOTE_ADDR": str(self.addr[0]) if self.addr else "",
            "REMOTE_PORT": str(self.addr[1]) if self.addr and len(self.addr) > 1 else "",
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": server.scheme,
            "wsgi.input": _Body(self),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
        if server.tls is not None:
            environ["HTTPS"] = "on"
        if not any(name == b"content-length" for name, _ in request.headers):
            environ["wsgi.input_terminated"] = True  # a chunked body: reads end with it
        for name, value in request.headers:
            key = name.decode("latin-1").upper()
            if "_" in key:  # X_Forwarded would pass for X-Forwarded
                continue
            key = key.replace("-", "_")
            key = key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else "HTTP_" + key
            text = value.decode("latin-1")
            environ[key] = f"{environ[key]},{text}" if key in environ else text
        return environ

    def receive(self) -> h11.Event:
        """The next body event, reading the socket as needed until the request's deadline."""
        while True:
            try:
                event = self.http.next_event()
            except h11.RemoteProtocolError as exc:  # a broken chunk, or the client closed mid-body
                self.broken = True
                raise _Closed(f"reading the body: {exc}") from None
            if event is not h11.NEED_DATA:
                if isinstance(event, h11.EndOfMessage):
                    self.body_done = True
                return event
            if self.http.they_are_waiting_for_100_continue:
                self._sendall(self.http.send(h11.InformationalResponse(status_code=100, headers=[])))
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                self.broken = True
                raise _Closed("body not complete within request_timeout_seconds")
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(RECV_SIZE)
            except OSError as exc:
                self.broken = True
                raise _Closed(f"reading the body: {exc}") from None
            self.http.receive_data(data)

    def _body_unread(self) -> bool:
        """True when the body is not all in; whatever of it is already buffered is consumed first."""
        while self.http.their_state is h11.SEND_BODY:
            event = self.http.next_event()
            if event is h11.NEED_DATA:
                return True
            if isinstance(event, h11.EndOfMessage):
                self.body_done = True
        return False

    # the response --------------------------------------------------------------------------------

    def _respond(self, request: h11.Request, environ: dict) -> None:
        head_only = request.method == b"HEAD"
        state: dict = {"status": None, "headers": None, "sent": False}

        def start_response(status: str, headers: list, exc_info=None):
            if exc_info is not None and state["sent"]:
                raise exc_info[1].with_traceback(exc_info[2])
            state["status"], state["headers"] = status, list(headers)
            return write

        def write(data: bytes) -> None:
            send_head(None)
            if data and not head_only:
                self._emit(self.http.send(h11.Data(data=data)))

        def send_head(length: int | None) -> None:
            if state["sent"]:
                return
            if state["status"] is None:
                raise RuntimeError("the app sent a body before start_response")
            if self.broken:
                raise _Closed("the body was not read")
            status, headers = state["status"], state["headers"]
            names = {name.lower() for name, _ in headers}
            if length is not None and "content-length" not in names and "transfer-encoding" not in names:
                headers.append(("Content-Length", str(length)))
            if self._body_unread() and "connection" not in names:
                headers.append(("Connection", "close"))  # never drain a body the app did not read
            if self.server.stopping and "connection" not in names:
                headers.append(("Connection", "close"))
            headers += [("Date", formatdate(usegmt=True)), ("Server", self.server.ident)]
            code, _, reason = status.partition(" ")
            self._emit(self.http.send(h11.Response(status_code=int(code), reason=reason.encode("latin-1"),
                                                   headers=[(k.encode("latin-1"), v.encode("latin-1"))
                                                            for k, v in headers])))
            state["sent"] = True

        try:
            result = self.server.app(environ, start_response)
        except _Closed:
            raise
        except Exception:  # noqa: BLE001 - the app's bug: a 500 if nothing went out yet
            if self.broken:
                raise _Closed("the body was not read") from None
            log.exception("%s %s failed", environ["REQUEST_METHOD"], environ["PATH_INFO"])
            state["status"], state["headers"] = "500 Internal Server Error", [("Content-Type", "text/plain")]
            result = [b"internal server error\n"]
        try:
            if isinstance(result, (list, tuple)):  # the whole body is known: a Content-Length, no chunks
                send_head(sum(len(chunk) for chunk in result))
            for chunk in result:
                write(chunk)
            send_head(0 if not state["sent"] else None)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        self._emit(self.http.send(h11.EndOfMessage()))
        self._flush()

    def _emit(self, data: bytes) -> None:
        self.out += data
        if len(self.out) >= SEND_BATCH:
            self._flush()

    def _flush(self) -> None:
        if self.out:
            self._sendall(bytes(self.out))
            self.out.clear()

    def _sendall(self, data: bytes) -> None:
        # One deadline for the whole answer: a client reading slowly is cut off as one that stops reading.
        remaining = self.send_deadline - time.monotonic()
        if remaining <= 0:
            raise _Closed("the answer was not read within its deadline")
        self.sock.settimeout(remaining)
        self.sock.sendall(data)

    def _send_raw(self, data: bytes) -> None:
        try:
            self._sendall(data)
        except OSError:
            pass


class _Body:
    """wsgi.input: the request body, read from the socket only when the app asks for it."""

    def __init__(self, exchange: _Exchange) -> None:
        self.exchange = exchange
        self.buffer = bytearray()

    def _more(self) -> bool:
        """Append the next piece of the body to the buffer; False at its end."""
        exchange = self.exchange
        if exchange.body_done:
            return False
        event = exchange.receive()
        if isinstance(event, h11.Data):
            self.buffer += event.data
            return True
        return False

    def _take(self, size: int) -> bytes:
        data = bytes(self.buffer[:size])
        del self.buffer[:size]
        return data

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            while self._more():
                pass
            return self._take(len(self.buffer))
        while len(self.buffer) < size and self._more():
            pass
        return self._take(size)

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def readline(self, size: int | None = -1) -> bytes:
        while b"\n" not in self.buffer and (size is None or size < 0 or len(self.buffer) < size) and self._more():
            pass
        end = self.buffer.find(b"\n")
        end = len(self.buffer) if end < 0 else end + 1
        if size is not None and size >= 0:
            end = min(end, size)
        return self._take(end)

    def readlines(self, hint: int = -1) -> list[bytes]:
        return list(iter(self.readline, b""))

    def __iter__(self):
        return iter(self.readline, b"")


def serve_until(server: Server, stop: threading.Event) -> None:
    """Serve in a thread until stop is set (by a signal handler in the main thread), then stop the server."""
    thread = threading.Thread(target=server.serve, name="http-server", daemon=True)
    thread.start()
    while not stop.wait(0.5) and thread.is_alive():
        pass
    server.stop()
    thread.join(timeout=5)
