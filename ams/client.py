"""AMS REST client: the endpoints, with AMS's URLs, version quirks and the checks on what AMS answers.

HTTP, auth headers, size caps and the total deadline are ams.transport's; the bounded list paging is
ams.paging's. The errors and deadline_scope are re-exported here for the services.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any
from urllib.parse import quote

import httpx

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
from ams.paging import MAX_NODE_PAGES, MAX_SUBTRACK_PAGES, Page, Pager, fingerprint, is_short, require_list
from ams.server import AmsServer
from ams.transport import Reply, Transport, deadline_scope

__all__ = [
    "AmsAuthError", "AmsClient", "AmsDeadlineError", "AmsError", "AmsIncompleteError", "AmsLimitError",
    "AmsMalformedError", "AmsUnavailableError", "AmsVersion", "AppSnapshot", "Broadcast", "Fetched", "Result",
    "deadline_scope",
]

log = logging.getLogger(__name__)

VERSION_TTL_SECONDS = 300.0  # re-detect now and then: servers get upgraded in place


def seg(value: str) -> str:
    """Quote one path segment, so an id can never add path components."""
    return quote(value, safe="")


class AmsClient:
    """Synchronous client for one configured AMS; thread-safe; close() when done."""

    def __init__(
        self,
        server: AmsServer,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.time,
    ):
        self.server = server
        self._transport = Transport(server, transport, clock)
        self._versions: dict[str, tuple[AmsVersion, float]] = {}
        self._versions_lock = threading.Lock()
        self._pool = ThreadPoolExecutor(server.max_concurrency, thread_name_prefix=f"ams-{server.name}")
        self._pager = Pager(self._pool, server.max_concurrency, server.max_records)

    def close(self) -> None:
        """Release connections and worker threads."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._transport.close()

    def __enter__(self) -> AmsClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---------------------------------------------------------------- requests

    def _request(self, method: str, path: str, app: str | None, *, params=None, body: bytes | None = None,
                 deadline: float | None = None, allow_404: bool = False) -> Reply:
        """One exchange through the transport; app None means the management (root) REST."""
        return self._transport.request(method, path, management=app is None,
                                  bearer=app is not None and self._bearer(app), params=params, body=body,
                                  deadline=deadline, allow_404=allow_404)

    def _bearer(self, app: str) -> bool:
        """Whether this app's (cached) version wants the 'Bearer ' prefix; unknown -> raw token."""
        cached = self._versions.get(app)
        return cached[0].bearer_prefix if cached else False

    def _get_json(self, path: str, app: str | None, what: str, deadline: float | None = None, allow_404=False,
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
        deadline = self._transport.overall(deadline)
        version = self.version(app, deadline)
        broadcasts, server_time, rejected = self._list_broadcasts(app, deadline)
        conference = self._list_conference_rooms(app, version, deadline) if version.has_conference_rooms else []
        return AppSnapshot(
            app=app, version=version, server_time=server_time, broadcasts=broadcasts,
            rooms=build_rooms(broadcasts, conference), rejected_records=rejected,
        )

    def _list_broadcasts(self, app: str, deadline: float | None):
        """All broadcasts, AMS's clock (earliest list Date: ages err young) and the rejected record count."""
        base = self._base(app)

        def fetch(offset: int, size: int) -> Page:
            """One list page, parsed into records in the thread that fetched it."""
            path = f"{base}/list/{offset}/{size}"
            data, reply = self._get_json(path, app, "broadcast list", deadline, decode=decode_broadcast_list)
            require_list(path, reply.status_code, data)
            items, rejected = parse_broadcast_page(data)
            return Page(items, len(data) if data else 0, rejected, reply.server_time, fingerprint(data))

        try:
            total = self._pool.submit(self._count_hint, app, deadline)
        except RuntimeError:  # the pool is shut down: close() was called
            raise AmsUnavailableError("client closed") from None
        pages = self._pager.pages(fetch, self.server.page_size, total)
        unique: dict[str, Broadcast] = {}
        for page in pages:  # records shifting between pages repeat: keep each one's first copy
            for b in page.items:
                unique.setdefault(b.stream_id, b)
        self._check_complete(app, len(unique) + sum(p.rejected for p in pages), total, deadline)
        times = [p.server_time for p in pages if p.server_time is not None]
        return tuple(unique.values()), (min(times) if times else None), sum(p.rejected for p in pages)

    def _check_complete(self, app: str, seen: int, total: Future, deadline: float | None) -> None:
        """Raise AmsIncompleteError when the list came back markedly shorter than /count, twice.

        v3.x MongoStore answers a failed list query with an empty page (HTTP 200, []), so a page that
        failed mid-list looks like the end of the list; only /count tells. A second /count, after the
        list, takes out records deleted while the pages were read.
        """
        expected = total.result()
        if expected is None or not is_short(seen, expected):
            return
        try:
            recount = self.count(app, deadline)
        except AmsError as exc:
            raise AmsIncompleteError(f"list of {app}: {seen} records, /count said {expected}; "
                                     f"/count again failed: {exc}") from None
        if is_short(seen, recount):
            raise AmsIncompleteError(f"list of {app}: {seen} records, /count says {recount}")

    def _count_hint(self, app: str, deadline: float | None) -> int | None:
        """Total from /count to plan concurrent pages; None when it cannot be had (paging still works)."""
        try:
            return self.count(app, deadline)
        except AmsError:
            return None

    def _list_conference_rooms(self, app: str, version: AmsVersion, deadline) -> list[tuple[str, tuple[str, ...]]]:
        """v2.8.x ConferenceRoom records; on an unrecognised version a 404 means there are none."""
        base = self._base(app)

        def fetch(offset: int, size: int) -> Page:
            """One conference-room page."""
            path = f"{base}/conference-rooms/list/{offset}/{size}"
            data, reply = self._get_json(path, app, "conference room list", deadline, allow_404=not version.known)
            if reply.status_code != 404:
                require_list(path, reply.status_code, data)
            items = parse_conference_room_page(data)
            return Page(items, len(data) if isinstance(data, list) else 0, 0, reply.server_time, fingerprint(data))

        pages = self._pager.pages(fetch, self.server.page_size, None)
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
            self._transport.exchange("GET", f"/{seg(app)}/rest/v2/version", bearer=self._bearer(app))
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
                require_list(f"{path}/{offset}/{size}", reply.status_code, data)
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


def _quiet_json(content: bytes):
    """Best-effort JSON for optional bodies (404 messages); None when not JSON."""
    try:
        return decode_json(content, "body")
    except AmsMalformedError:
        return None

