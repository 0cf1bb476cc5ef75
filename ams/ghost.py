"""THE ghost predicate (docs/design.md, "The ghost predicate"): pure functions, shared by the exporter and the remediator.

Staleness is not judged here from timestamps of two machines. Each caller measures, on ONE clock,
whether a broadcast's updateTime has kept its value for longer than stale_threshold(): the rule on
Prometheus's sample times, the exporter on its own monotonic clock across scrapes, the remediator
by a fresh read showing the very updateTime that the alert's evidence saw. The caller passes that
judgement in as `stale`; this module applies everything else.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Union

from ams.model import AmsVersion, AppSnapshot, Broadcast
from ams.server import AmsServer

RoomContext = Union[AppSnapshot, Collection[str], None]

# Only publishers pushed to AMS can be ghosts. Pulled sources (ipCamera, streamSource, playlist,
# VoD) get no keep-alive on 3.x and AMS restarts a stuck fetcher itself (StreamFetcherManager L615
# @3.0.3); a stop or delete would end that retry (AntMediaApplicationAdapter ~L1828 @3.0.3) or destroy
# the source the user configured.
PUSHED_TYPE = "liveStream"
# AMS's own delays between a publisher's packet and what a reader sees: v2.8.2 writes updateTime
# from a 500 ms timer (AntMediaApplicationAdapter L1046 @2.8.2); 3.x MongoStore serves GET /{id}
# from a per-node cache kept 3 s (MongoStore L105-109, L165-170 @3.0.3). Both counted everywhere:
# the version or store behind a load balancer is not always known.
AMS_WRITE_DELAY_SECONDS = 0.5
AMS_READ_CACHE_SECONDS = 3.0


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether a broadcast is a ghost, and why (reason is a short label-safe word)."""

    is_ghost: bool
    reason: str


def heartbeat_period(server: AmsServer, version: AmsVersion) -> float:
    """The heartbeat (updateTime) period in force: the config override, else the version's default."""
    return server.heartbeat_seconds if server.heartbeat_seconds else version.heartbeat_seconds


def witness_seconds(server: AmsServer, version: AmsVersion) -> float:
    """How long one reader must itself see updateTime unchanged before no live publisher can be behind it.

    A live publisher writes once more than a period has passed since its last write (MuxAdaptor L859
    @2.8.2, L1006 @3.0.3), and the write shows after AMS's write delay and read cache.
    """
    return heartbeat_period(server, version) + AMS_WRITE_DELAY_SECONDS + AMS_READ_CACHE_SECONDS


def stale_threshold(server: AmsServer, version: AmsVersion) -> float:
    """Seconds updateTime must keep its value before a live-claiming publisher is a ghost.

    A publisher writes a heartbeat once more than a period has passed since the last (MuxAdaptor
    L859 @2.8.2, L1006 @3.0.3), so its network can drop up to one period after a write; AMS then
    lets it resume the same session within webRTCClientStartTimeoutMs (reconnect_grace_seconds),
    and the first packet after the resume writes at once, seen after AMS's write delay and read
    cache. stale_heartbeats periods (default 2: one for the spacing, one spare) plus the grace plus
    those delays: a participant inside AMS's grace never reaches it.
    """
    return (server.stale_heartbeats * heartbeat_period(server, version) + server.reconnect_grace_seconds
            + AMS_WRITE_DELAY_SECONDS + AMS_READ_CACHE_SECONDS)


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


def is_pushed(b: Broadcast) -> bool:
    """A publisher pushed to AMS (WebRTC, RTMP, SRT), not a source AMS pulls itself."""
    return b.type == PUSHED_TYPE


def claims_live(b: Broadcast, members: Collection[str] = ()) -> bool:
    """B still claims to be live: a live status, an unfinished room reference, or listed in a room."""
    return b.live_status or bool(b.joined_room) or b.stream_id in members


def ghost_verdict(broadcast: Broadcast | None, stale: bool | None, listed: bool = False,
                  is_room: bool = False) -> Verdict:
    """Apply the predicate; stale is the caller's one-clock judgement (None: not known)."""
    if broadcast is None:
        return Verdict(False, "not_found")
    if is_room or is_main_track(broadcast):
        return Verdict(False, "main_track")
    if not is_pushed(broadcast):
        return Verdict(False, "not_pushed")
    if not claims_live(broadcast, (broadcast.stream_id,) if listed else ()):
        return Verdict(False, "not_live")
    if broadcast.update_time_ms <= 0:
        # Publishing always writes updateTime; a record without one never had an ingest.
        return Verdict(False, "no_heartbeat")
    if stale is None:
        return Verdict(False, "no_evidence")
    return Verdict(True, "stale") if stale else Verdict(False, "fresh")


def ghost_candidates(snapshot: AppSnapshot) -> list[Broadcast]:
    """The broadcasts of a snapshot that are ghosts once their heartbeat is stale."""
    members = snapshot.members
    return [b for b in snapshot.broadcasts
            if ghost_verdict(b, True, b.stream_id in members, b.stream_id in snapshot.rooms).is_ghost]


def find_ghosts(snapshot: AppSnapshot, is_stale: Callable[[Broadcast], bool | None]) -> list[Broadcast]:
    """Every ghost in a snapshot, given each candidate's one-clock staleness."""
    return [b for b in ghost_candidates(snapshot) if is_stale(b)]
