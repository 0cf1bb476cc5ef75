"""Safety guards: allow/deny lists, eviction caps, blast radius, duplicate deliveries."""
from __future__ import annotations

import threading
from collections import OrderedDict, deque
from contextlib import contextmanager
from typing import Callable, Hashable, Iterator, NamedTuple

from service.config import BlastRadius, Caps, DeadNodeBudget, Filters

__all__ = ["DeadNodeCaps", "EvictionCaps", "FlaggedStreams", "HandledAlerts", "Hold", "LifeHolds",
    "NodeWatch", "Stillness", "denied_by"]

# Heartbeat values remembered at once; the oldest go first (a forgotten one is only seen afresh).
MAX_REMEMBERED = 100_000
# ClusterNode.NODE_UPDATE_PERIOD (5 s, ClusterNode L19 @2.8.2 and @3.0.3) plus a second: a node that
# can write to the database rewrites its registry heartbeat within it, whatever its clock says.
NODE_HEARTBEAT_SECONDS = 6.0


class Stillness:
    """Since when (this process's clock) each heartbeat value has been seen, by (app, stream, updateTime)."""

    def __init__(self, clock: Callable[[], float], limit: int = MAX_REMEMBERED) -> None:
        self.clock, self.limit = clock, limit
        self._first: OrderedDict[Hashable, float] = OrderedDict()
        self._lock = threading.Lock()

    def seen(self, key: Hashable) -> float:
        """Record a read showing this value now; seconds since this process first read it."""
        now = self.clock()
        with self._lock:
            first = self._first.get(key)
            if first is None:
                first = self._first[key] = now
                while len(self._first) > self.limit:
                    self._first.popitem(last=False)
            return now - first

    def known(self, key: Hashable) -> float | None:
        """Seconds since first read, without a read now; None when never seen."""
        with self._lock:
            first = self._first.get(key)
        return None if first is None else self.clock() - first


class NodeWatch:
    """Each cluster node's registry heartbeat (lastUpdateTime) as this process saw it move, on its own clock.

    AMS's dead/alive compares the reader's clock with a value the node wrote with its own, so a node whose
    clock lags reads dead while it writes. Here a node has stopped writing when one value stood, between
    this process's own reads, longer than NODE_HEARTBEAT_SECONDS; it writes when its value was seen to
    change and has not stood that long since. A change seen long ago proves little by itself: what a write
    needs is checked on the node's own clock (its registry heartbeat past the stream's frozen one).
    """

    def __init__(self, clock: Callable[[], float], limit: int = 10_000) -> None:
        self.clock, self.limit = clock, limit
        # ip -> (value, when first read with it, whether a change of value was ever seen)
        self._nodes: dict[str, tuple[int, float, bool]] = {}
        self._last_read: dict[str, float] = {}
        # ip -> since when (this process's clock) the node has been seen writing without a stand-still
        self._writing_since: dict[str, float] = {}
        self._lock = threading.Lock()

    def saw(self, ip: str, last_update_ms: int) -> None:
        """One registry read of one node."""
        now = self.clock()
        with self._lock:
            seen = self._nodes.get(ip)
            if seen is None or seen[0] != last_update_ms:
                if seen is None and len(self._nodes) >= self.limit:
                    self._nodes.clear()
                    self._last_read.clear()
                    self._writing_since.clear()
                if seen is not None:
                    stood = self._last_read.get(ip, now) - seen[1]
                    if ip not in self._writing_since or stood > NODE_HEARTBEAT_SECONDS:
                        self._writing_since[ip] = now  # writing again (or seen writing for the first time)
                self._nodes[ip] = (last_update_ms, now, seen is not None)
            self._last_read[ip] = now

    def writing_for(self, ip: str) -> float:
        """Seconds the node has been seen writing without standing still; 0 when it is not writing.

        A node that gets its database back resumes its sessions' stats writes only at each writer's next
        try (MuxAdaptor L855-868 @2.8.2): until it has written for a period plus AMS's delays, a stream's
        frozen heartbeat there says nothing about its publisher."""
        if self.writing(ip) is not True:
            return 0.0
        with self._lock:
            since = self._writing_since.get(ip)
        return 0.0 if since is None else self.clock() - since

    def still_for(self, ip: str) -> float:
        """Seconds the node's current registry value has certainly stood: from its first read to the last."""
        with self._lock:
            seen, last = self._nodes.get(ip), self._last_read.get(ip)
        return 0.0 if seen is None or last is None else last - seen[1]

    def writing(self, ip: str) -> bool | None:
        """True: seen changing, and not standing since; False: one value stood past a node period; None: unknown."""
        if self.still_for(ip) > NODE_HEARTBEAT_SECONDS:
            return False
        with self._lock:
            seen = self._nodes.get(ip)
        return True if seen is not None and seen[2] else None


def denied_by(allow: Filters, deny: Filters, app: str, rooms: tuple[str, ...] | None, stream: str) -> str | None:
    """Which list refuses the stream, or None; rooms=None means not known yet (rooms not judged)."""
    for kind, value in (("apps", app), ("streams", stream)):
        if value in getattr(deny, kind):
            return f"deny.{kind}"
        if getattr(allow, kind) and value not in getattr(allow, kind):
            return f"allow.{kind}"
    if rooms is None:
        return None
    if any(room in deny.rooms for room in rooms):
        return "deny.rooms"
    # An allowlist admits only what it names: every room of the stream, and a stream in no room is not named.
    if allow.rooms and (not rooms or any(room not in allow.rooms for room in rooms)):
        return "allow.rooms"
    return None


class _Window:
    """Timestamps within a sliding window."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.times: deque[float] = deque()

    def count(self, now: float) -> int:
        """Events still inside the window."""
        while self.times and self.times[0] <= now - self.seconds:
            self.times.popleft()
        return len(self.times)


class DeadNodeCaps:
    """The dead-node budget: evictions per AMS and sliding window, apart from the caps of live nodes."""

    def __init__(self, budget: DeadNodeBudget) -> None:
        self.budget = budget
        self._lock = threading.Lock()
        self._per_ams: dict[Hashable, _Window] = {}

    def reserve(self, ams_key: Hashable, now: float) -> str | None:
        """Take one slot, or say that the budget is spent."""
        with self._lock:
            window = self._per_ams.setdefault(ams_key, _Window(self.budget.window_seconds))
            if window.count(now) >= self.budget.max_evictions:
                return "dead_node.max_evictions"
            window.times.append(now)
            return None

    def release(self, ams_key: Hashable, now: float) -> None:
        """Give back a slot taken for an eviction that did not happen."""
        with self._lock:
            window = self._per_ams.get(ams_key)
            if window is not None and now in window.times:
                window.times.remove(now)


class EvictionCaps:
    """Caps on evictions per window, global and per (ams, app); reserve before, release on failure."""

    def __init__(self, caps: Caps) -> None:
        self.caps = caps
        self._lock = threading.Lock()
        self._global = _Window(caps.window_seconds)
        self._per_app: dict[Hashable, _Window] = {}

    def reserve(self, app_key: Hashable, now: float) -> str | None:
        """Take one slot, or say which cap is full."""
        with self._lock:
            per_app = self._per_app.setdefault(app_key, _Window(self.caps.window_seconds))
            if self.caps.max_evictions is not None and self._global.count(now) >= self.caps.max_evictions:
                return "caps.max_evictions"
            limit = self.caps.max_evictions_per_app
            if limit is not None and per_app.count(now) >= limit:
                return "caps.max_evictions_per_app"
            self._global.times.append(now)
            per_app.times.append(now)
            return None

    def release(self, app_key: Hashable, now: float) -> None:
        """Give back a slot whose eviction did not happen."""
        with self._lock:
            for window in (self._global, self._per_app.get(app_key)):
                if window is not None and now in window.times:
                    window.times.remove(now)


# Streams remembered per app in the blast-radius window. Far above any share that stops an app
# (25 % of an app's live streams), so counting stops being exact only where the guard holds anyway;
# at about 150 bytes a stream, 50,000 cost some 8 MB per app.
MAX_FLAGGED_PER_APP = 50_000


class FlaggedStreams:
    """Distinct streams flagged per (ams, app) within the blast-radius window.

    The caller flags only configured apps, so the keys are bounded; every key's old entries expire
    by age whenever anything is flagged, and each key holds at most max_per_app streams.
    """

    def __init__(self, blast: BlastRadius, max_per_app: int = MAX_FLAGGED_PER_APP) -> None:
        self.blast = blast
        self.max_per_app = max_per_app
        self._lock = threading.Lock()
        self._seen: dict[Hashable, OrderedDict[str, float]] = {}

    def flag(self, app_key: Hashable, stream: str, now: float) -> None:
        """Record that an alert named this stream now."""
        with self._lock:
            streams = self._seen.setdefault(app_key, OrderedDict())
            streams.pop(stream, None)
            streams[stream] = now
            while len(streams) > self.max_per_app:
                streams.popitem(last=False)
            for key in list(self._seen):
                self._expire(self._seen[key], now)
                if not self._seen[key]:
                    del self._seen[key]

    def size(self) -> int:
        """Streams remembered, all apps together."""
        with self._lock:
            return sum(len(streams) for streams in self._seen.values())

    def count(self, app_key: Hashable, now: float) -> int:
        """Distinct streams flagged in the window."""
        with self._lock:
            streams = self._seen.get(app_key)
            if not streams:
                return 0
            self._expire(streams, now)
            return len(streams)

    def _expire(self, streams: OrderedDict[str, float], now: float) -> None:
        """Drop streams last flagged before the window."""
        while streams and next(iter(streams.values())) <= now - self.blast.window_seconds:
            streams.popitem(last=False)


class HandledAlerts:
    """Bounded set of alerts already settled, plus one lock per alert so concurrent duplicates wait."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._done: OrderedDict[Hashable, str] = OrderedDict()
        self._held: dict[Hashable, list] = {}

    def outcome(self, key: Hashable) -> str | None:
        """The settled outcome for this alert, if any."""
        with self._lock:
            return self._done.get(key)

    def settle(self, key: Hashable, outcome: str) -> None:
        """Remember the alert; the oldest entry goes when full."""
        with self._lock:
            self._done[key] = outcome
            self._done.move_to_end(key)
            while len(self._done) > self.max_entries:
                self._done.popitem(last=False)

    @contextmanager
    def hold(self, key: Hashable) -> Iterator[None]:
        """Serialise work on one alert (an HA pair delivers the same alert at once)."""
        with self._lock:
            entry = self._held.setdefault(key, [threading.Lock(), 0])
            entry[1] += 1
        try:
            with entry[0]:
                yield
        finally:
            with self._lock:
                entry[1] -= 1
                if entry[1] == 0:
                    del self._held[key]


class Hold(NamedTuple):
    """Why writes are held somewhere: a stream that showed life, and the heartbeat it showed then."""

    reason: str
    app: str
    stream: str
    update_ms: int
    since: float  # this process's monotonic clock
    # A clock step: held until the node's registry heartbeat (its own clock) passes this value too.
    until_registry_ms: int = 0


class LifeHolds:
    """Evidence of life holds every write of its app and of its origin node until that heartbeat moves.

    Taken the moment the evidence arrives, before the alert's decision is written, and checked right
    before every write of every alert: a live publisher met once must not be met again by another
    notification running beside it. Keys are configured (ams, app) pairs and registry nodes: bounded.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._holds: dict[tuple[str, str, str], Hold] = {}
        self._stops: dict[tuple[str, str], threading.Lock] = {}

    def hold(self, ams: str, app: str | None, node: str | None, hold: Hold) -> None:
        """Hold the app and/or the origin node; a hold already there keeps its witness."""
        with self._lock:
            for key in _keys(ams, app, node):
                self._holds.setdefault(key, hold)

    def holding(self, ams: str, app: str, node: str | None) -> tuple[tuple[str, str, str], Hold] | None:
        """The hold that applies to a write of this app / node, if any."""
        with self._lock:
            for key in _keys(ams, app, node):
                if key in self._holds:
                    return key, self._holds[key]
        return None

    def release(self, key: tuple[str, str, str], hold: Hold) -> None:
        """End a hold whose witness moved on (only the hold that was judged, not a newer one)."""
        with self._lock:
            if self._holds.get(key) == hold:
                del self._holds[key]

    def all(self) -> dict[tuple[str, str, str], Hold]:
        """Every hold now (for the metrics)."""
        with self._lock:
            return dict(self._holds)

    def stop_lock(self, ams: str, app: str) -> threading.Lock:
        """One stop at a time per app: the second waits until the first has shown life or none."""
        with self._lock:
            return self._stops.setdefault((ams, app), threading.Lock())


def _keys(ams: str, app: str | None, node: str | None) -> tuple[tuple[str, str, str], ...]:
    """The hold keys of an app and an origin node (either may be absent)."""
    return ((("app", ams, app),) if app else ()) + ((("node", ams, node),) if node else ())
