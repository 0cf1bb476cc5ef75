"""THE ghost predicate (DESIGN.md, "What a ghost is"), shared by the collector and the remediator."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Union

from ams.server import AmsServer
from ams.model import AmsVersion, AppSnapshot, Broadcast

RoomContext = Union[AppSnapshot, Collection[str], None]


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether a broadcast is a ghost, and why (reason is a short label-safe word)."""

    is_ghost: bool
    reason: str
    age_seconds: float | None = None


def heartbeat_period(server: AmsServer, version: AmsVersion) -> float:
    """The heartbeat (updateTime) period in force: the config override, else the version's default."""
    return server.heartbeat_seconds if server.heartbeat_seconds else version.heartbeat_seconds


def stale_threshold(server: AmsServer, version: AmsVersion) -> float:
    """Seconds without a heartbeat after which a live-claiming publisher is stale."""
    return server.stale_heartbeats * heartbeat_period(server, version)


def is_main_track(b: Broadcast, context: RoomContext = None) -> bool:
    """A room rather than a publisher: virtual, has subTrackStreamIds, or is a known room id.

    context is a snapshot, or the ids known to be rooms (some record's mainTrackStreamId,
    a ConferenceRoom, a main track with members).
    """
    if b.virtual or b.subtrack_ids:
        return True
    if context is None:
        return False
    rooms = context.rooms if isinstance(context, AppSnapshot) else context
    return b.stream_id in rooms


def claims_live(b: Broadcast, members: Collection[str] = ()) -> bool:
    """B still claims to be live: a live status, an unfinished room reference, or listed in a room."""
    return b.live_status or bool(b.joined_room) or b.stream_id in members


def heartbeat_age(b: Broadcast, server_time: float | None) -> float | None:
    """Seconds since B's last heartbeat on AMS's own clock; None when either time is unknown."""
    if server_time is None or b.update_time_ms <= 0:
        return None
    return server_time - b.update_time_ms / 1000.0


def ghost_verdict(
    broadcast: Broadcast | None,
    server_time: float | None,
    stale_after_seconds: float,
    room_member_of: Collection[str] = (),
    main_track_ids: RoomContext = None,
) -> Verdict:
    """Apply the three conditions; room_member_of names the rooms that list B as a member."""
    if broadcast is None:
        return Verdict(False, "not_found")
    if is_main_track(broadcast, main_track_ids):
        return Verdict(False, "main_track")
    if not claims_live(broadcast, (broadcast.stream_id,) if room_member_of else ()):
        return Verdict(False, "not_live")
    if broadcast.update_time_ms <= 0:
        # Publishing always writes updateTime; a record without one never had an ingest.
        return Verdict(False, "no_heartbeat")
    age = heartbeat_age(broadcast, server_time)
    if age is None:
        return Verdict(False, "no_server_time")
    if age > stale_after_seconds:
        return Verdict(True, "stale", age)
    return Verdict(False, "fresh", age)


def find_ghosts(snapshot: AppSnapshot, stale_after_seconds: float) -> list[tuple[Broadcast, Verdict]]:
    """Every ghost in a snapshot, judged with the same predicate the remediator uses."""
    if snapshot.server_time is None:
        return []
    members = snapshot.members
    # Cheap necessary condition first (a heartbeat older than the threshold, with a margin);
    # the full predicate then decides, so the verdicts are exactly ghost_verdict's.
    cutoff_ms = (snapshot.server_time - stale_after_seconds) * 1000.0 + 1.0
    found = []
    for b in snapshot.broadcasts:
        if not 0 < b.update_time_ms < cutoff_ms:
            continue
        listed = (b.stream_id,) if b.stream_id in members else ()
        verdict = ghost_verdict(b, snapshot.server_time, stale_after_seconds, listed, snapshot)
        if verdict.is_ghost:
            found.append((b, verdict))
    return found
