"""Which streams a write request received by the simulated AMS acted on."""
from __future__ import annotations

import re
from typing import Any, Iterable
from urllib.parse import parse_qs

_BROADCASTS = re.compile(r"^/(?P<app>[^/]+)/rest/v2/broadcasts/(?P<rest>.+?)/?$")


def _query_ids(query: Any) -> list[str]:
    """The id= parameter(s) of a query given as a string or a mapping."""
    if not query:
        return []
    if isinstance(query, str):
        return parse_qs(query.lstrip("?")).get("id", [])
    value = query.get("id") if hasattr(query, "get") else None
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [str(value)]


def write_targets(method: str, path: str, query: Any = None) -> set[str]:
    """Stream ids a write acts on; a room's id when it acts on the room itself."""
    match = _BROADCASTS.match(path)
    if not match:
        return set()
    parts = match.group("rest").split("/")
    if parts[0] == "conference-rooms":
        # DELETE conference-rooms/{room}/{id} removes id; conference-rooms/{room} is the room.
        return {parts[2]} if len(parts) >= 3 else set(parts[1:2])
    if len(parts) >= 2 and parts[1] == "subtrack":
        # {room}/subtrack?id=X adds or removes X; the main track only loses one entry.
        return set(_query_ids(query)) or {parts[0]}
    return {parts[0]}


def record_targets(record: Any) -> set[str]:
    """write_targets of a simulator WriteRecord."""
    return write_targets(record.method, record.path, getattr(record, "query", None))


def is_control(record: Any) -> bool:
    """True for the simulator's own control endpoints (not AMS API writes)."""
    return record.path.startswith("/_sim/")


def wrongly_touched(records: Iterable[Any], allowed: set[str],
                    healthy_again: dict[str, float] | None = None) -> list[Any]:
    """Writes that acted on a stream outside allowed (the ghosts), or on a ghost after it came back.

    healthy_again maps a ghost to the simulator time at which it published again;
    from then on it is a healthy participant that no write may touch.
    """
    healthy_again = healthy_again or {}
    wrong = []
    for record in records:
        targets = record_targets(record)
        late = any(record.time >= healthy_again[t] for t in targets if t in healthy_again)
        if not is_control(record) and (not targets <= allowed or late):
            wrong.append(record)
    return wrong


def writes_to(records: Iterable[Any], stream_id: str) -> list[Any]:
    """Writes that acted on stream_id."""
    return [r for r in records if not is_control(r) and stream_id in record_targets(r)]


def describe_write(record: Any) -> str:
    """`DELETE /WebRTCAppEE/rest/v2/broadcasts/alice -> 200` for a WriteRecord."""
    query = getattr(record, "query", "") or ""
    if not isinstance(query, str):
        query = "&".join(f"{k}={v}" for k, v in dict(query).items())
    suffix = f"?{query}" if query else ""
    return f"{record.method} {record.path}{suffix} -> {record.status_code}"
