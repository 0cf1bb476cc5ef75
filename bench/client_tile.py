"""Client tile: how soon a dropped participant's frozen tile leaves the other participants' screens.

A real headless Chromium runs a conference page with the real WebRTCAdaptor (2.16.2) and the client
kit (client/index.js, default options: silenceMs 5000, pollMs 500); it plays one room from a fake AMS
on loopback (tests/client/room_server.py) whose participants are aiortc audio tracks: one talking,
one muted (silence packets), one muted with Opus DTX (a packet every 400 ms), and droppers. Each
dropper's packets stop without anything being closed or signalled (its network is gone), and come
back a few seconds after the kit hid its tile. Measured on the machine's wall clock (the page and the
fake AMS share it): drop -> onGhost, and packets back -> onBack; false reports for the others.
Not a test: `python bench/client_tile.py` (about 2 minutes); writes the "Client tile" section of
bench/RESULTS.md.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "client"))

import room_server  # noqa: E402  (tests/client: the fake AMS and the browser of the browser test)
from results import machine, write_section  # noqa: E402  (bench/ is the script's folder)

STEADY = {"talker": "talking", "muted": "muted", "dtx": "dtx"}
TARGET_GHOST_P95_S = 6.0
TARGET_BACK_S = 1.0


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, -(-len(ordered) * q // 100) - 1))] if ordered else float("nan")


def run(droppers: int, rounds: int, stagger: float) -> dict:
    names = [f"dropper{i}" for i in range(droppers)]
    server = room_server.FakeAms("room1", {**STEADY, **{n: "talking" for n in names}}).start()
    ghost_ms, back_ms, missed = [], [], []
    try:
        with room_server.Browser() as browser:
            browser.page.goto(server.url)
            browser.wait_for(lambda ev: sum(e["name"] == "track" for e in ev) >= len(STEADY) + droppers, 30)
            time.sleep(3)
            for _ in range(rounds):
                # Drops a stagger apart, so the kit's polls meet them at every phase.
                dropped = {}
                for name in names:
                    dropped[name] = (server.drop(name), len(browser.events()))
                    time.sleep(stagger)
                for name, (at, seen) in dropped.items():
                    events = browser.wait_for(lambda ev: any(
                        e["name"] == "ghost" and e["participantId"] == name for e in ev[seen:]), 10)
                    ghost = [e for e in events[seen:] if e["name"] == "ghost" and e["participantId"] == name]
                    if ghost:
                        ghost_ms.append(ghost[0]["at"] - at)
                    else:
                        missed.append(f"ghost {name}")
                time.sleep(1)
                restored = {}
                for name in names:
                    restored[name] = (server.restore(name), len(browser.events()))
                    time.sleep(stagger)
                for name, (at, seen) in restored.items():
                    events = browser.wait_for(lambda ev: any(
                        e["name"] == "back" and e["participantId"] == name for e in ev[seen:]), 5)
                    back = [e for e in events[seen:] if e["name"] == "back" and e["participantId"] == name]
                    if back:
                        back_ms.append(back[0]["at"] - at)
                    else:
                        missed.append(f"back {name}")
                time.sleep(2)
            events = browser.events()
    finally:
        server.stop()
    false_ghosts = [e for e in events if e["name"] == "ghost" and e["participantId"] in STEADY]
    return {"ghost": [v / 1000 for v in ghost_ms], "back": [v / 1000 for v in back_ms], "missed": missed,
            "false": false_ghosts, "errors": [e for e in events if e["name"] in ("error", "selfLost")]}


def row(label: str, values: list[float], target: str) -> str:
    if not values:
        return f"| {label} | 0 |  |  |  |  | {target} |"
    return (f"| {label} | {len(values)} | {min(values):.2f} | {statistics.median(values):.2f} | "
            f"{pct(values, 95):.2f} | {max(values):.2f} | {target} |")


def section(result: dict, command: str) -> str:
    ghost_ok = result["ghost"] and pct(result["ghost"], 95) <= TARGET_GHOST_P95_S
    back_ok = result["back"] and max(result["back"]) <= TARGET_BACK_S
    lines = [
        "## Client tile", "",
        f"`{command}`, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, on {machine()}.", "",
        "The client kit (`client/`, default options: `silenceMs` 5000, `pollMs` 500) in a real headless",
        "Chromium, on a conference page with the real WebRTCAdaptor 2.16.2 playing one room from a fake AMS",
        "on loopback (`tests/client/room_server.py`: AMS's WebSocket messages, aiortc audio tracks). Steady",
        "participants: one talking, one muted (silence packets), one muted with Opus DTX (a packet every",
        "400 ms). Each dropper's packets stop with nothing closed or signalled, the drops 0.83 s apart so",
        "that the kit's polls meet them at every phase; a second after every tile is hidden the packets",
        "come back. Times on the wall clock the page and the fake AMS share.", "",
        "| seconds | n | min | median | p95 | max | target |",
        "|---|---|---|---|---|---|---|",
        row("drop -> tile hidden (onGhost)", result["ghost"],
            f"p95 <= {TARGET_GHOST_P95_S:g} s: {'met' if ghost_ok else 'not met'}"),
        row("packets back -> tile shown (onBack)", result["back"],
            f"<= {TARGET_BACK_S:g} s: {'met' if back_ok else 'not met'}"),
        "",
        f"- talking or muted participants reported gone: {len(result['false'])}; drops or returns not "
        f"reported: {len(result['missed'])}; page errors or own connection lost: {len(result['errors'])}.",
        "",
        "A tile is hidden at the first stats poll (every 500 ms) that finds no packet for more than 5 s,",
        "counted from the last packet's own receive time (`lastPacketReceivedTimestamp`, which Chrome",
        "gives): the drop -> hidden time is 5 s, less the up to 20 ms between the last packet and the drop,",
        "plus up to one poll.",
        "It comes back at the first poll that finds the packet counter moving again. The server still",
        "removes the ghost's record on its own schedule (the *Ghost lifetime* section): hiding a tile",
        "changes nothing on the server.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run, print and record; fail when a drop or a return went unreported or a steady peer was hidden."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--droppers", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=4, help="drops per dropper")
    parser.add_argument("--stagger", type=float, default=0.83,
                        help="seconds between two drops (not a multiple of the 0.5 s poll)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = parser.parse_args(argv)
    reason = room_server.missing()
    if reason:
        print(reason, file=sys.stderr)
        return 2
    result = run(args.droppers, args.rounds, args.stagger)
    command = "python bench/client_tile.py" + (" " + " ".join(argv if argv is not None else sys.argv[1:])).rstrip()
    text = section(result, command.replace(" --no-write", ""))
    print(text)
    if not args.no_write:
        write_section(text)
    return 0 if not result["missed"] and not result["false"] else 1


if __name__ == "__main__":
    sys.exit(main())
