"""Pulled sources, session recovery and a reverse proxy, on 2.8.2 and 3.0.3."""
from email.utils import parsedate_to_datetime

import pytest

from sim_helpers import room_with

APP = "WebRTCAppEE"


def date_of(response) -> float:
    """The reply's Date header in epoch seconds."""
    return parsedate_to_datetime(response.headers["date"]).timestamp()


@pytest.mark.parametrize("kind", ["ipCamera", "streamSource", "playlist"])
def test_stuck_source_gets_a_keepalive_every_period_on_282(make_sim, client, kind):
    sim = make_sim("2.8.2", heartbeat_seconds=1.0)
    sim.add_source(APP, "cam", type=kind)
    assert sim.stick_source(APP, "cam")
    sim.clock.advance(60.5)
    record = client(sim).get("/cam").json()
    assert (record["type"], record["status"], record["speed"]) == (kind, "broadcasting", 0.01)
    assert sim.clock.now() * 1000 - record["updateTime"] == 500


@pytest.mark.parametrize("kind", ["ipCamera", "streamSource"])
def test_stuck_source_goes_stale_then_ams_restarts_it_on_3(make_sim, client, kind):
    sim = make_sim("3.0.3", heartbeat_seconds=1.0)
    sim.clock.advance(0.5)  # the fetcher's writes and AMS's check timer are out of phase
    sim.add_source(APP, "src", type=kind)
    sim.clock.advance(3.2)
    assert sim.stick_source(APP, "src")
    frozen = sim.broadcast(APP, "src")["updateTime"]
    sim.clock.advance(1.9)  # 2.1 s after the last write: the status has flipped, the next check is at t+6
    c = client(sim)
    assert (c.get("/src").json()["status"], c.get("/src").json()["updateTime"]) == ("terminated_unexpectedly", frozen)
    sim.clock.advance(0.5)  # the check at t+6 restarts the fetcher
    assert c.get("/src").json()["status"] == "broadcasting"
    sim.clock.advance(2.0)
    assert sim.clock.now() * 1000 - c.get("/src").json()["updateTime"] < 1000


def test_stuck_playlist_stays_stale_on_3(make_sim):
    sim = make_sim("3.0.3", heartbeat_seconds=1.0)
    sim.add_source(APP, "pl", type="playlist")
    assert sim.stick_source(APP, "pl")
    sim.clock.advance(30)
    assert sim.broadcast(APP, "pl")["status"] == "terminated_unexpectedly"


def test_stop_ends_a_stuck_source_and_its_retry_on_3(make_sim, client):
    sim = make_sim("3.0.3", heartbeat_seconds=1.0)
    sim.add_source(APP, "cam")
    sim.stick_source(APP, "cam")
    sim.clock.advance(2.5)
    c = client(sim)
    assert c.post("/cam/stop").json()["success"] is True
    sim.clock.advance(30)
    assert c.get("/cam").json()["status"] == "finished"


def test_sources_are_not_zombi_and_reject_unknown_types(make_sim):
    sim = make_sim("3.0.3")
    sim.add_source(APP, "cam", name="Gate")
    record = sim.broadcast(APP, "cam")
    assert (record["zombi"], record["name"], record["status"]) == (False, "Gate", "broadcasting")
    with pytest.raises(ValueError, match="unknown source type"):
        sim.add_source(APP, "x", type="liveStream")
    assert sim.stick_source(APP, "nope") is False


def test_blink_within_the_grace_keeps_the_record_and_resumes(make_sim, version):
    sim = make_sim(version, heartbeat_seconds=1.0)
    room_with(sim, "a")
    started = sim.broadcast(APP, "a")["startTime"]
    assert sim.blink(APP, "a", 8.0)
    sim.clock.advance(7.5)
    assert sim.clock.now() * 1000 - sim.broadcast(APP, "a")["updateTime"] == 7500  # silent while away
    sim.clock.advance(3.0)
    record = sim.broadcast(APP, "a")
    assert record["startTime"] == started and record["status"] == "broadcasting"
    assert sim.clock.now() * 1000 - record["updateTime"] < 1000
    assert "a" in sim.room_members(APP, "room1")


def test_blink_beyond_the_grace_leaves_a_ghost(make_sim, version):
    sim = make_sim(version, heartbeat_seconds=1.0, reconnect_grace_seconds=2.0)
    room_with(sim, "a")
    assert sim.blink(APP, "a", 2.5)
    sim.clock.advance(30)
    assert sim.clock.now() * 1000 - sim.broadcast(APP, "a")["updateTime"] >= 30000
    assert sim.lifecycle(APP, "a").dropped_at is not None


def test_resume_only_within_the_grace_window(make_sim):
    sim = make_sim("3.0.3", reconnect_grace_seconds=10.0)
    room_with(sim, "a", "b")
    sim.drop(APP, "a"), sim.drop(APP, "b")
    sim.clock.advance(10.0)
    assert sim.resume(APP, "a") is True
    sim.clock.advance(0.001)
    assert sim.resume(APP, "b") is False


def test_blink_over_the_control_api(make_sim, client):
    sim = make_sim("2.8.2", heartbeat_seconds=1.0, reconnect_grace_seconds=2.0)
    room_with(sim, "a")
    control = client(sim, base=sim.url)
    assert control.post("/_sim/blink", json={"stream_id": "a", "seconds": 1.5}).json() == {"ok": True}
    assert control.get("/_sim/state").json()["reconnect_grace_seconds"] == 2.0
    sim.clock.advance(2.0)
    assert sim.clock.now() * 1000 - sim.broadcast(APP, "a")["updateTime"] < 1000


@pytest.mark.parametrize("offset", [30.0, -30.0])
def test_proxy_dates_replies_with_its_own_clock(make_sim, client, version, offset):
    sim = make_sim(version, heartbeat_seconds=1.0, proxy_clock_offset_seconds=offset)
    sim.publish(APP, "a")
    sim.clock.advance(4.0)
    r = client(sim).get("/a")
    assert date_of(r) == sim.clock.now() + offset
    assert r.json()["updateTime"] == (sim.clock.now()) * 1000  # still the AMS node's clock
    assert r.json()["status"] == "broadcasting"


def test_proxy_is_set_and_removed_over_the_control_api(make_sim, client):
    sim = make_sim("3.0.3")
    control = client(sim, base=sim.url)
    assert control.post("/_sim/proxy", json={"clock_offset_seconds": -30}).json() == {"clock_offset_seconds": -30.0}
    assert date_of(client(sim).get("/count")) == sim.clock.now() - 30
    control.post("/_sim/proxy", json={"clock_offset_seconds": None})
    assert date_of(client(sim).get("/count")) == sim.clock.now()


def test_sources_and_stick_over_the_control_api(make_sim, client):
    sim = make_sim("2.8.2")
    control = client(sim, base=sim.url)
    assert control.post("/_sim/sources", json={"stream_id": "cam", "type": "streamSource"}).json() == {"ok": True}
    assert control.post("/_sim/stick", json={"stream_id": "cam"}).json() == {"ok": True}
    assert sim.broadcast(APP, "cam")["speed"] == 0.01
    assert control.post("/_sim/sources", json={"stream_id": "cam"}).status_code == 400
