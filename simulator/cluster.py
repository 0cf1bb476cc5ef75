"""Cluster behaviour: node death and restart, and the management REST's node registry (reference §1, §6)."""
from .broadcasts import crop
from .fields import VIEWER_FIELDS
from .participants import drop
from .reply import Reply, error_page, ok, result
from .request import Request
from .world import AppState, World

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
                drop(w, app, rec.fields["streamId"], now)


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
