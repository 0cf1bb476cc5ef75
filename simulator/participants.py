"""What publishers do to the store: join a room, publish, leave cleanly, drop, resume, reconnect."""
import json

from .fields import VIEWER_FIELDS
from .lifecycle import Episode
from .world import AppState, Heartbeat, Record, Session, World, written_tick

CONFERENCE_METADATA = json.dumps({"isMicMuted": False, "isCameraOff": False}, separators=(",", ":"))


def ensure_main_track(w: World, app: AppState, room_id: str, now: float) -> Record:
    """The room's main track, created as the server does on first publish; an existing one is left as it is."""
    main = app.records.get(room_id)
    if main is None:
        # a bare new Broadcast(): zombi, broadcasting, no type, publishType, name, origin or rtmpURL
        # (MuxAdaptor.registerToMainTrackIfExists L671-682 @ams-v2.8.2; saveMainBroadcast L839-853 @ams-v3.0.3,
        # which also sets virtual and startTime); a later join never touches its status
        fields = w.new_fields(app.name, room_id, now, zombi=True, status="broadcasting",
                              type=None, publishType=None, name=None)
        fields.update(originAdress=None, rtmpURL=None)
        if w.version.has_virtual:
            fields["virtual"] = True
        if w.version.at_least(3):
            fields["startTime"] = int(now * 1000)
        main = Record(fields)
        app.put(main)
    return main


def create_conference_room(app: AppState, room_id: str, now: float, mode: str = "legacy") -> dict | None:
    """A v2.x ConferenceRoom record (dates in unix seconds); None if one exists already."""
    if room_id in app.rooms:
        return None
    # mode defaults to legacy (ConferenceRoom L45 @ams-v2.8.2)
    room = {"roomId": room_id, "startDate": int(now), "endDate": int(now) + 3600,
            "roomStreamList": [], "mode": mode, "originAdress": "127.0.0.1"}
    app.rooms[room_id] = room
    return room


ROOM_MODES = ("legacy", "multitrack", "mcu")


def create_room(w: World, app: AppState, room_id: str, now: float, mode: str = "legacy") -> None:
    """Main track, plus the ConferenceRoom record on versions that have one."""
    if mode not in ROOM_MODES:
        raise ValueError(f"unknown room mode {mode!r}; expected one of {', '.join(ROOM_MODES)}")
    ensure_main_track(w, app, room_id, now)
    if w.version.has_conference_rooms:
        create_conference_room(app, room_id, now, mode)


def list_in_main(app: AppState, main_id: str, stream_id: str) -> bool:
    """Append to the main track's subTrackStreamIds (v2.x) even when already listed: every publish start
    adds the id again (MuxAdaptor.registerToMainTrackIfExists L684-686 @ams-v2.8.2; AMS #4045)."""
    main = app.records.get(main_id)
    if main is None or "subTrackStreamIds" not in main.fields:
        return False
    main.fields["subTrackStreamIds"] = list(main.fields["subTrackStreamIds"] or []) + [stream_id]
    return True


def list_in_room(app: AppState, room_id: str, stream_id: str) -> bool:
    """addStreamToConferenceRoom (v2.x): roomStreamList once; a multitrack room also adds the id to its
    main track again (RestServiceBase L1825-1863, the push at L1856 @ams-v2.8.2), so it is listed twice."""
    room = app.rooms.get(room_id)
    if room is None or stream_id in room["roomStreamList"] or stream_id not in app.records:
        return False
    room["roomStreamList"] = room["roomStreamList"] + [stream_id]
    if room["mode"] == "multitrack":
        list_in_main(app, room_id, stream_id)
    return True


def unlist_from_room(app: AppState, room_id: str, stream_id: str) -> bool:
    """Remove from the ConferenceRoom's roomStreamList; False if it was not there."""
    room = app.rooms.get(room_id)
    if room is None or stream_id not in room["roomStreamList"]:
        return False
    room["roomStreamList"] = [s for s in room["roomStreamList"] if s != stream_id]
    return True


def create_record(w: World, app: AppState, stream_id: str, now: float, name: str | None = None) -> Record:
    """A record made through REST before publishing (POST /create): status created, not zombi."""
    rec = Record(w.new_fields(app.name, stream_id, now, status="created", zombi=False, type="liveStream",
                              name=name))
    app.put(rec)
    return rec


def join(w: World, app: AppState, room_id: str, stream_id: str, name: str | None, now: float,
         new_episode: bool = True, node: str | None = None, zombi: bool = True) -> bool:
    """Publish into a room on `node` (default: the next live node); False (streamIdInUse) while the id reads as live.

    zombi=False: the record is created through REST first (kept, and finished, when the publisher leaves).
    """
    rec = app.records.get(stream_id)
    if rec is not None and w.is_live_for_republish(rec, now):
        return False
    origin = w.place(node)
    ensure_main_track(w, app, room_id, now)
    if rec is None and not zombi:
        create_record(w, app, stream_id, now, name or stream_id)
    w.start_publishing(app, stream_id, now, origin, name=name or stream_id, mainTrackStreamId=room_id,
                       metaData=CONFERENCE_METADATA)
    if w.version.has_subtrack_ids:
        list_in_main(app, room_id, stream_id)
        list_in_room(app, room_id, stream_id)
    if new_episode:
        w.episodes[(app.name, stream_id)] = Episode(room_id)
    return True


def publish(w: World, app: AppState, stream_id: str, name: str | None, now: float,
            publish_type: str = "WebRTC", new_episode: bool = True, node: str | None = None,
            zombi: bool = True) -> bool:
    """A plain live stream (no room) on `node`; False (streamIdInUse) while the id reads as live."""
    rec = app.records.get(stream_id)
    if rec is not None and w.is_live_for_republish(rec, now):
        return False
    if rec is None and not zombi:
        create_record(w, app, stream_id, now, name or stream_id)
    w.start_publishing(app, stream_id, now, w.place(node), name=name or stream_id, publishType=publish_type)
    if new_episode:
        w.episodes[(app.name, stream_id)] = Episode(None)
    return True


def close_broadcast(w: World, app: AppState, rec: Record, now: float) -> None:
    """The server's normal end of a stream, per version (docs/ams.md, "Status", "Why a ghost persists"; closeBroadcast)."""
    w.freeze(rec, now)
    rec.session = None
    sid = rec.fields["streamId"]
    main_id = rec.fields.get("mainTrackStreamId")
    if w.version.has_subtrack_ids:
        _close_v2(w, app, rec, main_id, now)
    else:
        _close_v3(w, app, rec, main_id, now)
    w.note_listing(app, sid, now)


def _close_v2(w: World, app: AppState, rec: Record, main_id: str | None, now: float) -> None:
    """v2.8.2 closeBroadcast (AntMediaApplicationAdapter L491-531): finished; only a zombi record leaves its
    main track (L508-511) and is deleted. A non-zombi participant stays finished in subTrackStreamIds with
    its mainTrackStreamId, and the main track survives."""
    sid = rec.fields["streamId"]
    rec.fields["status"] = "finished"
    if rec.fields["zombi"]:
        if main_id and not _update_main_broadcast(app, main_id, sid):
            w.note_status(app, rec, now)  # the exception ends closeBroadcast before the delete (L528-530)
            return
        app.remove(sid)
        w.note_deleted(app, sid, now)
    else:
        w.note_status(app, rec, now)


def _update_main_broadcast(app: AppState, main_id: str, sid: str) -> bool:
    """updateMainBroadcast (L543-552 @ams-v2.8.2): List.remove drops the first copy of the id only; a zombi
    main left empty is deleted. False when the main track is gone (a NullPointerException in AMS)."""
    main = app.records.get(main_id)
    if main is None:
        return False
    ids = list(main.fields["subTrackStreamIds"] or [])
    if sid in ids:
        ids.remove(sid)
    main.fields["subTrackStreamIds"] = ids
    if main.fields["zombi"] and not ids:
        app.remove(main_id)
    return True


def _close_v3(w: World, app: AppState, rec: Record, main_id: str | None, now: float) -> None:
    """3.x: zombi deleted, else finished with updateTime=now; idle main deleted or finished."""
    sid = rec.fields["streamId"]
    if rec.fields["zombi"]:
        app.remove(sid)
        w.note_deleted(app, sid, now)
    else:
        now_ms = int((now + w.offset_of(rec.fields["originAdress"])) * 1000)
        rec.fields.update(status="finished", updateTime=now_ms, **{f: 0 for f in VIEWER_FIELDS})
        w.note_status(app, rec, now)
    if main_id:
        _finish_idle_main(w, app, main_id, now)


def active_subtracks(w: World, app: AppState, main_id: str, now: float) -> list[Record]:
    """Subtracks stored broadcasting with updateTime within 2 heartbeat periods (Mongo rule, §3.1)."""
    fresh_after = (now - w.stale_after) * 1000
    return [r for r in app.subtracks(main_id)
            if r.fields["status"] == "broadcasting" and w.update_time_ms(r, now) >= fresh_after]


def _finish_idle_main(w: World, app: AppState, main_id: str, now: float) -> None:
    """updateMainTrackWithRecentlyFinishedBroadcast: no active subtracks left -> delete or finish main."""
    main = app.records.get(main_id)
    if main is None or active_subtracks(w, app, main_id, now):
        return
    if main.fields["zombi"]:
        app.remove(main_id)
    else:
        main.fields["status"] = "finished"


def leave(w: World, app: AppState, stream_id: str, now: float) -> bool:
    """Clean leave: the client leaves the room and stops; closeBroadcast runs."""
    rec = app.records.get(stream_id)
    if rec is None:
        return False
    main_id = rec.fields.get("mainTrackStreamId")
    if main_id and w.version.has_conference_rooms:
        unlist_from_room(app, main_id, stream_id)
    close_broadcast(w, app, rec, now)
    return True


def drop(w: World, app: AppState, stream_id: str, now: float) -> bool:
    """Network drop: the stats writes stop; record, status and membership stay (the ghost).

    A WebRTC session ends with the network (only session recovery can bring it back). An RTMP connection
    stays open, silent, so its broadcast scope lives on its origin until the server closes it
    (schedule_silent_close)."""
    rec = app.records.get(stream_id)
    session = rec.session if rec is not None else None
    if rec is None or (rec.hb is None and (session is None or session.silent_since is not None)):
        return False
    _open_episode(w, app, rec, now)
    w.freeze(rec, now)
    if session is not None and session.publish_type == "RTMP" and rec.fetcher is None:
        session.silent_since = now
        schedule_silent_close(w, app, rec, session, now)
    else:
        rec.session = None
    return True


def cut(w: World, app: AppState, stream_id: str, now: float) -> bool:
    """The origin process dies: the connection is gone at once and nothing runs closeBroadcast."""
    rec = app.records.get(stream_id)
    if rec is None or (rec.hb is None and rec.session is None):
        return False
    if rec.session is None or rec.session.silent_since is None:
        _open_episode(w, app, rec, now)
    w.freeze(rec, now)
    rec.session = None
    return True


def _open_episode(w: World, app: AppState, rec: Record, now: float) -> None:
    """A new lifecycle episode stamped with the drop and the last stats write that reached the store."""
    ep = Episode(rec.fields.get("mainTrackStreamId"))
    ep.dropped_at = now
    tick = written_tick(rec, now)
    if tick is None:  # writes already stopped (no database, gated after a clock step): the stored one
        tick = rec.fields["updateTime"] / 1000.0 - w.offset_of(rec.fields["originAdress"])
    ep.last_heartbeat_at = tick
    w.episodes[(app.name, rec.fields["streamId"])] = ep


def schedule_silent_close(w: World, app: AppState, rec: Record, session: Session, now: float) -> None:
    """When the server closes a silent RTMP connection and runs the normal closeBroadcast.

    Red5 closes a connection after rtmp.max_inactivity (60 s; RTMPConnection L1826-1873); it is
    `rtmp_inactivity_seconds`, a constructor argument, not scaled. From 2.14 (commit ca403e2) MuxAdaptor also closes
    an ingest once both its start and its last stats write are older than STREAM_TIMEOUT_MS, 2 heartbeat periods
    (MuxAdaptor L1448-1458 @ams-v3.0.3), so it scales with the heartbeat."""
    at = now + w.rtmp_inactivity
    if w.version.closes_silent_ingest:
        last_write = rec.fields["updateTime"] / 1000.0 - w.offset_of(rec.fields["originAdress"])
        at = min(at, max(session.started, last_write) + w.stale_after)
    since = session.silent_since
    w.schedule(max(at, now), lambda due: _close_silent(w, app, rec, session, since, due))


def _close_silent(w: World, app: AppState, rec: Record, session: Session, since: float, at: float) -> None:
    """The connection closes if it stayed silent since `since`: closeBroadcast, as after a clean stop (no
    leave-room call from a client)."""
    if rec.session is session and session.silent_since == since and app.records.get(rec.fields["streamId"]) is rec:
        close_broadcast(w, app, rec, at)


def resume(w: World, app: AppState, stream_id: str, now: float) -> bool:
    """The network returns: an RTMP connection still open carries packets again; a WebRTC publisher gets back its
    session within session recovery. Heartbeats resume on the same record."""
    rec = app.records.get(stream_id)
    if rec is None or rec.hb is not None or rec.fields["status"] != "broadcasting":
        return False
    session = rec.session
    if session is not None:
        if session.silent_since is None:
            return False
        session.silent_since = None
        if w.nodes[session.origin].db:
            w.resume_writes(rec, now)
        _close_episode(w, app.name, stream_id)
        return True
    ep = w.episode(app.name, stream_id)
    # webRTCClientStartTimeoutMs (10000 by default) is the window in which a publisher may reconnect after
    # a flaky network (AppSettings L1464-1470 @ams-v2.8.2, L871-881 @ams-v3.0.3); the session lives on its origin
    origin = w.nodes.get(rec.fields["originAdress"])
    if ep is None or ep.dropped_at is None or now - ep.dropped_at > w.grace or origin is None or not origin.alive:
        return False
    rec.session = Session(origin.address, rec.fields.get("publishType"), now)
    if origin.db:
        rec.hb = Heartbeat(now, w.period)
    _close_episode(w, app.name, stream_id)
    return True


def blink(w: World, app: AppState, stream_id: str, seconds: float, now: float) -> bool:
    """Drop now and come back `seconds` later (resumes only within the grace window); False if not publishing."""
    if seconds < 0 or not drop(w, app, stream_id, now):
        return False
    w.schedule(now + seconds, lambda at: resume(w, app, stream_id, at))
    return True


def reconnect(w: World, app: AppState, stream_id: str, now: float, node: str | None = None) -> bool:
    """Republish the same id (into its room if it had one); False = streamIdInUse."""
    rec = app.records.get(stream_id)
    ep = w.episodes.get((app.name, stream_id))
    room = ep.room if ep is not None else (rec.fields.get("mainTrackStreamId") if rec else None)
    if room:
        name = rec.fields["name"] if rec is not None else None
        ok = join(w, app, room, stream_id, name, now, new_episode=False, node=node)
    else:
        ok = publish(w, app, stream_id, None, now, new_episode=False, node=node)
    if ok:
        _close_episode(w, app.name, stream_id)
    return ok


def _close_episode(w: World, app: str, stream_id: str) -> None:
    """Stop updating the current episode so its times stay readable after a rejoin."""
    ep = w.episodes.get((app, stream_id))
    if ep is not None:
        ep.closed = True
