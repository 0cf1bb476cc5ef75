"""Property tests: random or truncated AMS JSON never crashes a scrape, and rendering stays exact."""

from __future__ import annotations

import json

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import generate_latest
from prometheus_client.utils import floatToGoString

from exporter.ams_client import AmsClient
from exporter.collector import AmsCollector
from exporter.exposition import RowFamily, render_bytes
from exporter.collector import Outcome, build_families
from exporter.model import AppSnapshot, build_rooms, parse_broadcast_page, parse_version
from exporter.stream_text import _ms_text, prepare_page
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
settings_ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


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


@settings(max_examples=100, deadline=None)
@given(page=st.lists(records, max_size=10))
def test_record_parsing_keeps_or_skips_never_raises(page):
    broadcasts, rejected = parse_broadcast_page(page)
    assert len(broadcasts) + rejected == len(page)
    assert all(b.stream_id and isinstance(b.update_time_ms, int) for b in broadcasts)


label_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=10)


@settings(max_examples=200, deadline=None)
@given(rows=st.lists(st.tuples(st.tuples(label_text, label_text, label_text),
                               st.one_of(st.integers(-2**63, 2**63 - 1), st.floats(allow_nan=False))), max_size=6),
       counter=st.booleans())
def test_fast_rendering_is_byte_identical_to_generate_latest(rows, counter):
    family = RowFamily("antmedia_test", 'help with \\ and "quotes"\nnewline', ("stream_id", "ams", "zone"),
                       typ="counter" if counter else "gauge")
    for values, value in rows:
        family.add(values, value)

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


@settings(max_examples=150, deadline=None)
@given(page=st.one_of(st.lists(stream_records, max_size=8, unique_by=lambda r: r["streamId"]),
                      st.lists(stream_records, max_size=8)), cut=st.integers(0, 8), version=st.sampled_from(["2.8.2", "3.0.0"]),
       conference=st.lists(st.tuples(ids, st.lists(ids, max_size=2).map(tuple)), max_size=2))
def test_page_rendering_is_byte_identical_to_generate_latest(page, cut, version, conference):
    """Lines rendered page by page (with rooms, repeats and re-rendered pages) equal the rows' generate_latest."""
    parsed, _ = parse_broadcast_page(page)
    ams_version = parse_version({"versionName": version})
    prepared = tuple(prepare_page("main", "WebRTCAppEE", ams_version, part) for part in (parsed[:cut], parsed[cut:]))
    unique: dict = {}
    for b in parsed:
        unique.setdefault(b.stream_id, b)
    snapshot = AppSnapshot(app="WebRTCAppEE", version=ams_version, server_time=1.8e9,
                           broadcasts=tuple(unique.values()), rooms=build_rooms(unique.values(), conference),
                           prepared=prepared)
    families = list(build_families([Outcome(make_server(), "WebRTCAppEE", snapshot, None, 0.0)], {}))

    class Fixed:
        def collect(self):
            return families

    assert render_bytes(families) == generate_latest(Fixed())
    listed = [b.stream_id for b in snapshot.broadcasts if b.live_status or b.joined_room
              or b.stream_id in snapshot.members or b.stream_id in snapshot.rooms]
    status = next(f for f in families if f.name == "antmedia_broadcast_status")
    assert [sample.labels["stream_id"] for sample in status.samples] == listed


@given(ms=st.integers(10**12, 10**13 - 1))
def test_timestamp_text_is_float_to_go_string(ms):
    assert _ms_text(ms) == floatToGoString(ms / 1000)
