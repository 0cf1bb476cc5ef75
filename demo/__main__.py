"""`python -m demo`: a conference on the simulated AMS heals itself through real Prometheus and Alertmanager."""
from __future__ import annotations

import argparse
import os
import signal
import sys
import time

from demo.summary import Summary, format_summary, summarize
from demo.tiles import Tiles
from demo.timeline import Timeline
from demo.watch import Watcher
from stack.conference import is_removed
from simulator.scenario import run_conference
from stack.process import StackError
from stack.runner import Stack, StackOptions
from stack.timing import ACCELERATED
from stack.writes import wrongly_touched

APP = "WebRTCAppEE"
ROOM = "room1"
REMOVAL_TIMEOUT = 75.0   # seconds for every ghost to be removed; the demo must end within two minutes
RESOLVE_TIMEOUT = 40.0   # the ghost alert's keep_firing_for (20 s), an evaluation and Alertmanager's resolve
KINDS = {"room": "note", "rejoin": "note", "state": "state"}


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Version and heartbeat of the simulated AMS."""
    parser = argparse.ArgumentParser(prog="python -m demo", description=__doc__)
    parser.add_argument("--ams-version", default="2.8.2", help="simulated AMS version (2.8.2 or 3.0.0)")
    parser.add_argument("--heartbeat-seconds", type=float, default=ACCELERATED.heartbeat_seconds,
                        help="simulated heartbeat period (accelerated: 1 s)")
    return parser.parse_args(argv)


PAGES = {"prometheus": "/alerts", "alertmanager": "/#/alerts", "exporter": "/metrics", "remediator": "/metrics"}


def print_urls(stack: Stack) -> None:
    """Where each component answers."""
    for name, url in stack.urls().items():
        print(f"  {name:<16} {url}{PAGES.get(name, '')}")


def scenario_listener(timeline: Timeline, watcher: Watcher, rejoin_times: dict[str, float],
                      tiles: Tiles | None = None):
    """Turns the simulator scenario's events into timeline lines; follows every dropped participant.

    Participant events also go to the page kit (tiles), which tells when the other screens hide a tile."""
    def on_event(event) -> None:
        """One scenario event."""
        stream = event.stream_id or "-"
        if event.kind == "drop":
            watcher.track(stream)
        if event.kind == "rejoin":
            rejoin_times[stream] = event.at
        timeline.add(KINDS.get(event.kind, event.kind), stream, event.detail)
        if tiles is not None:
            tiles.event(event.kind, event.stream_id, event.detail)
    return on_event


def removed(stack: Stack, stream: str) -> bool:
    """The eviction done (out of the room listing, the record gone or finished) and the id free again."""
    return is_removed(stack.sim, APP, stream) and stack.sim.lifecycle(APP, stream).rejoinable_at is not None


def rejoin(stack: Stack, timeline: Timeline, stream: str, tiles: Tiles | None = None) -> float | None:
    """The participant comes back with the same stream id; returns when (simulator time), None if refused."""
    at = stack.sim.clock.now()
    ok = stack.sim.reconnect(APP, stream)
    timeline.add("rejoined" if ok else "note", stream,
                 "publishes again with the same id" if ok else "rejoin refused (streamIdInUse)")
    if ok and tiles is not None:
        tiles.event("rejoined", stream)
    return at if ok else None


def run_story(stack: Stack, timeline: Timeline) -> Summary:
    """The simulator's conference scenario, then the ghosts' removal and rejoin; returns the summary.

    The page kit (client/) runs beside it under node, as the other participants' screens."""
    with Tiles.start(timeline, ROOM) as tiles:
        return _story(stack, timeline, tiles)


def _story(stack: Stack, timeline: Timeline, tiles: Tiles) -> Summary:
    """run_story with the page kit running."""
    watcher, tried = Watcher(stack, timeline, APP), {}
    result = run_conference(stack.sim, APP, room=ROOM, on_event=scenario_listener(timeline, watcher, tried, tiles),
                            sleep=watcher.sleep)
    # On 3.x a participant may republish before the eviction: it is healthy from then on.
    back = {s: tried[s] for s in result.rejoined if s in tried}
    pending = [g for g in watcher.ghosts if g not in back]
    if not watcher.wait(lambda: all(removed(stack, g) for g in pending), REMOVAL_TIMEOUT):
        timeline.add("note", "-", f"not every ghost was removed within {REMOVAL_TIMEOUT:.0f} s")
    for ghost in pending:
        if removed(stack, ghost) and (at := rejoin(stack, timeline, ghost, tiles)) is not None:
            back[ghost] = at
    # Let the resolved alerts show: a ghost alert keeps firing 20 s past its removal (keep_firing_for).
    watcher.wait(lambda: not watcher.alerts_open(), RESOLVE_TIMEOUT)
    tiles.stop()
    lifecycles = {g: stack.sim.lifecycle(APP, g) for g in watcher.ghosts}
    wrong = wrongly_touched(stack.sim.writes, set(watcher.ghosts), back)
    came_back = [g for g in watcher.ghosts if g in result.rejoined and lifecycles[g].unlisted_at is None]
    return summarize(watcher.ghosts, lifecycles, wrong, came_back=came_back, tiles_hidden=tiles.hidden)


def wait_for_interrupt(stack: Stack) -> None:
    """KEEP=1: leave everything up until Ctrl-C."""
    print("\nKEEP=1: the stack stays up until Ctrl-C:")
    print_urls(stack)
    try:
        while True:
            stack.check_running()
            time.sleep(1.0)
    except KeyboardInterrupt:
        print("\nstopping")


def main(argv: list[str] | None = None) -> int:
    """Run the demo; exit status 0 when every ghost was removed and nothing else was touched."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    options = StackOptions(ams_version=args.ams_version, heartbeat_seconds=args.heartbeat_seconds)
    print(f"Starting the stack: simulated AMS {args.ams_version} (heartbeat {args.heartbeat_seconds:g} s), "
          "exporter, Prometheus, Alertmanager, remediator (enforcing)")
    started = time.monotonic()
    try:
        with Stack(options) as stack:
            print_urls(stack)
            print(f"Ready in {time.monotonic() - started:.1f} s. Timeline (alerts as Alertmanager holds them,"
                  " decisions from the remediator's audit log, removals as AMS saw them):")
            summary = run_story(stack, Timeline())
            print("\n" + "\n".join(format_summary(summary)))
            print(f"Demo finished in {time.monotonic() - started:.0f} s.")
            if os.environ.get("KEEP") == "1":
                wait_for_interrupt(stack)
    except StackError as error:
        print(f"demo failed: {error}", file=sys.stderr)
        return 1
    if not summary.ok:
        print("demo failed: a ghost stayed or a stream was wrongly touched", file=sys.stderr)
    return 0 if summary.ok else 1


if __name__ == "__main__":
    # A plain `kill` must still stop the child processes: SystemExit unwinds the Stack.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sys.exit(main())
