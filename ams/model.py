"""The records model: frozen AMS records parsed from AMS JSON; no I/O."""

from __future__ import annotations

import ipaddress

import json
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType
from typing import Annotated, Any

import msgspec

from ams.errors import AmsMalformedError

LIVE_STATUSES = frozenset({"broadcasting", "preparing", "terminated_unexpectedly"})
MAX_ID_LENGTH = 256  # AMS ids are short; longer values are not ids and would bloat label sets
# The one id rule of both services: what AMS itself accepts as a stream id. StreamIdValidator refuses
# any other character when a stream is created through REST, published over WebSocket or RTMP
# (StreamIdValidator L7, BroadcastRestService L197, WebSocketCommunityHandler L96, RTMPHandler L301
# @ams-v3.0.3); 2.8.x allows the same without '.' (StreamIdValidator L7 @ams-v2.8.2). An id made of
# dots only would turn into a relative path segment in a REST URL.
STREAM_ID_RE = re.compile(r"(?!\.+\Z)[A-Za-z0-9_.\-]{1,%d}\Z" % MAX_ID_LENGTH)
# Numbers AMS cannot mean: counts above 2**53 (no longer exact as a sample), epoch milliseconds past
# the year 9999, an ingest speed ratio outside 0-1000. They become "not provided", never a sample.
MAX_COUNT = 2**53
MAX_EPOCH_MS = 253402300799999
MAX_SPEED = 1000.0

_WORD_RE = re.compile(r"[A-Za-z0-9_]{1,40}")
_VERSION_RE = re.compile(r"\s*v?(\d+)\.(\d+)(?:\.(\d+))?")
_INT_LIMIT = 2**63  # Java long range; bigger numbers are junk and would not fit a float sample
_intern = sys.intern
_WORDS: dict[str, str] = {}  # validated enum-like values seen so far, interned


@dataclass(frozen=True, slots=True)
class AmsVersion:
    """The AMS version of one app, with the behaviours that depend on it (docs/ams.md, "Version timeline")."""

    name: str
    major: int = 0
    minor: int = 0
    patch: int = 0
    edition: str = "unknown"
    known: bool = True  # False when versionName did not parse: every flag then takes its safe side

    def at_least(self, major: int, minor: int, patch: int = 0) -> bool:
        """True when this is a recognised version >= major.minor.patch."""
        return self.known and (self.major, self.minor, self.patch) >= (major, minor, patch)

    @property
    def heartbeat_seconds(self) -> float:
        """STAT_UPDATE_PERIOD_MS: 5 s before 2.9, 10 s after; the longer one when unknown (fewer verdicts)."""
        return 5.0 if self.known and not self.at_least(2, 9) else 10.0

    @property
    def has_conference_rooms(self) -> bool:
        """ConferenceRoom records exist (before 2.10; later they are wrappers over broadcasts); probed when unknown."""
        return not self.known or not self.at_least(2, 10)

    @property
    def has_subtrack_ids(self) -> bool:
        """Main tracks carry subTrackStreamIds (removed in 3.0)."""
        return not self.known or not self.at_least(3, 0)

    @property
    def has_subtracks_endpoint(self) -> bool:
        """GET /{room}/subtracks/{offset}/{size} exists (3.0+); probed when unknown."""
        return not self.known or self.at_least(3, 0)

    @property
    def computed_status(self) -> bool:
        """JSON status is computed (terminated_unexpectedly after STREAM_TIMEOUT_MS) from 2.13."""
        return self.at_least(2, 13)

    @property
    def bearer_prefix(self) -> bool:
        """REST JWT accepts 'Bearer ' from 2.12; the raw token works everywhere, so unknown -> raw."""
        return self.at_least(2, 12)

    @property
    def delete_subtracks_param(self) -> bool:
        """DELETE /{id} and POST /{id}/stop take deleteSubtracks/stopSubtracks (default true) from 2.13.

        Unknown versions get the parameter too: older servers ignore it, newer ones need it.
        """
        return not self.known or self.at_least(2, 13)

    @property
    def writes_ingest_counters(self) -> bool:
        """The server writes receivedBytes and bitrate with every stats update from 2.13 (before, only
        Enterprise code may, and a zero means never written)."""
        return not self.known or self.at_least(2, 13)

    @property
    def partial_put_safe(self) -> bool:
        """PUT /{id} updates only the fields in the body from 2.10.1; before, a partial body wipes fields."""
        return self.at_least(2, 10, 1)


class Broadcast(msgspec.Struct, frozen=True, gc=False):
    """One AMS Broadcast record, reduced to what monitoring and remediation need.

    A frozen msgspec Struct rather than a dataclass: a scrape builds one per AMS record, and a
    Struct is built in C, ten times faster than a frozen dataclass's __init__. It holds no
    containers that could form cycles, so the cyclic GC need not track it. Copy with
    msgspec.structs.replace.
    """

    stream_id: str
    status: str = "unknown"
    type: str = "unknown"
    publish_type: str = "unknown"
    name: str = ""
    update_time_ms: int = 0
    start_time_ms: int = 0
    main_track_id: str = ""
    subtrack_ids: tuple[str, ...] | None = None  # None when the version has no such field
    virtual: bool | None = None  # None when the version has no such field
    zombi: bool = False
    origin: str = ""
    speed: float | None = None
    pending_packets: int | None = None
    hls_viewers: int | None = None
    dash_viewers: int | None = None
    webrtc_viewers: int | None = None
    rtmp_viewers: int | None = None
    received_bytes: int | None = None
    bitrate: int | None = None

    @property
    def viewers(self) -> dict[str, int | None]:
        """Viewer counts by protocol."""
        return {"hls": self.hls_viewers, "dash": self.dash_viewers,
                "webrtc": self.webrtc_viewers, "rtmp": self.rtmp_viewers}

    @property
    def live_status(self) -> bool:
        """The status claims the stream is live (stored on 2.8.x, computed from 2.13)."""
        return self.status in LIVE_STATUSES

    @property
    def joined_room(self) -> str:
        """The room this record points at through mainTrackStreamId, unless AMS ended it.

        A non-zombi participant keeps mainTrackStreamId after a clean leave with status
        finished; AMS itself no longer lists it as active, so it is not a member.
        """
        return self.main_track_id if self.status != "finished" else ""


@dataclass(frozen=True, slots=True)
class Result:
    """AMS's Result body for writes; AMS answers 200 on failure, so `success` is what counts."""

    success: bool
    message: str | None = None
    data_id: str | None = None
    error_id: int = 0
    status_code: int = 200  # 404 means there was nothing to act on


@dataclass(frozen=True, slots=True)
class Fetched:
    """A broadcast fetched just now, with AMS's clock at that moment (None: AMS sent no Date)."""

    broadcast: Broadcast | None
    server_time: float | None


@dataclass(frozen=True, slots=True)
class RoomView:
    """A room as AMS lists it now: its member stream ids, and whether a ConferenceRoom record of that id exists."""

    members: frozenset[str]
    conference_record: bool = False


@dataclass(frozen=True, slots=True)
class ClusterNode:
    """One AMS node of a cluster (ClusterNode.java); status is AMS's own verdict, computed on the answering node."""

    node_id: str
    ip: str
    last_update_ms: int
    status: str  # alive, dead, or unknown for anything else

    @property
    def dead(self) -> bool:
        """AMS reports the node dead (no registry heartbeat for 4 periods, 2 on 2.8.x)."""
        return self.status == "dead"


@dataclass(frozen=True)
class AppSnapshot:
    """Everything one scrape learns about one app; rooms maps room id -> member stream ids."""

    app: str
    version: AmsVersion
    server_time: float | None
    broadcasts: tuple[Broadcast, ...]
    rooms: Mapping[str, frozenset[str]] = field(default_factory=lambda: MappingProxyType({}))
    rejected_records: int = 0

    @cached_property
    def members(self) -> frozenset[str]:
        """Every stream id listed in any room."""
        return frozenset().union(*self.rooms.values()) if self.rooms else frozenset()


def parse_version(data: Any) -> AmsVersion:
    """Parse GET /{app}/rest/v2/version; an unparseable versionName yields known=False."""
    if not isinstance(data, dict):
        raise AmsMalformedError("version: expected a JSON object")
    name = data.get("versionName")
    edition = _edition(data.get("versionType"))
    match = _VERSION_RE.match(name) if isinstance(name, str) else None
    if match is None:
        shown = name if isinstance(name, str) and name.strip() else "unknown"
        return AmsVersion(name=shown[:40], edition=edition, known=False)
    major, minor, patch = (int(g) if g else 0 for g in match.groups())
    return AmsVersion(name=name.strip()[:40], major=major, minor=minor, patch=patch, edition=edition)


def _edition(value: Any) -> str:
    """Map versionType ('Enterprise Edition', 'Community Edition') to a short label value."""
    text = value.lower() if isinstance(value, str) else ""
    for edition in ("enterprise", "community"):
        if edition in text:
            return edition
    return "unknown"


def decode_json(content: bytes, what: str) -> Any:
    """Parse a JSON body; empty (HTTP 204) is None; junk raises AmsMalformedError."""
    if not content.strip():
        return None
    try:
        return json.loads(content)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise AmsMalformedError(f"{what}: response is not JSON ({type(exc).__name__})") from None


_JavaLong = Annotated[int, msgspec.Meta(ge=-_INT_LIMIT, le=_INT_LIMIT - 1)]  # a larger number is junk


class WireBroadcast(msgspec.Struct, gc=False):
    """The Broadcast JSON fields monitoring reads, with the types AMS gives them (Broadcast.java).

    A list page decodes straight into these, skipping every other field, in C: five times faster
    than json.loads, which builds all ~60 fields of every record. Field order is Broadcast's.
    """

    streamId: str | None = None
    status: str | None = None
    type: str | None = None
    publishType: str | None = None
    name: str | None = None
    updateTime: _JavaLong | None = None
    startTime: _JavaLong | None = None
    mainTrackStreamId: str | None = None
    subTrackStreamIds: list[str] | None = None
    virtual: bool | None = None
    zombi: bool | None = None
    originAdress: str | None = None
    speed: float | None = None
    pendingPacketSize: _JavaLong | None = None
    hlsViewerCount: _JavaLong | None = None
    dashViewerCount: _JavaLong | None = None
    webRTCViewerCount: _JavaLong | None = None
    rtmpViewerCount: _JavaLong | None = None
    receivedBytes: _JavaLong | None = None
    bitrate: _JavaLong | None = None


_LIST_DECODER = msgspec.json.Decoder(list[WireBroadcast] | None)


def decode_broadcast_list(content: bytes, what: str = "broadcast list") -> Any:
    """A broadcast list body: WireBroadcast records when every entry has AMS's types, else plain JSON.

    Any entry with another shape (a string for a number, junk in a list, not an object) sends the
    whole page through json.loads and the lenient per-field parser, so both give the same records.
    """
    try:
        return _LIST_DECODER.decode(content)
    except msgspec.DecodeError:  # also ValidationError: a type AMS does not send
        return decode_json(content, what)


def parse_broadcast_page(data: Any) -> tuple[list[Broadcast], int]:
    """Parse a list page; returns (broadcasts, rejected record count). None (HTTP 204/null) is empty."""
    if data is None:
        return [], 0
    if not isinstance(data, list):
        raise AmsMalformedError("broadcast list: expected a JSON array")
    parse = _from_wire if data and type(data[0]) is WireBroadcast else parse_broadcast
    parsed = [parse(item) for item in data]
    good = [b for b in parsed if b is not None]
    return good, len(parsed) - len(good)


_wire_values = msgspec.structs.astuple


def _from_wire(wire: WireBroadcast) -> Broadcast | None:
    """parse_broadcast for a typed record: only the checks its types leave open."""
    (stream_id, status, kind, publish_type, name, update, start, main_track, subtracks, virtual, zombi, origin,
     speed, pending, hls, dash, webrtc, rtmp, received, bitrate) = _wire_values(wire)
    stream_id = _ident(stream_id)
    if not stream_id:
        return None
    pending, hls, dash, webrtc, rtmp, received, bitrate = _counts((pending, hls, dash, webrtc, rtmp, received, bitrate))
    return Broadcast(
        stream_id, _word(status), _word(kind), _word(publish_type), _text(name), _epoch_ms(update),
        _epoch_ms(start), _ident(main_track), _id_tuple(subtracks), virtual, zombi is True, _text(origin),
        _speed(_float(speed)), pending, hls, dash, webrtc, rtmp, received, bitrate,
    )


_INT_KEYS = ("updateTime", "startTime", "pendingPacketSize", "hlsViewerCount", "dashViewerCount",
             "webRTCViewerCount", "rtmpViewerCount", "receivedBytes", "bitrate")


def parse_broadcast(data: Any) -> Broadcast | None:
    """Parse one Broadcast object; None when it has no usable streamId (ignored, counted)."""
    if type(data) is not dict:
        return None
    get = data.get
    stream_id = _ident(get("streamId"))
    if not stream_id:
        return None
    # One comprehension for the integer fields: this runs 10k times per scrape at 10k broadcasts.
    limit = _INT_LIMIT
    update, start, pending, hls, dash, webrtc, rtmp, received, bitrate = [
        v if type(v) is int and -limit <= v < limit else _int(v) for v in map(get, _INT_KEYS)
    ]
    pending, hls, dash, webrtc, rtmp, received, bitrate = _counts((pending, hls, dash, webrtc, rtmp, received, bitrate))
    return Broadcast(
        stream_id, _word(get("status")), _word(get("type")), _word(get("publishType")), _text(get("name")),
        _epoch_ms(update), _epoch_ms(start), _ident(get("mainTrackStreamId")), _id_tuple(get("subTrackStreamIds")),
        _bool(get("virtual")), get("zombi") is True, _text(get("originAdress")), _speed(_float(get("speed"))),
        pending, hls, dash, webrtc, rtmp, received, bitrate,
    )


def parse_conference_room_page(data: Any) -> list[tuple[str, tuple[str, ...]]]:
    """Parse a v2.8.x conference-rooms/list page into (room id, roomStreamList) pairs."""
    if data is None:
        return []
    if not isinstance(data, list):
        raise AmsMalformedError("conference room list: expected a JSON array")
    rooms = []
    for item in data:
        room = parse_conference_room(item)
        if room is not None:
            rooms.append(room)
    return rooms


def parse_conference_room(data: Any) -> tuple[str, tuple[str, ...]] | None:
    """Parse one ConferenceRoom object; None when it has no usable roomId."""
    if type(data) is not dict:
        return None
    room_id = _ident(data.get("roomId"))
    if not room_id:
        return None
    return room_id, _id_tuple(data.get("roomStreamList")) or ()


def parse_cluster_node_page(data: Any) -> list[ClusterNode]:
    """Parse a cluster/nodes page; entries without a usable ip are skipped."""
    if data is None:
        return []
    if not isinstance(data, list):
        raise AmsMalformedError("cluster nodes: expected a JSON array")
    nodes = []
    for item in data:
        if type(item) is not dict or not _ident(item.get("ip")) or not item["ip"].isprintable():
            continue
        status = item.get("status")
        nodes.append(ClusterNode(node_id=_text(item.get("id")), ip=item["ip"],
                                 last_update_ms=_epoch_ms(_int(item.get("lastUpdateTime"))),
                                 status=status if status in ("alive", "dead") else "unknown"))
    return nodes


def parse_broadcast_statistics(data: Any) -> int:
    """totalRTMPWatchersCount of a BroadcastStatistics: -1 unless the answering node holds a live broadcast
    scope for the stream (RestServiceBase L1317-1339 @2.8.2, L1225-1247 @3.0.3)."""
    if not isinstance(data, dict):
        raise AmsMalformedError("broadcast statistics: expected a JSON object")
    value = data.get("totalRTMPWatchersCount")
    if type(value) is not int or not -1 <= value < 2**31:
        raise AmsMalformedError("broadcast statistics: totalRTMPWatchersCount missing or not an integer >= -1")
    return value


def is_node_address(value: Any) -> bool:
    """True for a registry address that may stand as a URL host: an IP address or a DNS name, nothing else."""
    if type(value) is not str or not 0 < len(value) <= 253:
        return False
    try:
        ipaddress.ip_address(value)
        return True
    except ValueError:
        return _HOSTNAME.fullmatch(value) is not None


def parse_result(data: Any, status_code: int = 200) -> Result:
    """Parse AMS's Result {success, message, dataId, errorId}."""
    if not isinstance(data, dict):
        raise AmsMalformedError("result: expected a JSON object")
    success = data.get("success")
    if not isinstance(success, bool):
        raise AmsMalformedError("result: 'success' missing or not a boolean")
    message = data.get("message")
    data_id = data.get("dataId")
    return Result(
        success=success,
        message=message if isinstance(message, str) else None,
        data_id=data_id if isinstance(data_id, str) else None,
        error_id=_int(data.get("errorId")) or 0,
        status_code=status_code,
    )


def parse_count(data: Any) -> int:
    """Parse SimpleStat {"number": N}."""
    number = _int(data.get("number")) if isinstance(data, dict) else None
    if number is None or number < 0:
        raise AmsMalformedError("count: expected {\"number\": N}")
    return number


def build_rooms(
    broadcasts: Iterable[Broadcast], conference_rooms: Iterable[tuple[str, Iterable[str]]] = ()
) -> dict[str, frozenset[str]]:
    """Union of every room model: subTrackStreamIds, virtual main tracks, mainTrackStreamId (unless finished), roomStreamList."""
    rooms: dict[str, set[str]] = {}
    for b in broadcasts:
        if b.subtrack_ids or b.virtual:
            rooms.setdefault(b.stream_id, set()).update(b.subtrack_ids or ())
        room = b.main_track_id
        # b.joined_room, spelled out: this loop runs once per record on every scrape.
        if room and room != b.stream_id and b.status != "finished":
            members = rooms.get(room)
            if members is None:
                members = rooms[room] = set()
            members.add(b.stream_id)
    for room_id, members in conference_rooms:
        rooms.setdefault(room_id, set()).update(members)
    for room_id, members in rooms.items():
        members.discard(room_id)  # a room is never its own member
    return {room: frozenset(members) for room, members in rooms.items()}


def _ident(value: Any) -> str:
    """A stream or room id: a non-empty string of sane length, else ''.

    Any character is kept: an id outside AMS's rule (is_stream_id) is still a record that can be a
    ghost, exported under id_label() and refused visibly by the remediator, never dropped unseen.
    """
    if type(value) is str and 0 < len(value) <= MAX_ID_LENGTH:
        return value
    return ""


def _counts(values: tuple) -> list:
    """Counts (viewers, packets, bytes, bits/s): None for a negative or absurd value."""
    return [v if v is not None and 0 <= v <= MAX_COUNT else None for v in values]


def _epoch_ms(value: int | None) -> int:
    """Epoch milliseconds; 0 ("none") for a missing, negative or absurd value."""
    return value if value is not None and 0 < value <= MAX_EPOCH_MS else 0


def _speed(value: float | None) -> float | None:
    """The ingest speed ratio; None for a negative or absurd value."""
    return value if value is not None and 0.0 <= value <= MAX_SPEED else None


def _id_tuple(value: Any) -> tuple[str, ...] | None:
    """A list of ids; junk entries are dropped, duplicates (AMS #4045) collapsed in order."""
    if type(value) is not list:
        return None
    if not value:
        return ()
    # _ident's test inlined: a 2.8.x scrape checks every member id of every room twice.
    limit = MAX_ID_LENGTH
    return tuple(dict.fromkeys([i for i in value if type(i) is str and 0 < len(i) <= limit]))


def _word(value: Any) -> str:
    """An enum-like AMS string (status, type, publishType); anything else becomes 'unknown'."""
    if type(value) is str:
        word = _WORDS.get(value)
        if word is not None:
            return word
        if _WORD_RE.fullmatch(value):
            if len(_WORDS) < 1024:  # bounded: hostile data must not grow it forever
                _WORDS[value] = _intern(value)
            return value
    return "unknown"


def _text(value: Any) -> str:
    """A short display string (name, originAdress)."""
    if type(value) is not str:
        return ""
    return value[:200] if value.isprintable() else ""


def _int(value: Any) -> int | None:
    """An integer JSON number (floats truncated); booleans and junk become None."""
    kind = type(value)
    if kind is int:
        return value if -_INT_LIMIT <= value < _INT_LIMIT else None
    if kind is float and value == value and abs(value) < _INT_LIMIT:
        return int(value)
    return None


def _float(value: Any) -> float | None:
    """A finite JSON number as float."""
    kind = type(value)
    if kind is float:  # + 0.0 turns -0.0 into 0.0, which renders the same everywhere
        return value + 0.0 if value == value and abs(value) != float("inf") else None
    return float(value) if kind is int else None


def _bool(value: Any) -> bool | None:
    """A JSON boolean, else None."""
    return value if type(value) is bool else None


_HOSTNAME = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)(?:\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*")


def is_stream_id(value: Any) -> bool:
    """True when AMS would accept value as a stream id (STREAM_ID_RE): the remediator acts only on these."""
    return type(value) is str and STREAM_ID_RE.match(value) is not None


def id_label(value: str) -> str:
    """The label value of an id: the id itself when printable and without '%'; else '%' and every character
    that is not printable percent-encoded (UTF-8), so each id keeps a distinct, visible label."""
    if value.isprintable() and "%" not in value:
        return value
    return "".join(c if c.isprintable() and c != "%" else _percent(c) for c in value)


def _percent(char: str) -> str:
    """%XX for each UTF-8 byte of one character (a lone surrogate included)."""
    return "".join(f"%{byte:02X}" for byte in char.encode("utf-8", "surrogatepass"))
