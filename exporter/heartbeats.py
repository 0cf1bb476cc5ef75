"""How long each ghost candidate's heartbeat has kept its value, on this exporter's own monotonic clock.

The exporter's ghost count must not compare updateTime (an AMS node's clock) with any other
clock. It remembers, per app, when it first saw each candidate's current updateTime and counts
a candidate stale once that value has stood for longer than the threshold across its own scrapes.
Memory is bounded by the candidates of the last successful scrape; a restart starts afresh, which
only delays the count.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable

from ams.model import Broadcast


class HeartbeatWatch:
    """Per (ams, app): stream id -> (updateTime seen, monotonic time it was first seen with it)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._lock = threading.Lock()
        self._seen: dict[tuple[str, str], dict[str, tuple[int, float]]] = {}

    def unchanged_seconds(self, ams: str, app: str, candidates: Iterable[Broadcast]) -> dict[str, float]:
        """Record this scrape's candidates; return how long each one's updateTime has stood still."""
        now = self._clock()
        with self._lock:
            before = self._seen.get((ams, app), {})
            current = {}
            for b in candidates:
                seen = before.get(b.stream_id)
                since = seen[1] if seen is not None and seen[0] == b.update_time_ms else now
                current[b.stream_id] = (b.update_time_ms, since)
            self._seen[(ams, app)] = current
        return {stream_id: now - since for stream_id, (_, since) in current.items()}
