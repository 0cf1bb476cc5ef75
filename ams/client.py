"""AMS REST client: the only code that knows AMS URLs, auth, paging and version quirks."""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import timezone
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote

import httpcore
import httpx
import jwt

from ams.server import AmsServer
from ams.errors import (
    AmsAuthError, AmsDeadlineError, AmsError, AmsIncompleteError, AmsLimitError, AmsMalformedError, AmsUnavailableError,
    AmsUnreachableError,
)
from ams.model import (
    AmsVersion,
    AppSnapshot,
    Broadcast,
    ClusterNode,
    Fetched,
    Result,
    RoomView,
    build_rooms,
    decode_broadcast_list,
    decode_json,
    parse_broadcast,
    parse_broadcast_page,
    parse_broadcast_statistics,
    parse_cluster_node_page,
    parse_conference_room,
    parse_conference_room_page,
    parse_count,
    parse_result,
    parse_version,
)

__all__ = [
    "AmsAuthError", "AmsClient", "AmsDeadlineError", "AmsError", "AmsIncompleteError", "AmsLimitError",
    "AmsMalformedError", "AmsUnavailableError", "AmsVersion", "AppSnapshot", "Broadcast", "Fetched", "Result",
    "deadline_scope",
]

log = logging.getLogger(__name__)

VERSION_TTL_SECONDS = 300.0  # re-detect now and then: servers get upgraded in place
PLAN_BATCH_PAGES = 64  # pages planned per concurrent batch from /count (then re-planned)
MAX_SUBTRACK_PAGES = 400  # bounds a server that ignores the offset
MAX_NODE_PAGES = 40  # 10,000 nodes at 250 a page: far beyond any cluster
# A list this many records (or this share of /count) shorter than /count said is incomplete, once a second
# /count confirms it. Below it: records that left during the scrape, and MapDB's key-ordered pages, which
# skip one record at a page boundary when an earlier one is deleted mid-scrape.
SHORT_LIST_SLACK = 3
SHORT_LIST_FRACTION = 0.02
# Records a list may run past /count (streams created while it is read) before it is cut off as
# endless: a tenth of the count, and at least one page.
LIST_MARGIN_FRACTION = 0.1
# The caller's overall time budget (monotonic), for every AMS request made in this context.
_BUDGET: ContextVar[float | None] = ContextVar("ams_budget", default=None)
# The deadline of the request in progress in this thread, read by the socket layer.
_REQUEST_DEADLINE: ContextVar[float | None] = ContextVar("ams_request_deadline", default=None)
_JSON_HEADERS = {"Content-Type": "application/json"}  # AMS write endpoints @Consumes(application/json)


@dataclass(frozen=True, slots=True)
class _Reply:
    """What the client keeps of an HTTP response."""

    status_code: int
    content: bytes
    server_time: float | None


@dataclass(frozen=True, slots=True)
class _Page:
    """One list page: parsed items, the raw length (for short-page detection) and the Date."""

    items: list
    raw_length: int
    rejected: int
    server_time: float | None
    first: str | None  # repr of the first raw entry: equal on consecutive pages means the offset is ignored


@contextmanager
def deadline_scope(deadline: float | None) -> Iterator[None]:
    """Every AMS request made inside (in this thread) ends by this monotonic deadline, at the latest."""
    outer = _BUDGET.get()
    token = _BUDGET.set(deadline if outer is None or (deadline is not None and deadline < outer) else outer)
    try:
        yield
    finally:
        _BUDGET.reset(token)


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


def _deadline_transport(verify, limits: httpx.Limits) -> httpx.HTTPTransport:
    """httpx's transport on _DeadlineBackend: per-read timeouts alone let a drip hold a request for hours."""
    transport = httpx.HTTPTransport(verify=verify, limits=limits)
    pool = transport._pool  # noqa: SLF001 - httpx builds the pool without a way to pass a network backend
    if not hasattr(pool, "_network_backend"):
        raise RuntimeError("httpcore changed: cannot install the AMS request deadline")
    pool._network_backend = _DeadlineBackend()  # noqa: SLF001
    return transport


def seg(value: str) -> str:
    """Quote one path segment, so an id can never add path components."""
    return quote(value, safe="")


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


class _Auth:
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


class AmsClient:
    """Synchronous client for one configured AMS; thread-safe; close() when done."""

    def __init__(
        self,
        server: AmsServer,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.time,
    ):
        self.server = server
        self._clock = clock
        self._auth = _Auth(server.jwt_secret, server.jwt_token, server.jwt_ttl_seconds, clock)
        # Management REST (cluster nodes): a server JWT in ProxyAuthorization, raw, HS256 with
        # server.jwtServerSecretKey (console AuthenticationFilter L41, L119-131, L335-352 @3.0.3).
        self._server_auth = _Auth(server.server_jwt_secret, None, server.jwt_ttl_seconds, clock)
        self._versions: dict[str, tuple[AmsVersion, float]] = {}
        self._versions_lock = threading.Lock()
        self._pool = ThreadPoolExecutor(server.max_concurrency, thread_name_prefix=f"ams-{server.name}")
        verify = False if server.tls_insecure_skip_verify else (server.ca_file or True)
        limits = httpx.Limits(max_connections=server.max_concurrency + 4,
                              max_keepalive_connections=server.max_concurrency + 4)
        self._http = httpx.Client(
            base_url=server.url,
            transport=transport if transport is not None else _deadline_transport(verify, limits),
            verify=verify,
            timeout=server.timeout_seconds,
            follow_redirects=False,
            headers={"Accept": "application/json", "User-Agent": "antmedia-exporter"},
            limits=limits,
        )

    def close(self) -> None:
        """Release connections and worker threads."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._http.close()

    def __enter__(self) -> AmsClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---------------------------------------------------------------- transport

    def _request(
        self, method: str, path: str, app: str | None, *, params=None, body: bytes | None = None,
        deadline: float | None = None, allow_404: bool = False,
    ) -> _Reply:
        """One HTTP exchange mapped to typed errors; a 403 with a minted token is retried once.

        app None means the management (root) REST, authenticated by the server JWT.
        """
        auth = self._auth if app is not None else self._server_auth
        reply = self._exchange(method, path, app, params, body, deadline)
        if reply.status_code == 403 and auth.mints and auth.observe(reply.server_time):
            reply = self._exchange(method, path, app, params, body, deadline)
        return self._check(method, path, reply, allow_404)

    def _exchange(self, method, path, app, params, body, deadline) -> _Reply:
        """Send one request, ended by a total deadline; transport failures become AmsUnavailableError."""
        headers = dict(_JSON_HEADERS) if method != "GET" else {}
        if app is None:
            auth, header = self._server_auth, self._server_auth.header(False)
            if header:
                headers["ProxyAuthorization"] = header
        else:
            auth, header = self._auth, self._auth.header(self._bearer(app))
            if header:
                headers["Authorization"] = header
        at, budget = self._deadline(deadline)
        token = _REQUEST_DEADLINE.set(at)
        try:
            with self._http.stream(method, path, params=params, content=body, headers=headers,
                                   timeout=max(at - time.monotonic(), 0.001)) as response:
                content = self._read_body(response, method, path, at)
        except httpx.ConnectTimeout:
            raise (AmsDeadlineError if budget else AmsUnreachableError)(f"{method} {path}: connect timed out") from None
        except httpx.TimeoutException:
            raise (AmsDeadlineError if budget else AmsUnavailableError)(f"{method} {path}: timed out") from None
        except httpx.ConnectError as exc:
            raise AmsUnreachableError(f"{method} {path}: {type(exc).__name__}: {exc}") from None
        except httpx.HTTPError as exc:
            raise AmsUnavailableError(f"{method} {path}: {type(exc).__name__}: {exc}") from None
        finally:
            _REQUEST_DEADLINE.reset(token)
        server_time = parse_http_date(response.headers.get("date"))
        if response.status_code != 403:
            auth.observe(server_time)
        return _Reply(response.status_code, content, server_time)

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

    def _deadline(self, deadline: float | None) -> tuple[float, bool]:
        """The request's total deadline: timeout_seconds from now, or earlier when the caller's budget (the
        deadline argument or deadline_scope) ends first; True when the budget is what ends it."""
        now = time.monotonic()
        own = now + self.server.timeout_seconds
        budgets = [d for d in (deadline, _BUDGET.get()) if d is not None]
        budget = min(budgets) if budgets else None
        if budget is not None and budget <= now:
            raise AmsDeadlineError(f"no time left within {self.server.timeout_seconds:g}s")
        if budget is not None and budget < own:
            return budget, True
        return own, False

    @staticmethod
    def _check(method: str, path: str, reply: _Reply, allow_404: bool) -> _Reply:
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

    def _bearer(self, app: str) -> bool:
        """Whether this app's (cached) version wants the 'Bearer ' prefix; unknown -> raw token."""
        cached = self._versions.get(app)
        return cached[0].bearer_prefix if cached else False

    def _get_json(self, path: str, app: str, what: str, deadline: float | None = None, allow_404=False,
                  decode: Callable[[bytes, str], object] = decode_json):
        """GET and decode; returns (data, reply); data is None on 404 when allowed."""
        reply = self._request("GET", path, app, deadline=deadline, allow_404=allow_404)
        if reply.status_code == 404:
            return None, reply
        return decode(reply.content, what), reply

    @staticmethod
    def _base(app: str) -> str:
        """Path prefix of an app's broadcast REST resource."""
        return f"/{seg(app)}/rest/v2/broadcasts"

    # ---------------------------------------------------------------- version

    def version(self, app: str, deadline: float | None = None) -> AmsVersion:
        """The app's AMS version from /{app}/rest/v2/version (cached for a few minutes)."""
        now = time.monotonic()
        cached = self._versions.get(app)
        if cached and now - cached[1] < VERSION_TTL_SECONDS:
            return cached[0]
        data, _ = self._get_json(f"/{seg(app)}/rest/v2/version", app, "version", deadline)
        version = parse_version(data)
        if not version.known:
            log.warning("ams=%s app=%s: AMS version %r not recognised; using the safe behaviour of every version",
                        self.server.name, app, version.name)
        with self._versions_lock:
            self._versions[app] = (version, now)
        return version

    # ---------------------------------------------------------------- reading

    def count(self, app: str, deadline: float | None = None) -> int:
        """Number of broadcast records (GET /count)."""
        data, _ = self._get_json(f"{self._base(app)}/count", app, "count", deadline)
        return parse_count(data)

    def snapshot(self, app: str, deadline: float | None = None) -> AppSnapshot:
        """One pass over an app: version, every broadcast (paged concurrently) and room membership."""
        deadline = self._overall(deadline)
        version = self.version(app, deadline)
        broadcasts, server_time, rejected = self._list_broadcasts(app, deadline)
        conference = self._list_conference_rooms(app, version, deadline) if version.has_conference_rooms else []
        return AppSnapshot(
            app=app, version=version, server_time=server_time, broadcasts=broadcasts,
            rooms=build_rooms(broadcasts, conference), rejected_records=rejected,
        )

    def _overall(self, deadline: float | None) -> float:
        """A deadline for a multi-request pass (its pages run in other threads, outside deadline_scope)."""
        if deadline is None:
            deadline = time.monotonic() + self.server.timeout_seconds
        budget = _BUDGET.get()
        return deadline if budget is None else min(deadline, budget)

    def _record_limit(self, total: int | None, size: int) -> int:
        """Raw records one list may return: /count plus a margin, never above max_records."""
        cap = self.server.max_records
        if total is None:
            return cap
        if total > cap:
            raise AmsLimitError(f"/count says {total} records, above max_records {cap}")
        return min(cap, total + max(size, math.ceil(total * LIST_MARGIN_FRACTION)))

    def _list_broadcasts(self, app: str, deadline: float | None):
        """All broadcasts, AMS's clock (earliest list Date: ages err young) and the rejected record count."""
        base = self._base(app)

        def fetch(offset: int, size: int) -> _Page:
            """One list page, parsed into records in the thread that fetched it."""
            path = f"{base}/list/{offset}/{size}"
            data, reply = self._get_json(path, app, "broadcast list", deadline, decode=decode_broadcast_list)
            _require_list(path, reply, data)
            items, rejected = parse_broadcast_page(data)
            return _Page(items, len(data) if data else 0, rejected, reply.server_time, _first(data))

        try:
            total = self._pool.submit(self._count_hint, app, deadline)
        except RuntimeError:  # the pool is shut down: close() was called
            raise AmsUnavailableError("client closed") from None
        pages = self._fetch_pages(fetch, self.server.page_size, total, deadline)
        unique: dict[str, Broadcast] = {}
        for page in pages:  # records shifting between pages repeat: keep each one's first copy
            for b in page.items:
                unique.setdefault(b.stream_id, b)
        self._check_complete(app, len(unique) + sum(p.rejected for p in pages), total, deadline)
        times = [p.server_time for p in pages if p.server_time is not None]
        return tuple(unique.values()), (min(times) if times else None), sum(p.rejected for p in pages)

    def _check_complete(self, app: str, seen: int, total, deadline: float | None) -> None:
        """Raise AmsIncompleteError when the list came back markedly shorter than /count, twice.

        v3.x MongoStore answers a failed list query with an empty page (HTTP 200, []), so a page that
        failed mid-list looks like the end of the list; only /count tells. A second /count, after the
        list, takes out records deleted while the pages were read.
        """
        expected = total.result() if hasattr(total, "result") else total
        if expected is None or not _short(seen, expected):
            return
        try:
            recount = self.count(app, deadline)
        except AmsError as exc:
            raise AmsIncompleteError(f"list of {app}: {seen} records, /count said {expected}; "
                                     f"/count again failed: {exc}") from None
        if _short(seen, recount):
            raise AmsIncompleteError(f"list of {app}: {seen} records, /count says {recount}")

    def _count_hint(self, app: str, deadline: float | None) -> int | None:
        """Total from /count to plan concurrent pages; None when it cannot be had (paging still works)."""
        try:
            return self.count(app, deadline)
        except AmsError:
            return None

    def _fetch_pages(self, fetch: Callable[[int, int], _Page], size: int, total, deadline) -> list[_Page]:
        """Page with offset += len(page) until a short page; later pages fetched concurrently, bounded.

        A list that runs past /count plus a margin, or past max_records, is refused (AmsLimitError):
        a server paging forever costs a bounded number of requests, never unbounded memory.
        """
        first = fetch(0, size)
        total = total.result() if hasattr(total, "result") else total
        limit = self._record_limit(total, size)
        if first.raw_length < size:
            if not (total and total > first.raw_length > 0):
                return [first]
            size = first.raw_length  # the server caps pages below what was asked
        pages, offset, seen = [first], first.raw_length, first.raw_length
        stop = threading.Event()  # set by the first failing page: pages not started yet are not requested

        def guarded(page_offset: int) -> _Page:
            """One page of a batch; a repeat of the first page (the offset ignored) stops the rest at once."""
            if stop.is_set():
                raise AmsMalformedError("list paging stopped")
            try:
                page = fetch(page_offset, size)
                if page.raw_length and page.first == first.first:
                    raise AmsMalformedError("list paging does not advance (offset ignored)")
                return page
            except Exception:
                stop.set()
                raise

        while True:
            offsets = self._plan(offset, size, total, limit - seen)
            batch = self._pool.map(guarded, offsets)
            try:
                for page in batch:
                    if page.raw_length and page.first == pages[-1].first:
                        raise AmsMalformedError("list paging does not advance (offset ignored)")
                    pages.append(page)
                    seen += page.raw_length
                    if seen > limit:
                        raise AmsLimitError(f"list goes on past {limit} records (/count {total}, "
                                            f"max_records {self.server.max_records})")
                    if page.raw_length < size:
                        return pages
            finally:
                batch.close()  # cancels the pages not started yet (an error must not keep fetching)
            offset = offsets[-1] + size
            if total is not None and offset >= total:
                total = None if offset > total else total

    def _plan(self, offset: int, size: int, total: int | None, room: int) -> list[int]:
        """Offsets for the next concurrent batch: up to the known total, else max_concurrency pages;
        never more than one page past the records still allowed (room)."""
        if total is not None and offset < total:
            # Bounded batches: a bogus /count must not plan millions of requests at once.
            count = min(-(-(total - offset) // size), PLAN_BATCH_PAGES)
        elif total is not None:
            count = 1  # one page to confirm nothing was added since /count
        else:
            count = self.server.max_concurrency
        count = max(1, min(count, room // size + 1))
        return [offset + i * size for i in range(count)]

    def _list_conference_rooms(self, app: str, version: AmsVersion, deadline) -> list[tuple[str, tuple[str, ...]]]:
        """v2.8.x ConferenceRoom records; on an unrecognised version a 404 means there are none."""
        base = self._base(app)

        def fetch(offset: int, size: int) -> _Page:
            """One conference-room page."""
            path = f"{base}/conference-rooms/list/{offset}/{size}"
            data, reply = self._get_json(path, app, "conference room list", deadline, allow_404=not version.known)
            if reply.status_code != 404:
                _require_list(path, reply, data)
            items = parse_conference_room_page(data)
            return _Page(items, len(data) if isinstance(data, list) else 0, 0, reply.server_time, _first(data))

        pages = self._fetch_pages(fetch, self.server.page_size, None, deadline)
        return [room for page in pages for room in page.items]

    def cluster_nodes(self, deadline: float | None = None) -> tuple[ClusterNode, ...] | None:
        """The cluster's node registry with AMS's own alive/dead verdicts; None on a standalone server.

        Management REST (ClusterRestServiceV2 L47-73, same at 2.8.2 and 3.0.3). A standalone server
        answers the node list with HTTP 500 (no cluster bean), so cluster-mode-status decides first.
        """
        mode, _ = self._get_json("/rest/v2/cluster-mode-status", None, "cluster mode", deadline, allow_404=True)
        if mode is None or not parse_result(mode).success:
            return None
        nodes: list[ClusterNode] = []
        size = self.server.page_size
        for _ in range(MAX_NODE_PAGES):
            data, _ = self._get_json(f"/rest/v2/cluster/nodes/{len(nodes)}/{size}", None, "cluster nodes", deadline)
            page = parse_cluster_node_page(data)
            nodes.extend(page)
            if len(data or ()) < size:
                return tuple(nodes)
        raise AmsMalformedError(f"cluster nodes: more than {MAX_NODE_PAGES} pages")

    def get_broadcast(self, app: str, stream_id: str) -> Fetched:
        """A fresh GET of one broadcast; broadcast is None on 404."""
        data, reply = self._get_json(f"{self._base(app)}/{seg(stream_id)}", app, "broadcast", allow_404=True)
        if reply.status_code == 404:
            return Fetched(None, reply.server_time)
        broadcast = parse_broadcast(data)
        if broadcast is None:
            raise AmsMalformedError("broadcast: response has no usable streamId")
        if broadcast.stream_id != stream_id:  # a proxy or a broken AMS answering for another record
            raise AmsMalformedError(f"broadcast: asked for {stream_id!r}, AMS answered {broadcast.stream_id!r}")
        return Fetched(broadcast, reply.server_time)

    def answers(self, app: str) -> bool:
        """Whether the host answers HTTP at all, whatever the status: False only when no connection could be
        made (refused, or not accepted within the timeout), the test AMS's own isHostRunning makes. A node
        that lost its database still answers (an error page is an answer)."""
        try:
            self._exchange("GET", f"/{seg(app)}/rest/v2/version", app, None, None, None)
        except AmsDeadlineError:
            raise
        except AmsUnreachableError:
            return False
        except AmsUnavailableError:
            return True  # connected, then no good answer: the host is there
        return True

    def broadcast_statistics(self, app: str, stream_id: str) -> int:
        """totalRTMPWatchersCount of GET /{id}/broadcast-statistics: -1 unless THIS node holds a live broadcast
        scope for the stream, the lookup that also makes a stop succeed (MultiThreadedApplicationAdapter
        L803-813). A read: never forwarded to another node (RestProxyFilter L53 @2.8.2, L52 @3.0.3)."""
        data, _ = self._get_json(f"{self._base(app)}/{seg(stream_id)}/broadcast-statistics", app,
                                 "broadcast statistics")
        return parse_broadcast_statistics(data)

    def get_room_members(self, app: str, room_id: str) -> set[str]:
        """Stream ids listed in a room, from every room model the version has."""
        return set(self.room_view(app, room_id).members)

    def room_view(self, app: str, room_id: str, main: Broadcast | None | bool = True) -> RoomView:
        """A room's members by every room model the version has, and whether its ConferenceRoom record exists.

        main: the room's own record when the caller has just read it (None: there is none), so
        that its subTrackStreamIds cost no second GET; True to read it here.
        """
        version = self.version(app)
        members: set[str] = set()
        record = False
        if version.has_subtrack_ids:
            if main is True:
                data, _ = self._get_json(f"{self._base(app)}/{seg(room_id)}", app, "broadcast", allow_404=True)
                main = parse_broadcast(data) if data is not None else None
            if isinstance(main, Broadcast):
                members.update(main.subtrack_ids or ())
        if version.has_conference_rooms:
            listed = self.conference_room(app, room_id)
            record = listed is not None
            members.update(listed or ())
        if version.has_subtracks_endpoint:
            members.update(self._subtrack_ids(app, room_id, allow_404=not version.known))
        members.discard(room_id)
        return RoomView(frozenset(members), record)

    def conference_room(self, app: str, room_id: str) -> tuple[str, ...] | None:
        """roomStreamList of a v2.8.x ConferenceRoom; None when there is no such record."""
        data, _ = self._get_json(f"{self._base(app)}/conference-rooms/{seg(room_id)}", app,
                                 "conference room", allow_404=True)
        if data is None:
            return None
        room = parse_conference_room(data)
        if room is None:
            raise AmsMalformedError("conference room: response has no usable roomId")
        return room[1]

    def _subtrack_ids(self, app: str, room_id: str, allow_404: bool) -> set[str]:
        """3.x: ids of every subtrack of a main track (paged; a missing main track has none)."""
        path = f"{self._base(app)}/{seg(room_id)}/subtracks"
        ids: set[str] = set()
        offset, size = 0, self.server.page_size
        for _ in range(min(MAX_SUBTRACK_PAGES, self.server.max_records // size + 1)):
            data, reply = self._get_json(f"{path}/{offset}/{size}", app, "subtracks", allow_404=True,
                                         decode=decode_broadcast_list)
            if reply.status_code != 404:
                _require_list(f"{path}/{offset}/{size}", reply, data)
            items, _ = parse_broadcast_page(data) if reply.status_code != 404 else ([], 0)
            ids.update(b.stream_id for b in items if b.joined_room)
            length = len(data) if isinstance(data, list) else 0
            if length < size:
                return ids
            offset += length
        raise AmsMalformedError(f"subtracks of {room_id}: more than {MAX_SUBTRACK_PAGES} pages")

    # ---------------------------------------------------------------- writing

    def _write(self, method: str, path: str, app: str, params=None, body=None) -> Result:
        """Send a write; 404 gives Result(success=False, status_code=404); the body's success decides."""
        payload = json.dumps(body).encode() if body is not None else None
        reply = self._request(method, path, app, params=params, body=payload, allow_404=True)
        if reply.status_code == 404:
            data = _quiet_json(reply.content)
            message = data.get("message") if isinstance(data, dict) else None
            return Result(False, message if isinstance(message, str) else "not found", status_code=404)
        return parse_result(decode_json(reply.content, f"{method} result"), reply.status_code)

    def stop_broadcast(self, app: str, stream_id: str) -> Result:
        """POST /{id}/stop; stopSubtracks=false where the version would otherwise stop a room's members."""
        params = {"stopSubtracks": "false"} if self.version(app).delete_subtracks_param else None
        return self._write("POST", f"{self._base(app)}/{seg(stream_id)}/stop", app, params)

    def remove_subtrack(self, app: str, room_id: str, stream_id: str) -> Result:
        """DELETE /{room}/subtrack?id={stream}: take the stream out of the main track (before deleting it)."""
        return self._write("DELETE", f"{self._base(app)}/{seg(room_id)}/subtrack", app, {"id": stream_id})

    def remove_room_member(self, app: str, room_id: str, stream_id: str, exists: bool | None = None) -> Result:
        """v2.8.x: DELETE /conference-rooms/{room}/{stream}, only if the ConferenceRoom record exists.

        exists: what a read just now (room_view) found, so no second GET is needed; None: read it here.
        """
        if not self.version(app).has_conference_rooms:
            return Result(False, "this AMS version has no conference room records", status_code=404)
        if exists is None:
            exists = self.conference_room(app, room_id) is not None
        if not exists:
            return Result(False, "conference room not found", status_code=404)
        return self._write("DELETE", f"{self._base(app)}/conference-rooms/{seg(room_id)}/{seg(stream_id)}", app)

    def delete_broadcast(self, app: str, stream_id: str) -> Result:
        """DELETE /{id}, with deleteSubtracks=false wherever the version has that parameter."""
        params = {"deleteSubtracks": "false"} if self.version(app).delete_subtracks_param else None
        return self._write("DELETE", f"{self._base(app)}/{seg(stream_id)}", app, params)

    def finish_broadcast(self, app: str, stream_id: str, expect_update_ms: int | None = None) -> Result:
        """Set status finished (see update_broadcast)."""
        return self.update_broadcast(app, stream_id, {"status": "finished"}, expect_update_ms)

    def update_broadcast(self, app: str, stream_id: str, changes: dict[str, Any],
                         expect_update_ms: int | None = None) -> Result:
        """PUT /{id}: a partial body where safe (2.10.1+), else the full fresh record changed (never partial).

        expect_update_ms: on versions that need the full record, the PUT is sent only if the record read
        for it still carries that updateTime (a record that moved on is answered success=false, unsent).
        """
        version = self.version(app)
        path = f"{self._base(app)}/{seg(stream_id)}"
        if version.partial_put_safe:
            return self._write("PUT", path, app, body=changes)
        if not version.known:
            raise AmsError(f"refusing PUT on unrecognised AMS version {version.name!r}: a partial body may wipe fields")
        data, reply = self._get_json(path, app, "broadcast", allow_404=True)
        if reply.status_code == 404:
            return Result(False, "broadcast not found", status_code=404)
        record = parse_broadcast(data) if isinstance(data, dict) else None
        if record is None or record.stream_id != stream_id:
            raise AmsMalformedError("broadcast: cannot PUT back a malformed record")
        if expect_update_ms is not None and record.update_time_ms != expect_update_ms:
            return Result(False, f"updateTime moved to {record.update_time_ms}; not written", status_code=409)
        return self._write("PUT", path, app, body={**data, **changes})


def _require_list(path: str, reply: _Reply, data) -> None:
    """A list endpoint answers a JSON array, [] when empty; no body (HTTP 204) or null is a failed query."""
    if data is None:
        # v2.8.x MongoStore returns null when the query throws, and Jersey sends null as 204
        # (MongoStore.getBroadcastList L414-418, getConferenceRoomList L331-359 @ams-v2.8.2)
        raise AmsIncompleteError(f"GET {path}: HTTP {reply.status_code} with no list (AMS's database query failed)")


def _short(seen: int, expected: int) -> bool:
    """Markedly fewer records than expected (or none of a non-empty list)."""
    missing = expected - seen
    return missing > max(SHORT_LIST_SLACK, expected * SHORT_LIST_FRACTION) or (seen == 0 and expected > 0)


def _first(data) -> str | None:
    """Fingerprint of a page: its first raw entry."""
    return repr(data[0]) if isinstance(data, list) and data else None


def _quiet_json(content: bytes):
    """Best-effort JSON for optional bodies (404 messages); None when not JSON."""
    try:
        return decode_json(content, "body")
    except AmsMalformedError:
        return None

