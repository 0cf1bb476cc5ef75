"""Reading endpoints: paging cap, filters, counts, field sets (docs/ams.md, "Reading", "Broadcast fields")."""
import json

from hypothesis import given, settings, strategies as st

from simulator import ManualClock, Simulator
from simulator.broadcasts import crop

APP = "WebRTCAppEE"

# The field names of a v2.8.2 record, in the order AMS serializes them (docs/ams.md, "Broadcast fields").
EXAMPLE_282_FIELDS = [
    "streamId", "status", "playListStatus", "type", "publishType", "name", "description", "publish", "date",
    "plannedStartDate", "plannedEndDate", "duration", "endPointList", "playListItemList", "publicStream", "is360",
    "listenerHookURL", "category", "ipAddr", "username", "password", "quality", "speed", "streamUrl",
    "originAdress", "mp4Enabled", "webMEnabled", "expireDurationMS", "rtmpURL", "zombi", "pendingPacketSize",
    "hlsViewerCount", "dashViewerCount", "webRTCViewerCount", "rtmpViewerCount", "startTime", "receivedBytes",
    "bitrate", "userAgent", "latitude", "longitude", "altitude", "mainTrackStreamId", "subTrackStreamIds",
    "absoluteStartTimeMs", "webRTCViewerLimit", "hlsViewerLimit", "dashViewerLimit", "subFolder",
    "currentPlayIndex", "metaData", "playlistLoopEnabled", "updateTime",
]
MASTER_ONLY = ["seekTimeInMs", "subtracksLimit", "width", "height", "encoderQueueSize", "dropPacketCountInIngestion",
               "dropFrameCountInEncoding", "packetLostRatio", "packetsLost", "jitterMs", "rttMs", "remoteIp", "role",
               "hlsParameters", "autoStartStopEnabled", "encoderSettingsList", "virtual", "maxIdleTime",
               "anyoneWatching"]


def test_list_is_capped_at_250_per_page_s3_1(make_sim, client, version):
    sim = make_sim(version)
    sim.add_records(APP, 600)
    c = client(sim)
    assert len(c.get("/list/0/1000").json()) == 250
    assert len(c.get("/list/500/250").json()) == 100


def test_paging_with_offset_plus_page_length_sees_every_record_once(make_sim, client):
    sim = make_sim()
    sim.add_records(APP, 520)
    sim.populate(APP, live=40, rooms=4)
    c, seen, offset = client(sim), [], 0
    while True:
        page = c.get(f"/list/{offset}/250").json()
        seen += [b["streamId"] for b in page]
        offset += len(page)
        if len(page) < 250:
            break
    assert len(seen) == len(set(seen)) == c.get("/count").json()["number"] == 564


def test_negative_offset_reads_as_zero_and_non_numeric_offset_is_404(make_sim, client):
    sim = make_sim()
    sim.add_records(APP, 3)
    c = client(sim)
    assert len(c.get("/list/-5/10").json()) == 3
    assert c.get("/list/abc/10").status_code == 404


def test_count_is_a_simple_stat(make_sim, client):
    sim = make_sim()
    sim.add_records(APP, 7)
    assert client(sim).get("/count").json() == {"number": 7}


def test_v282_broadcast_has_exactly_the_reference_example_fields_with_nulls(make_sim, client):
    sim = make_sim("2.8.2")
    sim.create_room(APP, "room1")
    sim.join(APP, "room1", "f3kQ9xLmPa2W", "Alice")
    body = client(sim).get("/f3kQ9xLmPa2W").json()
    assert list(body) == EXAMPLE_282_FIELDS
    assert body["playListStatus"] is None and body["description"] is None
    assert body["mainTrackStreamId"] == "room1" and body["zombi"] is True
    assert body["userAgent"] == "N/A" and body["webRTCViewerLimit"] == -1
    assert json.loads(body["metaData"]) == {"isMicMuted": False, "isCameraOff": False}


def test_v3_broadcast_has_master_fields_and_no_subtrack_ids(make_sim, client):
    sim = make_sim("3.0.0")
    sim.create_room(APP, "room1")
    sim.join(APP, "room1", "alice", "Alice")
    body = client(sim).get("/alice").json()
    assert "subTrackStreamIds" not in body
    assert set(MASTER_ONLY) <= set(body)
    assert set(body) == set(EXAMPLE_282_FIELDS) - {"subTrackStreamIds"} | set(MASTER_ONLY)
    assert body["virtual"] is False and client(sim).get("/room1").json()["virtual"] is True


def test_v2_13_adds_virtual_but_keeps_subtrack_ids(make_sim, client):
    sim = make_sim("2.13.0")
    sim.create_room(APP, "room1")
    sim.join(APP, "room1", "alice")
    main = client(sim).get("/room1").json()
    assert main["virtual"] is True and main["subTrackStreamIds"] == ["alice"]


def test_main_track_is_zombi_broadcasting_with_zero_update_time_s3_4(make_sim, client, version):
    sim = make_sim(version)
    sim.create_room(APP, "room1")
    main = client(sim).get("/room1").json()
    assert (main["status"], main["zombi"], main["updateTime"]) == ("broadcasting", True, 0)


def test_version_endpoint_reports_the_simulated_version(make_sim, client, version):
    sim = make_sim(version)
    body = client(sim, base=f"{sim.url}/{APP}/rest/v2").get("/version").json()
    assert body["versionName"] == version and set(body) == {"versionName", "versionType", "buildNumber"}


@settings(max_examples=max(5, 40 * settings.default.max_examples // 100), deadline=None)
@given(total=st.integers(0, 800), size=st.integers(1, 400))
def test_any_page_size_walks_every_record_exactly_once(total, size):
    sim = Simulator(clock=ManualClock())
    sim.add_records(APP, total)
    app, seen, offset = sim.world.app(APP), [], 0
    while True:
        page = crop(app.ordered(), offset, size)
        assert len(page) <= 250
        seen += [r.fields["streamId"] for r in page]
        offset += len(page)
        if len(page) < min(size, 250):
            break
    assert len(seen) == len(set(seen)) == total
