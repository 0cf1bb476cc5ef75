"""Per-AMS revalidation and eviction, through the AMS layer's client and ghost predicate."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import msgspec

from ams import ghost
from ams.client import AmsClient
from ams.errors import AmsAuthError, AmsDeadlineError, AmsError, AmsUnavailableError
from ams.model import Broadcast, ClusterNode, Fetched, Result, RoomView, is_node_address
from ams.server import AmsServer
from remediator.decisions import Decided, RemediatorMetrics
from remediator.guards import NodeWatch, Stillness

__all__ = ["Calls", "Revalidation", "Revalidator", "Target", "revalidate"]

WRITES = frozenset({"stop", "remove_subtrack", "remove_room_member", "delete", "finish", "name_room"})
REGISTRY_REUSE_SECONDS = 1.0  # one registry read serves the alerts of a notification
# One list pass of a 2.x app shows which rooms list an id; reused by the alerts of a few seconds.
SNAPSHOT_REUSE_SECONDS = 5.0
MAX_NODE_CLIENTS = 256
# Removal attempts per room: AMS lists an id at most twice (see _leave_room); one more to be sure.
MAX_ROOM_REMOVALS = 3


@dataclass(frozen=True, slots=True)
class Revalidation:
    """A fresh look at one broadcast: the verdict, the record, and the rooms it is in."""

    verdict: ghost.Verdict
    broadcast: Broadcast | None
    rooms: tuple[str, ...]
    conference_records: tuple[str, ...] = ()  # rooms with a v2.8.x ConferenceRoom record, as read just now


def revalidate(client: AmsClient, app: str, stream_id: str, room: str | None, evidence_ms: int | None,
               also: tuple[str, ...] = ()) -> Revalidation:
    """Fresh GET plus room checks on AMS, judged by the shared ghost predicate.

    Stale on one clock: the alert fired because Prometheus saw updateTime keep the value
    evidence_ms for longer than the threshold, on its own sample times; a fresh read showing that
    very value means it has not advanced since. Any other value (or no evidence) is not a ghost.
    Each thing is read once: the record, each candidate room, the stream as a room (its own record
    standing in for a second GET): 3 requests on 3.x, 4 on 2.8.x for a stream in one room.
    also: more rooms that may list the id (2.8.x keeps a participant listed in a room it left).
    """
    b = client.get_broadcast(app, stream_id).broadcast
    if b is None:
        return Revalidation(ghost.Verdict(False, "not_found"), None, ())
    candidates = sorted({r for r in (b.main_track_id, room, *also) if r and r != stream_id})
    views = {r: client.room_view(app, r) for r in candidates}
    listed = tuple(r for r in candidates if stream_id in views[r].members)
    rooms = tuple(sorted(set(listed) | ({b.main_track_id} - {"", stream_id})))
    stale = None if evidence_ms is None else b.update_time_ms == evidence_ms
    own: RoomView = client.room_view(app, stream_id, main=b)
    verdict = ghost.ghost_verdict(b, stale, bool(listed), bool(own.members) or own.conference_record)
    records = tuple(r for r in rooms if r in views and views[r].conference_record)
    return Revalidation(verdict, b, rooms, records)


def _result_kind(value: Any) -> str:
    """success / failure / not_found for what a client call returned."""
    if isinstance(value, Result):
        if value.success:
            return "success"
        return "not_found" if value.status_code == 404 else "failure"
    if isinstance(value, (Fetched, Revalidation)):
        return "success" if value.broadcast is not None else "not_found"
    return "success"


class Calls:
    """Runs client calls for one alert: records them for the audit line and the metrics."""

    def __init__(self, ams: str, log: list[dict[str, Any]], metrics: RemediatorMetrics) -> None:
        self.ams, self.log, self.metrics = ams, log, metrics
        self.wrote = False  # a write request went out (whatever AMS answered): it counts against the caps
        # Called right before every write: raises Decided when writes are held (evidence of life elsewhere).
        self.gate: Callable[[], None] = lambda: None

    def run(self, action: str, what: str, fn: Callable, *args: Any) -> Any:
        """Call fn(*args); AMS errors become the alert's decision; every write passes the gate first."""
        if action in WRITES:
            self.gate()
        entry: dict[str, Any] = {"action": action, "target": what}
        self.log.append(entry)
        self.wrote = self.wrote or action in WRITES
        try:
            value = fn(*args)
        except AmsDeadlineError as exc:  # the notification's time is up, AMS is not known to be down
            self._count(entry, action, "unavailable", str(exc))
            raise Decided("deferred", "timeout", f"{action} {what}: {exc}"[:300]) from None
        except AmsUnavailableError as exc:
            self._count(entry, action, "unavailable", str(exc))
            raise Decided("deferred", "ams_unavailable", f"{action} {what}: {exc}"[:300]) from None
        except AmsAuthError as exc:
            self._count(entry, action, "failure", str(exc))
            raise Decided("failed", "ams_auth", f"{action} {what}: {exc}"[:300]) from None
        except AmsError as exc:
            self._count(entry, action, "failure", str(exc))
            raise Decided("failed", "ams_error", f"{action} {what}: {exc}"[:300]) from None
        self._count(entry, action, _result_kind(value), getattr(value, "message", None))
        return value

    def _count(self, entry: dict[str, Any], action: str, result: str, message: str | None) -> None:
        """Fill the audit entry and count the call."""
        entry["result"] = result
        if message:
            entry["message"] = message[:200]
        self.metrics.ams_requests.labels(ams=self.ams, action=action, result=result).inc()


@dataclass(frozen=True)
class Target:
    """A ghost confirmed on AMS just now, with what eviction needs to know."""

    app: str
    stream_id: str
    room: str | None
    rooms: tuple[str, ...]
    zombi: bool
    conference_rooms: bool
    reason: str
    evidence_ms: int
    origin: str = ""  # originAdress of the fresh read: the node that ingested the stream
    finished: bool = False  # AMS already reads it finished: a finishing PUT would change nothing
    conference_records: tuple[str, ...] = ()  # rooms whose ConferenceRoom record the revalidation read
    publish_type: str = "unknown"
    # The stored status alone refuses a same-id publish (streamIdInUse, WebSocketCommunityHandler L96-107
    # @2.8.2, until the computed status of 2.13): no rejoin can race the writes until the last one frees the id.
    stored_status_blocks: bool = False
    room_writes: bool = False  # 2.x: a room list can be made to name the room before the subtrack DELETE
    # 3.x cluster: the live nodes whose own read cache a same-id rejoin refreshes (each re-read asks them all).
    readers: tuple[str, ...] = ()

    def plan(self, non_zombi_action: str, stop: bool = True) -> str:
        """The eviction steps, for the audit line and the answer."""
        steps = ["stop"] if stop else []
        for room in self.rooms:
            steps.append(f"remove_subtrack({room})")
            if self.conference_rooms:
                steps.append(f"remove_room_member({room})")
        if self.zombi or non_zombi_action == "delete":
            steps.append("delete")
        elif not self.finished:
            steps.append(non_zombi_action)
        return ", ".join(steps)


class Revalidator:
    """Everything the remediator reads and writes on one configured AMS (and on its cluster's nodes)."""

    def __init__(self, server: AmsServer, client: Any, metrics: RemediatorMetrics,
                 clock: Callable[[], float] = time.monotonic,
                 node_client: Callable[[str], Any] | None = None) -> None:
        self.server = server
        self.client = client
        self.metrics = metrics
        self.apps = frozenset(server.apps)
        self.clock = clock  # this process's monotonic clock: how long things stood still, never AMS's
        self.stillness = Stillness(clock)
        self.nodes = NodeWatch(clock)
        self._node_client = node_client
        self._node_clients: dict[str, Any] = {}
        self._registry_cache: tuple[float, object] | None = None
        self._lock = threading.Lock()
        self._snapshots: dict[str, tuple[float, Any]] = {}

    def calls(self, log: list[dict[str, Any]]) -> Calls:
        """A call recorder for one alert."""
        return Calls(self.server.name, log, self.metrics)

    def close(self) -> None:
        """Close the clients of this AMS and of its nodes."""
        with self._lock:
            clients = [self.client, *self._node_clients.values()]
            self._node_clients.clear()
        for client in clients:
            client.close()

    # ------------------------------------------------------------ reading the stream

    def witness_seconds(self, app: str) -> float:
        """How long this process must itself see a heartbeat unchanged: one period plus AMS's delays."""
        return ghost.witness_seconds(self.server, self.client.version(app))

    def revalidate(self, app: str, stream: str, label_room: str | None, evidence_ms: int | None,
                   calls: Calls) -> Target:
        """Fresh GET, rooms and the shared ghost predicate; stale only if updateTime is the evidence's."""
        version = calls.run("get", "version", self.client.version, app)
        also = self._rooms_listing(app, stream, calls) if version.has_conference_rooms else ()
        check = calls.run("get", f"revalidate {stream}", revalidate, self.client, app, stream, label_room,
                          evidence_ms, also)
        verdict, b = check.verdict, check.broadcast
        if b is None:
            raise Decided("skipped", "not_found", "AMS has no such broadcast")
        if verdict.reason in ("main_track", "not_pushed"):
            raise Decided("skipped", verdict.reason, f"type {b.type}" if verdict.reason == "not_pushed" else "")
        if not verdict.is_ghost:
            seen = "" if evidence_ms is None else f" (updateTime {b.update_time_ms}, alert saw {evidence_ms})"
            raise Decided("skipped", "not_ghost", f"{verdict.reason}{seen}")
        self.stillness.seen((app, stream, b.update_time_ms))
        rooms = tuple(check.rooms)
        return Target(app=app, stream_id=stream, room=rooms[0] if rooms else None, rooms=rooms,
                      zombi=b.zombi, conference_rooms=version.has_conference_rooms,
                      reason=verdict.reason, evidence_ms=b.update_time_ms, origin=b.origin,
                      finished=b.status == "finished", conference_records=check.conference_records,
                      publish_type=b.publish_type, stored_status_blocks=not version.computed_status,
                      room_writes=version.has_subtrack_ids)

    def watch(self, app: str, stream: str, calls: Calls) -> Broadcast | None:
        """One light read of an armed countdown's stream (the record only), shown to the witness."""
        b = calls.run("get", f"broadcast {stream}", self.client.get_broadcast, app, stream).broadcast
        if b is not None:
            self.stillness.seen((app, stream, b.update_time_ms))
        return b

    def still_for(self, target: Target) -> float:
        """Seconds this process has seen the target's heartbeat keep its value (read just now)."""
        return self.stillness.seen((target.app, target.stream_id, target.evidence_ms))

    def _rooms_listing(self, app: str, stream: str, calls: Calls) -> tuple[str, ...]:
        """2.x: every room a recent list shows the id in (a participant stays listed in a room it left
        cleanly, AntMediaApplicationAdapter L508-514 @2.8.2); each is read again before it is judged."""
        snapshot = self._snapshot(app, calls, SNAPSHOT_REUSE_SECONDS)
        return tuple(sorted(room for room, members in snapshot.rooms.items() if stream in members))

    def _snapshot(self, app: str, calls: Calls, ttl: float):
        """One list pass per app, reused for ttl seconds by every alert."""
        now = self.clock()
        with self._lock:
            cached = self._snapshots.get(app)
            if cached and cached[0] > now:
                return cached[1]
        snapshot = calls.run("get", "list", self.client.snapshot, app)
        with self._lock:
            self._snapshots[app] = (now + ttl, snapshot)
        return snapshot

    def live_count(self, app: str, calls: Calls, ttl: float) -> int:
        """Publishers that claim to be live (one list pass per app, reused for ttl seconds)."""
        snapshot = self._snapshot(app, calls, ttl)
        members = snapshot.members
        return sum(1 for b in snapshot.broadcasts
                   if ghost.is_pushed(b) and ghost.claims_live(b, members) and not ghost.is_main_track(b, snapshot))

    # ------------------------------------------------------------ the cluster's nodes

    @property
    def reads_nodes(self) -> bool:
        """True when AMS's node registry can be read (a server secret is configured)."""
        return bool(self.server.server_jwt_secret)

    def origin_node(self, target: Target, calls: Calls) -> ClusterNode | None:
        """The registry entry of the record's origin node, read now; None on a standalone AMS or without
        the server secret (then AMS is one node to this process). A cluster that does not list the
        origin, or lists it under an address that cannot be a URL host, holds the stream."""
        if not self.reads_nodes:
            return None
        nodes = calls.run("get", "cluster nodes", self.registry)
        if not nodes:
            return None
        node = next((n for n in nodes if n.ip == target.origin), None)
        if node is None or not is_node_address(node.ip):
            raise Decided("skipped", "node_unknown", f"AMS lists no usable node {target.origin or '(none)'}"[:200])
        return node

    def readers(self, calls: Calls) -> tuple[str, ...]:
        """Registry nodes AMS reads alive, each asked for the record before a write (3.x read caches)."""
        nodes = calls.run("get", "cluster nodes", self.registry) or ()
        return tuple(sorted(n.ip for n in nodes if not n.dead and is_node_address(n.ip)))[:MAX_NODE_CLIENTS]

    def node_client(self, ip: str):
        """A client of one registry node (node_url with {ip}); bounded by the registry's size."""
        with self._lock:
            client = self._node_clients.get(ip)
            if client is None:
                if len(self._node_clients) >= MAX_NODE_CLIENTS:
                    raise Decided("skipped", "node_unknown", f"more than {MAX_NODE_CLIENTS} nodes")
                factory = self._node_client or self._default_node_client
                client = self._node_clients[ip] = factory(ip)
            return client

    def _default_node_client(self, ip: str):
        """AmsClient of the node at node_url, with every other setting of this AMS."""
        return AmsClient(msgspec.structs.replace(self.server, url=self.server.node_base(ip)))

    def scope(self, client: Any, target: Target, where: str, calls: Calls) -> int | None:
        """broadcast-statistics answered by one node: >= 0 when it holds a live scope for the stream, -1
        when not, None when no answer came (the caller waits). Only positive evidence counts: whether a
        WebRTC publisher owns a scope is closed Enterprise code, so -1 proves nothing either way."""
        try:
            return calls.run("probe", f"statistics of {target.stream_id} on {where}", client.broadcast_statistics,
                             target.app, target.stream_id)
        except Decided as decision:
            if decision.reason == "ams_unavailable":
                return None
            raise

    def answers(self, ip: str, app: str, calls: Calls) -> bool:
        """Whether a node's host answers at all (any HTTP status): dead means unreachable."""
        return calls.run("probe", f"host {ip}", self.node_client(ip).answers, app)

    def registry(self):
        """AMS's node list, reused for a second; every fresh read is shown to the node watch."""
        now = self.clock()
        with self._lock:
            cached = self._registry_cache
            if cached is not None and now - cached[0] < REGISTRY_REUSE_SECONDS:
                return cached[1]
        nodes = self.client.cluster_nodes()
        for node in nodes or ():
            self.nodes.saw(node.ip, node.last_update_ms)
        with self._lock:
            self._registry_cache = (now, nodes)
        return nodes

    # ------------------------------------------------------------ writing

    def evict(self, target: Target, non_zombi_action: str, calls: Calls, stopper: Any | None,
              on_life: Callable[[str], None], stop_lock: Any) -> None:
        """Stop (on the origin), leave every room, then delete or finish; abort on any sign of life.

        The stop comes first and alone, sent to the node that holds the publisher if any does (stopper:
        the origin node's client, or this AMS when it is one node; None when the origin is confirmed
        dead and nothing can run there). One stop at a time per app, and evidence of life (a stop that
        found a publisher, or no answer to it) holds every later write before this returns. Each write
        after the stop needs the very record the alert's evidence saw; a record gone after the stop was
        removed by AMS's own stop or by another replica, and nothing more is written then.

        On 2.x the stored status refuses a same-id publish until a write changes it, so the write that
        frees the id (the DELETE, or the finish) is the last one: AMS has no conditional DELETE or room
        removal, and a write after it could land on the participant who rejoined meanwhile.
        """
        app, stream = target.app, target.stream_id
        if stopper is not None:
            with stop_lock:
                try:
                    stopped = calls.run("stop", stream, stopper.stop_broadcast, app, stream)
                except Decided as decision:
                    if decision.outcome == "deferred":  # no answer: the publisher may well be there
                        on_life("stop_unanswered")
                    raise
                if stopped.success:
                    on_life("alive_on_stop")
                    raise Decided("failed", "alive_on_stop", "AMS found a publisher to stop; nothing else written")
        for room in target.rooms:
            if not self._unchanged(target, calls, on_life):
                return  # read again before every write
            self._leave_room(target, room, calls)
        if target.finished and not target.zombi and non_zombi_action != "delete":
            return
        if not self._unchanged(target, calls, on_life):
            return
        if target.zombi or non_zombi_action == "delete":
            self._delete(target, calls)
            return
        result = calls.run("finish", stream, self.client.finish_broadcast, app, stream, target.evidence_ms)
        if result.status_code == 409:
            on_life("heartbeat_resumed")
            raise Decided("failed", "heartbeat_resumed", f"finish: {result.message}")
        if not result.success:
            raise Decided("failed", "write_failed", f"finish: {result.message or 'success=false'}")

    def _unchanged(self, target: Target, calls: Calls, on_life: Callable[[str], None]) -> bool:
        """The record as the evidence saw it (True), gone (False), or moved on (aborts and holds: alive)."""
        again = calls.run("get", f"broadcast {target.stream_id}", self.client.get_broadcast, target.app,
                          target.stream_id).broadcast
        if again is None:
            return False
        self._not_moved(target, again, on_life)
        # 3.x MongoStore serves GET /{id} from a per-node cache for 3 s, and only the node that wrote
        # refreshes its own copy (MongoStore L105-109, L940-947 @3.0.3): a same-id rejoin is seen at once
        # only on the node that took it, so in a cluster every live node is asked.
        for ip in target.readers:
            copy = calls.run("get", f"broadcast {target.stream_id} on {ip}", self.node_client(ip).get_broadcast,
                             target.app, target.stream_id).broadcast
            if copy is not None:
                self._not_moved(target, copy, on_life)
        return True

    @staticmethod
    def _not_moved(target: Target, again: Broadcast, on_life: Callable[[str], None]) -> None:
        """Abort and hold when a read shows the record moved on since the evidence."""
        if again.update_time_ms != target.evidence_ms or not ghost.is_pushed(again):
            on_life("heartbeat_resumed")
            raise Decided("failed", "heartbeat_resumed",
                          f"record moved on during the eviction (updateTime {again.update_time_ms}, status "
                          f"{again.status}); nothing else written")

    def _leave_room(self, target: Target, room: str, calls: Calls) -> None:
        """Both room models, repeated while AMS still lists the stream (bounded); judged by what AMS reports.

        AMS can list an id twice (a multitrack ConferenceRoom, RestServiceBase L1856 @2.8.2) while
        MapDB removes one copy per call (MapBasedDataStore L1029), and MongoDB answers a removal
        that changed nothing with success=false (MongoStore L824): only the listing counts. The 2.x
        subtrack DELETE pulls the id only after writing the record back with its mainTrackStreamId
        blanked when it names the room (BroadcastRestService L1172-1183 @2.8.2); on MongoDB that write
        fails when nothing changes, so a record naming another room is first made to name this one.
        """
        app, stream = target.app, target.stream_id
        for attempt in range(MAX_ROOM_REMOVALS):
            calls.run("remove_subtrack", f"{room}/{stream}", self.client.remove_subtrack, app, room, stream)
            if target.conference_rooms:
                calls.run("remove_room_member", f"{room}/{stream}", self.client.remove_room_member, app, room, stream,
                          room in target.conference_records)
            members = calls.run("get", f"members of {room}", self.client.get_room_members, app, room)
            if stream not in members:
                return
            if target.room_writes and attempt < MAX_ROOM_REMOVALS - 1:
                self._name_room(target, room, calls)
        raise Decided("failed", "write_failed", f"still listed in room {room} after {MAX_ROOM_REMOVALS} removals")

    def _name_room(self, target: Target, room: str, calls: Calls) -> None:
        """2.x: write the record back naming room as its main track (full record, the evidence's own)."""
        again = calls.run("get", f"broadcast {target.stream_id}", self.client.get_broadcast, target.app,
                          target.stream_id).broadcast
        if again is None or again.main_track_id == room:
            return
        result = calls.run("name_room", f"{room}/{target.stream_id}", self.client.update_broadcast, target.app,
                           target.stream_id, {"mainTrackStreamId": room}, target.evidence_ms)
        if result.status_code == 409:
            raise Decided("failed", "heartbeat_resumed", f"name room: {result.message}")

    def _delete(self, target: Target, calls: Calls) -> None:
        """DELETE the record; success=false is fine only when the record is gone."""
        app, stream = target.app, target.stream_id
        result = calls.run("delete", stream, self.client.delete_broadcast, app, stream)
        if result.success:
            return
        again = calls.run("get", f"broadcast {stream}", self.client.get_broadcast, app, stream)
        if again.broadcast is not None:
            raise Decided("failed", "write_failed", f"delete: {result.message or 'success=false'}")
