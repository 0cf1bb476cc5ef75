"""Prometheus custom collector: one AMS pass per scrape, fresh metric families, no background poller."""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass

from prometheus_client.metrics_core import Metric

from ams.client import AmsClient
from ams.server import AmsServer
from ams.errors import AmsError, AmsUnavailableError
from exporter.exposition import RowFamily, TextFamily, escape
from ams.ghost import find_ghosts, heartbeat_period, stale_threshold
from ams.model import AppSnapshot, Broadcast
from exporter.stream_text import (
    INFO,
    MAIN_TRACK,
    PAGE_FAMILIES,
    ROOM_MEMBER,
    STATUS,
    STREAM_COUNTERS,
    STREAM_GAUGES,
    VIEWERS,
    PageText,
    ingest_zero_absent,
    main_track_text,
    render_page,
    room_member_text,
)

log = logging.getLogger(__name__)

REASONS = ("unavailable", "auth", "malformed", "error")
APP_LABELS = ("ams", "app")
GRACE_SECONDS = 0.25  # on top of timeout_seconds: answer /metrics even if an app thread is stuck
# Statuses always exported (zero-filled) for liveStream so rules never see "absent" for "none".
COUNTED_STATUSES = ("broadcasting", "preparing", "terminated_unexpectedly", "created", "finished")


class _GcPause:
    """Pause the cyclic GC while any scrape runs (reentrant across threads).

    A scrape allocates hundreds of thousands of short-lived, acyclic objects; each generation-2
    pass walks the whole heap and added 30-70 ms per 10k-broadcast scrape. Reference counting
    still frees everything; cycles wait for the next collection after the scrape.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._active = 0
        self._was_enabled = False

    def __enter__(self) -> None:
        with self._lock:
            if self._active == 0:
                self._was_enabled = gc.isenabled()
                gc.disable()
            self._active += 1

    def __exit__(self, *exc) -> None:
        with self._lock:
            self._active -= 1
            if self._active == 0 and self._was_enabled:
                gc.enable()


_GC_PAUSE = _GcPause()


@dataclass(frozen=True, slots=True)
class Outcome:
    """One app's result for one scrape: a snapshot, or the error that prevented it."""

    server: AmsServer
    app: str
    snapshot: AppSnapshot | None
    error: AmsError | None
    duration: float


@dataclass(frozen=True, slots=True)
class StreamView:
    """A collected app with the per-stream series it is allowed to have (cardinality guard)."""

    outcome: Outcome
    key: tuple[str, str]  # escaped (ams, app)
    pages: list[PageText]  # the selected streams' lines, page by page


class AmsCollector:
    """Collects every configured AMS app on each scrape (register in a private CollectorRegistry).

    antmedia_up{ams="main",app="WebRTCAppEE"} 1.0
    """

    def __init__(self, servers: Sequence[AmsServer], clients: dict[str, AmsClient] | None = None,
                 timer=time.monotonic):
        self.servers = tuple(servers)
        self._timer = timer  # durations only; injectable for a reproducible golden file
        self.clients = clients if clients is not None else {s.name: AmsClient(s) for s in self.servers}
        tasks = sum(len(s.apps) for s in self.servers)
        # Twice the app count: a thread stuck past the deadline must not starve the next scrape.
        self._pool = ThreadPoolExecutor(max(2, min(64, 2 * tasks)), thread_name_prefix="collect")
        self._lock = threading.Lock()
        self._errors: Counter = Counter({(s.name, a, r): 0 for s in self.servers for a in s.apps for r in REASONS})
        self._failing: dict[tuple[str, str], tuple[str, int]] = {}

    def close(self) -> None:
        """Stop worker threads and close the AMS clients."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        for client in self.clients.values():
            client.close()

    def collect(self) -> Iterator[Metric]:
        """Every configured AMS: fetch, build each family from a helper, yield."""
        return self.collect_servers(self.servers)

    def collect_servers(self, servers: Sequence[AmsServer]) -> Iterator[Metric]:
        """The families for some of the configured servers (the /probe view uses one)."""
        with _GC_PAUSE:
            outcomes = self.gather(servers)
            errors = self._error_counts(servers)
            yield from build_families(outcomes, errors)

    def gather(self, servers: Sequence[AmsServer]) -> list[Outcome]:
        """Snapshot every app of `servers` in parallel; never waits beyond the longest timeout."""
        started = time.monotonic()
        jobs = {
            self._pool.submit(self._collect_app, s, app, started + s.timeout_seconds): (s, app)
            for s in servers for app in s.apps
        }
        budget = max((s.timeout_seconds for s in servers), default=0) + GRACE_SECONDS
        done, _ = wait(jobs, timeout=budget)
        outcomes = []
        for future, (server, app) in jobs.items():
            if future in done:
                outcomes.append(future.result())
            else:
                late = AmsUnavailableError(f"no answer within {server.timeout_seconds:g}s")
                outcomes.append(Outcome(server, app, None, late, server.timeout_seconds))
        for outcome in outcomes:
            self._record(outcome)
        return outcomes

    def _collect_app(self, server: AmsServer, app: str, deadline: float) -> Outcome:
        """One app's snapshot; every failure becomes an Outcome so /metrics never fails."""
        started = self._timer()
        try:
            snapshot, error = self.clients[server.name].snapshot(app, deadline), None
        except AmsError as exc:
            snapshot, error = None, exc
        except Exception as exc:  # noqa: BLE001 - a bug must cost one app's data, not the scrape
            log.exception("ams=%s app=%s: unexpected error while collecting", server.name, app)
            snapshot, error = None, AmsError(f"unexpected {type(exc).__name__}")
        return Outcome(server, app, snapshot, error, self._timer() - started)

    def _record(self, outcome: Outcome) -> None:
        """Count the error and log once per failure streak (and once on recovery)."""
        key = (outcome.server.name, outcome.app)
        with self._lock:
            previous = self._failing.get(key)
            if outcome.error is None:
                if previous:
                    self._failing.pop(key)
                    log.info("ams=%s app=%s: collecting again after %d failed scrapes", *key, previous[1])
                return
            reason = outcome.error.reason
            self._errors[(*key, reason)] += 1
            self._failing[key] = (reason, (previous[1] if previous else 0) + 1)
        if previous is None or previous[0] != reason:
            log.warning("ams=%s app=%s: scrape failed (%s): %s; not logged again until it changes or recovers",
                        *key, reason, outcome.error)

    def _error_counts(self, servers: Sequence[AmsServer]) -> dict[tuple[str, str, str], int]:
        """Copy of the error counters of `servers`."""
        names = {s.name for s in servers}
        with self._lock:
            return {key: value for key, value in self._errors.items() if key[0] in names}


def build_families(outcomes: list[Outcome], errors: dict[tuple[str, str, str], int]) -> Iterator[Metric]:
    """All metric families for one scrape, built lazily so one family is in memory at a time."""
    yield _up(outcomes)
    yield _durations(outcomes)
    yield _error_family(errors)
    collected = [o for o in outcomes if o.snapshot is not None]
    yield from _app_families(collected)
    views = [_stream_view(o) for o in collected]
    yield _per_page(views, STATUS, "1 for the broadcast's current status (as AMS reports it).")
    for name, documentation, *_ in STREAM_GAUGES:
        yield _per_page(views, name, documentation)
    for name, documentation, _ in STREAM_COUNTERS:
        yield _per_page(views, name, documentation, "counter")
    yield _per_page(views, VIEWERS, "Viewers by protocol (hlsViewerCount, dashViewerCount, webRTCViewerCount, "
                    "rtmpViewerCount).")
    yield _main_tracks(views)
    yield _per_page(views, INFO, "Broadcast metadata: ingesting node (originAdress), type, publishType.")
    yield _room_member(views)
    yield _room_members(views)


def _app_key(outcome: Outcome) -> tuple[str, str]:
    """Label values (ams, app)."""
    return (outcome.server.name, outcome.app)


def _up(outcomes: list[Outcome]) -> Metric:
    """antmedia_up{ams,app} 1 when this app's data was collected."""
    family = RowFamily("antmedia_up", "1 when this app's data was collected from AMS, else 0.", APP_LABELS)
    for o in outcomes:
        family.add(_app_key(o), 1.0 if o.snapshot is not None else 0.0)
    return family


def _durations(outcomes: list[Outcome]) -> Metric:
    """antmedia_scrape_duration_seconds{ams,app}."""
    family = RowFamily("antmedia_scrape_duration_seconds", "Time spent collecting this app from AMS.", APP_LABELS)
    for o in outcomes:
        family.add(_app_key(o), o.duration)
    return family


def _error_family(errors: dict[tuple[str, str, str], int]) -> Metric:
    """antmedia_scrape_errors_total{ams,app,reason}."""
    family = RowFamily("antmedia_scrape_errors", "Failed collections by reason (unavailable, auth, malformed, error).",
                       (*APP_LABELS, "reason"), typ="counter")
    for key, value in sorted(errors.items()):
        family.add(key, value)
    return family


def _app_families(collected: list[Outcome]) -> Iterator[Metric]:
    """Per-app families: version, AMS clock, heartbeat period, threshold, counts."""
    yield _server_info(collected)
    yield _app_gauge(collected, "antmedia_server_time_seconds",
                     "AMS's own clock (HTTP Date of the list responses) at collection.",
                     lambda o: o.snapshot.server_time)
    yield _app_gauge(collected, "antmedia_heartbeat_period_seconds",
                     "Heartbeat (updateTime) period in force: config override or the version's default.",
                     lambda o: heartbeat_period(o.server, o.snapshot.version))
    yield _app_gauge(collected, "antmedia_stale_threshold_seconds",
                     "stale_heartbeats x heartbeat period: heartbeat age beyond which a live claim is a ghost.",
                     lambda o: stale_threshold(o.server, o.snapshot.version))
    yield _broadcast_counts(collected)
    yield _app_gauge(collected, "antmedia_rooms", "Rooms (main tracks and conference rooms) known to AMS.",
                     lambda o: len(o.snapshot.rooms))
    yield _app_gauge(collected, "antmedia_ghost_streams",
                     "Broadcasts that are ghosts by the shared predicate at this scrape.",
                     lambda o: len(find_ghosts(o.snapshot, stale_threshold(o.server, o.snapshot.version))))
    yield _app_gauge(collected, "antmedia_malformed_records",
                     "Broadcast records skipped at this scrape because they had no usable streamId.",
                     lambda o: o.snapshot.rejected_records)


def _server_info(collected: list[Outcome]) -> Metric:
    """antmedia_server_info{ams,app,version,edition} 1."""
    family = RowFamily("antmedia_server_info", "AMS version of the app (from /rest/v2/version).",
                       (*APP_LABELS, "version", "edition"))
    for o in collected:
        version = o.snapshot.version
        family.add((*_app_key(o), version.name, version.edition), 1.0)
    return family


def _app_gauge(collected: list[Outcome], name: str, documentation: str, value_of) -> Metric:
    """A gauge with one sample per collected app; None values are left out."""
    family = RowFamily(name, documentation, APP_LABELS)
    for o in collected:
        value = value_of(o)
        if value is not None:
            family.add(_app_key(o), value)
    return family


def _broadcast_counts(collected: list[Outcome]) -> Metric:
    """antmedia_broadcasts{ams,app,status,type}: every record counted, none listed."""
    family = RowFamily("antmedia_broadcasts", "Broadcast records by status and type (all records).",
                       (*APP_LABELS, "status", "type"))
    for o in collected:
        counts = Counter((b.status, b.type) for b in o.snapshot.broadcasts)
        for status in COUNTED_STATUSES:
            counts.setdefault((status, "liveStream"), 0)
        for (status, kind), value in sorted(counts.items()):
            family.add((*_app_key(o), status, kind), value)
    return family


def _stream_view(outcome: Outcome) -> StreamView:
    """Pick the broadcasts that get per-stream series: live-ish, room members, rooms."""
    snap = outcome.snapshot
    members, rooms = snap.members, snap.rooms
    ams, app = escape(outcome.server.name), escape(outcome.app)
    zero_absent = ingest_zero_absent(snap.version)

    def chosen(b: Broadcast) -> bool:
        """The selection, now that every room is known."""
        return b.live_status or b.stream_id in members or b.stream_id in rooms or bool(b.joined_room)

    streams = [b for b in snap.broadcasts if chosen(b)]
    return StreamView(outcome, (ams, app), [render_page(ams, app, zero_absent, streams, streams)])


def _per_page(views: list[StreamView], name: str, documentation: str, typ: str = "gauge") -> Metric:
    """A per-stream family whose lines were rendered page by page (stream_text.PAGE_FAMILIES)."""
    index = PAGE_FAMILIES.index(name)
    return TextFamily(name, documentation, lambda: (page.texts[index] for view in views for page in view.pages), typ)


def _main_tracks(views: list[StreamView]) -> Metric:
    """antmedia_broadcast_main_track{ams,app,stream_id}: 1 for a room, 0 for a publisher."""

    def text() -> Iterator[bytes]:
        """Checked after the last page: it needs every room."""
        return (main_track_text(page, view.outcome.snapshot.rooms) for view in views for page in view.pages)

    return TextFamily(MAIN_TRACK, "1 if the broadcast is a room's main track, 0 if it is a publisher.", text)


def _room_member(views: list[StreamView]) -> Metric:
    """antmedia_room_member{ams,app,room,stream_id} 1 while listed in the room."""
    return TextFamily(ROOM_MEMBER, "1 while the stream is listed as a member of the room (any room model).",
                      lambda: (room_member_text(*view.key, view.outcome.snapshot.rooms) for view in views))


def _room_members(views: list[StreamView]) -> Metric:
    """antmedia_room_members{ams,app,room}: member count."""
    return RowFamily("antmedia_room_members", "Number of streams listed as members of the room.",
                     (*APP_LABELS, "room"),
                     source=lambda: (((*view.key, escape(room)), len(members)) for view in views
                                     for room, members in sorted(view.outcome.snapshot.rooms.items())))


def select_servers(servers: Iterable[AmsServer], name: str) -> list[AmsServer]:
    """The configured server called `name` (empty when unknown)."""
    return [s for s in servers if s.name == name]
