"""End to end where clocks disagree: a 3-node cluster behind round-robin, and a proxy that dates answers itself.

Real Prometheus and Alertmanager, both AMS versions, accelerated timing. Every ghost must go,
and no write may reach a stream that was not a ghost: staleness is judged on one clock only.
"""
from __future__ import annotations

import pytest

from stack import api
from stack.conference import start_populated, wait_members_seen, wait_removed
from stack.runner import StackOptions
from stack.waiting import hold_for, wait_for
from stack.writes import describe_write, wrongly_touched

pytestmark = pytest.mark.e2e
APP = "WebRTCAppEE"
REMOVAL_TIMEOUT = 60.0  # seconds; a ghost goes about 10 s after its drop at a 1 s heartbeat
NODES = [{"address": "10.0.0.1", "clock_offset_seconds": 0.0},
         {"address": "10.0.0.2", "clock_offset_seconds": 30.0},
         {"address": "10.0.0.3", "clock_offset_seconds": -45.0}]
WORLDS = {
    "cluster-0+30-45": {"nodes": NODES},
    "proxy-ahead-30s": {"proxy_clock_offset_seconds": 30.0},
    "proxy-behind-30s": {"proxy_clock_offset_seconds": -30.0},
}
CASES = [(version, world) for version in ("2.8.2", "3.0.0") for world in WORLDS
         if world.startswith("cluster") or version == "3.0.0"]


@pytest.fixture(scope="module", params=CASES, ids=[f"ams-{v}-{w}" for v, w in CASES])
def stack(request):
    version, world = request.param
    options = StackOptions(ams_version=version, simulator=dict(WORLDS[world]))
    running = start_populated(options, APP, 30, 3)
    yield running
    running.stop()


def test_ghosts_on_every_node_go_and_healthy_participants_get_no_write(stack):
    nodes = [n["address"] for n in stack.sim.nodes] or [None]
    stack.sim.create_room(APP, "clocks")
    ghosts, healthy = [], []
    for i, node in enumerate(nodes * 2):
        stream = f"p{i}"
        assert stack.sim.join(APP, "clocks", stream, node=node)
        (ghosts if i < len(nodes) else healthy).append(stream)
    wait_members_seen(stack.prometheus_url, "clocks", len(ghosts) + len(healthy))
    for stream in ghosts:
        assert stack.sim.drop(APP, stream)
    wait_removed(stack.sim, APP, ghosts, REMOVAL_TIMEOUT)
    members = set(stack.sim.room_members(APP, "clocks"))
    assert set(healthy) <= members and not set(ghosts) & members
    back: dict[str, float] = {}
    assert [describe_write(w) for w in wrongly_touched(stack.sim.writes, set(ghosts), back)] == []


@pytest.fixture(scope="module")
def stepped():
    """A 3.x stack of its own: the storm a clock step causes would hold other tests' ghosts."""
    running = start_populated(StackOptions(ams_version="3.0.0"), APP, 30, 3)
    yield running
    running.stop()


def test_a_step_back_of_amss_clock_is_held_as_a_storm_and_nothing_is_written(stepped):
    """AMS writes no heartbeat until its clock passes its last write (MuxAdaptor L1006 @3.0.3).

    Every stream then looks stale at once: that is a storm, not thirty ghosts.
    """
    writes_before = len(stepped.sim.writes)
    stepped.sim.clock.offset_seconds = -60.0
    try:
        wait_for(lambda: api.scalar(stepped.prometheus_url, 'count(ALERTS{alertname="AntMediaGhostStorm",'
                                                          'alertstate="firing"})') == 1,
                 45.0, "no AntMediaGhostStorm while every heartbeat stood still")
        hold_for(lambda: len(stepped.sim.writes) == writes_before, 15.0, "a write reached AMS during the storm")
    finally:
        stepped.sim.clock.offset_seconds = 0.0
