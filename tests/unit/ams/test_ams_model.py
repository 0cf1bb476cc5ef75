"""The Broadcast record: each field defined once (attribute, AMS name, rule, default), built by keyword only."""

from __future__ import annotations

import json

import msgspec
import pytest

from ams.model import (
    Broadcast, WireBroadcast, Word, _fields, ams, decode_broadcast_list, parse_broadcast, parse_broadcast_page,
)

# One distinct value per field, so that a field read under another's name shows.
RECORD = {"streamId": "s1", "status": "broadcasting", "type": "liveStream", "publishType": "WebRTC", "name": "Alice",
          "updateTime": 1709200000001, "startTime": 1709200000002, "mainTrackStreamId": "room1",
          "subTrackStreamIds": ["a", "b", "a"], "virtual": False, "zombi": True, "originAdress": "10.0.0.1",
          "speed": 0.5, "pendingPacketSize": 3, "hlsViewerCount": 4, "dashViewerCount": 5, "webRTCViewerCount": 6,
          "rtmpViewerCount": 7, "receivedBytes": 8, "bitrate": 9, "description": "not read"}
EXPECTED = Broadcast(
    stream_id="s1", status="broadcasting", type="liveStream", publish_type="WebRTC", name="Alice",
    update_time_ms=1709200000001, start_time_ms=1709200000002, main_track_id="room1", subtrack_ids=("a", "b"),
    virtual=False, zombi=True, origin="10.0.0.1", speed=0.5, pending_packets=3, hls_viewers=4, dash_viewers=5,
    webrtc_viewers=6, rtmp_viewers=7, received_bytes=8, bitrate=9,
)


def test_every_field_lands_under_its_own_name_on_both_paths():
    decoded = decode_broadcast_list(json.dumps([RECORD]).encode())
    assert type(decoded[0]) is WireBroadcast  # the typed path
    assert parse_broadcast_page(decoded) == ([EXPECTED], 0)
    assert parse_broadcast(RECORD) == EXPECTED  # the lenient path
    assert parse_broadcast_page(json.loads(json.dumps([RECORD]))) == ([EXPECTED], 0)


def test_records_are_built_by_keyword_only():
    with pytest.raises(TypeError):
        Broadcast("s1", "broadcasting")  # noqa: the point of the test
    with pytest.raises(TypeError):
        Broadcast(status="broadcasting")  # the id is required
    assert parse_broadcast({"streamId": "s1"}) == Broadcast(stream_id="s1")  # absent fields read as the defaults


def test_the_wire_record_is_derived_from_the_record():
    record = [(f.name, f.encode_name) for f in msgspec.structs.fields(Broadcast)]
    wire = [(f.name, f.encode_name) for f in msgspec.structs.fields(WireBroadcast)]
    assert wire == record and record[0] == ("stream_id", "streamId")
    assert all(f.default is None for f in msgspec.structs.fields(WireBroadcast))


def test_a_default_that_its_rule_would_not_give_is_refused():
    class Wrong(msgspec.Struct, kw_only=True):
        status: Word = ams("status", "broadcasting")  # an absent status reads as "unknown"

    with pytest.raises(TypeError, match="default"):
        _fields(Wrong)


@pytest.mark.parametrize(("field", "value"), [
    ("speed", int("9" * 400)),  # json.loads gives an int that no float holds
    ("speed", -1), ("updateTime", -5), ("hlsViewerCount", 2**60), ("bitrate", 2**64), ("streamId", "x" * 257),
    ("subTrackStreamIds", "room1"), ("zombi", "true"), ("name", "x" * 10**6), ("status", "<script>"),
])
def test_absurd_values_read_as_not_provided_on_both_paths(field, value):
    body = json.dumps([{**RECORD, field: value}]).encode()
    typed, lenient = parse_broadcast_page(decode_broadcast_list(body)), parse_broadcast_page(json.loads(body))
    assert repr(typed) == repr(lenient)
    records, rejected = lenient
    if field == "streamId":
        assert (records, rejected) == ([], 1)
        return
    (record,) = records
    attribute = next(f.name for f in msgspec.structs.fields(Broadcast) if f.encode_name == field)
    default = next(f.default for f in msgspec.structs.fields(Broadcast) if f.encode_name == field)
    assert getattr(record, attribute) == (default if field != "name" else "x" * 200)
