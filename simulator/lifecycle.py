"""Per-participant records of what happened when: the ghost lifecycle and the write log."""
from dataclasses import dataclass


@dataclass(frozen=True)
class GhostLifecycle:
    """When a participant dropped, last beat, left the room listing, was deleted, could rejoin (sim seconds)."""

    dropped_at: float | None = None
    last_heartbeat_at: float | None = None
    unlisted_at: float | None = None
    deleted_at: float | None = None
    rejoinable_at: float | None = None


@dataclass(frozen=True)
class WriteRecord:
    """One POST/PUT/DELETE the simulated AMS received: what it answered, the stream it targeted, the node that ran it
    (`node`, after RestProxyFilter forwarding), the node that received it (`received_by`), whether it was
    forwarded, and whether the target stream had a live session (a publisher connected on any node, or a running
    pulled source) when the request arrived (`live_target`)."""

    time: float
    method: str
    path: str
    query: str
    body: str
    status_code: int
    success: bool | None
    stream_id: str | None = None
    node: str | None = None
    received_by: str | None = None
    forwarded: bool = False
    live_target: bool = False


class Episode:
    """Mutable lifecycle of one participant since its last join or drop."""

    __slots__ = ("room", "dropped_at", "last_heartbeat_at", "unlisted_at", "deleted_at", "freed_at", "closed")

    def __init__(self, room: str | None):
        self.room = room
        self.dropped_at = self.last_heartbeat_at = None
        self.unlisted_at = self.deleted_at = self.freed_at = None
        self.closed = False

    def snapshot(self, now: float, stale_after: float | None) -> GhostLifecycle:
        """Freeze into a GhostLifecycle; rejoinable_at only once it has happened."""
        candidates = [t for t in (self.freed_at, self._computed_free(stale_after)) if t is not None]
        rejoinable = min(candidates) if candidates and self.dropped_at is not None else None
        if rejoinable is not None and rejoinable > now:
            rejoinable = None
        return GhostLifecycle(self.dropped_at, self.last_heartbeat_at, self.unlisted_at,
                              self.deleted_at, rejoinable)

    def _computed_free(self, stale_after: float | None) -> float | None:
        """From 2.13 a dropped id is free once its computed status turns terminated_unexpectedly."""
        if stale_after is None or self.last_heartbeat_at is None:
            return None
        return self.last_heartbeat_at + stale_after


