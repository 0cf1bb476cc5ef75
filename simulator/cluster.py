"""Cluster behaviour: node death and restart, and the management REST's node registry (docs/ams.md, "REST layout", "Clusters")."""
import math

from .broadcasts import crop
from .fields import VIEWER_FIELDS
from .participants import cut
from .reply import Reply, error_page, ok, result
from .request import Request
from .world import AppState, Heartbeat, World

# Illustrative load figures: the Enterprise code that fills them is closed source.
_MEMORY, _CPU, _QUERY_MS = "2048", "12", 3


def kill(w: World, address: str, now: float) -> None:
    """The node crashes: its publishers and fetchers stop at once, its registry heartbeat stops."""
    node = w.nodes[address]
    if not node.alive:
        return
    node.alive, node.died_at = False, now
    node.cache.clear()
    for app in w.apps.values():
        for rec in list(app.records.values()):
            if rec.fields["originAdress"] == address:
                rec.fetcher = None
                cut(w, app, rec.fields["streamId"], now)


def _records_of(w: World, address: str):
    """(app, record) for every record whose stats writer runs on the node at `address`."""
    for app in w.apps.values():
        for rec in list(app.records.values()):
            origin = rec.session.origin if rec.session is not None else rec.fields["originAdress"]
            if origin == address:
                yield app, rec


def lose_database(w: World, address: str, now: float) -> None:
    """The node is cut off from the database: its publishers stay connected and its sessions live, but neither
    their stats writes nor its registry heartbeat reach the store (ClusterNode L56-63 @ams-v2.8.2, L59-65
    @ams-v3.0.3), so the other nodes read it dead after the registry window."""
    node = w.nodes[address]
    if not node.db:
        return
    node.db, node.db_lost_at = False, now
    for _, rec in _records_of(w, address):
        if rec.hb is not None:
            node.paused[rec] = rec.hb
        w.freeze(rec, now)


def restore_database(w: World, address: str, now: float) -> None:
    """The database is reachable again: the stats writes of connected publishers and running sources resume behind
    the MuxAdaptor gate, and the registry heartbeat resumes on its timer."""
    node = w.nodes[address]
    if node.db:
        return
    node.db, node.db_lost_at = True, None
    node.cache.clear()
    paused, node.paused = node.paused, {}
    if not node.alive:
        return
    for _, rec in _records_of(w, address):
        session = rec.session
        connected = session is not None and session.silent_since is None
        if rec.hb is not None or not (connected or (session is None and rec.fetcher is not None
                                                    and not rec.fetcher.stuck)):
            continue
        hb = paused.get(rec)
        if hb is None:
            w.resume_writes(rec, now)
        else:
            # the writer kept trying every period (lastQualityUpdateTime moves even when the write fails,
            # MuxAdaptor L855-868 @ams-v2.8.2): the first try after the database is back succeeds
            steps = max(0, math.ceil((now - hb.anchor) / hb.period - 1e-9))
            rec.hb = Heartbeat(hb.anchor + steps * hb.period, hb.period)


def step_clock(w: World, address: str, seconds: float, now: float) -> None:
    """The node's clock jumps by `seconds` (negative: back). Each running stats writer keeps its
    lastQualityUpdateTime, so after a step back of S it writes nothing until the new clock passes that last write
    plus one period, about S + period later (MuxAdaptor L855-868 @ams-v2.8.2, 5 s; L990-1034 @ams-v3.0.3, 10 s;
    the period is the simulator's heartbeat). Publishers starting after the step write normally; the registry
    heartbeat is written with the new clock at once."""
    node = w.nodes[address]
    writers = [rec for _, rec in _records_of(w, address) if rec.hb is not None]
    for rec in writers:
        w.freeze(rec, now)  # what was written stays written, with the old clock
    node.offset += float(seconds)
    node.cache.clear()
    for rec in writers:
        w.resume_writes(rec, now)


def revive(w: World, address: str, now: float) -> None:
    """The node starts again after a crash: registry heartbeats resume and each app resets its records."""
    node = w.nodes[address]
    if node.alive:
        return
    node.alive, node.started_at, node.died_at = True, now, None
    node.cache.clear()
    # no clean-shutdown marker, so every app runs resetBroadcasts(hostAddress) at start
    # (AntMediaApplicationAdapter L180-186 @ams-v2.8.2, L352-363 @ams-v3.0.3)
    for app in w.apps.values():
        reset_broadcasts(w, app, address, now)


def reset_broadcasts(w: World, app: AppState, address: str, now: float) -> None:
    """Zombi records of this origin (or of none) are deleted, the others finished with zero viewers."""
    # MongoStore.resetBroadcasts L1380-1414 @ams-v2.8.2, L1888-1923 @ams-v3.0.3: records without an
    # originAdress (main tracks) match too
    for rec in list(app.records.values()):
        origin = rec.fields["originAdress"]
        if origin not in (address, None):
            continue
        sid = rec.fields["streamId"]
        if rec.fields["zombi"]:
            app.remove(sid)
            w.note_deleted(app, sid, now)
        else:
            rec.fields.update(status="finished", **{f: 0 for f in VIEWER_FIELDS if f != "dashViewerCount"})
            w.note_status(app, rec, now)


def node_json(w: World, node, req: Request) -> dict:
    """A ClusterNode as Jackson writes it: declared fields in order, then the computed status."""
    last = node.registry_ms(req.now, w.node_period)
    serving_ms = (req.now + req.node.offset) * 1000
    # getStatus() compares with the reader's System.currentTimeMillis() (ClusterNode L57-65 @ams-v2.8.2,
    # L58-66 @ams-v3.0.3)
    dead = serving_ms - last > w.node_period * 1000 * w.version.node_dead_periods
    body = {"id": node.node_id, "ip": node.address, "lastUpdateTime": last, "memory": _MEMORY, "cpu": _CPU}
    if w.version.node_query_time:
        body["dbQueryAveargeTimeMs"] = _QUERY_MS
    body["status"] = "dead" if dead else "alive"
    return body


def _no_cluster() -> Reply:
    """Standalone: getBean("tomcat.cluster") throws and nothing maps the exception, so Tomcat answers 500."""
    # ClusterRestServiceV2.getClusterStore L35-45 has no bean check (CommonRestService.isClusterMode L1545-1550
    # guards with containsBean); the bean exists only when jee-container.xml's cluster block is enabled
    # (jee-container.xml L28-39 @ams-v3.0.3)
    return error_page(500, "Internal Server Error", "NoSuchBeanDefinitionException: No bean named 'tomcat.cluster'")


def node_count(req: Request) -> Reply:
    """GET /rest/v2/cluster/node-count: SimpleStat over every registered node, dead ones included."""
    if not req.world.cluster:
        return _no_cluster()
    return ok({"number": len(req.world.nodes)})


def node_list(req: Request, offset: int, size: int) -> Reply:
    """GET /rest/v2/cluster/nodes/{offset}/{size}: ClusterNode records in registration order."""
    w = req.world
    if not w.cluster:
        return _no_cluster()
    return ok([node_json(w, n, req) for n in crop(list(w.nodes.values()), offset, size, cap=None)])


def cluster_mode(req: Request) -> Reply:
    """GET /rest/v2/cluster-mode-status: Result(isClusterMode, "") (RestServiceV2 L585 @ams-v2.8.2, L504 @ams-v3.0.3)."""
    return result(req.world.cluster, "")
