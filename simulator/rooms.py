"""v2.x /broadcasts/conference-rooms endpoints the product reads and writes (docs/ams.md, "Conference rooms"), removed in 3.0."""
from .broadcasts import crop
from .participants import unlist_from_room
from .reply import Reply, empty, ok, result
from .request import Request


def _room_json(room: dict) -> dict:
    """A copy safe to serialize after the lock is released."""
    return dict(room, roomStreamList=list(room["roomStreamList"]))


def list_rooms(req: Request, offset: int, size: int) -> Reply:
    """GET /conference-rooms/list/{offset}/{size}: capped at 250."""
    if req.db_failed:
        return req.world.store.failed_list(req.world.version, "rooms")
    rooms = list(req.app.rooms.values())
    return ok([_room_json(r) for r in crop(rooms, offset, size)])


def get_room(req: Request, room_id: str) -> Reply:
    """GET /conference-rooms/{id}: the room, or 404 with an empty body."""
    room = req.app.rooms.get(room_id)
    return empty(404) if room is None else ok(_room_json(room))


def remove_member(req: Request, room_id: str, stream_id: str) -> Reply:
    """DELETE /conference-rooms/{id}/{streamId}: roomStreamList only (then the leftTheRoom hook)."""
    removed = unlist_from_room(req.app, room_id, stream_id)
    req.world.note_listing(req.app, stream_id, req.now)
    return result(removed)
