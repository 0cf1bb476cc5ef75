"""URL tables: which handler serves which AMS path, per version (reference §1, §3)."""
import re
from dataclasses import dataclass
from typing import Callable

from . import broadcasts as b
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
        *_route("GET", "count/{search}", b.count_search),
        *_route("GET", "active-live-stream-count", b.active_live_stream_count),
        *_route("GET", "total-broadcast-statistics", b.total_statistics),
        *_route("POST", "create", b.create),
        *_route("DELETE", "bulk", b.delete_bulk_body, v.has_body_bulk_delete),
        *_route("DELETE", "", b.delete_bulk_ids, v.has_ids_bulk_delete),
        *_route("GET", "conference-rooms/list/{offset:int}/{size:int}", r.list_rooms, rooms),
        *_route("POST", "conference-rooms", r.create_room, rooms),
        *_route("GET", "conference-rooms/{room_id}/room-info", r.room_info, rooms),
        *_route("PUT", "conference-rooms/{room_id}/add", r.add_member_query, rooms),
        *_route("PUT", "conference-rooms/{room_id}/delete", r.remove_member_query, rooms),
        *_route("PUT", "conference-rooms/{room_id}/{stream_id}", r.add_member, rooms),
        *_route("DELETE", "conference-rooms/{room_id}/{stream_id}", r.remove_member, rooms),
        *_route("GET", "conference-rooms/{room_id}", r.get_room, rooms),
        *_route("PUT", "conference-rooms/{room_id}", r.edit_room, rooms),
        *_route("DELETE", "conference-rooms/{room_id}", r.delete_room, rooms),
    ]
    return table + _per_stream_routes(v)


def _per_stream_routes(v: AmsVersion) -> list[Route]:
    """Routes below /broadcasts/{id}."""
    sub = v.has_subtrack_endpoints
    return [
        *_route("GET", "{stream_id}/broadcast-statistics", b.broadcast_statistics),
        *_route("GET", "{stream_id}/webrtc-client-stats/{offset:int}/{size:int}", b.webrtc_client_stats),
        *_route("GET", "{main_id}/subtracks/{offset:int}/{size:int}", b.subtracks, sub),
        *_route("GET", "{main_id}/active-subtracks/{offset:int}/{size:int}", b.active_subtrack_list, sub),
        *_route("GET", "{main_id}/active-subtracks-count", b.active_subtracks_count, sub),
        *_route("POST", "{main_id}/subtrack", b.add_subtrack),
        *_route("DELETE", "{main_id}/subtrack", b.remove_subtrack),
        *_route("POST", "{stream_id}/stop", b.stop),
        *_route("GET", "{stream_id}", b.get_broadcast),
        *_route("PUT", "{stream_id}", b.update),
        *_route("DELETE", "{stream_id}", b.delete),
    ]


def root_routes() -> list[Route]:
    """Management (root app) routes below /rest/v2, also used for /{App}/rest/v2/version."""
    return [
        *_route("GET", "version", version),
        *_route("GET", "applications", applications),
        *_route("GET", "liveness", liveness),
        *_route("GET", "server-time", server_time),
    ]


def version_body(v: AmsVersion) -> dict:
    """GET /rest/v2/version (app and root): {versionName, versionType, buildNumber}."""
    return {"versionName": v.name, "versionType": EDITION, "buildNumber": f"{v.major}{v.minor:02d}{v.patch:02d}0001"}


def version(req: Request) -> Reply:
    """GET /{App}/rest/v2/version and /rest/v2/version."""
    return ok(version_body(req.world.version))


def applications(req: Request) -> Reply:
    """GET /rest/v2/applications: the app names, console app omitted."""
    return ok({"applications": list(req.world.apps)})


def liveness(req: Request) -> Reply:
    """GET /rest/v2/liveness (no auth)."""
    return ok({"host": "127.0.0.1", "status": "ok"})


def server_time(req: Request) -> Reply:
    """GET /rest/v2/server-time: AMS's clock in ms."""
    return ok({"serverTime": int(req.now * 1000)})


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
