"""What this process has seen itself, on its own monotonic clock: a heartbeat standing still, a node's
registry heartbeat moving or not.

No alert is proof of stillness: a rule edited by hand, a misconfigured Prometheus or Alertmanager, a
replayed notification can all name a healthy participant with its current heartbeat. A live publisher
writes its heartbeat within one period plus AMS's delays (MuxAdaptor L859 @2.8.2, L1006 @3.0.3; the
500 ms write timer, AntMediaApplicationAdapter L1046 @2.8.2; the 3 s read cache, MongoStore L105-109
@3.0.3), so a heartbeat this process has itself seen unchanged for that long is not a live one's.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Callable, Hashable

__all__ = ["NodeWatch", "Stillness"]

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
                self._nodes[ip] = (last_update_ms, now, seen is not None)
            self._last_read[ip] = now

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
