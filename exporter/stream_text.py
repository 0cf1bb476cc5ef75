"""Per-stream exposition text, rendered one list page at a time while later pages are in flight.

At 10k broadcasts the per-stream families are about 140k lines. Rendering each page's lines in
the thread that fetched it overlaps that work with the requests still waiting on AMS. Only what
depends on every page (which records are rooms or room members) waits for the last page: a page
is re-rendered only if a room made one of its other records count, and its main-track lines only
if one of its publishers turns out to be a room.

This text is the per-stream families' only rendering (the collector wraps it in TextFamily).
Tests check it against generate_latest (format) and against the README's rules (values).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from operator import attrgetter

from prometheus_client.utils import floatToGoString

from exporter.exposition import escape, escape_word
from ams.ghost import is_main_track
from ams.model import AmsVersion, Broadcast

STATUS = "antmedia_broadcast_status"
VIEWERS = "antmedia_broadcast_viewers"
INFO = "antmedia_broadcast_info"
MAIN_TRACK = "antmedia_broadcast_main_track"
ROOM_MEMBER = "antmedia_room_member"
VIEWER_PROTOCOLS = ("hls", "dash", "webrtc", "rtmp")
VIEWER_COUNTS = attrgetter("hls_viewers", "dash_viewers", "webrtc_viewers", "rtmp_viewers")
INGEST_COUNTERS = frozenset({"received_bytes", "bitrate"})

# Per-stream numbers: (metric name, help, Broadcast attribute, divisor to base unit, only when > 0).
STREAM_GAUGES = (
    ("antmedia_broadcast_last_update_timestamp_seconds",
     "Last heartbeat of the broadcast (updateTime / 1000); absent when AMS has none.", "update_time_ms", 1000, True),
    ("antmedia_broadcast_start_timestamp_seconds",
     "Publish start of the broadcast (startTime / 1000); absent when never published.", "start_time_ms", 1000, True),
    ("antmedia_broadcast_speed_ratio", "Ingest speed (speed), about 1 when healthy; frozen on a ghost.",
     "speed", 1, False),
    ("antmedia_broadcast_pending_packets", "Ingest queue length (pendingPacketSize).", "pending_packets", 1, False),
    # AMS reports bits/s; Prometheus base unit is bytes (promtool rejects "bits").
    ("antmedia_broadcast_bitrate_bytes_per_second", "Ingest rate (bitrate / 8), where the version provides it.",
     "bitrate", 8, False),
)
# (metric name, help, Broadcast attribute); the sample name gets _total.
STREAM_COUNTERS = (
    ("antmedia_broadcast_received_bytes", "Bytes received from the publisher (receivedBytes); resets on republish.",
     "received_bytes"),
)
# Families rendered per page, in exposition order (the main-track family, kept apart, precedes info).
PAGE_FAMILIES = (STATUS, *(g[0] for g in STREAM_GAUGES), *(c[0] for c in STREAM_COUNTERS), VIEWERS, INFO)


def ingest_zero_absent(version: AmsVersion) -> bool:
    """True where a zero receivedBytes/bitrate means 'never written' (v2.8.x) and gets no series."""
    return not version.writes_ingest_counters


def _counter_value(b: Broadcast, attr: str, zero_absent: bool):
    """A per-stream counter value, or None (negative values are junk for a counter)."""
    value = getattr(b, attr)
    if value is None or value < 0 or (zero_absent and attr in INGEST_COUNTERS and value == 0):
        return None
    return value


@dataclass(frozen=True, slots=True)
class PageText:
    """One page's per-stream lines: texts[i] holds family PAGE_FAMILIES[i] for `streams`, in order."""

    items: Sequence[Broadcast]  # the page's records, in list order
    streams: tuple[Broadcast, ...]  # those that got lines
    labels: tuple[str, ...]  # their ams,app,stream_id label texts
    texts: tuple[bytes, ...]  # encoded here too, so the end of the scrape only joins
    undecided: tuple[Broadcast, ...]  # records whose selection depends on room membership
    main_track: bytes  # main-track lines, taking every stream not flagged as a room for a publisher
    publishers: tuple[str, ...]  # ids of those streams: a room id among them voids main_track


class _Numbers(dict):
    """floatToGoString, remembered for the values that repeat (0, 1, small counts).

    Keys compare by value, so -0.0 would read 0's text: no per-stream value is ever -0.0 (ints,
    non-negative quotients, and speed, which the parser normalises).
    """

    def __missing__(self, value: float) -> str:
        text = self[value] = floatToGoString(value)
        return text


def render_page(ams: str, app: str, zero_absent: bool, items: Sequence[Broadcast], streams: Sequence[Broadcast],
                undecided: tuple[Broadcast, ...] = ()) -> PageText:
    """Every per-page family's lines for `streams`."""
    prefix = f'ams="{ams}",app="{app}",'
    ids = [f'stream_id="{escape(b.stream_id)}"' for b in streams]
    labels = [prefix + i for i in ids]
    numbers = _Numbers()
    texts = [_status_text(prefix, streams, ids)]
    texts += [_gauge_text(streams, labels, numbers, spec, zero_absent) for spec in STREAM_GAUGES]
    texts += [_counter_text(streams, labels, numbers, spec, zero_absent) for spec in STREAM_COUNTERS]
    texts.append(_viewers_text(prefix, streams, ids, numbers))
    texts.append(_info_text(prefix, streams, ids))
    publishers = tuple([b.stream_id for b in streams if not (b.virtual or b.subtrack_ids)])
    return PageText(items, tuple(streams), tuple(labels), tuple(text.encode() for text in texts), undecided,
                    _main_track_lines(streams, labels, ()), publishers)


def _status_text(prefix: str, streams: Sequence[Broadcast], ids: list[str]) -> str:
    """antmedia_broadcast_status lines (labels sorted: status before stream_id)."""
    head = f"{STATUS}{{{prefix}status=\""
    return "".join([f'{head}{escape_word(b.status)}",{i}}} 1.0\n' for b, i in zip(streams, ids)])


def _gauge_text(streams, labels, numbers: _Numbers, spec, zero_absent: bool) -> str:
    """One per-stream gauge family's lines, in base units (value / divisor; ms / 1000 is exact).

    No line for a value that is None, not positive where the spec says so (timestamps), or a zero
    ingest counter that v2.8.x never writes.
    """
    name, _, attr, divisor, positive = spec
    value_of = attrgetter(attr)
    drop_zero = zero_absent and attr in INGEST_COUNTERS
    lines = []
    for b, label in zip(streams, labels):
        value = value_of(b)
        if value is None or (positive and value <= 0) or (drop_zero and value == 0):
            continue
        if divisor == 1000 and type(value) is int and _MS_LOW <= value < _MS_HIGH:
            text = _ms_text(value)
        else:
            text = numbers[value / divisor if divisor != 1 else value]
        lines.append(f"{name}{{{label}}} {text}\n")
    return "".join(lines)


_MS_LOW, _MS_HIGH = 10**12, 10**13  # epoch milliseconds of 2001-09-09 .. 2286-11-20


def _ms_text(ms: int) -> str:
    """floatToGoString(ms / 1000) for 13-digit ms, from the digits (every timestamp is a new value).

    ms / 1000 then has 10 integer digits, and repr of it is the exact decimal (doubles there are
    0.24 µs apart, far finer than 1 ms), which Go's format writes as d.ddd...e+09.
    """
    digits = str(ms)
    return f"{digits[0]}.{digits[1:]}".rstrip("0.") + "e+09"


def _counter_text(streams, labels, numbers: _Numbers, spec, zero_absent: bool) -> str:
    """One per-stream counter family's lines."""
    name, _, attr = spec
    lines = []
    for b, label in zip(streams, labels):
        value = _counter_value(b, attr, zero_absent)
        if value is not None:
            lines.append(f"{name}_total{{{label}}} {numbers[value]}\n")
    return "".join(lines)


def _viewers_text(prefix: str, streams, ids: list[str], numbers: _Numbers) -> str:
    """antmedia_broadcast_viewers lines, one per protocol AMS reports (protocol sorts before stream_id)."""
    heads = [f'{VIEWERS}{{{prefix}protocol="{p}",' for p in VIEWER_PROTOCOLS]
    h0, h1, h2, h3 = heads
    lines = []
    for b, i in zip(streams, ids):
        counts = VIEWER_COUNTS(b)
        if None not in counts and min(counts) >= 0:  # the usual case: all four in one string
            c0, c1, c2, c3 = counts
            lines.append(f"{h0}{i}}} {numbers[c0]}\n{h1}{i}}} {numbers[c1]}\n"
                         f"{h2}{i}}} {numbers[c2]}\n{h3}{i}}} {numbers[c3]}\n")
            continue
        for head, value in zip(heads, counts):
            if value is not None and value >= 0:
                lines.append(f"{head}{i}}} {numbers[value]}\n")
    return "".join(lines)


def _info_text(prefix: str, streams, ids: list[str]) -> str:
    """antmedia_broadcast_info lines (labels sorted: origin, publish_type, stream_id, type)."""
    head = f'{INFO}{{{prefix}origin="'
    return "".join([f'{head}{escape_word(b.origin)}",publish_type="{escape_word(b.publish_type)}",{i},'
                    f'type="{escape_word(b.type)}"}} 1.0\n' for b, i in zip(streams, ids)])


def _main_track_lines(streams: Sequence[Broadcast], labels: Sequence[str], rooms: Collection[str]) -> bytes:
    """antmedia_broadcast_main_track lines for some streams, given the room ids."""
    return "".join([f"{MAIN_TRACK}{{{label}}} {'1.0' if is_main_track(b, rooms) else '0.0'}\n"
                    for b, label in zip(streams, labels)]).encode()


def main_track_text(page: PageText, rooms: Mapping[str, object]) -> bytes:
    """A page's main-track lines once every room is known: the page's own unless a publisher is a room."""
    if rooms.keys().isdisjoint(page.publishers):
        return page.main_track
    return _main_track_lines(page.streams, page.labels, rooms)


def room_member_text(ams: str, app: str, rooms: Mapping[str, Collection[str]]) -> str:
    """antmedia_room_member lines of one app, rooms and members sorted (ams, app already escaped)."""
    lines = []
    for room, members in sorted(rooms.items()):
        head = f'{ROOM_MEMBER}{{ams="{ams}",app="{app}",room="{escape(room)}",stream_id="'
        lines += [f'{head}{escape(stream_id)}"}} 1.0\n' for stream_id in sorted(members)]
    return "".join(lines)
