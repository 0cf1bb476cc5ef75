"""Prometheus custom collector: one AMS pass per scrape, fresh metric families, no background poller."""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from operator import attrgetter

from prometheus_client.metrics_core import Metric

from ams.client import AmsClient
from ams.errors import AmsError, AmsUnavailableError
from ams.ghost import claims_live, find_ghosts, ghost_candidates, heartbeat_period, is_main_track, stale_threshold
from ams.model import AppSnapshot, ClusterNode, Broadcast, is_stream_id
from ams.server import AmsServer
from exporter.exposition import RowFamily, escape
from exporter.heartbeats import HeartbeatWatch
from exporter.labels import id_label

log = logging.getLogger(__name__)

REASONS = ("unavailable", "incomplete", "auth", "malformed", "limit", "error")
APP_LABELS = ("ams", "app")
STREAM_LABELS = ("ams", "app", "stream_id")
GRACE_SECONDS = 0.25  # on top of timeout_seconds: answer /metrics even if an app thread is stuck
# A shared collection still running this many timeouts after it started is stuck (every AMS request
# has a total deadline, so only a bug gets here): the next scrape starts a fresh one.
STUCK_TIMEOUTS = 3
# Statuses always exported (zero-filled) for liveStream so rules never see "absent" for "none".
COUNTED_STATUSES = ("broadcasting", "preparing", "terminated_unexpectedly", "created", "finished")


class _GcPause:
    """Pause the cyclic GC while any scrape collects and builds its families (reentrant across threads).

    A scrape allocates hundreds of thousands of short-lived, acyclic objects; each generation-2
    pass walks the whole heap and added 30-70 ms per 10k-broadcast scrape. Reference counting
    still frees everything; cycles wait for the next collection after the scrape. The pause is held
    by collect_servers() until its families are exhausted: /metrics renders the whole exposition
    before it answers (exporter/web.py), so the pause never lasts while a slow scraper reads the body.
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
    ghosts: int = 0  # candidates whose heartbeat stood still beyond the threshold across our scrapes


class _Flight:
    """One collection in progress (an app, or a node registry), shared by every scrape that arrives meanwhile."""

    __slots__ = ("future", "started", "reported")

    def __init__(self, started: float):
        self.started = started
        self.future: Future | None = None
        self.reported = False  # its outcome was counted (once per collection, however many scrapes share it)


class _SingleFlight:
    """At most one collection per key at a time: concurrent scrapes of the same AMS share it (single flight),
    so ten scrapers cost AMS one pass, and memory one snapshot, instead of ten."""

    def __init__(self, pool: ThreadPoolExecutor):
        self._pool = pool
        self._lock = threading.Lock()
        self._flights: dict[tuple, _Flight] = {}

    def join(self, key: tuple, now: float, timeout: float, work: Callable[[float], object],
             on_done: Callable[[_Flight, object], None] | None = None) -> _Flight:
        """The running collection of key, or a new one started now with deadline now + timeout."""
        with self._lock:
            flight = self._flights.get(key)
            if flight is not None and not flight.future.done() and now - flight.started < STUCK_TIMEOUTS * timeout:
                return flight
            if flight is not None and not flight.future.done():
                log.warning("collection %s still running after %gs; starting another", key, now - flight.started)
            flight = self._flights[key] = _Flight(now)
            flight.future = self._pool.submit(work, now + timeout)
        if on_done is not None:
            flight.future.add_done_callback(
                lambda f: None if f.cancelled() or f.exception() else on_done(flight, f.result()))
        return flight


@dataclass(frozen=True, slots=True)
class ClusterOutcome:
    """One AMS's node registry for one scrape: nodes (None: standalone), or the error that prevented it."""

    server: AmsServer
    nodes: tuple[ClusterNode, ...] | None
    error: AmsError | None


class AmsCollector:
    """Collects every configured AMS app on each scrape (register in a private CollectorRegistry).

    antmedia_up{ams="main",app="WebRTCAppEE"} 1.0

    detail adds the per-stream series nothing shipped reads (config key exporter.detail_metrics).
    """

    def __init__(self, servers: Sequence[AmsServer], clients: dict[str, AmsClient] | None = None,
                 timer=time.monotonic, detail: bool = False, clock=time.monotonic):
        self.servers = tuple(servers)
        self.detail = detail
        self._heartbeats = HeartbeatWatch(clock)  # clock: how long a heartbeat stood still, ours only
        self._timer = timer  # durations only; injectable for a reproducible golden file
        self.clients = clients if clients is not None else {s.name: AmsClient(s) for s in self.servers}
        tasks = sum(len(s.apps) for s in self.servers)
        # Twice the app count: a thread stuck past the deadline must not starve the next scrape.
        self._pool = ThreadPoolExecutor(max(2, min(64, 2 * tasks)), thread_name_prefix="collect")
        self._flights = _SingleFlight(self._pool)
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

    def collect_servers(self, servers: Sequence[AmsServer], timeout: float | None = None) -> Iterator[Metric]:
        """The families for some of the configured servers (the /probe view uses one).

        timeout, when given, shortens every AMS entry's timeout_seconds for this scrape (never lengthens
        it): the scraper's own deadline, from X-Prometheus-Scrape-Timeout-Seconds (exporter/web.py).
        """
        with _GC_PAUSE:
            started = time.monotonic()
            registries = {s: self._flights.join(("cluster", s.name), started, _limit(s, timeout),
                                                lambda deadline, s=s: self._collect_cluster(s, deadline))
                          for s in servers if s.server_jwt_secret}
            outcomes = self.gather(servers, started, [f.future for f in registries.values()], timeout)
            errors = self._error_counts(servers)
            clusters = self._clusters(registries, timeout)
            yield from build_families(outcomes, errors, self.detail, clusters)

    def gather(self, servers: Sequence[AmsServer], started: float | None = None,
               also: Sequence[Future] = (), timeout: float | None = None) -> list[Outcome]:
        """Snapshot every app of `servers` in parallel, joining collections already running (single flight);
        never waits beyond the longest timeout plus GRACE_SECONDS (nor for the futures in `also`)."""
        started = time.monotonic() if started is None else started
        flights = {
            (s, app): self._flights.join((s.name, app), started, _limit(s, timeout),
                                         lambda deadline, s=s, app=app: self._collect_app(s, app, deadline),
                                         self._report)
            for s in servers for app in s.apps
        }
        budget = max((_limit(s, timeout) for s in servers), default=0) + GRACE_SECONDS
        wait([f.future for f in flights.values()] + list(also), timeout=max(0.0, started + budget - time.monotonic()))
        outcomes = []
        for (server, app), flight in flights.items():
            if flight.future.done() and not flight.future.cancelled():
                outcomes.append(flight.future.result())
                self._report(flight, outcomes[-1])  # now, not in the done callback that may still be running
            else:
                limit = _limit(server, timeout)
                late = AmsUnavailableError(f"no answer within {limit:g}s")
                outcomes.append(Outcome(server, app, None, late, limit))
                self._report(flight, outcomes[-1])
        return outcomes

    def _report(self, flight: _Flight, outcome: Outcome) -> None:
        """Count and log one collection's outcome once, however many scrapes shared it."""
        with self._lock:
            if flight.reported:
                return
            flight.reported = True
        self._record(outcome)

    def _collect_app(self, server: AmsServer, app: str, deadline: float) -> Outcome:
        """One app's snapshot; every failure becomes an Outcome so /metrics never fails."""
        started = self._timer()
        try:
            snapshot, error = self.clients[server.name].snapshot(app, deadline), None
            ghosts = self._count_ghosts(server, snapshot)
        except AmsError as exc:
            snapshot, error = None, exc
        except Exception as exc:  # noqa: BLE001 - a bug must cost one app's data, not the scrape
            log.exception("ams=%s app=%s: unexpected error while collecting", server.name, app)
            snapshot, error = None, AmsError(f"unexpected {type(exc).__name__}")
        else:
            return Outcome(server, app, snapshot, None, self._timer() - started, ghosts)
        return Outcome(server, app, snapshot, error, self._timer() - started)

    def _collect_cluster(self, server: AmsServer, deadline: float) -> ClusterOutcome:
        """The AMS's node registry (only with a server secret); a failure is reported, never raised."""
        try:
            return ClusterOutcome(server, self.clients[server.name].cluster_nodes(deadline), None)
        except AmsError as exc:
            return ClusterOutcome(server, None, exc)
        except Exception as exc:  # noqa: BLE001 - a bug must cost the registry, not the scrape
            log.exception("ams=%s: unexpected error while reading the node registry", server.name)
            return ClusterOutcome(server, None, AmsError(f"unexpected {type(exc).__name__}"))

    @staticmethod
    def _clusters(registries: dict[AmsServer, _Flight], timeout: float | None = None) -> list[ClusterOutcome]:
        """The registry collections' outcomes (already waited for); one not finished in time is unavailable."""
        outcomes = []
        for server, flight in registries.items():
            future = flight.future
            if future.done() and not future.cancelled() and future.exception() is None:
                outcomes.append(future.result())
            else:
                late = AmsUnavailableError(f"no answer within {_limit(server, timeout):g}s")
                outcomes.append(ClusterOutcome(server, None, late))
        return outcomes

    def _count_ghosts(self, server: AmsServer, snapshot: AppSnapshot) -> int:
        """Ghosts by the shared predicate, stale on this exporter's own monotonic clock (never AMS's)."""
        candidates = ghost_candidates(snapshot)
        still = self._heartbeats.unchanged_seconds(server.name, snapshot.app, candidates)
        threshold = stale_threshold(server, snapshot.version)
        return len(find_ghosts(snapshot, lambda b: still.get(b.stream_id, 0.0) > threshold))

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


def _limit(server: AmsServer, timeout: float | None) -> float:
    """The AMS deadline of one scrape: the entry's timeout_seconds, shortened to the scraper's own when given."""
    return server.timeout_seconds if timeout is None else min(server.timeout_seconds, timeout)


def build_families(outcomes: list[Outcome], errors: dict[tuple[str, str, str], int],
                   detail: bool = False, clusters: Sequence[ClusterOutcome] = ()) -> Iterator[Metric]:
    """All metric families for one scrape, built lazily so one family is in memory at a time."""
    yield _up(outcomes)
    yield _durations(outcomes)
    yield _error_family(errors)
    yield from _cluster_families(clusters)
    collected = [o for o in outcomes if o.snapshot is not None]
    listed = [_listed(o) for o in collected]
    yield from _app_families(collected)
    yield _invalid_id_family(listed)
    yield from _stream_families(listed, detail)


def _invalid_id_family(listed: list[Listed]) -> Metric:
    """antmedia_invalid_id_streams{ams,app}: ids in series that the remediator cannot act on."""
    return RowFamily("antmedia_invalid_id_streams", "Streams and rooms with series whose id AMS's stream id "
                     "rule refuses (letters, digits, '_', '-', '.'); exported percent-encoded where not "
                     "printable, never remediated.", APP_LABELS, rows=[(app.key, _invalid_ids(app)) for app in listed])


def _cluster_families(clusters: Sequence[ClusterOutcome]) -> Iterator[Metric]:
    """The node registry of every AMS with a server secret: readable, and AMS's verdict on each node.

    antmedia_cluster_node_up{ams="main",node="10.0.0.2"} 0.0
    """
    registry = RowFamily("antmedia_cluster_registry_up", "1 when AMS's node registry was read (a standalone "
                         "server has none and counts as read); 0 when it could not be.", ("ams",))
    nodes = RowFamily("antmedia_cluster_node_up", "AMS's own verdict on each cluster node: 1 alive, 0 dead "
                      "(no registry heartbeat for 4 periods, 2 on 2.8.x). node is the address streams name "
                      "as their originAdress.", ("ams", "node"))
    for c in clusters:
        registry.add((escape(c.server.name),), 0.0 if c.error is not None else 1.0)
        for node in c.nodes or ():
            nodes.add((escape(c.server.name), escape(node.ip)), 0.0 if node.dead else 1.0)
    yield registry
    yield nodes


def _app_key(outcome: Outcome) -> tuple[str, str]:
    """Escaped label values (ams, app)."""
    return (escape(outcome.server.name), escape(outcome.app))


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
    family = RowFamily("antmedia_scrape_errors", "Failed collections by reason (unavailable, incomplete, auth, malformed, error).",
                       (*APP_LABELS, "reason"), typ="counter")
    for key, value in sorted(errors.items()):
        family.add(tuple(escape(v) for v in key), value)
    return family


def _app_families(collected: list[Outcome]) -> Iterator[Metric]:
    """Per-app families: version, AMS clock, heartbeat and ghosts, counts."""
    yield _server_info(collected)
    yield _app_gauge(collected, "antmedia_server_time_seconds",
                     "AMS's own clock (HTTP Date of the list responses) at collection.",
                     lambda o: o.snapshot.server_time)
    yield from _heartbeat_families(collected)
    yield _broadcast_counts(collected)
    yield _app_viewers(collected)
    yield _app_gauge(collected, "antmedia_rooms", "Rooms (main tracks and conference rooms) known to AMS.",
                     lambda o: len(o.snapshot.rooms))
    yield _app_gauge(collected, "antmedia_malformed_records",
                     "Broadcast records skipped at this scrape because they had no usable streamId.",
                     lambda o: o.snapshot.rejected_records)


def _heartbeat_families(collected: list[Outcome]) -> Iterator[Metric]:
    """What follows the ghost predicate: heartbeat period, stale threshold, ghost count."""
    yield _app_gauge(collected, "antmedia_heartbeat_period_seconds",
                     "Heartbeat (updateTime) period in force: config override or the version's default.",
                     lambda o: heartbeat_period(o.server, o.snapshot.version))
    yield _app_gauge(collected, "antmedia_stale_threshold_seconds",
                     "Seconds a heartbeat must stand still before a live claim is a ghost: stale_heartbeats x "
                     "period + reconnect_grace_seconds + AMS's write delay and read cache.",
                     lambda o: stale_threshold(o.server, o.snapshot.version))
    yield _app_gauge(collected, "antmedia_ghost_streams",
                     "Pushed publishers that are ghosts by the shared predicate, their heartbeat still for longer "
                     "than the threshold across this exporter's scrapes.",
                     lambda o: o.ghosts)


def _server_info(collected: list[Outcome]) -> Metric:
    """antmedia_server_info{ams,app,version,edition} 1."""
    family = RowFamily("antmedia_server_info", "AMS version of the app (from /rest/v2/version).",
                       (*APP_LABELS, "version", "edition"))
    for o in collected:
        version = o.snapshot.version
        family.add((*_app_key(o), escape(version.name), escape(version.edition)), 1.0)
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
            family.add((*_app_key(o), escape(status), escape(kind)), value)
    return family


def _app_viewers(collected: list[Outcome]) -> Metric:
    """antmedia_viewers{ams,app,protocol}: viewers of every broadcast of the app, each protocol always present."""
    family = RowFamily("antmedia_viewers", "Viewers of all the app's broadcasts by protocol (hlsViewerCount, "
                       "dashViewerCount, webRTCViewerCount, rtmpViewerCount).", (*APP_LABELS, "protocol"))
    for o in collected:
        for protocol, count_of in VIEWER_PROTOCOLS:
            total = sum(count for b in o.snapshot.broadcasts if (count := count_of(b)) is not None and count > 0)
            family.add((*_app_key(o), escape(protocol)), total)
    return family


@dataclass(frozen=True, slots=True)
class Listed:
    """One collected app's broadcasts that get per-stream series (the cardinality guard)."""

    snapshot: AppSnapshot
    key: tuple[str, str]  # escaped (ams, app)
    streams: list[Broadcast]
    labels: list[tuple[str, str, str]]  # escaped (ams, app, stream_id) of each stream
    zero_absent: bool  # a zero receivedBytes/bitrate means "never written" (v2.8.x): no series


def _listed(outcome: Outcome) -> Listed:
    """The broadcasts that still claim to be live (live-ish status or listed in a room) and the rooms."""
    snap = outcome.snapshot
    members, rooms = snap.members, snap.rooms
    streams = [b for b in snap.broadcasts if claims_live(b, members) or b.stream_id in rooms]
    ams, app = escape(outcome.server.name), escape(outcome.app)
    return Listed(snap, (ams, app), streams, [(ams, app, _id(b.stream_id)) for b in streams],
                  not snap.version.writes_ingest_counters)


def _id(value: str) -> str:
    """A stream or room id as an escaped label value (id_label: every id visible, each distinct)."""
    return escape(id_label(value))


def _invalid_ids(listed: Listed) -> int:
    """Ids with series (streams, rooms, members) that AMS's stream id rule refuses: the remediator cannot act on them."""
    ids = {b.stream_id for b in listed.streams}
    for room, members in listed.snapshot.rooms.items():
        ids.add(room)
        ids.update(members)
    return sum(1 for i in ids if not is_stream_id(i))


def _ms(ms: int) -> float | None:
    """Epoch milliseconds in seconds; None (no series) when AMS has none (0)."""
    return ms / 1000 if ms > 0 else None


def _ingest(value: int | None, zero_absent: bool, divisor: int = 1, counter: bool = False) -> float | None:
    """In base units; None when missing, a zero that means "never written", or a negative counter."""
    if value is None or (zero_absent and value == 0) or (counter and value < 0):
        return None
    return value / divisor


# Per-stream numbers: (name, type, help, value of (broadcast, zero_absent) or None for no series).
# The first is exported by default (the rules and dashboards read it); the rest with detail_metrics.
LAST_UPDATE = ("antmedia_broadcast_last_update_timestamp_seconds", "gauge",
               "Last heartbeat of the broadcast (updateTime / 1000); absent when AMS has none.",
               lambda b, _: _ms(b.update_time_ms))
DETAIL_NUMBERS = (
    ("antmedia_broadcast_start_timestamp_seconds", "gauge",
     "Publish start of the broadcast (startTime / 1000); absent when never published.",
     lambda b, _: _ms(b.start_time_ms)),
    ("antmedia_broadcast_speed_ratio", "gauge", "Ingest speed (speed), about 1 when healthy; frozen on a ghost.",
     lambda b, _: b.speed),
    ("antmedia_broadcast_pending_packets", "gauge", "Ingest queue length (pendingPacketSize).",
     lambda b, _: b.pending_packets),
    # AMS reports bits/s; Prometheus base unit is bytes (promtool rejects "bits").
    ("antmedia_broadcast_bitrate_bytes_per_second", "gauge",
     "Ingest rate (bitrate / 8), where the version provides it.",
     lambda b, zero_absent: _ingest(b.bitrate, zero_absent, 8)),
    ("antmedia_broadcast_received_bytes", "counter",
     "Bytes received from the publisher (receivedBytes); resets on republish.",
     lambda b, zero_absent: _ingest(b.received_bytes, zero_absent, counter=True)),
)
VIEWER_PROTOCOLS = (("hls", attrgetter("hls_viewers")), ("dash", attrgetter("dash_viewers")),
                    ("webrtc", attrgetter("webrtc_viewers")), ("rtmp", attrgetter("rtmp_viewers")))


def _stream_families(listed: list[Listed], detail: bool) -> Iterator[Metric]:
    """Per-stream and per-room families; the detail ones only when asked for."""
    yield _status(listed)
    yield _stream_number(listed, *LAST_UPDATE)
    if detail:
        for spec in DETAIL_NUMBERS:
            yield _stream_number(listed, *spec)
    yield _viewers(listed, detail)
    yield _main_tracks(listed)
    if detail:
        yield _info(listed)
    yield _room_member(listed)
    yield _room_members(listed)


def _status(listed: list[Listed]) -> Metric:
    """antmedia_broadcast_status{ams,app,stream_id,status,type,node} 1.

    type tells pushed streams from pulled sources; node is the origin (originAdress), which rules
    join with antmedia_cluster_node_up.
    """
    return RowFamily("antmedia_broadcast_status", "1 for the broadcast's current status (as AMS reports it); "
                     "type is the broadcast's type (only liveStream publishers can be ghosts); node its "
                     "origin node (originAdress).",
                     (*STREAM_LABELS, "status", "type", "node"),
                     rows=[((*labels, escape(b.status), escape(b.type), escape(b.origin)), 1.0)
                           for app in listed for b, labels in zip(app.streams, app.labels)])


def _stream_number(listed: list[Listed], name: str, typ: str, documentation: str, value_of) -> Metric:
    """One number per stream, none where value_of gives None."""
    rows = [(labels, value) for app in listed for b, labels in zip(app.streams, app.labels)
            if (value := value_of(b, app.zero_absent)) is not None]
    return RowFamily(name, documentation, STREAM_LABELS, typ, rows)


def _viewers(listed: list[Listed], detail: bool) -> Metric:
    """antmedia_broadcast_viewers{...,protocol}: protocols with viewers; with detail, every count AMS reports."""
    least = 0 if detail else 1
    rows = [((*labels, protocol), count) for app in listed for b, labels in zip(app.streams, app.labels)
            for protocol, count_of in VIEWER_PROTOCOLS if (count := count_of(b)) is not None and count >= least]
    return RowFamily("antmedia_broadcast_viewers", "Viewers by protocol (hlsViewerCount, dashViewerCount, "
                     "webRTCViewerCount, rtmpViewerCount); by default only protocols with viewers.",
                     (*STREAM_LABELS, "protocol"), rows=rows)


def _main_tracks(listed: list[Listed]) -> Metric:
    """antmedia_broadcast_main_track{ams,app,stream_id}: 1 for a room, 0 for a publisher."""
    rows = [(labels, 1.0 if is_main_track(b, app.snapshot.rooms) else 0.0)
            for app in listed for b, labels in zip(app.streams, app.labels)]
    return RowFamily("antmedia_broadcast_main_track", "1 if the broadcast is a room's main track, 0 if it is a "
                     "publisher.", STREAM_LABELS, rows=rows)


def _info(listed: list[Listed]) -> Metric:
    """antmedia_broadcast_info{...,origin,type,publish_type} 1 (detail)."""
    rows = [((*labels, escape(b.origin), escape(b.type), escape(b.publish_type)), 1.0)
            for app in listed for b, labels in zip(app.streams, app.labels)]
    return RowFamily("antmedia_broadcast_info", "Broadcast metadata: ingesting node (originAdress), type, "
                     "publishType.", (*STREAM_LABELS, "origin", "type", "publish_type"), rows=rows)


def _room_member(listed: list[Listed]) -> Metric:
    """antmedia_room_member{ams,app,room,stream_id} 1 while listed in the room."""
    rows = [((*app.key, _id(room), _id(stream_id)), 1.0) for app in listed
            for room, members in sorted(app.snapshot.rooms.items()) for stream_id in sorted(members)]
    return RowFamily("antmedia_room_member", "1 while the stream is listed as a member of the room (any room "
                     "model).", (*APP_LABELS, "room", "stream_id"), rows=rows)


def _room_members(listed: list[Listed]) -> Metric:
    """antmedia_room_members{ams,app,room}: member count."""
    rows = [((*app.key, _id(room)), len(members)) for app in listed
            for room, members in sorted(app.snapshot.rooms.items())]
    return RowFamily("antmedia_room_members", "Number of streams listed as members of the room.",
                     (*APP_LABELS, "room"), rows=rows)


def select_servers(servers: Iterable[AmsServer], name: str) -> list[AmsServer]:
    """The configured server called `name` (empty when unknown)."""
    return [s for s in servers if s.name == name]
