"""A readable live timeline of the demo: one line per event, as it happens (pure logic, no I/O but print)."""
from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, TextIO

LABELS = {
    "join": "JOIN", "leave": "LEAVE", "drop": "DROP", "flap": "FLAP", "recover": "RECOVER",
    "firing": "ALERT", "silenced": "SILENCED", "resolved": "RESOLVED", "decision": "DECISION",
    "unlisted": "GONE", "deleted": "DELETED", "rejoinable": "REJOIN OK", "rejoined": "REJOINED",
    "note": "NOTE", "state": "STATE",
    "tile_hidden": "HIDE TILE", "tile_shown": "SHOW TILE", "tile_kept": "KEEP TILE",
}


@dataclass(frozen=True)
class Event:
    """One line of the timeline; at is seconds since the run started."""

    at: float
    kind: str
    stream: str
    detail: str = ""


def format_event(event: Event) -> str:
    """`  +12.3s  ALERT      bob       AntMediaGhostStream firing (room standup)`."""
    label = LABELS.get(event.kind, event.kind.upper())
    return f"  +{event.at:6.1f}s  {label:<10} {event.stream:<12} {event.detail}".rstrip()


@dataclass
class Timeline:
    """Collects events and prints each as it happens (from any thread: the page kit's lines come from their own)."""

    out: TextIO | None = field(default_factory=lambda: sys.stdout)  # None: collect only
    clock: Callable[[], float] = time.monotonic
    events: list[Event] = field(default_factory=list)

    def __post_init__(self):
        self.started = self.clock()
        self._lock = threading.Lock()

    def add(self, kind: str, stream: str, detail: str = "") -> Event:
        """Record and print one event."""
        with self._lock:
            event = Event(round(self.clock() - self.started, 1), kind, stream, detail)
            self.events.append(event)
            if self.out is not None:
                print(format_event(event), file=self.out, flush=True)
        return event


def alert_states(alerts: Iterable[dict], alertname: str = "AntMediaGhostStream") -> dict[str, dict]:
    """Alertmanager v2 alerts -> {stream_id: {state, room}} for one alert name."""
    states: dict[str, dict] = {}
    for alert in alerts:
        labels = alert.get("labels", {})
        if labels.get("alertname") != alertname or "stream_id" not in labels:
            continue
        state = (alert.get("status") or {}).get("state", "active")
        states[labels["stream_id"]] = {"state": state, "room": labels.get("room", "")}
    return states


def alert_events(before: dict[str, dict], now: dict[str, dict],
                 alertname: str = "AntMediaGhostStream") -> list[tuple[str, str, str]]:
    """(kind, stream, detail) for alerts of one name that appeared, got silenced, or went away."""
    changes = []
    for stream, info in sorted(now.items()):
        room = f" (room {info['room']})" if info.get("room") else ""
        kind = "silenced" if info["state"] == "suppressed" else "firing"
        old = before.get(stream)
        if old is None or old["state"] != info["state"]:
            verb = "firing, silenced in Alertmanager" if kind == "silenced" else "firing"
            changes.append((kind, stream, f"{alertname} {verb}{room}"))
    for stream in sorted(set(before) - set(now)):
        changes.append(("resolved", stream, f"{alertname} resolved"))
    return changes


def _pick(record: dict, *keys: str, default: Any = "") -> Any:
    """The first present key of an audit record (tolerates nested alert labels)."""
    for key in keys:
        if record.get(key) not in (None, ""):
            return record[key]
    labels = record.get("labels") or {}
    for key in keys:
        if labels.get(key) not in (None, ""):
            return labels[key]
    return default


def audit_event(record: dict) -> tuple[str, str, str]:
    """(kind, stream, detail) for one remediator audit line."""
    stream = str(_pick(record, "stream_id", "stream"))
    outcome = _pick(record, "outcome", "decision")
    reason = _pick(record, "reason")
    calls = record.get("calls") or record.get("ams_calls") or []
    steps = ", ".join(_call_text(c) for c in calls if isinstance(c, dict))
    detail = f"{outcome}" + (f" ({reason})" if reason else "") + (f": {steps}" if steps else "")
    alertname = record.get("alertname")  # the early path's AntMediaGhostCandidate, or AntMediaGhostStream
    return "decision", stream, f"{alertname}: {detail}" if alertname else detail


def _call_text(call: dict) -> str:
    """`delete ok` for one AMS call in an audit record."""
    action = call.get("action", "?")
    result = call.get("result")
    if result is None:
        result = "ok" if call.get("success") else "failed"
    return f"{action} {result}"
