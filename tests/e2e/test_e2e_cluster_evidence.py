"""End to end: nothing healthy touched when a cluster node stalls, loses its database, steps its clock or
disagrees with the others, while real ghosts still go.

A 3-node cluster, each node answering on its own loopback address (what the remediator's node_url
reaches), one balancer in front, AMS's node registry behind a server JWT, background participants on
node A (so that a case's few publishers on B or C are a few, not a storm the blast radius holds), real
Prometheus and Alertmanager, both AMS versions, accelerated timing (1 s heartbeats). Each case uses
rooms and streams of its own and leaves the cluster as it found it.
"""
from __future__ import annotations

import time

import httpx
import pytest

from stack import api
from stack.conference import is_removed, wait_members_seen
from stack.runner import Stack, StackOptions
from stack.waiting import hold_for, wait_for
from stack.writes import describe_write, writes_to

pytestmark = pytest.mark.e2e
APP = "WebRTCAppEE"
SERVER_SECRET = "a-cluster-server-jwt-secret-of-32-bytes"
A, B, C = "127.0.0.21", "127.0.0.22", "127.0.0.23"
RTMP_WINDOW = 12.0  # Red5's rtmp.max_inactivity, scaled like the other AMS constants of accelerated runs
BACKGROUND = 60  # the cases of this module together stay well under the blast radius (25 % of live publishers)


@pytest.fixture(scope="module", params=("2.8.2", "3.0.0"), ids=lambda v: f"ams-{v}")
def cluster(request):
    options = StackOptions(ams_version=request.param,
                           simulator={"nodes": [A, B, C], "server_jwt_secret": SERVER_SECRET,
                                      "rtmp_inactivity_seconds": RTMP_WINDOW},
                           ams={"rtmp_inactivity_seconds": RTMP_WINDOW})
    stack = Stack(options)
    stack.__enter__()
    try:
        stack.sim.create_room(APP, "background")
        for i in range(BACKGROUND):
            assert stack.sim.join(APP, "background", f"bg{i}", node=A)
        wait_members_seen(stack.prometheus_url, "background", BACKGROUND, timeout=30)
        wait_for(lambda: (api.scalar(stack.prometheus_url, "count(antmedia_cluster_node_up == 1)") or 0) == 3,
                 30, "Prometheus does not see 3 live nodes")
        yield stack
    finally:
        stack.stop()


@pytest.fixture
def alive(cluster):
    cluster.check_running()
    yield cluster
    cluster.check_running()


def _threshold(stack) -> float:
    value = api.scalar(stack.prometheus_url, f'max(antmedia_stale_threshold_seconds{{app="{APP}"}})')
    assert value, "the exporter publishes no stale threshold"
    return value


def _room(stack, room: str, members: dict[str, str]) -> None:
    """A room with the given members (stream -> node), seen by Prometheus."""
    stack.sim.create_room(APP, room)
    for stream, node in members.items():
        assert stack.sim.join(APP, room, stream, node=node)
    wait_members_seen(stack.prometheus_url, room, len(members), timeout=30)


def _no_writes(stack, streams) -> None:
    """Fails with the writes, if any reached these streams."""
    wrong = [describe_write(w) for s in streams for w in writes_to(stack.sim.writes, s)]
    assert not wrong, f"writes reached live publishers: {wrong}"


def _decisions(stack, reason: str) -> float:
    return api.metric_sum(api.scrape(stack.remediator.url), "antmedia_remediator_decisions_total", reason=reason)


def _holds(stack) -> float:
    return api.metric_sum(api.scrape(stack.remediator.url), "antmedia_remediator_hold")


def _gone(stack, stream: str) -> bool:
    """A stream in no room is gone once its record no longer claims to be live."""
    record = stack.sim.broadcast(APP, stream)
    return record is None or record.get("status") not in ("broadcasting", "preparing")


def _writing(stack, stream: str) -> bool:
    session = stack.sim.live_session(APP, stream)
    return bool(session and session["writing"])


def test_a_partitioned_node_keeps_its_live_publishers_while_ghosts_of_other_nodes_go(alive):
    stack = alive
    _room(stack, "partition", {"part-live1": B, "part-live2": B, "part-ghost": A})
    bound = _threshold(stack) + 30.0
    stack.sim.lose_database(B)
    stack.sim.drop(APP, "part-ghost")
    try:
        wait_for(lambda: is_removed(stack.sim, APP, "part-ghost"), bound, "the ghost on a live node was not removed")
        # B's publishers stand still in the database for longer than the threshold and AMS reads B dead:
        # B's host still answers, so they are held for a human.
        wait_for(lambda: _decisions(stack, "node_not_writing") >= 2, 30, "no node_not_writing decisions")
        hold_for(lambda: not writes_to(stack.sim.writes, "part-live1") and not writes_to(stack.sim.writes, "part-live2"),
                 5.0, "a write reached a live publisher of the partitioned node")
        assert stack.sim.live_session(APP, "part-live1") and stack.sim.live_session(APP, "part-live2")
    finally:
        stack.sim.restore_database(B)
    wait_for(lambda: _writing(stack, "part-live1") and _writing(stack, "part-live2"), 20,
             "B's publishers do not write again after the database came back")
    _no_writes(stack, ["part-live1", "part-live2"])
    assert _holds(stack) == 0


def test_a_node_clock_stepped_back_40_s_gets_no_stop_or_write_for_its_publishers(alive):
    stack = alive
    _room(stack, "stepped", {"step-live1": C, "step-live2": C, "step-ghost": A})
    bound = _threshold(stack) + 30.0
    stack.sim.step_node_clock(C, -40.0)
    stack.sim.drop(APP, "step-ghost")
    wait_for(lambda: is_removed(stack.sim, APP, "step-ghost"), bound, "the ghost on a live node was not removed")
    # Their heartbeats stand still for 40 s plus a period: longer than the threshold, so their alerts fire,
    # until AMS writes for them again.
    wait_for(lambda: (_no_writes(stack, ["step-live1", "step-live2"]) or True)
             and _writing(stack, "step-live1") and _writing(stack, "step-live2"), 60,
             "the stepped node's publishers do not write again")
    assert _decisions(stack, "node_clock_stepped") > 0
    _no_writes(stack, ["step-live1", "step-live2"])
    wait_for(lambda: _holds(stack) == 0, 30, "the stepped node stays held after its clock caught up")


def test_a_stalled_live_publisher_whose_requests_land_on_other_nodes_is_not_evicted(alive):
    stack = alive
    _room(stack, "stalled", {"stall-live": B})
    threshold = _threshold(stack)
    stack.sim.lose_database(B)  # its heartbeat writes stall; the balancer sends every request to A and C
    try:
        wait_for(lambda: api.alertmanager_alerts(stack.alertmanager_url, 'alertname="AntMediaGhostStream"',
                                                 'stream_id="stall-live"', active_only=True),
                 threshold + 30.0, "the stalled publisher's ghost alert never fired")
        hold_for(lambda: not writes_to(stack.sim.writes, "stall-live"), 15.0,
                 "a write reached the stalled live publisher")
    finally:
        stack.sim.restore_database(B)
    wait_for(lambda: _writing(stack, "stall-live"), 20, "the stalled publisher does not write again")
    _no_writes(stack, ["stall-live"])
    assert stack.sim.live_session(APP, "stall-live")["node"] == B


def test_nodes_25_s_apart_have_every_nodes_ghosts_removed(alive):
    stack = alive
    _room(stack, "apart", {"apart-ghostA": A, "apart-ghostC": C, "apart-liveC": C})
    stack.sim.set_node_clock(C, -25.0)  # AMS's registry read on A or B calls C dead while C writes
    try:
        time.sleep(2.0)
        stack.sim.drop(APP, "apart-ghostA")
        stack.sim.drop(APP, "apart-ghostC")
        bound = _threshold(stack) + 40.0
        wait_for(lambda: is_removed(stack.sim, APP, "apart-ghostA") and is_removed(stack.sim, APP, "apart-ghostC"),
                 bound, "a ghost was not removed while node clocks are 25 s apart")
        _no_writes(stack, ["apart-liveC"])
    finally:
        stack.sim.set_node_clock(C, 0.0)


def test_an_alert_naming_a_healthy_participant_with_its_current_heartbeat_writes_nothing(alive):
    """A rule gone wrong: Alertmanager receives a ghost alert for a healthy participant, with the heartbeat
    AMS holds right now as its evidence, routes it to the remediator and keeps sending it."""
    stack = alive
    _room(stack, "crafted", {"crafted-live": A})
    record = stack.sim.broadcast(APP, "crafted-live")
    now = time.time()
    alert = {
        "labels": {"alertname": "AntMediaGhostStream", "remediation": "delete_stream", "ams": "main", "app": APP,
                   "stream_id": "crafted-live", "room": "crafted", "origin": "alive", "severity": "warning"},
        "annotations": {"heartbeat_timestamp": f"{record['updateTime'] / 1000:.3f}"},
        "startsAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
        "endsAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 60)),
    }
    httpx.post(f"{stack.alertmanager_url}/api/v2/alerts", json=[alert], timeout=10).raise_for_status()
    wait_for(lambda: _decisions(stack, "not_ghost") > 0, 30, "the remediator never judged the crafted alert")
    hold_for(lambda: not writes_to(stack.sim.writes, "crafted-live"), 10.0, "a write reached a healthy participant")
    assert _holds(stack) == 0
    assert stack.sim.live_session(APP, "crafted-live")["writing"]


def test_a_dropped_rtmp_publisher_inside_red5s_window_holds_nothing_and_pages_no_one(alive):
    stack = alive
    _room(stack, "rtmp-room", {"rtmp-webrtc-ghost": A})
    assert stack.sim.publish(APP, "rtmp-cam", publish_type="RTMP", node=B)
    wait_for(lambda: api.scalar(stack.prometheus_url, 'antmedia_broadcast_last_update_timestamp_seconds'
                                '{stream_id="rtmp-cam"}') is not None, 20, "Prometheus does not see the RTMP stream")
    failed_before = _decisions(stack, "alive_on_stop")
    stack.sim.drop(APP, "rtmp-cam")  # the encoder's network drops; Red5 keeps the connection for its window
    stack.sim.drop(APP, "rtmp-webrtc-ghost")
    bound = _threshold(stack) + 30.0
    wait_for(lambda: is_removed(stack.sim, APP, "rtmp-webrtc-ghost"), bound,
             "a ghost of the app waited behind the RTMP connection")
    wait_for(lambda: _gone(stack, "rtmp-cam"), RTMP_WINDOW + bound, "the RTMP ghost stayed")
    assert _decisions(stack, "alive_on_stop") == failed_before
    assert _holds(stack) == 0
    assert not api.alertmanager_alerts(stack.alertmanager_url, 'alertname="AntMediaRemediationFailing"',
                                       active_only=True)
