"""The records model: frozen AMS records parsed from AMS JSON; no I/O.

Each field of an AMS record is defined once, on its record (Broadcast): its attribute name, its
name in AMS's JSON, the rule that reads it and its default. The typed list decoder (WireBroadcast),
the lenient parser and the builders are derived from that one definition, and records are built by
keyword only.
"""

from __future__ import annotations

import ipaddress
import json
import re
import sys
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType
from typing import Annotated, Any, NamedTuple, Optional

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


# ---------------------------------------------------------------- reading one AMS value
# Each rule takes any JSON value and returns the record's value: what AMS cannot mean (a wrong type,
# an absurd number, a huge or unprintable string) becomes the field's "not provided" value, never an
# error, so a malformed record never fails a scrape. The typed decoder gives them typed values (or
# None), for which each takes its first, fast branch.


def _ident(value: Any) -> str:
    """A stream or room id: a non-empty string of sane length, else ''.

    Any character is kept: an id outside AMS's rule (is_stream_id) is still a record that can be a
    ghost, exported under a visible label and refused visibly by the remediator, never dropped unseen.
    """
    if type(value) is str and 0 < len(value) <= MAX_ID_LENGTH:
        return value
    return ""


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


def _epoch_ms(value: Any) -> int:
    """Epoch milliseconds (a float truncated); 0 ("none") for a missing, negative, absurd or non-numeric value."""
    if type(value) is not int:
        value = _int(value)
    return value if value is not None and 0 < value <= MAX_EPOCH_MS else 0


def _count(value: Any) -> int | None:
    """A count (viewers, packets, bytes, bits/s; a float truncated); None for a negative, absurd or
    non-numeric value."""
    if type(value) is not int:
        value = _int(value)
    return value if value is not None and 0 <= value <= MAX_COUNT else None


def _id_tuple(value: Any) -> tuple[str, ...] | None:
    """A list of ids; junk entries are dropped, duplicates (AMS #4045) collapsed in order."""
    if type(value) is not list:
        return None
    if not value:
        return ()
    # _ident's test inlined: a 2.8.x scrape checks every member id of every room twice.
    limit = MAX_ID_LENGTH
    return tuple(dict.fromkeys([i for i in value if type(i) is str and 0 < len(i) <= limit]))


def _flag(value: Any) -> bool | None:
    """A JSON boolean, else None (the version has no such field)."""
    return value if type(value) is bool else None


def _true(value: Any) -> bool:
    """True only for JSON true."""
    return value is True


def _speed(value: Any) -> float | None:
    """The ingest speed ratio; None for a non-number, a negative or an absurd value."""
    value = _float(value)
    return value if value is not None and 0.0 <= value <= MAX_SPEED else None


def _int(value: Any) -> int | None:
    """An integer JSON number (floats truncated); booleans and junk become None."""
    kind = type(value)
    if kind is int:
        return value if -_INT_LIMIT <= value < _INT_LIMIT else None
    if kind is float and value == value and abs(value) < _INT_LIMIT:
        return int(value)
    return None


def _float(value: Any) -> float | None:
    """A finite JSON number as float (an integer beyond a Java long is junk: it may not even fit a float)."""
    kind = type(value)
    if kind is float:  # + 0.0 turns -0.0 into 0.0, which renders the same everywhere
        return value + 0.0 if value == value and abs(value) != float("inf") else None
    return float(value) if kind is int and -_INT_LIMIT <= value < _INT_LIMIT else None


class Rule(NamedTuple):
    """How one AMS field is read: `wire`, the JSON type AMS gives it (a list page whose records all have
    these types decodes in C); `clean`, any JSON value to the record's value; `typed`, optionally, the
    same as an expression over a value `{v}` of the wire type or None (`{clean}` names clean, other
    names are this module's), inlined where a scrape reads typed records: clean and typed must agree,
    and the property tests compare the two paths."""

    wire: Any
    clean: Callable[[Any], Any]
    typed: str | None = None


_JavaLong = Annotated[int, msgspec.Meta(ge=-_INT_LIMIT, le=_INT_LIMIT - 1)]  # a larger number is junk

# The field kinds of AMS records: the record's type, annotated with the rule that reads it.
Ident = Annotated[str, Rule(str, _ident, "({v} if {v} is not None and 0 < len({v}) <= MAX_ID_LENGTH else '')")]
Word = Annotated[str, Rule(str, _word, "(_WORDS.get({v}) or {clean}({v}))")]
Text = Annotated[str, Rule(str, _text, "({v}[:200] if {v} is not None and {v}.isprintable() else '')")]
EpochMs = Annotated[int, Rule(_JavaLong, _epoch_ms, "({v} if {v} is not None and 0 < {v} <= MAX_EPOCH_MS else 0)")]
Count = Annotated[Optional[int], Rule(_JavaLong, _count, "({v} if {v} is None or 0 <= {v} <= MAX_COUNT else None)")]
IdList = Annotated[Optional[tuple[str, ...]], Rule(list[str], _id_tuple)]
Flag = Annotated[Optional[bool], Rule(bool, _flag, "{v}")]
TrueOnly = Annotated[bool, Rule(bool, _true, "({v} is True)")]
Speed = Annotated[Optional[float],
                  Rule(float, _speed, "({v} + 0.0 if {v} is not None and 0.0 <= {v} <= MAX_SPEED else None)")]


def ams(key: str, default: Any = msgspec.NODEFAULT) -> Any:
    """A record field named `key` in AMS's JSON; `default` is what an absent or junk value reads as."""
    return msgspec.field(default=default, name=key)


class Broadcast(msgspec.Struct, frozen=True, gc=False, kw_only=True):
    """One AMS Broadcast record (Broadcast.java), reduced to what monitoring and remediation need.

    Each line is the whole definition of one field: attribute, kind (the rule that reads it), name in
    AMS's JSON, default. Build by keyword only; copy with msgspec.structs.replace. A frozen msgspec
    Struct rather than a dataclass: a scrape builds one per AMS record, and a Struct is built in C.
    It holds no containers that could form cycles, so the cyclic GC need not track it.
    """

    stream_id: Ident = ams("streamId")
    status: Word = ams("status", "unknown")
    type: Word = ams("type", "unknown")
    publish_type: Word = ams("publishType", "unknown")
    name: Text = ams("name", "")
    update_time_ms: EpochMs = ams("updateTime", 0)
    start_time_ms: EpochMs = ams("startTime", 0)
    main_track_id: Ident = ams("mainTrackStreamId", "")
    subtrack_ids: IdList = ams("subTrackStreamIds", None)  # None when the version has no such field
    virtual: Flag = ams("virtual", None)  # None when the version has no such field
    zombi: TrueOnly = ams("zombi", False)
    origin: Text = ams("originAdress", "")
    speed: Speed = ams("speed", None)
    pending_packets: Count = ams("pendingPacketSize", None)
    hls_viewers: Count = ams("hlsViewerCount", None)
    dash_viewers: Count = ams("dashViewerCount", None)
    webrtc_viewers: Count = ams("webRTCViewerCount", None)
    rtmp_viewers: Count = ams("rtmpViewerCount", None)
    received_bytes: Count = ams("receivedBytes", None)
    bitrate: Count = ams("bitrate", None)

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


class _Field(NamedTuple):
    """One record field as its record defines it."""

    name: str  # attribute
    key: str  # name in AMS's JSON
    rule: Rule
    default: Any


def _fields(record: type[msgspec.Struct]) -> tuple[_Field, ...]:
    """The fields of a record, each with the rule of its kind; checks that a default is what its rule
    reads an absent value as (so a record from JSON and one built by keyword agree)."""
    fields = []
    for info in msgspec.structs.fields(record):
        rule = next((m for m in typing.get_args(info.type)[1:] if isinstance(m, Rule)), None)
        if rule is None:
            raise TypeError(f"{record.__name__}.{info.name}: no Rule in its annotation")
        if info.default is not msgspec.NODEFAULT and rule.clean(None) != info.default:
            raise TypeError(f"{record.__name__}.{info.name}: default {info.default!r} is not what its rule reads "
                            f"an absent value as ({rule.clean(None)!r})")
        fields.append(_Field(info.name, info.encode_name, rule, info.default))
    return tuple(fields)


_BROADCAST_FIELDS = _fields(Broadcast)

# The Broadcast JSON fields monitoring reads, with the types AMS gives them: a list page decodes
# straight into these, skipping every other field, in C (five times faster than json.loads, which
# builds all ~60 fields of every record). Attributes are Broadcast's; None is any field's absence.
WireBroadcast = msgspec.defstruct(
    "WireBroadcast", [(f.name, Optional[f.rule.wire], None) for f in _BROADCAST_FIELDS],
    rename={f.name: f.key for f in _BROADCAST_FIELDS}, gc=False, module=__name__,
)


def _builder(record: type[msgspec.Struct], fields: tuple[_Field, ...], source: str) -> Callable[[Any], Any]:
    """A function that builds one record by keyword, every field through its rule, from a typed wire
    struct (source "wire") or a JSON object (source "json"); None when the first (identifying) field
    reads empty.

    Generated from the field list, as dataclasses generates __init__: one call per record with no loop
    or intermediate dict, because a scrape runs it once per AMS record (10,000 at a time).
    """
    def value(i: int, f: _Field) -> str:
        if source == "json":
            return f"clean_{i}(get({f.key!r}))"
        if f.rule.typed:
            return f.rule.typed.format(v=f"raw.{f.name}", clean=f"clean_{i}")
        return f"clean_{i}(raw.{f.name})"

    first, *rest = fields
    keywords = ", ".join([f"{first.name}=key"] + [f"{f.name}={value(i, f)}" for i, f in enumerate(rest, 1)])
    lines = ["def build(raw):"]
    if source == "json":
        lines += ["    if type(raw) is not dict:", "        return None", "    get = raw.get"]
    lines += [f"    key = {value(0, first)}", "    if not key:", "        return None",
              f"    return Record({keywords})"]
    namespace = {**globals(), "Record": record}
    namespace.update((f"clean_{i}", f.rule.clean) for i, f in enumerate(fields))
    exec("\n".join(lines), namespace)  # noqa: S102 - source built from the record's own field names
    return namespace["build"]


_from_wire = _builder(Broadcast, _BROADCAST_FIELDS, "wire")
_from_json = _builder(Broadcast, _BROADCAST_FIELDS, "json")


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


_LIST_DECODER = msgspec.json.Decoder(list[WireBroadcast] | None)


def decode_broadcast_list(content: bytes, what: str = "broadcast list") -> Any:
    """A broadcast list body: WireBroadcast records when every entry has AMS's types, else plain JSON.

    Any entry with another shape (a string for a number, junk in a list, not an object) sends the
    whole page through json.loads and the lenient parser, so both give the same records.
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
    parse = _from_wire if data and type(data[0]) is WireBroadcast else _from_json
    parsed = [parse(item) for item in data]
    good = [b for b in parsed if b is not None]
    return good, len(parsed) - len(good)


def parse_broadcast(data: Any) -> Broadcast | None:
    """Parse one Broadcast object; None when it has no usable streamId (ignored, counted)."""
    return _from_json(data)




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




_HOSTNAME = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)(?:\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*")


def is_stream_id(value: Any) -> bool:
    """True when AMS would accept value as a stream id (STREAM_ID_RE): the remediator acts only on these."""
    return type(value) is str and STREAM_ID_RE.match(value) is not None
