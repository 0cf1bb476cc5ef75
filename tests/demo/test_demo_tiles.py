"""The demo's tile lines: the page kit's reports, the scenario's events as its commands, the kit run under node."""
import io
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from demo.summary import format_summary, summarize
from demo.tiles import SCRIPT, Report, Tiles, command_for, parse_report, report_line
from demo.timeline import Timeline, format_event

NODE = shutil.which("node") or shutil.which("nodejs")
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Lifecycle:
    last_heartbeat_at: float
    unlisted_at: float
    deleted_at: float
    rejoinable_at: float


def test_kit_reports_parse_and_anything_else_is_ignored():
    assert parse_report("ghost carol 5012") == Report("ghost", "carol", 5.012)
    assert parse_report("back erin 7300\n") == Report("back", "erin", 7.3)
    assert parse_report("kept erin 812") == Report("kept", "erin", 0.812)
    for other in ("ready 5000 500", "ghost carol", "ghost carol soon", "(node:1) Warning: x y", ""):
        assert parse_report(other) is None


def test_reports_read_as_hide_show_and_keep_tile_lines():
    assert report_line(Report("ghost", "carol", 5.04), 5.0) == (
        "tile_hidden", "carol", "tile hidden on the other participants' screens: no audio packet for 5.0 s")
    assert report_line(Report("back", "carol", 41.26), 5.0) == (
        "tile_shown", "carol", "tile shown again: its audio is back after 41.3 s")
    kind, stream, detail = report_line(Report("kept", "erin", 0.81), 5.0)
    assert (kind, stream) == ("tile_kept", "erin") and "0.8 s" in detail and "5 s" in detail
    ticks = iter([0.0, 12.0])
    out = io.StringIO()
    Timeline(out=out, clock=lambda: next(ticks)).add(kind, stream, detail)
    assert out.getvalue().startswith("  +  12.0s  KEEP TILE  erin ")


def test_scenario_events_become_commands_and_a_flap_toggles():
    dropped: set[str] = set()
    steps = [("room", "room1", "created"), ("join", "alice", "Alice joined room1"),
             ("join", "zed", "join refused: streamIdInUse"), ("leave", "bob", "left cleanly"),
             ("drop", "carol", "network dropped"), ("flap", "erin", "network dropped"),
             ("flap", "erin", "network back within session recovery"),
             ("rejoin", "carol", "republish refused: streamIdInUse (the ghost still reads as broadcasting)"),
             ("state", "carol", "status=broadcasting"), ("rejoined", "carol", ""), ("join", None, "")]
    commands = [command_for(kind, stream, detail, dropped) for kind, stream, detail in steps]
    assert commands == [None, "join alice", None, "leave bob", "drop carol", "drop erin", "resume erin",
                        None, None, "join carol", None]
    assert dropped == set()


def test_summary_puts_the_tile_beside_the_ghost_lifetime():
    summary = summarize(["carol", "dave"], {"carol": Lifecycle(9, 40, 40, 40), "dave": Lifecycle(9, 41, 41, 41)},
                        [], tiles_hidden={"carol": 5.04})
    lines = format_summary(summary)
    assert lines[1] == "  carol        removed 31.0 s after its last heartbeat, rejoin possible after 31.0 s;" \
                       " tile hidden after 5.0 s"
    assert lines[2].endswith("rejoin possible after 32.0 s")


def test_without_node_one_note_and_nothing_else(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    out = io.StringIO()
    timeline = Timeline(out=out)
    with Tiles.start(timeline, "room1") as tiles:
        tiles.event("join", "alice", "")
        tiles.event("drop", "alice", "")
    assert [e.kind for e in timeline.events] == ["note"]
    assert "apt-get install nodejs" in format_event(timeline.events[0])
    assert tiles.hidden == {}


needs_node = pytest.mark.skipif(NODE is None, reason="node is not installed (apt-get install nodejs)")


@needs_node
def test_the_kit_hides_a_dropped_tile_shows_a_resumed_one_and_keeps_a_steady_one():
    script = "\n".join([
        "join steady", "join dropper", "join flapper", "join returner", "sleep 0.3",
        "drop dropper", "drop flapper", "drop returner", "sleep 0.1", "resume flapper", "sleep 0.7",
        "resume returner", "sleep 0.4", "quit"])
    lines = _run_script(script, silence_ms=300, poll_ms=25)
    reports = [parse_report(line) for line in lines]
    assert lines[0] == "ready 300 25"
    by = {(r.kind, r.stream): r for r in reports if r is not None}
    assert set(by) == {("ghost", "dropper"), ("ghost", "returner"), ("back", "returner"), ("kept", "flapper")}
    assert 0.3 < by[("ghost", "dropper")].silent_s < 0.5
    assert by[("back", "returner")].silent_s > 0.6
    assert by[("kept", "flapper")].silent_s < 0.3
    kinds = [(r.kind, r.stream) for r in reports if r is not None]
    assert kinds.index(("ghost", "returner")) < kinds.index(("back", "returner"))


@needs_node
def test_a_republish_after_the_ghost_is_a_new_track_and_shows_the_tile_again():
    lines = _run_script("join carol\nsleep 0.2\ndrop carol\nsleep 0.5\njoin carol\nsleep 0.3\nquit",
                        silence_ms=250, poll_ms=25)
    assert [line.split()[0] for line in lines] == ["ready", "ghost", "back"]


@needs_node
def test_tiles_follow_the_timeline_and_stop_within_bounds():
    out = io.StringIO()
    timeline = Timeline(out=out)
    with Tiles.start(timeline, "room1", ("--silence-ms", "200", "--poll-ms", "20")) as tiles:
        tiles.event("join", "alice", "Alice joined room1")
        tiles.event("join", "carol", "Carol joined room1")
        time.sleep(0.2)
        tiles.event("drop", "carol", "network dropped")
        _wait(lambda: "carol" in tiles.hidden, 3.0)
        process = tiles.process
    assert process is not None and process.poll() is not None and tiles.process is None
    assert [(e.kind, e.stream) for e in timeline.events] == [("tile_hidden", "carol")]
    assert 0.2 < tiles.hidden["carol"] < 0.4
    assert "HIDE TILE  carol" in out.getvalue()


def _run_script(script: str, silence_ms: int, poll_ms: int) -> list[str]:
    """Feed the script line by line (`sleep s` waits here), return its output lines; bounded."""
    process = subprocess.Popen([NODE, str(SCRIPT), "--silence-ms", str(silence_ms), "--poll-ms", str(poll_ms)],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               cwd=ROOT)
    try:
        for line in script.splitlines():
            if line.startswith("sleep "):
                time.sleep(float(line.split()[1]))
            else:
                process.stdin.write(line + "\n")
                process.stdin.flush()
        out, err = process.communicate(timeout=5)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(5)
    assert process.returncode == 0, err
    return out.splitlines()


def _wait(condition, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)
