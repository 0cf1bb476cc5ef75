"""The Simulator: a simulated AMS world plus its HTTP server, usable in-process or as a command."""
import gc
import threading
from contextlib import contextmanager

from . import cluster
from . import participants as p
from . import sources
from .auth import AppAuth, ServerAuth
from .clock import Clock
from .control import Control
from .faults import Faults
from .fields import LIVE_STATUSES, TYPES
from .lifecycle import GhostLifecycle, WriteRecord
from .listeners import Listener, close_all, open_together
from .nodes import is_loopback, parse_nodes
from .store import Store
from .versions import AmsVersion
from .world import Heartbeat, Record, World
from .wsgi import AmsApp

DEFAULT_APPS = ("WebRTCAppEE",)


class Simulator:
    """A simulated Ant Media Server (2.8.x or 3.x, standalone or cluster) with participants, sources and faults."""

    def __init__(self, ams_version: str = "2.8.2", apps=DEFAULT_APPS, heartbeat_seconds: float | None = None,
                 jwt_secret: str | None = None, allowed_cidrs=("127.0.0.1",), clock_offset_seconds: float = 0.0,
                 clock: Clock | None = None, server_jwt_secret: str | None = None,
                 reconnect_grace_seconds: float = 10.0, nodes=None, proxy_clock_offset_seconds: float | None = None,
                 node_update_seconds: float = 5.0, read_cache_seconds: float = 3.0, store: str | None = None,
                 rtmp_inactivity_seconds: float = 60.0, webrtc_broadcast_scope: bool = False):
        self.version = AmsVersion.parse(ams_version)
        apps = _app_names(apps)
        timing = _timing(heartbeat_seconds, reconnect_grace_seconds, node_update_seconds, read_cache_seconds,
                         rtmp_inactivity_seconds)
        timing["webrtc_broadcast_scope"] = bool(webrtc_broadcast_scope)
        self.heartbeat_seconds = float(heartbeat_seconds or self.version.heartbeat_seconds)
        self.clock = clock or Clock()
        if clock_offset_seconds:
            self.clock.offset_seconds = float(clock_offset_seconds)
        self.world = World(self.version, apps, self.clock, self.heartbeat_seconds,
                           parse_nodes(nodes, self.clock.now()), cluster=nodes is not None, timing=timing,
                           store=_store(store, nodes is not None))
        self.proxy_clock_offset_seconds = proxy_clock_offset_seconds
        self.auth = AppAuth(self.version, jwt_secret, allowed_cidrs)
        self.server_auth = ServerAuth(server_jwt_secret)
        self.faults = Faults()
        self.writes: list[WriteRecord] = []
        self.stopping = threading.Event()
        self._server: Listener | None = None
        self._node_servers: dict[str, Listener] = {}

    # --- serving -----------------------------------------------------------------------

    @property
    def apps(self) -> tuple[str, ...]:
        """Application names."""
        return tuple(self.world.apps)

    @property
    def url(self) -> str:
        """Base URL, e.g. http://127.0.0.1:5080 (after start)."""
        if self._server is None:
            raise RuntimeError("simulator not started")
        return f"http://{self._server.host}:{self._server.port}"

    @property
    def port(self) -> int:
        """The bound port (after start)."""
        if self._server is None:
            raise RuntimeError("simulator not started")
        return self._server.port

    def wsgi_app(self) -> AmsApp:
        """The WSGI application (for embedding in another server)."""
        return AmsApp(self, Control(self))

    def start(self, host: str = "127.0.0.1", port: int = 0) -> "Simulator":
        """Serve in background threads (one per connection); port 0 picks a free port.

        In a cluster whose node addresses are loopback (127.0.0.0/8), each node also answers on its own address
        and the same port, as itself (no balancer); the main listener stays the load balancer."""
        if self._server is not None:
            raise RuntimeError("simulator already started")
        self.stopping.clear()
        control = Control(self)
        node_apps = {a: AmsApp(self, control, node_address=a) for a in self._listening_nodes(host)}
        self._server, self._node_servers = open_together(host, port, AmsApp(self, control), node_apps)
        return self

    def _listening_nodes(self, host: str) -> list[str]:
        """Node addresses that get their own listener: loopback nodes of a cluster that are up (not `host`)."""
        if not self.cluster:
            return []
        with self.world.lock:
            return [n.address for n in self.world.nodes.values()
                    if n.alive and is_loopback(n.address) and n.address != host]

    def node_url(self, address: str) -> str | None:
        """http://ADDRESS:PORT of a node's own listener, None when it has none (not loopback, down, not started)."""
        listener = self._node_servers.get(self._node(address))
        return None if listener is None else f"http://{address}:{listener.port}"

    def stop(self) -> None:
        """Stop serving (balancer and node listeners); held (timeout-fault) requests are released."""
        if self._server is None:
            return
        self.stopping.set()
        if self._node_servers:
            close_all([*self._node_servers.values(), self._server])
        else:
            self._server.close()
        self._server, self._node_servers = None, {}

    def __enter__(self) -> "Simulator":
        if self._server is None:
            self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- the world -----------------------------------------------------------------------

    def _app(self, app: str):
        """The app's store, or a ValueError naming the known apps."""
        try:
            return self.world.app(app)
        except KeyError:
            raise ValueError(f"unknown app {app!r}; this simulator serves {', '.join(self.world.apps)}") from None

    @property
    def reconnect_grace_seconds(self) -> float:
        """Session-recovery window (webRTCClientStartTimeoutMs) in simulated seconds."""
        return self.world.grace

    @property
    def store(self) -> str:
        """The data store: "mapdb" (the standalone default) or "mongodb" (the cluster default)."""
        return self.world.store.kind

    @property
    def cluster(self) -> bool:
        """True when the simulator models a cluster (shared store, node registry, per-node caches)."""
        return self.world.cluster

    @property
    def nodes(self) -> list[dict]:
        """Every node: address, id, clock offset, alive, database, url (its own listener, else None)."""
        with self.world.lock:
            described = [n.describe() for n in self.world.nodes.values()]
        for node in described:
            listener = self._node_servers.get(node["address"])
            node["url"] = None if listener is None else f"http://{node['address']}:{listener.port}"
        return described

    def date_seconds(self, node=None) -> float:
        """The HTTP Date of a reply: the proxy's clock when one is in front, else the answering node's."""
        now = self.clock.now()
        if self.proxy_clock_offset_seconds is not None:
            return now + float(self.proxy_clock_offset_seconds)
        return now + (node.offset if node is not None else 0.0)

    @contextmanager
    def _settled(self):
        """The world lock, with every scheduled event up to now applied; yields now."""
        with self.world.lock:
            now = self.clock.now()
            self.world.settle(now)
            yield now

    def _do(self, fn, app: str, *args, **kwargs):
        """Run a world operation under the lock at the current simulated time."""
        with self._settled() as now:
            return fn(self.world, self._app(app), *args, now, **kwargs)

    def create_room(self, app: str, room_id: str, mode: str = "legacy") -> None:
        """A room: main track (2.x zombi + ConferenceRoom record of `mode`; from 2.13 virtual).

        mode "multitrack" (2.x): every join lists the participant twice in subTrackStreamIds.
        """
        _check_id(room_id)
        self._do(p.create_room, app, room_id, mode=mode)

    def join(self, app: str, room_id: str, stream_id: str, name: str | None = None, node: str | None = None,
             zombi: bool = True) -> bool:
        """Publish into a room on `node` (default: next live node) with a heartbeat; False = streamIdInUse.

        zombi=False: the record is created through REST first; on 2.x a clean leave then finishes it and
        leaves it listed in the main track's subTrackStreamIds.
        """
        _check_id(room_id), _check_id(stream_id)
        return self._do(p.join, app, room_id, stream_id, name, node=node, zombi=zombi)

    def publish(self, app: str, stream_id: str, name: str | None = None, publish_type: str = "WebRTC",
                node: str | None = None, zombi: bool = True) -> bool:
        """A plain live stream (no room) on `node` with a heartbeat; False = streamIdInUse."""
        _check_id(stream_id)
        with self._settled() as now:
            return p.publish(self.world, self._app(app), stream_id, name, now, publish_type, node=node, zombi=zombi)

    def during_list(self, app: str, publish=(), remove=(), after_offset: int = 0, room: str | None = None) -> None:
        """Once, right after a broadcast list page of `app` at offset >= after_offset is served: publish the ids
        in `publish` (into `room` when given) and delete the records in `remove`, as a scrape in progress sees
        streams come and go. On MapDB (key order) an id added before the next page's offset shifts it by one."""
        for sid in (*publish, *remove):
            _check_id(sid)
        if room is not None:
            _check_id(room)
        state = self._app(app)

        def act(now: float) -> None:
            for sid in publish:
                if room is not None:
                    p.join(self.world, state, room, sid, None, now)
                else:
                    p.publish(self.world, state, sid, None, now)
            for sid in remove:
                if state.remove(sid) is not None:
                    self.world.note_deleted(state, sid, now)

        with self.world.lock:
            self.world.list_hooks.append((app, int(after_offset), act))

    def add_source(self, app: str, stream_id: str, type: str = "ipCamera", name: str | None = None,
                   node: str | None = None) -> None:
        """A pulled source (ipCamera, streamSource, playlist) whose fetcher is running."""
        _check_id(stream_id)
        with self._settled() as now:
            sources.add_source(self.world, self._app(app), stream_id, type, name, node, now)

    def stick_source(self, app: str, stream_id: str) -> bool:
        """The source stops delivering (keep-alive on 2.8.x; stale, then restarted by AMS on 2.14+)."""
        return self._do(sources.stick, app, stream_id)

    def blink(self, app: str, stream_id: str, seconds: float) -> bool:
        """Network blink: drop now, resume `seconds` later if within the grace window; False if not publishing."""
        return self._do(p.blink, app, stream_id, float(seconds))

    def kill_node(self, address: str) -> None:
        """The node crashes: its publishers stop heartbeating, it stops answering and heartbeating the registry;
        its own listener (if any) closes, so connections to it are refused."""
        with self._settled() as now:
            cluster.kill(self.world, self._node(address), now)
        listener = self._node_servers.pop(address, None)
        if listener is not None:
            listener.close()

    def revive_node(self, address: str) -> None:
        """The node restarts after a crash: it resets its own records (resetBroadcasts) and serves again, its own
        listener reopened on the same port."""
        with self._settled() as now:
            node = self.world.nodes[self._node(address)]
            if not node.db:
                raise ValueError(f"node {address!r} has no database; restore_database first (resetBroadcasts needs it)")
            cluster.revive(self.world, address, now)
        if self._server is not None and address not in self._node_servers and address in self._listening_nodes(
                self._server.host):
            self._node_servers[address] = Listener(address, self._server.port, AmsApp(self, Control(self), address),
                                                   f"ams-node-{address}")

    def set_node_clock(self, address: str, offset_seconds: float) -> None:
        """Set a node's clock offset from the simulator clock, as if it had always run with it (no MuxAdaptor
        gate; see step_node_clock for a clock that jumps while publishers are live)."""
        with self._settled():
            self.world.nodes[self._node(address)].offset = float(offset_seconds)

    def step_node_clock(self, address: str, seconds: float) -> None:
        """The node's clock jumps by `seconds` now (negative: back). Publishers live on it before the step write no
        stats until their node clock passes their last write plus one period again (about -seconds + period);
        publishers starting later write normally."""
        with self._settled() as now:
            cluster.step_clock(self.world, self._node(address), float(seconds), now)

    def lose_database(self, address: str) -> None:
        """The node loses its database: its sessions stay live on it, their stats writes and its registry heartbeat
        stop, the balancer stops routing to it, and its own address answers 500 for anything needing the store."""
        with self._settled() as now:
            cluster.lose_database(self.world, self._node(address), now)

    def restore_database(self, address: str) -> None:
        """The node reaches its database again: stats writes (at each writer's next try) and the registry heartbeat
        resume."""
        with self._settled() as now:
            cluster.restore_database(self.world, self._node(address), now)

    def _node(self, address: str) -> str:
        """A known node address, or a ValueError naming the known ones."""
        if address not in self.world.nodes:
            raise ValueError(f"unknown node {address!r}; nodes are {', '.join(self.world.nodes)}")
        return address

    def leave(self, app: str, stream_id: str) -> bool:
        """Clean leave (closeBroadcast); False if there is no such record."""
        return self._do(p.leave, app, stream_id)

    def drop(self, app: str, stream_id: str) -> bool:
        """Network drop: heartbeat stops, record and membership stay; False if not publishing."""
        return self._do(p.drop, app, stream_id)

    def resume(self, app: str, stream_id: str) -> bool:
        """Network back within session recovery: heartbeats resume on the same session."""
        return self._do(p.resume, app, stream_id)

    def can_publish(self, app: str, stream_id: str, node: str | None = None) -> bool:
        """Whether a publish of this id would be accepted now (no streamIdInUse): on 2.8.2 any stored status
        broadcasting or preparing refuses it, however old (WebSocketCommunityHandler L96-107 @ams-v2.8.2); from 2.13
        the computed status, read with `node`'s clock (default: the simulator clock, as join/publish/reconnect)."""
        with self._settled() as now:
            rec = self._app(app).records.get(stream_id)
            reader = self.world.nodes[self._node(node)] if node is not None else None
            return rec is None or self.world.status(rec, now, reader) not in LIVE_STATUSES

    def live_session(self, app: str, stream_id: str) -> dict | None:
        """The publisher's live session, None when none is connected: {"node", "publish_type", "writing"
        (its stats reach the store now), "silent" (RTMP connection open without packets), "scope" (its origin holds a
        broadcast scope, so broadcast-statistics there shows totalRTMPWatchersCount 0)}."""
        with self._settled() as now:
            rec = self._app(app).records.get(stream_id)
            if rec is None or rec.session is None:
                return None
            session = rec.session
            return {"node": session.origin, "publish_type": session.publish_type,
                    "writing": rec.hb is not None and now >= rec.hb.anchor,
                    "silent": session.silent_since is not None,
                    "scope": self.world.holds_scope(rec, self.world.nodes[session.origin])}

    def reconnect(self, app: str, stream_id: str, node: str | None = None) -> bool:
        """Republish the same id; False (streamIdInUse) while it still reads as live."""
        return self._do(p.reconnect, app, stream_id, node=node)

    def broadcast(self, app: str, stream_id: str) -> dict | None:
        """The record as the store holds it now (no read cache; status on the simulator clock), or None."""
        with self._settled() as now:
            rec = self._app(app).records.get(stream_id)
            return None if rec is None else self.world.render(rec, now)

    def broadcasts(self, app: str) -> list[dict]:
        """Every record of the app as AMS would serialize it now."""
        with self._settled() as now:
            return [self.world.render(r, now) for r in self._app(app).ordered()]

    def room_members(self, app: str, room_id: str) -> list[str]:
        """Ids the stored room model names, once each (subTrackStreamIds and roomStreamList on 2.x,
        mainTrackStreamId on 3.x)."""
        listing = self.room_listing(app, room_id)
        return list(dict.fromkeys(id_ for ids in listing.values() for id_ in ids))

    def room_listing(self, app: str, room_id: str) -> dict[str, list[str]]:
        """Every room model as stored, copies included: {"subTrackStreamIds", "roomStreamList"} on 2.x,
        {"mainTrackStreamId"} (records naming the room) on 3.x."""
        with self._settled():
            state = self._app(app)
            if not self.version.has_subtrack_ids:
                return {"mainTrackStreamId": [r.fields["streamId"] for r in state.subtracks(room_id)]}
            main, room = state.records.get(room_id), state.rooms.get(room_id)
            return {"subTrackStreamIds": list(main.fields.get("subTrackStreamIds") or []) if main else [],
                    "roomStreamList": list(room["roomStreamList"]) if room else []}

    def lifecycle(self, app: str, stream_id: str) -> GhostLifecycle:
        """Times (sim clock seconds) of drop, last heartbeat, unlisting, deletion, rejoinability."""
        with self._settled() as now:
            self._app(app)
            return self.world.lifecycle(app, stream_id, now)

    def add_records(self, app: str, count: int, status: str = "finished", type: str = "liveStream",
                    prefix: str = "rec") -> list[str]:
        """Bulk non-publishing records (finished streams, VoDs, ...); returns their ids."""
        if type not in TYPES:
            raise ValueError(f"unknown type {type!r}; expected one of {', '.join(TYPES)}")
        if not isinstance(count, int) or count < 0:
            raise ValueError("count must be a non-negative integer")
        with self._settled() as now, _no_gc():
            return _add_records(self.world, self._app(app), count, status, type, prefix, now)

    def populate(self, app: str, live: int = 10000, rooms: int = 500, prefix: str = "pop") -> list[str]:
        """Bulk live participants spread over rooms (rooms=0: plain live streams); returns their ids."""
        if live < 0 or rooms < 0:
            raise ValueError("live and rooms must not be negative")
        with self._settled() as now, _no_gc():
            return _populate(self.world, self._app(app), live, rooms, prefix, now)


@contextmanager
def _no_gc():
    """Pause the cyclic GC: bulk-creating tens of thousands of dicts would trigger repeated full collections."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _timing(heartbeat, grace, node_update, read_cache, rtmp_inactivity) -> dict:
    """The AMS periods and windows, validated (accelerated runs pass scaled values)."""
    if heartbeat is not None and not heartbeat > 0:
        raise ValueError("heartbeat_seconds must be positive")
    if not (grace >= 0 and node_update > 0 and read_cache >= 0 and rtmp_inactivity > 0):
        raise ValueError("reconnect_grace_seconds and read_cache_seconds must be >= 0, node_update_seconds and "
                         "rtmp_inactivity_seconds > 0")
    return {"reconnect_grace_seconds": float(grace), "node_update_seconds": float(node_update),
            "read_cache_seconds": float(read_cache), "rtmp_inactivity_seconds": float(rtmp_inactivity)}


def _store(kind: str | None, cluster: bool) -> Store:
    """The store AMS would run: MongoDB in a cluster (the nodes share it), MapDB standalone unless told."""
    # change_server_mode.sh: standalone without a DB URL is mapdb, cluster is mongodb (or redis, not modelled)
    # (src/main/server/conf/functions.sh L24-56 @ams-v2.8.2)
    kind = kind or ("mongodb" if cluster else "mapdb")
    if cluster and kind != "mongodb":
        raise ValueError(f"a cluster shares one MongoDB; store {kind!r} is standalone only")
    return Store(kind)


def _app_names(apps) -> tuple[str, ...]:
    """Validate app names."""
    if isinstance(apps, str):
        apps = [a for a in apps.split(",") if a.strip()]
    names = tuple(a.strip() for a in apps)
    if not names or any(not a or "/" in a for a in names):
        raise ValueError(f"invalid application names: {apps!r}")
    return names


def _check_id(stream_id: str) -> None:
    """Ids are single path segments."""
    if not isinstance(stream_id, str) or not stream_id or "/" in stream_id:
        raise ValueError(f"invalid stream id: {stream_id!r}")


def _add_records(w: World, app, count: int, status: str, type_: str, prefix: str, now: float) -> list[str]:
    """Create `count` records with fixed timestamps (no heartbeat)."""
    ids, start = [], len(app.records)
    for i in range(count):
        sid = f"{prefix}-{start + i:07d}"
        while sid in app.records:
            sid += "x"
        ms = int(now * 1000)
        values = dict(status=status, type=type_, name=sid, updateTime=ms, startTime=ms)
        values["publishType"] = None if type_ == "VoD" else "RTMP"
        app.put(Record(w.new_fields(app.name, sid, now, **values)))
        ids.append(sid)
    return ids


def _populate(w: World, app, live: int, rooms: int, prefix: str, now: float) -> list[str]:
    """Rooms first, then participants round-robin, heartbeat phases spread over one period."""
    room_ids = [f"{prefix}-room-{i:05d}" for i in range(rooms)]
    for room_id in room_ids:
        p.create_room(w, app, room_id, now)
    ids = []
    for i in range(live):
        sid = f"{prefix}-{i:07d}"
        # spread phases so heartbeats are not all on the same tick, like real publishers
        phase = ((i * 0.6180339887) % 1.0) * w.period
        if room_ids:
            ok = p.join(w, app, room_ids[i % rooms], sid, f"P{i}", now)
        else:
            ok = p.publish(w, app, sid, f"P{i}", now)
        if ok:
            rec = app.records[sid]
            rec.hb = Heartbeat(now - phase, w.period)
            start = now - phase + w.offset_of(rec.fields["originAdress"])
            rec.fields["startTime"] = rec.fields["updateTime"] = int(start * 1000)
            ids.append(sid)
    return ids
