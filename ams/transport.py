"""HTTP to one AMS: the httpx client, auth headers, the answer size cap and the total deadline of every request.

It knows no AMS URL beyond the paths it is given, and nothing of paging or of AMS's records.

The total deadline: a request ends by its deadline (timeout_seconds from its start, or the caller's
earlier budget) whatever the server does. httpx's own timeouts are per socket operation, so a server
that drips one byte at a time, in the head or the body, would hold a request for as long as it likes.
Three public layers bound it: the per-request `timeout=` is what is left of the deadline (connect,
pool, read and write); the body is read chunk by chunk, the deadline checked between chunks; and every
socket read and write is cut to what is left, by a network backend given to httpcore's connection
pool (httpcore's documented `network_backend` extension point) under an httpx transport of our own.
The third is the one that ends a dripped head: httpx reads the whole head before it returns, and with
the first two alone a 72-byte head at one byte per 50 ms took 3.6 s under timeout=1.0 (measured).
No private attribute of httpx or httpcore is touched.
"""

from __future__ import annotations

import math
import os
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import timezone
from email.utils import parsedate_to_datetime

import httpcore
import httpx
import jwt

from ams.errors import (
    AmsAuthError, AmsDeadlineError, AmsError, AmsLimitError, AmsUnavailableError, AmsUnreachableError,
)
from ams.server import AmsServer

__all__ = [
    "DeadlineTransport", "Reply", "TokenAuth", "Transport", "deadline_request", "deadline_scope", "parse_http_date",
    "ssl_context_for",
]

# The caller's overall time budget (monotonic), for every AMS request made in this context.
_BUDGET: ContextVar[float | None] = ContextVar("ams_budget", default=None)
# The deadline of the request in progress in this thread, read by the socket layer.
_REQUEST_DEADLINE: ContextVar[float | None] = ContextVar("ams_request_deadline", default=None)
_JSON_HEADERS = {"Content-Type": "application/json"}  # AMS write endpoints @Consumes(application/json)
_HEADERS = {"Accept": "application/json", "User-Agent": "antmedia-exporter"}


@contextmanager
def deadline_scope(deadline: float | None) -> Iterator[None]:
    """Every AMS request made inside (in this thread) ends by this monotonic deadline, at the latest."""
    outer = _BUDGET.get()
    token = _BUDGET.set(deadline if outer is None or (deadline is not None and deadline < outer) else outer)
    try:
        yield
    finally:
        _BUDGET.reset(token)


# ---------------------------------------------------------------- the socket layer


def _cut(timeout: float | None, error: type[Exception]) -> float | None:
    """A socket operation's timeout, cut to what is left of the request's total deadline."""
    deadline = _REQUEST_DEADLINE.get()
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise error("the request's deadline has passed")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    """A socket whose every read and write ends by the request's deadline: a server that drips one
    byte at a time, in the headers or the body, cannot hold a request past it."""

    def __init__(self, stream: httpcore.NetworkStream):
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _cut(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _cut(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(self, ssl_context, server_hostname: str | None = None, timeout: float | None = None):
        return _DeadlineStream(self._stream.start_tls(ssl_context, server_hostname,
                                                      _cut(timeout, httpcore.ConnectTimeout)))

    def get_extra_info(self, info: str):
        return self._stream.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    """httpcore's socket backend, with _DeadlineStream sockets."""

    def __init__(self):
        self._backend = httpcore.SyncBackend()

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        return _DeadlineStream(self._backend.connect_tcp(host, port, _cut(timeout, httpcore.ConnectTimeout),
                                                         local_address, socket_options))

    def connect_unix_socket(self, path, timeout=None, socket_options=None):
        return _DeadlineStream(self._backend.connect_unix_socket(path, _cut(timeout, httpcore.ConnectTimeout),
                                                                 socket_options))

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


# httpcore's errors as the httpx errors httpx's own transport raises for them; most specific first.
_ERRORS: tuple[tuple[type[Exception], type[httpx.HTTPError]], ...] = (
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.ProxyError, httpx.ProxyError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.ProtocolError, httpx.ProtocolError),
)


@contextmanager
def _as_httpx_errors(request: httpx.Request | None = None) -> Iterator[None]:
    """Raise httpcore's errors as httpx's."""
    try:
        yield
    except Exception as exc:
        for core, mapped in _ERRORS:
            if isinstance(exc, core):
                raise mapped(str(exc), request=request) from exc
        raise


class _Body(httpx.SyncByteStream):
    """An httpcore response body as httpx's stream."""

    def __init__(self, stream, request: httpx.Request):
        self._stream = stream
        self._request = request

    def __iter__(self) -> Iterator[bytes]:
        with _as_httpx_errors(self._request):
            yield from self._stream

    def close(self) -> None:
        close = getattr(self._stream, "close", None)
        if close is not None:
            close()


class DeadlineTransport(httpx.BaseTransport):
    """httpx's HTTP/1.1 transport, on a connection pool whose sockets end every read and write by the
    request's total deadline (deadline_request)."""

    def __init__(self, ssl_context: ssl.SSLContext, limits: httpx.Limits):
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_DeadlineBackend(),
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        core = httpcore.Request(
            method=request.method,
            url=httpcore.URL(scheme=request.url.raw_scheme, host=request.url.raw_host, port=request.url.port,
                             target=request.url.raw_path),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        with _as_httpx_errors(request):
            response = self._pool.handle_request(core)
        return httpx.Response(status_code=response.status, headers=response.headers,
                              stream=_Body(response.stream, request), extensions=response.extensions)

    def close(self) -> None:
        self._pool.close()


@contextmanager
def deadline_request(at: float) -> Iterator[None]:
    """Requests made inside (in this thread) through a DeadlineTransport end by this monotonic deadline."""
    token = _REQUEST_DEADLINE.set(at)
    try:
        yield
    finally:
        _REQUEST_DEADLINE.reset(token)


def ssl_context_for(server: AmsServer) -> ssl.SSLContext:
    """The TLS context of one configured AMS: its CA file (or directory), no verification when told, else
    httpx's default trust."""
    if server.tls_insecure_skip_verify:
        return httpx.create_ssl_context(verify=False)
    if server.ca_file:
        if os.path.isdir(server.ca_file):
            return ssl.create_default_context(capath=server.ca_file)
        return ssl.create_default_context(cafile=server.ca_file)
    return httpx.create_ssl_context()


# ---------------------------------------------------------------- auth


def parse_http_date(value: str | None) -> float | None:
    """Parse an HTTP Date header to epoch seconds; None when absent or invalid."""
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed.tzinfo is None:  # "-0000" means UTC with no zone information
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.timestamp()


class TokenAuth:
    """Header values: a static token, or short-lived HS256 tokens (exp valid on both clocks)."""

    def __init__(self, secret: str | None, token: str | None, ttl: float, clock: Callable[[], float]):
        self._secret = secret
        self._static = token
        self._ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._skew = 0.0  # AMS clock minus ours, learned from Date headers (exp is checked on AMS's clock)
        self._token: str | None = None
        self._token_exp = 0.0
        self._token_skew = 0.0

    @property
    def mints(self) -> bool:
        """True when tokens are minted from a secret (and can be re-minted after a clock surprise)."""
        return self._secret is not None

    def header(self, bearer: bool) -> str | None:
        """The header value; 'Bearer ' only where the version strips it (2.12+)."""
        token = self._static or (self._minted() if self.mints else None)
        if token is None:
            return None
        return f"Bearer {token}" if bearer else token

    def observe(self, server_time: float | None) -> bool:
        """Learn AMS's clock from a Date header; True if it moved enough to invalidate the token."""
        if server_time is None:
            return False
        with self._lock:
            self._skew = server_time - self._clock()
            return abs(self._skew - self._token_skew) > self._ttl / 4

    def _minted(self) -> str:
        """A cached token, re-minted when a third of its lifetime is left or AMS's clock moved."""
        with self._lock:
            # The verifier's clock is AMS's machine clock; if it lags ours, expiring on ours is still safe.
            now = self._clock() + max(self._skew, 0.0)
            ttl = self._ttl
            stale = abs(self._skew - self._token_skew) > ttl / 4
            if self._token is None or stale or now > self._token_exp - ttl / 3:
                # No iat/nbf: AMS's verifier rejects an iat in its future when clocks disagree.
                self._token_exp = math.floor(now + ttl)
                self._token = jwt.encode({"exp": self._token_exp}, self._secret, algorithm="HS256")
                self._token_skew = self._skew
            return self._token


# ---------------------------------------------------------------- one exchange


@dataclass(frozen=True, slots=True)
class Reply:
    """What the client keeps of an HTTP response."""

    status_code: int
    content: bytes
    server_time: float | None


class Transport:
    """HTTP exchanges with one configured AMS, mapped to the typed errors; thread-safe; close() when done.

    transport: an httpx transport to use instead of the network (tests); the total deadline is then
    kept by the per-request timeout and the body's chunk checks only.
    """

    def __init__(self, server: AmsServer, transport: httpx.BaseTransport | None = None,
                 clock: Callable[[], float] = time.time):
        self.server = server
        self.auth = TokenAuth(server.jwt_secret, server.jwt_token, server.jwt_ttl_seconds, clock)
        # Management REST (cluster nodes): a server JWT in ProxyAuthorization, raw, HS256 with
        # server.jwtServerSecretKey (console AuthenticationFilter L41, L119-131, L335-352 @3.0.3).
        self.server_auth = TokenAuth(server.server_jwt_secret, None, server.jwt_ttl_seconds, clock)
        context = ssl_context_for(server)
        limits = httpx.Limits(max_connections=server.max_concurrency + 4,
                              max_keepalive_connections=server.max_concurrency + 4)
        self._http = httpx.Client(
            base_url=server.url,
            transport=transport if transport is not None else DeadlineTransport(context, limits),
            verify=context,
            timeout=server.timeout_seconds,
            follow_redirects=False,
            headers=_HEADERS,
            limits=limits,
        )

    def close(self) -> None:
        """Release connections."""
        self._http.close()

    def request(
        self, method: str, path: str, *, management: bool = False, bearer: bool = False, params=None,
        body: bytes | None = None, deadline: float | None = None, allow_404: bool = False,
    ) -> Reply:
        """One HTTP exchange mapped to typed errors; a 403 with a minted token is retried once.

        management: the management (root) REST, authenticated by the server JWT; else the app's JWT
        ('Bearer ' prefixed when bearer).
        """
        auth = self.server_auth if management else self.auth
        reply = self.exchange(method, path, management=management, bearer=bearer, params=params, body=body,
                              deadline=deadline)
        if reply.status_code == 403 and auth.mints and auth.observe(reply.server_time):
            reply = self.exchange(method, path, management=management, bearer=bearer, params=params, body=body,
                                  deadline=deadline)
        return self.check(method, path, reply, allow_404)

    def exchange(self, method: str, path: str, *, management: bool = False, bearer: bool = False, params=None,
                 body: bytes | None = None, deadline: float | None = None) -> Reply:
        """Send one request, ended by a total deadline; transport failures become AmsUnavailableError
        (AmsUnreachableError: no connection; AmsDeadlineError: the caller's budget ran out)."""
        headers = dict(_JSON_HEADERS) if method != "GET" else {}
        if management:
            auth, header = self.server_auth, self.server_auth.header(False)
            if header:
                headers["ProxyAuthorization"] = header
        else:
            auth, header = self.auth, self.auth.header(bearer)
            if header:
                headers["Authorization"] = header
        at, by_budget = self.deadline(deadline)
        try:
            with deadline_request(at), self._http.stream(
                method, path, params=params, content=body, headers=headers,
                timeout=max(at - time.monotonic(), 0.001),
            ) as response:
                content = self._read_body(response, method, path, at)
        except httpx.ConnectTimeout:
            error = AmsDeadlineError if by_budget else AmsUnreachableError
            raise error(f"{method} {path}: connect timed out") from None
        except httpx.TimeoutException:
            raise (AmsDeadlineError if by_budget else AmsUnavailableError)(f"{method} {path}: timed out") from None
        except httpx.ConnectError as exc:
            raise AmsUnreachableError(f"{method} {path}: {type(exc).__name__}: {exc}") from None
        except httpx.HTTPError as exc:
            raise AmsUnavailableError(f"{method} {path}: {type(exc).__name__}: {exc}") from None
        server_time = parse_http_date(response.headers.get("date"))
        if response.status_code != 403:
            auth.observe(server_time)
        return Reply(response.status_code, content, server_time)

    def _read_body(self, response: httpx.Response, method: str, path: str, at: float) -> bytes:
        """The decoded body, refused past max_response_bytes (announced or counted) or past the deadline."""
        cap = self.server.max_response_bytes
        length = response.headers.get("content-length", "")
        if length.isdigit() and int(length) > cap:
            raise AmsLimitError(f"{method} {path}: answer of {length} bytes, above max_response_bytes {cap}")
        chunks, size = [], 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > cap:
                raise AmsLimitError(f"{method} {path}: answer larger than max_response_bytes {cap}")
            if time.monotonic() > at:
                raise httpx.ReadTimeout("deadline passed while reading the answer")
            chunks.append(chunk)
        return b"".join(chunks)

    def deadline(self, deadline: float | None) -> tuple[float, bool]:
        """A request's total deadline: timeout_seconds from now, or earlier when the caller's budget (the
        deadline argument or deadline_scope) ends first; True when the budget is what ends it."""
        now = time.monotonic()
        own = now + self.server.timeout_seconds
        budgets = [d for d in (deadline, _BUDGET.get()) if d is not None]
        limit = min(budgets) if budgets else None
        if limit is not None and limit <= now:
            raise AmsDeadlineError(f"no time left within {self.server.timeout_seconds:g}s")
        if limit is not None and limit < own:
            return limit, True
        return own, False

    def overall(self, deadline: float | None) -> float:
        """A deadline for a multi-request pass (its pages run in other threads, outside deadline_scope)."""
        if deadline is None:
            deadline = time.monotonic() + self.server.timeout_seconds
        limit = _BUDGET.get()
        return deadline if limit is None else min(deadline, limit)

    @staticmethod
    def check(method: str, path: str, reply: Reply, allow_404: bool) -> Reply:
        """Map an HTTP status to the typed errors of the contract."""
        code = reply.status_code
        if code >= 500:
            raise AmsUnavailableError(f"{method} {path}: HTTP {code}")
        if code in (401, 403):
            raise AmsAuthError(f"{method} {path}: HTTP {code} (IP filter or JWT rejected the request)")
        if code == 404 and allow_404:
            return reply
        if code >= 300:
            raise AmsError(f"{method} {path}: HTTP {code}")
        return reply
