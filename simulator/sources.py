"""Pulled sources (IP cameras, stream sources, playlists): fetchers that AMS itself keeps alive or restarts."""
from .participants import drop
from .world import AppState, Record, World, written_tick

PULLED_TYPES = ("ipCamera", "streamSource", "playlist")


class Fetcher:
    """A StreamFetcher pulling one source; `stuck` when it neither reads packets nor reconnects."""

    __slots__ = ("stuck",)

    def __init__(self):
        self.stuck = False


def add_source(w: World, app: AppState, stream_id: str, type_: str, name: str | None, node: str | None,
               now: float) -> None:
    """A REST-created source record (not zombi) whose fetcher runs and writes stats every period."""
    if type_ not in PULLED_TYPES:
        raise ValueError(f"unknown source type {type_!r}; expected one of {', '.join(PULLED_TYPES)}")
    if stream_id in app.records:
        raise ValueError(f"stream id {stream_id!r} is already in use")
    origin = w.place(node)
    url = None if type_ == "playlist" else f"rtsp://192.0.2.10/{stream_id}"
    app.put(Record(w.new_fields(app.name, stream_id, now, origin, type=type_, zombi=False, streamUrl=url)))
    rec = w.start_publishing(app, stream_id, now, origin, name=name or stream_id, publishType=None)
    rec.fetcher = Fetcher()


def stick(w: World, app: AppState, stream_id: str, now: float) -> bool:
    """The source stops delivering; what AMS writes then depends on the version. False if not a running source."""
    rec = app.records.get(stream_id)
    if rec is None or rec.fetcher is None or rec.fetcher.stuck or rec.hb is None:
        return False
    rec.fetcher.stuck = True
    if w.version.source_keepalive:
        # a fetcher that is not alive still gets updateStreamQualityParameters(speed 0.01) on every check,
        # throttled to one write per STAT_UPDATE_PERIOD_MS (StreamFetcherManager L471-488 @ams-v2.8.2)
        rec.fields.update(speed=0.01, pendingPacketSize=0)
        return True
    last_tick = written_tick(rec, now)
    if last_tick is None:  # gated after a clock step: the last write is the stored one
        last_tick = rec.fields["updateTime"] / 1000.0 - w.offset_of(rec.fields["originAdress"])
    drop(w, app, stream_id, now)
    # the check timer runs every STAT_UPDATE_PERIOD_MS from app start; the first check that finds the status
    # terminated_unexpectedly (STREAM_TIMEOUT_MS after the last write) restarts the fetcher
    # (StreamFetcherManager L537-560, L583-621 @ams-v3.0.3); playlists are skipped by that check (L589-596)
    if w.version.restarts_stale_fetchers and rec.fields["type"] != "playlist":
        fetcher = rec.fetcher
        at = w.next_check(last_tick + w.stale_after)
        w.schedule(at, lambda due: _restart(w, app, stream_id, fetcher, due))
    return True


def _restart(w: World, app: AppState, stream_id: str, fetcher: Fetcher, at: float) -> None:
    """stopStreaming then startStreaming: the new fetcher reaches the source and writes stats again."""
    rec = app.records.get(stream_id)
    if rec is None or rec.fetcher is not fetcher or not fetcher.stuck:
        return
    origin = w.nodes.get(rec.fields["originAdress"])
    if origin is None or not origin.alive:
        return
    fetcher.stuck = False
    w.start_publishing(app, stream_id, at, origin.address)
    ep = w.episode(app.name, stream_id)
    if ep is not None:
        ep.closed = True
