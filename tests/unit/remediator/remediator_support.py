"""In-memory fakes and payload builders for the remediator tests."""
from __future__ import annotations

import copy
import io
import json
import threading
from pathlib import Path
from typing import Any

from msgspec.structs import replace

from ams.errors import AmsUnavailableError
from ams.model import (
    AppSnapshot,
    Broadcast,
    ClusterNode,
    Fetched,
    Result,
    RoomView,
    build_rooms,
    parse_version,
)
from ams.server import AmsServer
from remediator.actions import Remediator
from remediator.app import Deps, create_app
from remediator.decisions import AuditLog, RemediatorMetrics
from remediator.revalidation import Revalidator
from service.config import parse_remediator

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "alertmanager"
TOKEN = "s3cret-webhook-token"
APP = "WebRTCAppEE"
NOW = 1_800_000_000.0
# Longer than any wait of the remediator's own (3.x: one 10 s period, the 0.5 s write delay, the 3 s cache).
WITNESS_RETRY_SECONDS = 14.0


def fixture(name: str) -> dict[str, Any]:
    """A payload fixture as a dict."""
    return json.loads((FIXTURES / name).read_text())


def alert(stream: str, room: str | None = "room1", status: str = "firing", ams: str = "main",
          app: str = APP, starts_at: str = "2026-11-25T00:00:00Z", heartbeat: float | None = NOW - 60,
          **labels: str) -> dict[str, Any]:
    """One alert shaped like the firing fixture's; heartbeat is its evidence (FakeAms.add's default age)."""
    item = copy.deepcopy(fixture("firing.json")["alerts"][0])
    item["annotations"].pop("heartbeat_timestamp", None)
    if heartbeat is not None:
        item["annotations"]["heartbeat_timestamp"] = f"{heartbeat:.3f}"
    item["status"] = status
    item["startsAt"] = starts_at
    item["labels"].update({"ams": ams, "app": app, "stream_id": stream})
    if room is None:
        item["labels"].pop("room")
    else:
        item["labels"]["room"] = room
    item["labels"].update(labels)
    item["fingerprint"] = f"fp-{ams}-{app}-{stream}"[:64]
    return item


def notification(*alerts: dict[str, Any], truncated: int = 0) -> dict[str, Any]:
    """A webhook body around the given alerts."""
    body = fixture("firing.json")
    body["alerts"] = list(alerts)
    body["truncatedAlerts"] = truncated
    return body


def post(client, body: Any, token: str | None = TOKEN, raw: bytes | None = None):
    """POST /alerts with a bearer token; sent again, as Alertmanager does, while the remediator answers 503
    only because it has not yet seen a heartbeat stand still long enough itself (client.retry_clock, when
    set, is moved on to the end of that wait first)."""
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    data = raw if raw is not None else json.dumps(body)
    response = client.post("/alerts", data=data, headers=headers, content_type="application/json")
    clock = getattr(client, "retry_clock", None)
    for _ in range(3):
        if clock is None or response.status_code != 503:
            break
        outcomes = (response.get_json(silent=True) or {}).get("outcomes") or []
        if not any(o["reason"] == "observing" for o in outcomes):
            break
        clock.sleep(WITNESS_RETRY_SECONDS)
        response = client.post("/alerts", data=data, headers=headers, content_type="application/json")
    return response


def settings_doc(**overrides: Any) -> dict[str, Any]:
    """A remediator section with relaxed guards; the test's overrides win."""
    doc: dict[str, Any] = {
        "dry_run": False, "webhook_token_env": "REMEDIATOR_TEST_TOKEN", "concurrency": 2,
        "caps": {"max_evictions": None, "max_evictions_per_app": None},
        "blast_radius": {"enabled": False},
    }
    doc.update(overrides)
    return doc


def remediator_config(**overrides: Any):
    """Parse a remediator section for tests."""
    return parse_remediator(settings_doc(**overrides), environ={"REMEDIATOR_TEST_TOKEN": TOKEN})


def server(name: str = "main", url: str = "http://127.0.0.1:9", **kw: Any) -> AmsServer:
    """An `ams:` entry."""
    return AmsServer(name=name, url=url, apps=(APP,), **kw)


class Clock:
    """A settable clock."""

    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Monotonic(Clock):
    """The remediator's own monotonic clock in tests; sleep() is time passing between two deliveries of
    Alertmanager, with what the world does meanwhile."""

    def __init__(self) -> None:
        super().__init__(1000.0)
        self.slept: list[float] = []
        self.meanwhile: list = []  # what the world does while the remediator waits (called with the seconds)

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        for happen in self.meanwhile:
            happen(seconds)


def build_deps(clients: dict[str, Any], config=None, alertmanager=None, clock=None,
               servers: dict[str, AmsServer] | None = None, monotonic: Monotonic | None = None,
               node_clients: dict[str, Any] | None = None):
    """Deps around injected AMS clients (fakes or real), with an in-memory audit log.

    monotonic: the remediator's own clock (app_client's retries move it); node_clients: the clients of
    cluster nodes by registry address.
    """
    config = config or remediator_config()
    servers = servers or {name: server(name) for name in clients}
    pairs = [(s.name, app) for s in servers.values() for app in s.apps]
    metrics = RemediatorMetrics(pairs, dry_run=config.dry_run)
    monotonic = monotonic or Monotonic()
    nodes = node_clients or {}

    def node_client(ip: str):
        if ip not in nodes:
            raise AmsUnavailableError(f"no test client for node {ip}")
        return nodes[ip]

    revalidators = {n: Revalidator(servers[n], c, metrics, clock=monotonic, node_client=node_client)
                    for n, c in clients.items()}
    audit_buffer = io.StringIO()
    remediator = Remediator(config, revalidators, metrics, AuditLog(audit_buffer), alertmanager=alertmanager,
                            clock=clock or Clock(), concurrency=config.concurrency, monotonic=monotonic)
    remediator.own_clock = monotonic
    metrics.watch_holds(remediator.holds.all)
    metrics.watch_countdowns(remediator.countdowns.armed, pairs)
    deps = Deps(remediator=remediator, metrics=metrics, token=config.token, max_body_bytes=config.max_body_bytes)
    return deps, audit_buffer


def app_client(deps: Deps, retry: bool = True):
    """Flask test client for deps; post() through it delivers again while the remediator waits to see a
    heartbeat stand still (retry=False: every answer as it comes)."""
    client = create_app(deps).test_client()
    client.retry_clock = getattr(deps.remediator, "own_clock", None) if retry else None
    return client


def audit_lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    """Parsed audit lines."""
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def sample(deps: Deps, name: str, **labels: str) -> float:
    """A sample value from the remediator's registry (0 when absent)."""
    value = deps.metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


class FakeAms:
    """In-memory AMS behind the client API; records writes; can be taken down."""

    def __init__(self, version: str = "2.8.2", now: float = NOW) -> None:
        self.ver = parse_version({"versionName": version})
        self.now = now
        self.records: dict[str, Broadcast] = {}
        self.writes: list[tuple[str, str]] = []
        self.down = False
        self.refused_calls = 0
        self.live: set[str] = set()  # streams whose publisher a stop here would find
        self.scopes: set[str] = set()  # streams this node holds a live broadcast scope for
        self.nodes: list[ClusterNode] | None = None  # the cluster's registry; None: standalone
        self.server = server()
        self._lock = threading.Lock()

    def add(self, stream: str, room: str | None = "room1", age: float = 60.0, zombi: bool = True,
            status: str = "broadcasting", origin: str = "", publish_type: str = "WebRTC") -> None:
        """A publisher whose last heartbeat is age seconds old (AMS clock)."""
        self.records[stream] = Broadcast(
            stream_id=stream, status=status, type="liveStream", publish_type=publish_type,
            update_time_ms=int((self.now - age) * 1000), main_track_id=room or "", zombi=zombi,
            subtrack_ids=None if self.ver.at_least(3, 0) else (), origin=origin)
        if room and room not in self.records:
            self.records[room] = Broadcast(stream_id=room, status="broadcasting", zombi=True,
                                           virtual=True if self.ver.at_least(2, 13) else None)

    def beat(self, stream: str, seconds: float = 1.0) -> None:
        """The publisher writes a heartbeat: updateTime moves on."""
        record = self.records[stream]
        self.records[stream] = replace(record, update_time_ms=record.update_time_ms + int(seconds * 1000))

    def _check(self) -> None:
        if self.down:
            self.refused_calls += 1
            raise AmsUnavailableError("connection refused")

    def members(self, room: str) -> set[str]:
        """Streams that name room as their main track."""
        return {s for s, b in self.records.items() if b.main_track_id == room and s != room}

    def version(self, app: str):
        self._check()
        return self.ver

    def get_broadcast(self, app: str, stream: str) -> Fetched:
        self._check()
        record = self.records.get(stream)
        if record is not None and not self.ver.at_least(3, 0) and self.members(stream):
            record = replace(record, subtrack_ids=tuple(sorted(self.members(stream))))
        return Fetched(record, self.now)

    def get_room_members(self, app: str, room: str) -> set[str]:
        self._check()
        return self.members(room)

    def conference_room(self, app: str, room: str) -> tuple[str, ...] | None:
        self._check()
        return None

    def room_view(self, app: str, room: str, main=True) -> RoomView:
        self._check()
        return RoomView(frozenset(self.members(room)), False)

    def cluster_nodes(self):
        self._check()
        return None if self.nodes is None else tuple(self.nodes)

    def snapshot(self, app: str) -> AppSnapshot:
        self._check()
        records = tuple(self.get_broadcast(app, s).broadcast for s in list(self.records))
        return AppSnapshot(app=app, version=self.ver, server_time=self.now, broadcasts=records,
                           rooms=build_rooms(records))

    def _write(self, action: str, target: str) -> None:
        self._check()
        with self._lock:
            self.writes.append((action, target))

    def stop_broadcast(self, app: str, stream: str) -> Result:
        self._write("stop", stream)
        return Result(success=stream in self.live)

    def broadcast_statistics(self, app: str, stream: str) -> int:
        """-1 unless a live scope is held here (self.scopes)."""
        self._check()
        return 0 if stream in self.scopes else -1

    def update_broadcast(self, app: str, stream: str, changes: dict, expect_update_ms: int | None = None) -> Result:
        self._write("name_room" if "mainTrackStreamId" in changes else "put", stream)
        record = self.records.get(stream)
        if record is None:
            return Result(success=False, status_code=404)
        if expect_update_ms is not None and record.update_time_ms != expect_update_ms:
            return Result(success=False, message="moved", status_code=409)
        fields = {"status": "status", "mainTrackStreamId": "main_track_id"}
        self.records[stream] = replace(record, **{fields[k]: v for k, v in changes.items()})
        return Result(success=True)

    def remove_subtrack(self, app: str, room: str, stream: str) -> Result:
        self._write("remove_subtrack", f"{room}/{stream}")
        record = self.records.get(stream)
        if record is None or record.main_track_id != room:
            return Result(success=False, message=f"There is no stream with id:{stream}")
        self.records[stream] = replace(record, main_track_id="")
        return Result(success=True)

    def remove_room_member(self, app: str, room: str, stream: str, exists: bool | None = None) -> Result:
        self._write("remove_room_member", f"{room}/{stream}")
        return Result(success=True)

    def delete_broadcast(self, app: str, stream: str) -> Result:
        self._write("delete", stream)
        return Result(success=self.records.pop(stream, None) is not None)

    def finish_broadcast(self, app: str, stream: str, expect_update_ms: int | None = None) -> Result:
        self._write("finish", stream)
        record = self.records.get(stream)
        if record is None:
            return Result(success=False, status_code=404)
        if expect_update_ms is not None and record.update_time_ms != expect_update_ms:
            return Result(success=False, message="moved", status_code=409)
        self.records[stream] = replace(record, status="finished")
        return Result(success=True)

    def close(self) -> None:
        pass


class FakeNode:
    """One cluster node's own REST, as the remediator reaches it at node_url: live scopes and stops are
    this node's alone; down: its host does not answer."""

    def __init__(self, ver, ams: "FakeAms | None" = None) -> None:
        self.ver = ver
        self.ams = ams  # the shared store, read through this node's own cache (copies)
        self.copies: dict[str, Broadcast] = {}
        self.live: set[str] = set()
        self.scopes: set[str] = set()
        self.down = False
        self.writes: list[tuple[str, str]] = []
        self.reads = 0

    def _check(self) -> None:
        self.reads += 1
        if self.down:
            raise AmsUnavailableError("connection refused")

    def version(self, app: str):
        self._check()
        return self.ver

    def broadcast_statistics(self, app: str, stream: str) -> int:
        self._check()
        return 0 if stream in self.scopes else -1

    def get_broadcast(self, app: str, stream: str) -> Fetched:
        self._check()
        if stream in self.copies:
            return Fetched(self.copies[stream], None)
        return self.ams.get_broadcast(app, stream) if self.ams is not None else Fetched(None, None)

    def answers(self, app: str) -> bool:
        self.reads += 1
        return not self.down

    def stop_broadcast(self, app: str, stream: str) -> Result:
        self._check()
        self.writes.append(("stop", stream))
        return Result(success=stream in self.live)

    def close(self) -> None:
        pass
