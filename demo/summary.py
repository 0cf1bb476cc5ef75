"""The closing summary of a run: ghosts removed, their lifetimes, streams wrongly touched."""
from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from stack.writes import describe_write


@dataclass(frozen=True)
class GhostOutcome:
    """What happened to one ghost, in seconds after its last heartbeat (None: not yet)."""

    stream: str
    removed_after: float | None
    rejoinable_after: float | None
    tile_hidden_after: float | None = None   # the page kit hid its tile this long after its last audio packet


def ghost_outcome(stream: str, lifecycle: Any, tile_hidden_after: float | None = None) -> GhostOutcome:
    """From a simulator GhostLifecycle: removal is when it left the room, or its record went."""
    last = getattr(lifecycle, "last_heartbeat_at", None)
    if lifecycle is None or last is None:
        return GhostOutcome(stream, None, None, tile_hidden_after)
    removed_at = _earliest_complete(lifecycle)
    rejoin = getattr(lifecycle, "rejoinable_at", None)
    return GhostOutcome(stream, None if removed_at is None else removed_at - last,
                        None if rejoin is None else rejoin - last, tile_hidden_after)


def _earliest_complete(lifecycle: Any) -> float | None:
    """Removal time: both out of the room listing and record gone/ended, whichever came last."""
    unlisted = getattr(lifecycle, "unlisted_at", None)
    deleted = getattr(lifecycle, "deleted_at", None)
    if unlisted is None and deleted is None:
        return None
    return max(t for t in (unlisted, deleted) if t is not None)


@dataclass(frozen=True)
class Summary:
    """Counts and lifetimes for the closing lines."""

    ghosts: tuple[GhostOutcome, ...]
    wrongly_touched: tuple[str, ...]   # one line per write outside the ghosts
    kept: tuple[str, ...] = ()         # ghosts deliberately left in place (silenced)
    came_back: tuple[str, ...] = ()    # ghosts whose participant republished before any removal (3.x)

    @property
    def removed(self) -> list[GhostOutcome]:
        """Ghosts that were removed."""
        return [g for g in self.ghosts if g.removed_after is not None]

    @property
    def ok(self) -> bool:
        """Every ghost removed (or back by itself) and nothing else written to."""
        settled = [g for g in self.ghosts if g.removed_after is not None or g.stream in self.came_back]
        return len(settled) == len(self.ghosts) and not self.wrongly_touched


def _seconds(value: float | None) -> str:
    """12.3 s, or a dash."""
    return "-" if value is None else f"{value:.1f} s"


def format_summary(summary: Summary) -> list[str]:
    """Readable closing lines."""
    lines = [f"Ghosts removed: {len(summary.removed)} of {len(summary.ghosts)}"]
    for ghost in summary.ghosts:
        tile = "" if ghost.tile_hidden_after is None else f"; tile hidden after {_seconds(ghost.tile_hidden_after)}"
        if ghost.removed_after is None and ghost.stream in summary.came_back:
            lines.append(f"  {ghost.stream:<12} republished by its participant first"
                         f" (id free {_seconds(ghost.rejoinable_after)} after its last heartbeat){tile}")
            continue
        lines.append(f"  {ghost.stream:<12} removed {_seconds(ghost.removed_after)} after its last heartbeat,"
                     f" rejoin possible after {_seconds(ghost.rejoinable_after)}{tile}")
    lifetimes = [g.removed_after for g in summary.removed]
    if lifetimes:
        lines.append(f"Ghost lifetime: min {min(lifetimes):.1f} s, median {statistics.median(lifetimes):.1f} s,"
                     f" max {max(lifetimes):.1f} s")
    for stream in summary.kept:
        lines.append(f"  {stream:<12} kept in place (silenced)")
    lines.append(f"Streams wrongly touched: {len(summary.wrongly_touched)}")
    lines.extend(f"  {line}" for line in summary.wrongly_touched)
    return lines


def summarize(ghosts: Iterable[str], lifecycles: dict[str, Any], wrong_writes: Iterable[Any],
              kept: Iterable[str] = (), came_back: Iterable[str] = (),
              tiles_hidden: Mapping[str, float] | None = None) -> Summary:
    """Build the Summary from lifecycles and the writes outside the ghosts (and when the page kit hid each tile)."""
    hidden = tiles_hidden or {}
    outcomes = tuple(ghost_outcome(s, lifecycles.get(s), hidden.get(s)) for s in ghosts)
    return Summary(outcomes, tuple(describe_write(w) for w in wrong_writes), tuple(kept), tuple(came_back))
