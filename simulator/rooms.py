"""v2.x /broadcasts/conference-rooms endpoints (reference §3.2), removed in 3.0."""
from .broadcasts import crop
from .participants import create_conference_room, list_in_main, unlist_from_room
from .reply import Reply, empty, ok, result
from .request import BadBody, Request

NOT_COMPLETED = "Operation not completed"
_MODES = ("legacy", "multitrack", "mcu")


def _room_json(room: dict) -> dict:
    """A copy safe to serialize after the lock is released."""
    return dict(room, roomStreamList=list(room["roomStreamList"]))


def list_rooms(req: Request, offset: int, size: int) -> Reply:
    """GET /conference-rooms/list/{offset}/{size}: capped at 250, search on roomId."""
    rooms = list(req.app.rooms.values())
    search = (req.query.get("search") or "").lower()
    if search:
        rooms = [r for r in rooms if search in r["roomId"].lower()]
    sort_by = req.query.get("sort_by")
    if sort_by:
        rooms.sort(key=lambda r: str(r.get(sort_by, "")),
                   reverse=(req.query.get("order_by") or "asc").lower() == "desc")
    return ok([_room_json(r) for r in crop(rooms, offset, size)])


def get_room(req: Request, room_id: str) -> Reply:
    """GET /conference-rooms/{id}: the room, or 404 with an empty body."""
    room = req.app.rooms.get(room_id)
    return empty(404) if room is None else ok(_room_json(room))


def create_room(req: Request) -> Reply:
    """POST /conference-rooms: dates default to now and now+3600 s; 400 Result on failure."""
    body = req.json(default={})
    if not isinstance(body, dict) or not isinstance(body.get("roomId"), str) or not body["roomId"]:
        return result(False, NOT_COMPLETED, status=400)
    room = create_conference_room(req.app, body["roomId"], req.now)
    if room is None:
        return result(False, NOT_COMPLETED, status=400)
    _edit(room, body)
    return ok(_room_json(room))


def _edit(room: dict, body: dict) -> None:
    """Copy the editable ConferenceRoom fields from a request body (0 dates keep the default)."""
    for key in ("startDate", "endDate"):
        if isinstance(body.get(key), int) and body[key] > 0:
            room[key] = body[key]
    if body.get("mode") in _MODES:
        room["mode"] = body["mode"]
    if isinstance(body.get("roomStreamList"), list):
        room["roomStreamList"] = [s for s in body["roomStreamList"] if isinstance(s, str)]


def edit_room(req: Request, room_id: str) -> Reply:
    """PUT /conference-rooms/{id}: 400 Result when the room does not exist."""
    body = req.json(default={})
    if not isinstance(body, dict):
        raise BadBody("expected a ConferenceRoom object")
    room = req.app.rooms.get(room_id)
    if room is None:
        return result(False, NOT_COMPLETED, status=400)
    before = list(room["roomStreamList"])
    _edit(room, body)
    for sid in before:
        req.world.note_listing(req.app, sid, req.now)
    return ok(_room_json(room))


def delete_room(req: Request, room_id: str) -> Reply:
    """DELETE /conference-rooms/{id}: the room record only; participant streams keep running (#5845)."""
    room = req.app.rooms.pop(room_id, None)
    if room is not None:
        for sid in room["roomStreamList"]:
            req.world.note_listing(req.app, sid, req.now)
    return result(room is not None)


def room_info(req: Request, room_id: str) -> Reply:
    """GET /conference-rooms/{id}/room-info?streamId=: members whose record exists and reads broadcasting."""
    w, app, room = req.world, req.app, req.app.rooms.get(room_id)
    if room is None:
        return ok({"roomId": room_id, "streamDetailsMap": None, "startDate": 0, "endDate": 0})
    own = req.query.get("streamId")
    details = {}
    for sid in room["roomStreamList"]:
        rec = app.records.get(sid)
        if sid != own and rec is not None and w.status(rec, req.now) == "broadcasting":
            details[sid] = rec.fields["name"]
    return ok({"roomId": room_id, "streamDetailsMap": details,
               "startDate": room["startDate"], "endDate": room["endDate"]})


def add_member(req: Request, room_id: str, stream_id: str) -> Reply:
    """PUT /conference-rooms/{id}/{streamId}: list it; multitrack mode also makes it a subtrack."""
    app, room = req.app, req.app.rooms.get(room_id)
    if room is None:
        return result(False, f"There is no room with id:{room_id}")
    if stream_id not in room["roomStreamList"]:
        room["roomStreamList"] = room["roomStreamList"] + [stream_id]
    sub = app.records.get(stream_id)
    if room["mode"] == "multitrack" and sub is not None:
        app.set_main(sub, room_id)
        list_in_main(app, room_id, stream_id)
    return result(True)


def remove_member(req: Request, room_id: str, stream_id: str) -> Reply:
    """DELETE /conference-rooms/{id}/{streamId}: roomStreamList only (then the leftTheRoom hook)."""
    removed = unlist_from_room(req.app, room_id, stream_id)
    req.world.note_listing(req.app, stream_id, req.now)
    return result(removed)


def add_member_query(req: Request, room_id: str) -> Reply:
    """PUT /conference-rooms/{id}/add?streamId= (deprecated form)."""
    return add_member(req, room_id, req.query.get("streamId") or "")


def remove_member_query(req: Request, room_id: str) -> Reply:
    """PUT /conference-rooms/{id}/delete?streamId= (deprecated form)."""
    return remove_member(req, room_id, req.query.get("streamId") or "")
