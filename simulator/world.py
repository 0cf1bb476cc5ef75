"""The simulated AMS data store: Broadcast records, rooms, lazy heartbeats, per-version semantics."""
import heapq
import itertools
import math
import random
import re
import string
import threading

from .clock import Clock
from .fields import LIVE_STATUSES, VIEWER_FIELDS, field_defaults
from .lifecycle import Episode, GhostLifecycle
from .nodes import Node
from .store import Store
from .versions import AmsVersion

# Typical WebRTC ingest bitrate, used where the version writes ingest counters.
LIVE_BITRATE = 1_200_000
STREAM_ID = re.compile(r"^[A-Za-z0-9_\-.]+$")


class Heartbeat:
    """A publisher's stats writer: updateTime is the last tick of a fixed period since the anchor."""

    __slots__ = ("anchor", "period")

    def __init__(self, anchor: float, period: float):
        self.anchor = anchor
        self.period = period

    def last_tick(self, now: float) -> float:
        """The last heartbeat time <= now (no thread needed: computed on read)."""
        if now <= self.anchor:
            return self.anchor
        return self.anchor + math.floor((now - self.anchor) / self.period) * self.period


class Session:
    """A publisher's connection to its origin node: it lives while the publisher is connected, whether or not
    its stats writes reach the store (a node without database, a clock stepped back, a silent RTMP ingest)."""

    __slots__ = ("origin", "publish_type", "started", "silent_since")

    def __init__(self, origin: str, publish_type: str | None, started: float):
        self.origin = origin
        self.publish_type = publish_type
        self.started = started
        self.silent_since: float | None = None  # the network dropped; the connection is still open (RTMP)


class Record:
    """One stored Broadcast: stored fields, a heartbeat while its stats reach the store, the publisher's session
    while it is connected, a fetcher for pulled sources."""

    __slots__ = ("fields", "hb", "fetcher", "session")

    def __init__(self, fields: dict, hb: Heartbeat | None = None):
        self.fields = fields
        self.hb = hb
        self.fetcher = None
        self.session: Session | None = None


def written_tick(rec: Record, now: float) -> float | None:
    """The sim time of the last stats write the running heartbeat made, None when it has made none yet
    (stopped, or waiting behind the MuxAdaptor gate after a clock step back) and the stored fields stand."""
    if rec.hb is None or now < rec.hb.anchor:
        return None
    return rec.hb.last_tick(now)


class AppState:
    """The records of one application in the store's list order, with a room-member index."""

    def __init__(self, name: str, key_order: bool = False):
        self.name = name
        self.key_order = key_order  # MapDB: sorted by streamId; MongoDB: insertion order
        self.records: dict[str, Record] = {}
        self.rooms: dict[str, dict] = {}  # v2.x ConferenceRoom records
        self.members: dict[str, dict[str, None]] = {}  # mainTrackStreamId -> ordered sub ids
        self._ordered: list[Record] | None = None

    def ordered(self) -> list[Record]:
        """All records in list order (cached until the next insert or delete)."""
        if self._ordered is None:
            if self.key_order:
                self._ordered = [self.records[k] for k in sorted(self.records)]
            else:
                self._ordered = list(self.records.values())
        return self._ordered

    def put(self, rec: Record) -> None:
        """Insert a new record."""
        self.records[rec.fields["streamId"]] = rec
        self._index(rec.fields["streamId"], rec.fields.get("mainTrackStreamId"))
        self._ordered = None

    def remove(self, stream_id: str) -> Record | None:
        """Delete a record; room lists that name it are left alone, as AMS does."""
        rec = self.records.pop(stream_id, None)
        if rec is not None:
            self._unindex(stream_id, rec.fields.get("mainTrackStreamId"))
            self._ordered = None
        return rec

    def set_main(self, rec: Record, main_id: str | None) -> None:
        """Change a record's mainTrackStreamId, keeping the member index right."""
        sid = rec.fields["streamId"]
        self._unindex(sid, rec.fields.get("mainTrackStreamId"))
        rec.fields["mainTrackStreamId"] = main_id
        self._index(sid, main_id)

    def subtracks(self, main_id: str) -> list[Record]:
        """Records whose mainTrackStreamId is main_id: by streamId on MapDB (it scans its tree map,
        MapBasedDataStore.getSubtracks L1329-1340 @ams-v3.0.3), in join order on MongoDB."""
        ids = self.members.get(main_id, ())
        if self.key_order:
            ids = sorted(ids)
        return [self.records[s] for s in ids if s in self.records]

    def _index(self, sid: str, main_id: str | None) -> None:
        if main_id:
            self.members.setdefault(main_id, {})[sid] = None

    def _unindex(self, sid: str, main_id: str | None) -> None:
        if main_id and main_id in self.members:
            self.members[main_id].pop(sid, None)
            if not self.members[main_id]:
                del self.members[main_id]


class World:
    """Every app's store (shared by all nodes, as one MongoDB) plus the rules tying status, heartbeats and rooms."""

    def __init__(self, version: AmsVersion, apps, clock: Clock, heartbeat_seconds: float, nodes: list[Node],
                 cluster: bool = False, timing: dict | None = None, store: Store | None = None):
        self.version = version
        self.store = store or Store("mongodb" if cluster else "mapdb")
        self.clock = clock
        self.period = float(heartbeat_seconds)
        timing = timing or {}
        self.grace = float(timing.get("reconnect_grace_seconds", 10.0))
        self.node_period = float(timing.get("node_update_seconds", 5.0))
        self.cache_seconds = float(timing.get("read_cache_seconds", 3.0))
        self.rtmp_inactivity = float(timing.get("rtmp_inactivity_seconds", 60.0))
        self.webrtc_broadcast_scope = bool(timing.get("webrtc_broadcast_scope", False))
        self.lock = threading.RLock()
        self.apps = {name: AppState(name, self.store.key_order) for name in apps}
        self.nodes = {n.address: n for n in nodes}
        self.started = clock.now()
        self.cluster = cluster
        self.episodes: dict[tuple[str, str], Episode] = {}
        self._rng = random.Random(2024)
        self._defaults = field_defaults(version)
        self._events: list = []
        self.list_hooks: list = []  # (app, after_offset, action(now)): one-shot, run after a list page
        self._seq = itertools.count()
        self._balance = itertools.count()
        self._placement = itertools.count()

    # --- nodes, load balancing and scheduled events ---------------------------------------

    def offset_of(self, address: str | None) -> float:
        """Clock offset of the node at `address` (0 for an address no node has)."""
        node = self.nodes.get(address)
        return node.offset if node is not None else 0.0

    def alive_nodes(self) -> list[Node]:
        """Nodes that are up, in registration order."""
        return [n for n in self.nodes.values() if n.alive]

    def routable_nodes(self) -> list[Node]:
        """Nodes the load balancer routes to: up and reaching the database.

        Modelling choice: a load balancer health-checks the REST API, and a node cut off from its database
        answers it with 500, so the balancer takes it out."""
        return [n for n in self.nodes.values() if n.alive and n.db]

    def pick_node(self) -> Node | None:
        """The node a load balancer sends the next request to: round-robin over routable nodes."""
        alive = self.routable_nodes()
        return alive[next(self._balance) % len(alive)] if alive else None

    def place(self, address: str | None) -> str:
        """The origin node of a new publisher: the one named, else round-robin over live nodes."""
        if address is not None:
            node = self.nodes.get(address)
            if node is None or not node.alive:
                raise ValueError(f"node {address!r} is not a live node of this simulator")
            if not node.db:
                raise ValueError(f"node {address!r} has lost its database; a publish start there cannot be saved")
            return address
        alive = self.routable_nodes()
        if not alive:
            raise ValueError("every node is down")
        return alive[next(self._placement) % len(alive)].address

    def next_check(self, at: float) -> float:
        """The first periodic check (every heartbeat period since the app started) at or after `at`."""
        steps = math.ceil((at - self.started) / self.period - 1e-9)
        return self.started + max(0, steps) * self.period

    def schedule(self, at: float, action) -> None:
        """Run action(at) once simulated time reaches `at` (settled lazily on the next access)."""
        heapq.heappush(self._events, (at, next(self._seq), action))

    def settle(self, now: float) -> None:
        """Run every scheduled action that is due, in time order."""
        while self._events and self._events[0][0] <= now:
            at, _, action = heapq.heappop(self._events)
            action(at)

    def after_list_page(self, app: str, offset: int, now: float) -> None:
        """Run the one-shot hooks armed for a list page of `app` at `offset` (Simulator.during_list)."""
        due = [h for h in self.list_hooks if h[0] == app and offset >= h[1]]
        for hook in due:
            self.list_hooks.remove(hook)
            hook[2](now)

    # --- time and status -------------------------------------------------------------

    @property
    def stale_after(self) -> float:
        """STREAM_TIMEOUT_MS = 2 x STAT_UPDATE_PERIOD_MS (scales with accelerated heartbeats)."""
        return 2.0 * self.period

    def app(self, name: str) -> AppState:
        """The app's store; KeyError for an unknown app."""
        return self.apps[name]

    def update_time_ms(self, rec: Record, now: float) -> int:
        """updateTime: the last heartbeat tick on the origin node's clock while publishing, else the stored value."""
        tick = written_tick(rec, now)
        if tick is None:
            return rec.fields["updateTime"]
        # written with the origin node's clock (MuxAdaptor L865 @ams-v2.8.2; AMAA L1986 @ams-v3.0.3)
        return int((tick + self.offset_of(rec.fields["originAdress"])) * 1000)

    def status(self, rec: Record, now: float, node: Node | None = None) -> str:
        """The status JSON shows: stored (<2.13) or computed on the serving node's clock (>=2.13, not virtual)."""
        return self._shown_status(rec.fields, self.update_time_ms(rec, now), now, node)

    def _shown_status(self, fields: dict, update_ms: int, now: float, node: Node | None) -> str:
        """Stored status, or terminated_unexpectedly once updateTime is STREAM_TIMEOUT old on the reader's clock."""
        stored = fields["status"]
        if not self.version.computed_status or stored not in LIVE_STATUSES or fields.get("virtual"):
            return stored
        # Broadcast.getStatus L573-593 @ams-v3.0.3 compares with System.currentTimeMillis() of the reader
        serving_ms = (now + (node.offset if node is not None else 0.0)) * 1000
        if serving_ms - update_ms >= self.stale_after * 1000:
            return "terminated_unexpectedly"
        return stored

    def render(self, rec: Record, now: float, node: Node | None = None) -> dict:
        """The Broadcast as `node` serializes it at `now` (a new dict, safe to dump unlocked)."""
        out = dict(rec.fields)
        tick = written_tick(rec, now)
        if tick is not None:
            self._apply_stats(out, tick, self.offset_of(out["originAdress"]))
        out["status"] = self._shown_status(out, out["updateTime"], now, node)
        if "anyoneWatching" in out:
            out["anyoneWatching"] = any(out[f] > 0 for f in VIEWER_FIELDS)
        return out

    def _apply_stats(self, fields: dict, tick: float, offset: float = 0.0) -> None:
        """Write what the stats writer would have written at heartbeat `tick` (origin clock `offset`)."""
        fields["updateTime"] = int((tick + offset) * 1000)
        if self.version.writes_ingest_counters and fields["startTime"]:
            duration = max(0, fields["updateTime"] - fields["startTime"])
            fields["duration"] = duration
            fields["receivedBytes"] = fields["bitrate"] * duration // 8000

    def freeze(self, rec: Record, now: float) -> None:
        """Stop the heartbeat, keeping the last tick it wrote."""
        tick = written_tick(rec, now)
        if tick is not None:
            self._apply_stats(rec.fields, tick, self.offset_of(rec.fields["originAdress"]))
        rec.hb = None

    def resume_writes(self, rec: Record, now: float) -> None:
        """Start the stats writer again behind the MuxAdaptor gate: the next write happens once the origin's
        clock is more than one period past the last updateTime it wrote (`now - lastQualityUpdateTime > period`,
        MuxAdaptor L855-868 @ams-v2.8.2, L990-1034 @ams-v3.0.3), and not before `now`."""
        self.freeze(rec, now)
        offset = self.offset_of(rec.fields["originAdress"])
        gate = rec.fields["updateTime"] / 1000.0 - offset + self.period
        rec.hb = Heartbeat(max(now, gate), self.period)

    def has_live_session(self, rec: Record | None) -> bool:
        """A publisher connected on some node (its stats may not reach the store), or a running pulled source."""
        return rec is not None and (rec.session is not None or rec.fetcher is not None)

    # --- per-node read cache (cluster, 2.14+) ------------------------------------------------

    def read_one(self, app: AppState, stream_id: str, now: float, node: Node | None) -> dict | None:
        """GET /{id} as `node` answers it: from its read cache when clustered on 2.14+, else from the store."""
        rec = app.records.get(stream_id)
        if node is None or not (self.cluster and self.version.read_cache):
            return None if rec is None else self.render(rec, now, node)
        key = (app.name, stream_id)
        hit = node.cache.get(key)
        # Caffeine expireAfterWrite(3 s) (MongoStore L165-170 @ams-v3.0.3); a miss is not cached (L257-265)
        if hit is not None and now - hit[1] < self.cache_seconds:
            return self._render_cached(hit[0], rec, now, node)
        if rec is None:
            node.cache.pop(key, None)
            return None
        fields = self.render(rec, now, node)
        fields["status"] = rec.fields["status"]
        node.cache[key] = (fields, now)
        return self.render(Record(dict(fields)), now, node)

    def _render_cached(self, cached: dict, live: Record | None, now: float, node: Node) -> dict:
        """A cached copy; its origin node writes the heartbeat through its own cache (MongoStore L940-947 @ams-v3.0.3)."""
        fields = dict(cached)
        tick = written_tick(live, now) if live is not None else None
        if tick is not None and live.fields["originAdress"] == node.address:
            self._apply_stats(fields, tick, node.offset)
        return self.render(Record(fields), now, node)

    def holds_scope(self, rec: Record | None, node: Node) -> bool:
        """Whether `node` holds a live Red5 broadcast scope for the record's stream: the lookup behind
        totalRTMPWatchersCount >= 0 and behind stopping an RTMP publisher (MultiThreadedApplicationAdapter L803-813;
        AMAA.stopStreaming L983-1016 @ams-v2.8.2).

        RTMP publishers own one on their origin while the connection lives, silent or not. Whether a WebRTC
        publisher owns one is decided in closed Enterprise code: the `webrtc_broadcast_scope` switch."""
        session = rec.session if rec is not None else None
        if session is None or session.origin != node.address or not node.alive:
            return False
        return session.publish_type == "RTMP" or self.webrtc_broadcast_scope

    def is_live_for_republish(self, rec: Record, now: float) -> bool:
        """streamIdInUse check: stored status (<2.13) or computed status (>=2.13) broadcasting/preparing."""
        return self.status(rec, now) in LIVE_STATUSES

    # --- record construction ---------------------------------------------------------

    def new_fields(self, app: str, stream_id: str, now: float, origin: str | None = None, **values) -> dict:
        """A record of this version's field set with creation values filled in (origin: first node by default)."""
        fields = dict(self._defaults)
        if "subTrackStreamIds" in fields:
            fields["subTrackStreamIds"] = []
        origin = origin or next(iter(self.nodes))
        # originAdress and rtmpURL are set at creation (RestServiceBase L262-268 @ams-v2.8.2)
        fields.update(streamId=stream_id, date=int(now * 1000), originAdress=origin,
                      rtmpURL=f"rtmp://{origin}/{app}/")
        fields.update(values)
        return fields

    def random_id(self, app: AppState) -> str:
        """A fresh 12-character id, as AMS generates for /create without streamId."""
        alphabet = string.ascii_letters + string.digits
        while True:
            sid = "".join(self._rng.choice(alphabet) for _ in range(12))
            if sid not in app.records:
                return sid

    def start_publishing(self, app: AppState, stream_id: str, now: float, origin: str, **values) -> Record:
        """Publish start on node `origin`: reuse the record or create a zombi one; broadcasting, heartbeat on."""
        rec = app.records.get(stream_id)
        if rec is None:
            rec = Record(self.new_fields(app.name, stream_id, now, origin, zombi=True, type="liveStream",
                                         publishType="WebRTC"))
            app.put(rec)
        main = values.pop("mainTrackStreamId", None)
        # startTime/updateTime on the origin's clock, originAdress set again (AMAA L672-675 @ams-v2.8.2)
        start_ms = int((now + self.offset_of(origin)) * 1000)
        rec.fields.update(status="broadcasting", startTime=start_ms, updateTime=start_ms, speed=1.0,
                          originAdress=origin, **values)
        if self.version.writes_ingest_counters:
            rec.fields["bitrate"] = LIVE_BITRATE
        if self.version.master_fields:
            rec.fields.update(width=640, height=480, remoteIp="127.0.0.1")
        if main:
            app.set_main(rec, main)
        rec.hb = Heartbeat(now, self.period)
        rec.session = Session(origin, rec.fields.get("publishType"), now)
        return rec

    # --- lifecycle episodes ------------------------------------------------------------

    def episode(self, app: str, stream_id: str) -> Episode | None:
        """The open lifecycle episode of a participant, if any."""
        ep = self.episodes.get((app, stream_id))
        return ep if ep is not None and not ep.closed else None

    def lifecycle(self, app: str, stream_id: str, now: float) -> GhostLifecycle:
        """Lifecycle snapshot; every field None when nothing happened yet."""
        ep = self.episodes.get((app, stream_id))
        if ep is None:
            return GhostLifecycle()
        stale = self.stale_after if self.version.computed_status else None
        return ep.snapshot(now, stale)

    def note_deleted(self, app: AppState, stream_id: str, now: float) -> None:
        """Record deletion (and the freed id) in the participant's episode."""
        ep = self.episode(app.name, stream_id)
        if ep is not None:
            ep.deleted_at = ep.deleted_at or now
            ep.freed_at = ep.freed_at or now
        self.note_listing(app, stream_id, now)

    def note_status(self, app: AppState, rec: Record, now: float) -> None:
        """A stored status that is no longer live frees the id for republishing."""
        ep = self.episode(app.name, rec.fields["streamId"])
        if ep is not None and rec.fields["status"] not in LIVE_STATUSES and ep.freed_at is None:
            ep.freed_at = now

    def note_listing(self, app: AppState, stream_id: str, now: float) -> None:
        """Stamp unlisted_at the first time no room listing names the participant any more."""
        ep = self.episode(app.name, stream_id)
        if ep is None or ep.room is None or ep.unlisted_at is not None:
            return
        if not self.listed(app, ep.room, stream_id):
            ep.unlisted_at = now

    def listed(self, app: AppState, room: str, stream_id: str) -> bool:
        """Whether the stored room model still names the stream (subTrackStreamIds/roomStreamList or mainTrackStreamId)."""
        if self.version.has_subtrack_ids:
            main = app.records.get(room)
            in_main = main is not None and stream_id in (main.fields.get("subTrackStreamIds") or ())
            conf = app.rooms.get(room)
            return in_main or (conf is not None and stream_id in conf["roomStreamList"])
        rec = app.records.get(stream_id)
        return rec is not None and rec.fields.get("mainTrackStreamId") == room
