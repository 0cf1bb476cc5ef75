"""Property tests: random or truncated AMS JSON never crashes a scrape, and rendering stays exact."""

from __future__ import annotations

import json

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from prometheus_client import generate_latest

from ams.client import AmsClient
from exporter.collector import AmsCollector
from exporter.exposition import RowFamily, escape, render_bytes
from exporter.collector import Outcome, build_families
from ams.model import (
    AppSnapshot,
    WireBroadcast,
    build_rooms,
    decode_broadcast_list,
    decode_json,
    parse_broadcast_page,
    parse_version,
)
from ams.ghost import is_main_track
from exporter.labels import id_label
from fakeams import FakeAms, fixture, make_server

FIELDS = ["streamId", "status", "type", "publishType", "name", "updateTime", "startTime", "mainTrackStreamId",
          "subTrackStreamIds", "virtual", "zombi", "originAdress", "speed", "pendingPacketSize", "hlsViewerCount",
          "webRTCViewerCount", "receivedBytes", "bitrate", "roomId", "roomStreamList", "number", "versionName"]
scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-2**70, max_value=2**70),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
                    st.sampled_from(["broadcasting", "room1", "s1", "", "liveStream", "2.8.2", "3.0.0"]))
json_values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(FIELDS), inner, max_size=6)), max_leaves=20)
records = st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=12)
pages = st.one_of(json_values, st.lists(st.one_of(records, json_values), max_size=8))

FIXTURE_BODIES = [json.dumps(fixture(name)["body"]).encode() for name in (
    "v2.8.2_broadcasts_list.json", "v3.0.0_broadcasts_list.json", "v2.8.2_conference_rooms_list.json",
    "v2.8.2_version.json", "v2.8.2_count.json")]


@pytest.fixture(scope="module")
def rig():
    """One collector over a fake whose answers each example replaces."""
    fake = FakeAms.from_fixtures("2.8.2")
    server = make_server(timeout_seconds=1.0)
    collector = AmsCollector([server], {"main": AmsClient(server, transport=fake.transport())})
    yield fake, collector
    collector.close()


def scrape_with(rig, path_regex: str, body: bytes) -> bytes:
    fake, collector = rig
    fake.faults.clear()
    fake.fail(path_regex, httpx.Response(200, content=body, headers={"Date": "Thu, 29 Feb 2024 09:51:45 GMT"}))
    collector.clients["main"]._versions.clear()  # so version answers are exercised too
    return render_bytes(collector.collect())


ENDPOINTS = st.sampled_from([r"/broadcasts/list/", r"/conference-rooms/list/", r"/version$", r"/count$"])


def examples(n: int) -> int:
    """n examples under the default profile, a tenth under make check's (tests/conftest.py)."""
    return max(5, n * settings.default.max_examples // 100)


settings_ = settings(max_examples=examples(120), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@settings_
@given(endpoint=ENDPOINTS, page=pages)
def test_random_json_never_crashes_a_scrape(rig, endpoint, page):
    text = scrape_with(rig, endpoint, json.dumps(page, allow_nan=True).encode())
    assert b'antmedia_up{ams="main",app="WebRTCAppEE"}' in text


@settings_
@given(endpoint=ENDPOINTS, body=st.sampled_from(FIXTURE_BODIES), cut=st.floats(0, 1), junk=st.binary(max_size=8))
def test_truncated_json_never_crashes_a_scrape(rig, endpoint, body, cut, junk):
    text = scrape_with(rig, endpoint, body[: int(len(body) * cut)] + junk)
    assert b'antmedia_up{ams="main",app="WebRTCAppEE"}' in text


@settings(max_examples=examples(100), deadline=None)
@given(page=st.lists(records, max_size=10))
def test_record_parsing_keeps_or_skips_never_raises(page):
    broadcasts, rejected = parse_broadcast_page(page)
    assert len(broadcasts) + rejected == len(page)
    assert all(b.stream_id and isinstance(b.update_time_ms, int) for b in broadcasts)


label_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=10)


@settings(max_examples=examples(200), deadline=None)
@given(rows=st.lists(st.tuples(st.tuples(label_text, label_text, label_text),
                               st.one_of(st.integers(-2**63, 2**63 - 1), st.floats(allow_nan=False))), max_size=6),
       counter=st.booleans())
def test_fast_rendering_is_byte_identical_to_generate_latest(rows, counter):
    family = RowFamily("antmedia_test", 'help with \\ and "quotes"\nnewline', ("stream_id", "ams", "zone"),
                       typ="counter" if counter else "gauge")
    for values, value in rows:
        family.add(tuple(escape(v) for v in values), value)

    class One:
        def collect(self):
            return [family]

    assert render_bytes([family]) == generate_latest(One())


ids = st.sampled_from(["s1", "s2", "s3", "s4", "room1", "room2", 'q"uo\\te', "new\nline"])
numbers = st.one_of(st.none(), st.integers(-5, 2**40), st.floats(-1e3, 1e13, allow_nan=False),
                    st.integers(10**12, 10**13 - 1))
stream_records = st.fixed_dictionaries({"streamId": ids}, optional={
    "status": st.sampled_from(["broadcasting", "finished", "created", "preparing", "terminated_unexpectedly"]),
    "type": st.sampled_from(["liveStream", "VoD"]), "publishType": st.sampled_from(["WebRTC", "RTMP"]),
    "mainTrackStreamId": st.one_of(st.none(), ids), "subTrackStreamIds": st.one_of(st.none(), st.lists(ids, max_size=3)),
    "virtual": st.one_of(st.none(), st.booleans()), "originAdress": st.sampled_from(["10.0.0.1", 'o"x']),
    **{key: numbers for key in ("updateTime", "startTime", "speed", "pendingPacketSize", "hlsViewerCount",
                                "dashViewerCount", "webRTCViewerCount", "rtmpViewerCount", "receivedBytes",
                                "bitrate")}})


EDGE_RECORD = {"streamId": "s1", "status": "broadcasting", "receivedBytes": -3, "hlsViewerCount": -1,
               "dashViewerCount": 2, "webRTCViewerCount": None, "rtmpViewerCount": 0, "speed": -0.5,
               "pendingPacketSize": -2, "bitrate": 800, "startTime": 1709200000456, "updateTime": 1709200303120}


@settings(max_examples=examples(150), deadline=None)
@given(page=st.one_of(st.lists(stream_records, max_size=8, unique_by=lambda r: r["streamId"]),
                      st.lists(stream_records, max_size=8)), cut=st.integers(0, 8), version=st.sampled_from(["2.8.2", "3.0.0"]),
       conference=st.lists(st.tuples(ids, st.lists(ids, max_size=2).map(tuple)), max_size=2), detail=st.booleans())
# The rules' edges, every time: negative counts and counters, zero ingest counters on both versions,
# a room that is only a conference room, a heartbeat before the epoch-ms range.
@example(page=[EDGE_RECORD, {**EDGE_RECORD, "streamId": "s2", "receivedBytes": 0, "bitrate": 0, "updateTime": 5, "webRTCViewerCount": 1}],
         cut=1, version="2.8.2", conference=[("s1", ("s3",))], detail=True)
@example(page=[EDGE_RECORD, {**EDGE_RECORD, "streamId": "s2", "receivedBytes": 0, "bitrate": 0, "updateTime": 5, "webRTCViewerCount": 1}],
         cut=1, version="3.0.0", conference=[], detail=True)
@example(page=[EDGE_RECORD, {**EDGE_RECORD, "streamId": "s2", "receivedBytes": 0, "bitrate": 0, "updateTime": 5, "webRTCViewerCount": 1}],
         cut=1, version="2.8.2", conference=[("s1", ("s3",))], detail=False)
def test_stream_families_are_byte_identical_to_generate_latest(page, cut, version, conference, detail):
    """The families (rooms, repeats, odd label values, either exposition) equal their generate_latest and the rules."""
    parsed, _ = parse_broadcast_page(page)
    ams_version = parse_version({"versionName": version})
    unique: dict = {}
    for b in parsed:
        unique.setdefault(b.stream_id, b)
    snapshot = AppSnapshot(app="WebRTCAppEE", version=ams_version, server_time=1.8e9,
                           broadcasts=tuple(unique.values()), rooms=build_rooms(unique.values(), conference))
    families = list(build_families([Outcome(make_server(), "WebRTCAppEE", snapshot, None, 0.0)], {}, detail))

    class Fixed:
        def collect(self):
            return families

    assert render_bytes(families) == generate_latest(Fixed())
    listed = [b for b in snapshot.broadcasts if b.live_status or b.joined_room
              or b.stream_id in snapshot.members or b.stream_id in snapshot.rooms]
    status = next(f for f in families if f.name == "antmedia_broadcast_status")
    assert [sample.labels["stream_id"] for sample in status.samples] == [id_label(b.stream_id) for b in listed]
    served = {(s.name, tuple(sorted(s.labels.items())), s.value) for f in families
              if f.name.startswith("antmedia_broadcast_") for s in f.samples}
    assert served == expected_stream_samples(listed, snapshot.rooms, zero_absent=version == "2.8.2", detail=detail)


def expected_stream_samples(streams, rooms, zero_absent: bool, detail: bool) -> set:
    """The per-stream samples, straight from the rules of docs/metrics.md (an oracle for the collector)."""
    out = set()

    def add(name, b, value, **extra):
        labels = {"ams": "main", "app": "WebRTCAppEE", "stream_id": id_label(b.stream_id), **extra}
        out.add((name, tuple(sorted(labels.items())), float(value)))

    for b in streams:
        add("antmedia_broadcast_status", b, 1, status=b.status, type=b.type, node=b.origin)
        add("antmedia_broadcast_main_track", b, 1 if is_main_track(b, rooms) else 0)
        if b.update_time_ms > 0:
            add("antmedia_broadcast_last_update_timestamp_seconds", b, b.update_time_ms / 1000)
        for protocol, count in b.viewers.items():
            if count is not None and (count > 0 or (detail and count == 0)):
                add("antmedia_broadcast_viewers", b, count, protocol=protocol)
        if not detail:
            continue
        add("antmedia_broadcast_info", b, 1, origin=b.origin, type=b.type, publish_type=b.publish_type)
        if b.start_time_ms > 0:
            add("antmedia_broadcast_start_timestamp_seconds", b, b.start_time_ms / 1000)
        if b.speed is not None:
            add("antmedia_broadcast_speed_ratio", b, b.speed)
        if b.pending_packets is not None:
            add("antmedia_broadcast_pending_packets", b, b.pending_packets)
        if b.bitrate is not None and not (zero_absent and b.bitrate == 0):
            add("antmedia_broadcast_bitrate_bytes_per_second", b, b.bitrate / 8)
        if b.received_bytes is not None and b.received_bytes >= 0 and not (zero_absent and b.received_bytes == 0):
            add("antmedia_broadcast_received_bytes_total", b, b.received_bytes)
    return out


# Records with the types AMS sends (any values, including unprintable or over-long strings and
# out-of-range numbers): the typed decoder must take them and agree with the lenient parser.
long_ints = st.integers(-2**64, 2**64)
strict_json = st.recursive(st.one_of(st.none(), st.booleans(), long_ints, st.text(max_size=6),
                                     st.floats(allow_nan=False, allow_infinity=False)),
                           lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                   st.dictionaries(st.text(max_size=4), inner, max_size=3)),
                           max_leaves=10)


def typed_records(ints):
    """Broadcast objects whose read fields have AMS's JSON types, numbers drawn from `ints`."""
    strings = st.one_of(st.none(), st.text(max_size=6), ids, st.sampled_from(["broadcasting", "x" * 257]))
    numbers_ = st.one_of(st.none(), ints)
    return st.fixed_dictionaries({}, optional={
        **{key: strings for key in ("streamId", "status", "type", "publishType", "name", "mainTrackStreamId",
                                    "originAdress")},
        **{key: numbers_ for key in ("updateTime", "startTime", "pendingPacketSize", "hlsViewerCount",
                                     "dashViewerCount", "webRTCViewerCount", "rtmpViewerCount", "receivedBytes",
                                     "bitrate")},
        "subTrackStreamIds": st.one_of(st.none(), st.lists(st.one_of(ids, st.text(max_size=4)), max_size=4)),
        "virtual": st.one_of(st.none(), st.booleans()), "zombi": st.one_of(st.none(), st.booleans()),
        "speed": st.one_of(st.none(), st.integers(-10, 10), st.floats(allow_nan=False, allow_infinity=False)),
        "description": strict_json,  # fields the exporter does not read are skipped, whatever they hold
    })


@settings(max_examples=examples(300), deadline=None)
@given(page=st.one_of(st.lists(typed_records(long_ints), max_size=8),
                      st.lists(st.one_of(typed_records(long_ints), stream_records, records, json_values), max_size=8)))
def test_typed_list_decoding_parses_like_the_lenient_parser(page):
    body = json.dumps(page, allow_nan=True).encode()
    # repr, not ==: it tells -0.0 from 0.0, which render differently
    assert repr(parse_broadcast_page(decode_broadcast_list(body))) == repr(parse_broadcast_page(json.loads(body)))


@settings(max_examples=examples(100), deadline=None)
@given(page=st.lists(typed_records(st.integers(-2**63, 2**63 - 1)), min_size=1, max_size=8))
def test_records_with_ams_types_take_the_typed_path(page):
    decoded = decode_broadcast_list(json.dumps(page).encode())
    assert all(type(item) is WireBroadcast for item in decoded)


@pytest.mark.parametrize("body", [
    b'[{"streamId": "s1", "updateTime": 1, "updateTime": 2}]',  # repeated key: the last one counts
    b'[{"streamId": "s1", "speed": -0.0}]',
    b'[{"streamId": "s1", "speed": 1e400}]',  # overflows to inf: no speed
    b'[{"streamId": "s1", "speed": NaN}]',  # not JSON, but what a Java NaN would look like
    b'[{"streamId": "s1", "bitrate": 9223372036854775808}]',  # one beyond Java's long
    b'[{"streamId": "s1", "updateTime": 1.7e12}]',
    br'[{"streamId": "s1\u0000"}, {"streamId": "s2", "name": "a\nb"}]',  # JSON escapes of control characters
    b'[{"streamId": "s1", "subTrackStreamIds": ["a", 1, "a", null]}]',
    b'[{"streamId": "s1", "zombi": "true"}, {"streamId": "s2", "zombi": true}]',
    b'[]', b'null', b' ',
])
def test_typed_list_decoding_edge_cases(body):
    assert repr(parse_broadcast_page(decode_broadcast_list(body))) == repr(parse_broadcast_page(decode_json(body, "x")))


def test_recorded_list_pages_take_the_typed_path():
    for name in ("v2.8.2_broadcasts_list.json", "v3.0.0_broadcasts_list.json"):
        body = json.dumps(fixture(name)["body"]).encode()
        decoded = decode_broadcast_list(body)
        assert decoded and all(type(item) is WireBroadcast for item in decoded)
        assert parse_broadcast_page(decoded) == parse_broadcast_page(json.loads(body))
