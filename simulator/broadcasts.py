"""REST semantics of /{App}/rest/v2/broadcasts (docs/ams.md, "Reading", "Writing", "Errors and limits")."""
from .fields import MONGO_WIPED_BY_PARTIAL_PUT, WIPED_BY_PARTIAL_PUT, field_defaults
from .participants import close_broadcast
from .reply import Reply, empty, ok, result
from .request import BadBody, Request
from .world import STREAM_ID, AppState, Record, World

MAX_ITEM_IN_ONE_LIST = 250
DELETED_AND_STOPPED = "broadcast is deleted and stopped successfully"
DELETED_NOT_STOPPED = "broadcast is deleted but could not stopped "
ID_IN_USE = "Stream id is already being used. Please change stream id or keep it empty"
# Never settable through PUT or create: identity and creation time.
_FIXED = ("streamId", "date")


def crop(items: list, offset: int, size: int, cap: int | None = MAX_ITEM_IN_ONE_LIST) -> list:
    """One page: negative offset reads as 0, size silently capped (250 for broadcast lists)."""
    offset = max(0, offset)
    if cap is not None:
        size = min(size, cap)
    return items[offset:offset + max(0, size)]


def list_broadcasts(req: Request, offset: int, size: int) -> Reply:
    """GET /list/{offset}/{size}: records in the store's order (lists are never served from a cache)."""
    if req.db_failed:
        return req.world.store.failed_list(req.world.version, "broadcasts")
    page = crop(req.app.ordered(), offset, size)
    body = [req.world.render(r, req.now, req.node) for r in page]
    if req.world.list_hooks:
        req.world.after_list_page(req.app.name, offset, req.now)
    return ok(body)


def count_all(req: Request) -> Reply:
    """GET /count."""
    return ok({"number": len(req.app.records)})


def get_broadcast(req: Request, stream_id: str) -> Reply:
    """GET /{id}: the Broadcast, or 404 with an empty body."""
    body = req.world.read_one(req.app, stream_id, req.now, req.node)
    return empty(404) if body is None else ok(body)


def stop(req: Request, stream_id: str) -> Reply:
    """POST /{id}/stop: success only when this node had a publisher to stop.

    stopStreaming looks only at the node that runs it (AMAA L983-1016 @ams-v2.8.2, L1824-1869 @ams-v3.0.3): off
    the publisher's origin it answers success:false whether or not the publisher lives. A request reaches the
    origin only when RestProxyFilter forwards it (wsgi.forward_target)."""
    w, app = req.world, req.app
    if stream_id not in app.records:
        return result(False)
    stopped = False
    if w.version.has_subtrack_params and req.flag("stopSubtracks", True):
        for sub in app.subtracks(stream_id):
            if sub.session is not None and sub.session.origin == req.node.address:
                close_broadcast(w, app, sub, req.now)
                stopped = True
    rec = app.records.get(stream_id)
    if rec is not None and _running_here(rec, req.node):
        _end(w, app, rec, req.now)
        stopped = True
    return result(stopped)


def _running_here(rec: Record, node) -> bool:
    """A publisher connected to `node` (silent or not), or a pulled source whose fetcher (even a stuck one) runs
    there. A WebRTC publisher is stopped by closed Enterprise code: modelled as found on its origin only."""
    if node is None:
        return False
    if rec.session is not None:
        return rec.session.origin == node.address
    return rec.fetcher is not None and rec.fields["originAdress"] == node.address


def broadcast_statistics(req: Request, stream_id: str) -> Reply:
    """GET /{id}/broadcast-statistics: totalRTMPWatchersCount is the consumer count of this node's broadcast scope
    (0 here), -1 without one; the other three are the stored viewer counts, -1 for an unknown id
    (RestServiceBase.getBroadcastStatistics L1317-1339 @ams-v2.8.2, L1225-1247 @ams-v3.0.3)."""
    w, app = req.world, req.app
    rec = app.records.get(stream_id)
    rtmp = 0 if w.holds_scope(rec, req.node) else -1
    stored = w.read_one(app, stream_id, req.now, req.node)  # getDataStore().get(id): the 3.x per-node cache
    hls = web = dash = -1
    if stored is not None:
        hls, dash, web = stored["hlsViewerCount"], stored["dashViewerCount"], stored["webRTCViewerCount"]
    return ok({"totalRTMPWatchersCount": rtmp, "totalHLSWatchersCount": hls, "totalWebRTCWatchersCount": web,
               "totalDASHWatchersCount": dash})


def _end(w: World, app: AppState, rec: Record, now: float) -> None:
    """Stop the publisher or fetcher: closeBroadcast runs."""
    # sources go to StreamFetcherManager.stopStreaming, which ends the fetcher and its retries
    # (AntMediaApplicationAdapter L1824-1836 @ams-v3.0.3)
    rec.fetcher = None
    close_broadcast(w, app, rec, now)


def delete_one(w: World, app: AppState, stream_id: str, now: float, delete_subtracks: bool, node=None) -> Reply:
    """Stop if publishing on this node, then delete the record; room lists untouched on v2.x (§3.3).

    The stop is the same local stopStreaming as POST /stop (RestServiceBase.deleteBroadcast L312-343 ->
    stopBroadcastInternal L369-381 @ams-v2.8.2; L336-348 @ams-v3.0.3): a publisher on another node keeps
    publishing while its record goes."""
    rec = app.records.get(stream_id)
    if rec is None:
        return result(False)
    stopped = _running_here(rec, node)
    if stopped:
        _end(w, app, rec, now)
    if w.version.has_subtrack_params and delete_subtracks:
        for sub in app.subtracks(stream_id):
            delete_one(w, app, sub.fields["streamId"], now, False, node)
    if app.remove(stream_id) is not None:
        w.note_deleted(app, stream_id, now)
    return result(True, DELETED_AND_STOPPED if stopped else DELETED_NOT_STOPPED)


def delete(req: Request, stream_id: str) -> Reply:
    """DELETE /{id}[?deleteSubtracks=]: HTTP 200 either way; 3.x deletes a main track's participants by default."""
    return delete_one(req.world, req.app, stream_id, req.now, req.flag("deleteSubtracks", True), req.node)


def _known_values(w: World, body: dict) -> dict:
    """Body fields this version's Broadcast has, minus identity; nulls dropped."""
    known = field_defaults(w.version)
    return {k: v for k, v in body.items() if k in known and k not in _FIXED and v is not None}


def update(req: Request, stream_id: str) -> Reply:
    """PUT /{id}: 3.x updates given fields; v2.8.2 also overwrites fields the body omits (§3.3).

    updateBroadcastFields decides success: MongoDB answers false when nothing changed (Store.update_succeeds).
    """
    body = req.json(default={})
    if not isinstance(body, dict):
        raise BadBody("expected a Broadcast object")
    w, app = req.world, req.app
    rec = app.records.get(stream_id)
    if rec is None:
        return result(False, "Broadcast is not found")
    before = list(rec.fields.get("subTrackStreamIds") or [])
    values = _known_values(w, body)
    if not w.version.partial_put:
        defaults = field_defaults(w.version)
        wiped = WIPED_BY_PARTIAL_PUT + (MONGO_WIPED_BY_PARTIAL_PUT if w.store.mongo else ())
        values.update({f: body.get(f, defaults[f]) for f in wiped if f in defaults})
    if rec.hb is not None:
        values.pop("updateTime", None)  # the next stats write would overwrite it anyway
    if not w.store.update_succeeds(_changes(rec, values)):
        return result(False)
    _apply_update(w, app, rec, values, req.now)
    for sid in before:
        w.note_listing(app, sid, req.now)
    return result(True)


def _changes(rec: Record, values: dict) -> bool:
    """Whether writing values would modify the stored record (MongoDB's modifiedCount)."""
    return any(rec.fields.get(k) != v for k, v in values.items())


def _apply_update(w: World, app: AppState, rec: Record, values: dict, now: float) -> None:
    """Write values into the stored record, keeping index, heartbeat and lifecycle consistent."""
    if "mainTrackStreamId" in values:
        app.set_main(rec, values.pop("mainTrackStreamId"))
    if isinstance(values.get("subTrackStreamIds"), list):
        values["subTrackStreamIds"] = list(values["subTrackStreamIds"])
    rec.fields.update(values)
    if "status" in values:
        w.note_status(app, rec, now)


def create(req: Request) -> Reply:
    """POST /create: 200 with the Broadcast; 400 with a Result for a duplicate or invalid id."""
    body = req.json(default={})
    if not isinstance(body, dict):
        raise BadBody("expected a Broadcast object")
    w, app = req.world, req.app
    stream_id = body.get("streamId")
    if stream_id:
        if not isinstance(stream_id, str) or not STREAM_ID.match(stream_id):
            return result(False, "Stream id is not valid.", status=400)
        if stream_id in app.records:
            return result(False, ID_IN_USE, status=400)
    else:
        stream_id = w.random_id(app)
    values = _known_values(w, body)
    values.update(status="created", zombi=False)
    main = values.pop("mainTrackStreamId", None)
    origin = req.node.address if req.node is not None else None
    rec = Record(w.new_fields(app.name, stream_id, req.now, origin, **values))
    app.put(rec)
    if main:
        app.set_main(rec, main)
    return ok(w.render(rec, req.now, req.node))


def remove_subtrack(req: Request, main_id: str) -> Reply:
    """DELETE /{main}/subtrack?id=: per version, with the store's write results."""
    if req.world.version.has_subtrack_ids:
        return _remove_subtrack_v2(req, main_id)
    return _remove_subtrack_v3(req, main_id)


def _remove_subtrack_v2(req: Request, main_id: str) -> Reply:
    """v2.8.2 (BroadcastRestService.removeSubTrack L1163-1200): blank the sub's mainTrackStreamId when it names
    this main track, write the sub back, and only if that write succeeded pull the id from the main track.

    On MongoDB the write back is a no-op (so a failure, L1180-1182) whenever the sub did not name this main
    track; MapDB pulls one copy of the id per call, MongoDB every copy.
    """
    w, app, sub_id = req.world, req.app, req.query.get("id") or ""
    sub = app.records.get(sub_id)
    if sub is None:
        return result(False, f"There is no stream with id:{sub_id}")
    names_main = bool(main_id) and sub.fields.get("mainTrackStreamId") == main_id
    if not w.store.update_succeeds(names_main):
        return result(False, f"Main track of the stream {sub_id} which is {main_id} cannot be updated")
    if names_main:
        app.set_main(sub, "")
    main = app.records.get(main_id)
    removed = w.store.remove_subtrack(main.fields if main is not None else None, sub_id)
    w.note_listing(app, sub_id, req.now)
    if not removed:
        return result(False, f"Subtrack:{sub_id} cannot be removed from main track: {main_id}")
    return result(True)


def _remove_subtrack_v3(req: Request, main_id: str) -> Reply:
    """3.x (RestServiceBase.removeSubTrack L1761-1796 @ams-v3.0.3): only a sub naming this main track has its
    mainTrackStreamId blanked; anything else fails with "Main track of the stream ... cannot be updated"."""
    w, app, sub_id = req.world, req.app, req.query.get("id") or ""
    if not main_id.strip() or not sub_id.strip():
        return result(False)
    sub = app.records.get(sub_id)
    if sub is None or sub.fields.get("mainTrackStreamId") != main_id:
        return result(False, f"Main track of the stream {sub_id} which is {main_id} cannot be updated")
    app.set_main(sub, "")
    w.note_listing(app, sub_id, req.now)
    return result(True)


def subtracks(req: Request, main_id: str, offset: int, size: int) -> Reply:
    """3.x GET /{main}/subtracks/{offset}/{size}: every subtrack whatever its status; 404 + Result without the
    main track; pages capped at 250 on MapDB only."""
    if main_id not in req.app.records:
        return result(False, f"Broadcast not found with id: {main_id}", status=404)
    if req.db_failed:
        return req.world.store.failed_list(req.world.version, "subtracks")
    subs = crop(req.app.subtracks(main_id), offset, size, cap=req.world.store.subtrack_cap)
    return ok([req.world.render(s, req.now, req.node) for s in subs])
