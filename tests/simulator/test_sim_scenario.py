"""The conference scenario as a function and the antmedia-simulator command."""
import os
import signal
import subprocess
import sys
import time

import httpx

from simulator.scenario import run_conference

APP = "WebRTCAppEE"


def test_conference_on_282_leaves_two_ghosts_that_cannot_rejoin(make_sim):
    sim = make_sim("2.8.2")
    events = []
    result = run_conference(sim, on_event=events.append)
    assert result.ghosts == ("carol", "dave") and result.rejoined == ()
    assert [e.kind for e in events][:6] == ["room", "join", "join", "join", "join", "join"]
    assert sim.broadcast(APP, "bob") is None
    members = sim.room_members(APP, "room1")
    assert members == ["alice", "carol", "dave", "erin"]
    now_ms = sim.clock.now() * 1000
    for ghost in result.ghosts:
        record = sim.broadcast(APP, ghost)
        assert record["status"] == "broadcasting" and now_ms - record["updateTime"] > 3 * sim.heartbeat_seconds * 1000
    for alive in ("alice", "erin"):
        assert now_ms - sim.broadcast(APP, alive)["updateTime"] < sim.heartbeat_seconds * 1000
    assert any("streamIdInUse" in e.detail for e in events)


def test_conference_on_3_lets_a_timed_out_ghost_rejoin(make_sim):
    sim = make_sim("3.0.0")
    result = run_conference(sim)
    assert result.rejoined == ("carol",) and result.ghosts == ("dave",)
    assert sim.broadcast(APP, "dave")["status"] == "terminated_unexpectedly"
    assert sim.broadcast(APP, "carol")["status"] == "broadcasting"


def test_flapping_participant_never_looks_stale_for_long(make_sim):
    sim = make_sim("2.8.2", heartbeat_seconds=1.0)
    result = run_conference(sim, room="r2")
    assert result.flapped == ("erin",)
    assert sim.lifecycle(APP, "erin").dropped_at is not None
    record = sim.broadcast(APP, "erin")
    assert sim.clock.now() * 1000 - record["updateTime"] < 1000


def test_event_lines_read_as_a_timeline(make_sim):
    sim = make_sim("2.8.2", heartbeat_seconds=2.0)
    result = run_conference(sim)
    lines = [e.line() for e in result.events]
    assert lines[0].startswith("[t+   0.0s] room") and any("left cleanly" in x for x in lines)
    assert result.events[-1].elapsed > 0


def test_command_serves_the_conference_until_terminated():
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "simulator", "--port", "0", "--scenario", "conference",
                             "--heartbeat-seconds", "0.05", "--ams-version", "3.0.0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        lines, deadline = [], time.monotonic() + 15
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            lines.append(line)
            if line.startswith("explore:") or not line:
                break
        url = lines[-1].split()[2]
        page = httpx.get(url, timeout=5).json()
        assert {"alice", "dave", "room1"} <= {b["streamId"] for b in page}
        assert any("flap" in x for x in lines)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0


def test_command_rejects_a_bad_version():
    proc = subprocess.run([sys.executable, "-m", "simulator", "--ams-version", "banana", "--port", "0"],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and "not an AMS version" in proc.stderr
