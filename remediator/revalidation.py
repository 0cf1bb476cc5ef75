"""Per-AMS revalidation and eviction, through the AMS layer's client and ghost predicate."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from ams import ghost
from ams.client import AmsClient
from ams.errors import AmsAuthError, AmsDeadlineError, AmsError, AmsUnavailableError
from ams.model import Broadcast, Fetched, Result, RoomView
from ams.server import AmsServer
from remediator.metrics import RemediatorMetrics
from remediator.outcomes import Decided

__all__ = ["Calls", "Revalidation", "Revalidator", "Target", "revalidate"]

WRITES = frozenset({"stop", "remove_subtrack", "remove_room_member", "delete", "finish"})
# ClusterNode.NODE_UPDATE_PERIOD (5 s, L19 @3.0.3) plus a second: a live node rewrites its registry
# heartbeat within it whatever its clock says.
NODE_HEARTBEAT_SECONDS = 6.0
MAX_NODES_REMEMBERED = 10000
REGISTRY_REUSE_SECONDS = 1.0  # one registry read serves the alerts of a notification
# Removal attempts per room: AMS lists an id at most twice (see _leave_room); one more to be sure.
MAX_ROOM_REMOVALS = 3


@dataclass(frozen=True, slots=True)
class Revalidation:
    """A fresh look at one broadcast: the verdict, the record, and the rooms it is in."""

    verdict: ghost.Verdict
    broadcast: Broadcast | None
    rooms: tuple[str, ...]
    conference_records: tuple[str, ...] = ()  # rooms with a v2.8.x ConferenceRoom record, as read just now


def revalidate(client: AmsClient, app: str, stream_id: str, room: str | None, evidence_ms: int | None) -> Revalidation:
    """Fresh GET plus room checks on AMS, judged by the shared ghost predicate.

    Stale on one clock: the alert fired because Prometheus saw updateTime keep the value
    evidence_ms for longer than the threshold, on its own sample times; a fresh read showing that
    very value means it has not advanced since. Any other value (or no evidence) is not a ghost.
    Each thing is read once: the record, each candidate room, the stream as a room (its own record
    standing in for a second GET): 3 requests on 3.x, 4 on 2.8.x for a stream in one room.
    """
    b = client.get_broadcast(app, stream_id).broadcast
    if b is None:
        return Revalidation(ghost.Verdict(False, "not_found"), None, ())
    candidates = sorted({r for r in (b.main_track_id, room) if r and r != stream_id})
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

    def run(self, action: str, what: str, fn: Callable, *args: Any) -> Any:
        """Call fn(*args); AMS errors become the alert's decision."""
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

    def plan(self, non_zombi_action: str) -> str:
        """The eviction steps, for the audit line and the answer."""
        steps = ["stop"]
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
    """Everything the remediator does on one configured AMS."""

    def __init__(self, server: AmsServer, client: Any, metrics: RemediatorMetrics,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.server = server
        self.client = client
        self.metrics = metrics
        self.apps = frozenset(server.apps)
        self.clock = clock  # this process's monotonic clock: how long things stood still, never AMS's
        self._nodes: dict[str, tuple[int, float]] = {}  # node ip -> (lastUpdateTime seen, when first seen so)
        self._registry_cache: tuple[float, object] | None = None
        self._lock = threading.Lock()
        self._live: dict[str, tuple[float, int]] = {}

    def calls(self, log: list[dict[str, Any]]) -> Calls:
        """A call recorder for one alert."""
        return Calls(self.server.name, log, self.metrics)

    def revalidate(self, app: str, stream: str, label_room: str | None, evidence_ms: int | None,
                   calls: Calls) -> Target:
        """Fresh GET, rooms and the shared ghost predicate; stale only if updateTime is the evidence's."""
        version = calls.run("get", "version", self.client.version, app)
        check = calls.run("get", f"revalidate {stream}", revalidate, self.client, app, stream, label_room,
                          evidence_ms)
        verdict, b = check.verdict, check.broadcast
        if b is None:
            raise Decided("skipped", "not_found", "AMS has no such broadcast")
        if verdict.reason in ("main_track", "not_pushed"):
            raise Decided("skipped", verdict.reason, f"type {b.type}" if verdict.reason == "not_pushed" else "")
        if not verdict.is_ghost:
            seen = "" if evidence_ms is None else f" (updateTime {b.update_time_ms}, alert saw {evidence_ms})"
            raise Decided("skipped", "not_ghost", f"{verdict.reason}{seen}")
        rooms = tuple(check.rooms)
        return Target(app=app, stream_id=stream, room=rooms[0] if rooms else None, rooms=rooms,
                      zombi=b.zombi, conference_rooms=version.has_conference_rooms,
                      reason=verdict.reason, evidence_ms=b.update_time_ms, origin=b.origin,
                      finished=b.status == "finished", conference_records=check.conference_records)

    @property
    def reads_nodes(self) -> bool:
        """True when AMS's node registry can be read (a server secret is configured)."""
        return bool(self.server.server_jwt_secret)

    def node_dead(self, origin: str, calls: Calls) -> bool | None:
        """AMS's verdict, read now, on the node named origin, confirmed on this process's clock.

        AMS calls a node dead by comparing the answering node's clock with the registry heartbeat
        the node wrote with its own, so a node whose clock lags reads dead while alive. Dead here also
        needs that heartbeat (lastUpdateTime) to have stood still across this process's own reads for
        longer than a node's heartbeat period; until then the decision is deferred (Alertmanager
        retries). None when AMS keeps no registry or does not list the node.
        """
        if not self.reads_nodes or not origin:
            return None
        nodes = calls.run("get", "cluster nodes", self._read_registry)
        node = next((n for n in nodes or () if n.ip == origin), None)
        if node is None:
            return None
        still = self._registry_still(node.ip, node.last_update_ms)
        if not node.dead:
            return False
        if still <= NODE_HEARTBEAT_SECONDS:
            raise Decided("deferred", "node_unconfirmed",
                          f"AMS reads {node.ip} dead; its registry heartbeat has stood still {still:.1f} s here")
        return True

    def watch_nodes(self) -> None:
        """Read the registry (at most once a second) so that a node's stillness is known before it is needed.

        Ghosts of a node that died fire first as ghosts of a live node (AMS needs 20 s to call it dead):
        reading the registry then means its death can be confirmed at once when AMS says it. A read that
        fails costs nothing here: node_dead reads again when it matters.
        """
        if self.reads_nodes:
            try:
                self._read_registry()
            except AmsError:
                pass

    def _read_registry(self):
        """AMS's node list, reused for a second; every fresh read updates the nodes' stillness."""
        now = self.clock()
        with self._lock:
            cached = self._registry_cache
            if cached is not None and now - cached[0] < REGISTRY_REUSE_SECONDS:
                return cached[1]
        nodes = self.client.cluster_nodes()
        for node in nodes or ():
            self._registry_still(node.ip, node.last_update_ms)
        with self._lock:
            self._registry_cache = (now, nodes)
        return nodes

    def _registry_still(self, ip: str, last_update_ms: int) -> float:
        """Seconds this process has seen the node's registry heartbeat keep its value."""
        now = self.clock()
        with self._lock:
            seen = self._nodes.get(ip)
            if seen is None or seen[0] != last_update_ms:
                if len(self._nodes) >= MAX_NODES_REMEMBERED:
                    self._nodes.clear()
                seen = self._nodes[ip] = (last_update_ms, now)
        return now - seen[1]

    def live_count(self, app: str, calls: Calls, ttl: float) -> int:
        """Publishers that claim to be live, cached for ttl seconds (one list pass per app)."""
        now = self.clock()
        with self._lock:
            cached = self._live.get(app)
            if cached and cached[0] > now:
                return cached[1]
        snapshot = calls.run("get", "list", self.client.snapshot, app)
        members = snapshot.members
        count = sum(1 for b in snapshot.broadcasts
                    if ghost.is_pushed(b) and ghost.claims_live(b, members) and not ghost.is_main_track(b, snapshot))
        with self._lock:
            self._live[app] = (now + ttl, count)
        return count

    def evict(self, target: Target, non_zombi_action: str, calls: Calls) -> None:
        """Stop, leave every room, then delete (zombi) or finish/delete (non-zombi); abort on any sign of life.

        The order limits what a wrong verdict can cost a live participant: the stop comes first and
        alone, and if it finds a publisher to stop (success: a ghost has none on the node that
        answers) nothing else is written, so the participant keeps its record and its room and can
        resume. The record is read again before the rooms are touched and again right before the
        record itself is: each write after the stop needs the very record the alert's evidence saw.
        A record gone after the stop was removed by AMS's own stop or by another replica, and its id
        may already carry a new publisher: nothing more is written then.
        """
        app, stream = target.app, target.stream_id
        stopped = calls.run("stop", stream, self.client.stop_broadcast, app, stream)
        if stopped.success:
            raise Decided("failed", "alive_on_stop", "AMS found a publisher to stop; nothing else written")
        if not self._unchanged(target, calls):
            return
        for room in target.rooms:
            self._leave_room(target, room, calls)
        if target.finished and not target.zombi and non_zombi_action != "delete":
            return
        if not self._unchanged(target, calls):
            return
        if target.zombi or non_zombi_action == "delete":
            self._delete(target, calls)
        else:
            result = calls.run("finish", stream, self.client.finish_broadcast, app, stream)
            if not result.success:
                raise Decided("failed", "write_failed", f"finish: {result.message or 'success=false'}")

    def _unchanged(self, target: Target, calls: Calls) -> bool:
        """The record as the alert's evidence saw it (True), gone (False), or moved on (aborts: alive)."""
        again = calls.run("get", f"broadcast {target.stream_id}", self.client.get_broadcast, target.app,
                          target.stream_id).broadcast
        if again is None:
            return False
        if again.update_time_ms != target.evidence_ms or not ghost.is_pushed(again):
            raise Decided("failed", "heartbeat_resumed",
                          f"updateTime moved to {again.update_time_ms} during the eviction; nothing else written")
        return True

    def _leave_room(self, target: Target, room: str, calls: Calls) -> None:
        """Both room models, repeated while AMS still lists the stream (bounded); judged by what AMS reports.

        AMS can list an id twice (a multitrack ConferenceRoom, RestServiceBase L1856 @2.8.2) while
        MapDB removes one copy per call (MapBasedDataStore L1029), and MongoDB answers a removal
        that changed nothing with success=false (MongoStore L824): only the listing counts.
        """
        app, stream = target.app, target.stream_id
        for _ in range(MAX_ROOM_REMOVALS):
            calls.run("remove_subtrack", f"{room}/{stream}", self.client.remove_subtrack, app, room, stream)
            if target.conference_rooms:
                calls.run("remove_room_member", f"{room}/{stream}", self.client.remove_room_member, app, room, stream,
                          room in target.conference_records)
            members = calls.run("get", f"members of {room}", self.client.get_room_members, app, room)
            if stream not in members:
                return
        raise Decided("failed", "write_failed", f"still listed in room {room} after {MAX_ROOM_REMOVALS} removals")

    def _delete(self, target: Target, calls: Calls) -> None:
        """DELETE the record; success=false is fine only when the record is gone."""
        app, stream = target.app, target.stream_id
        result = calls.run("delete", stream, self.client.delete_broadcast, app, stream)
        if result.success:
            return
        again = calls.run("get", f"broadcast {stream}", self.client.get_broadcast, app, stream)
        if again.broadcast is not None:
            raise Decided("failed", "write_failed", f"delete: {result.message or 'success=false'}")
