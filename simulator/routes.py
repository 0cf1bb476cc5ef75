"""URL tables: which handler serves which AMS path, per version (docs/ams.md, "REST layout", "Reading", "Writing")."""
import re
from dataclasses import dataclass
from typing import Callable

from . import broadcasts as b
from . import cluster as c
from . import rooms as r
from .reply import Reply, ok
from .request import Request
from .versions import AmsVersion

EDITION = "Enterprise Edition"


@dataclass(frozen=True)
class Route:
    """Method, a regex over the path below /broadcasts, and its handler."""

    method: str
    pattern: re.Pattern
    handler: Callable[..., Reply]
    ints: tuple[str, ...] = ()


def _route(method: str, template: str, handler, when: bool = True) -> list[Route]:
    """Compile '{name}' (one segment) and '{n:int}' (JAX-RS int: digits only) into a regex."""
    if not when:
        return []
    ints = tuple(re.findall(r"\{(\w+):int\}", template))
    regex = re.sub(r"\{(\w+):int\}", r"(?P<\1>-?\\d+)", template)
    regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", regex)
    return [Route(method, re.compile(f"^{regex}$"), handler, ints)]


def broadcast_routes(v: AmsVersion) -> list[Route]:
    """Routes below /{App}/rest/v2/broadcasts; literal segments first, as JAX-RS matches them."""
    rooms = v.has_conference_rooms
    table = [
        *_route("GET", "list/{offset:int}/{size:int}", b.list_broadcasts),
        *_route("GET", "count", b.count_all),
        *_route("POST", "create", b.create),
        *_route("GET", "conference-rooms/list/{offset:int}/{size:int}", r.list_rooms, rooms),
        *_route("DELETE", "conference-rooms/{room_id}/{stream_id}", r.remove_member, rooms),
        *_route("GET", "conference-rooms/{room_id}", r.get_room, rooms),
    ]
    return table + _per_stream_routes(v)


def _per_stream_routes(v: AmsVersion) -> list[Route]:
    """Routes below /broadcasts/{id}."""
    sub = v.has_subtrack_endpoints
    return [
        *_route("GET", "{main_id}/subtracks/{offset:int}/{size:int}", b.subtracks, sub),
        *_route("DELETE", "{main_id}/subtrack", b.remove_subtrack),
        *_route("POST", "{stream_id}/stop", b.stop),
        # same path and semantics @ams-v2.8.2 (BroadcastRestService L833-838) and @ams-v3.0.3 (L1046-1051)
        *_route("GET", "{stream_id}/broadcast-statistics", b.broadcast_statistics),
        *_route("GET", "{stream_id}", b.get_broadcast),
        *_route("PUT", "{stream_id}", b.update),
        *_route("DELETE", "{stream_id}", b.delete),
    ]


def management_routes() -> list[Route]:
    """Management (root app) routes below /rest/v2 that the product reads: the cluster node registry."""
    # ClusterRestServiceV2 L47-73 (@Path("/v2/cluster")), same in @ams-v2.8.2 and @ams-v3.0.3
    return [
        *_route("GET", "cluster/node-count", c.node_count),
        *_route("GET", "cluster/nodes/{offset:int}/{size:int}", c.node_list),
        *_route("GET", "cluster-mode-status", c.cluster_mode),
    ]


def write_target(params: dict, query: dict, reply: Reply | None = None) -> str | None:
    """The stream a write acts on: ?id= of a subtrack edit, the member of a room edit, else the path id."""
    target = query.get("id") or params.get("stream_id") or params.get("main_id")
    if target is None and reply is not None and isinstance(reply.body, dict):
        target = reply.body.get("streamId")
    return target


def app_routes() -> list[Route]:
    """Routes below /{App}/rest/v2 other than /broadcasts."""
    return _route("GET", "version", version)


def version_body(v: AmsVersion) -> dict:
    """GET /rest/v2/version (app and root): {versionName, versionType, buildNumber}."""
    return {"versionName": v.name, "versionType": EDITION, "buildNumber": f"{v.major}{v.minor:02d}{v.patch:02d}0001"}


def needs_database(handler) -> bool:
    """Every route reads or writes the store except the version and the cluster-mode flag (in-memory beans)."""
    return handler not in (version, c.cluster_mode)


def version(req: Request) -> Reply:
    """GET /{App}/rest/v2/version and /rest/v2/version."""
    return ok(version_body(req.world.version))


def match(routes: list[Route], method: str, path: str):
    """(handler, params) for the first matching route; (None, True) when only the method differs."""
    path_matched = False
    for route in routes:
        found = route.pattern.match(path)
        if not found:
            continue
        if route.method != method:
            path_matched = True
            continue
        params = found.groupdict()
        for name in route.ints:
            params[name] = int(params[name])
        return route.handler, params
    return None, path_matched
