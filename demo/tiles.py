"""What the other participants' screens show: the page kit (client/) run under node by demo/tiles.mjs.

The scenario's participant events become the script's commands (join, drop, resume, leave); the kit's
reports (ghost, back, kept) become timeline lines. Without node the demo goes on without them.
"""
from __future__ import annotations

import shutil
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path

from demo.timeline import Timeline

SCRIPT = Path(__file__).with_name("tiles.mjs")
READY_TIMEOUT = 10.0   # node starts in well under a second
STOP_TIMEOUT = 3.0
NO_NODE = "no tile timeline: it runs the page kit (client/) under node (apt-get install nodejs)"


@dataclass(frozen=True)
class Report:
    """One line of the kit's reports: kind is ghost, back or kept; silent_s how long it was not heard."""

    kind: str
    stream: str
    silent_s: float


def parse_report(line: str) -> Report | None:
    """`ghost carol 5012` -> Report("ghost", "carol", 5.012); None for anything else."""
    parts = line.split()
    if len(parts) != 3 or parts[0] not in ("ghost", "back", "kept"):
        return None
    try:
        silent_ms = float(parts[2])
    except ValueError:
        return None
    return Report(parts[0], parts[1], silent_ms / 1000)


def report_line(report: Report, silence_s: float) -> tuple[str, str, str]:
    """(kind, stream, detail) of the timeline line for one report."""
    silent = f"{report.silent_s:.1f} s"
    if report.kind == "ghost":
        return ("tile_hidden", report.stream,
                f"tile hidden on the other participants' screens: no audio packet for {silent}")
    if report.kind == "back":
        return "tile_shown", report.stream, f"tile shown again: its audio is back after {silent}"
    return ("tile_kept", report.stream,
            f"tile never hidden: audio back after {silent}, within the {silence_s:g} s silence")


def command_for(kind: str, stream: str | None, detail: str, dropped: set[str]) -> str | None:
    """The script command for one scenario event (None: nothing for the screens); keeps `dropped` current."""
    if not stream or "refused" in detail:
        return None
    if kind in ("join", "rejoin", "rejoined"):
        dropped.discard(stream)
        return f"join {stream}"
    if kind == "leave":
        dropped.discard(stream)
        return f"leave {stream}"
    if kind == "drop" or (kind == "flap" and stream not in dropped):
        dropped.add(stream)
        return f"drop {stream}"
    if kind == "flap":
        dropped.discard(stream)
        return f"resume {stream}"
    return None


@dataclass
class Tiles:
    """The running script; without node (process None) every call does nothing."""

    timeline: Timeline
    process: subprocess.Popen | None = None
    silence_s: float = 5.0
    hidden: dict[str, float] = field(default_factory=dict)   # stream -> silence when first hidden
    _dropped: set[str] = field(default_factory=set)
    _ready: threading.Event = field(default_factory=threading.Event)
    _output: list[str] = field(default_factory=list)
    _reader: threading.Thread | None = None

    @classmethod
    def start(cls, timeline: Timeline, room: str, extra_args: tuple[str, ...] = ()) -> "Tiles":
        """Start the script; one NOTE line and an inert Tiles if node is missing or the script fails."""
        node = shutil.which("node") or shutil.which("nodejs")
        if node is None:
            timeline.add("note", "-", NO_NODE)
            return cls(timeline)
        process = subprocess.Popen([node, str(SCRIPT), "--room", room, *extra_args], stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
        tiles = cls(timeline, process)
        tiles._reader = threading.Thread(target=tiles._read, name="tiles", daemon=True)
        tiles._reader.start()
        if not tiles._ready.wait(READY_TIMEOUT):
            tiles.stop()
            said = " / ".join(tiles._output[-3:])
            timeline.add("note", "-", "no tile timeline: the page kit did not start under node"
                         + (f" ({said})" if said else ""))
            tiles.process = None
        return tiles

    def _read(self) -> None:
        """The script's lines, as they come: each report a timeline line at that moment."""
        assert self.process is not None and self.process.stdout is not None
        for line in self.process.stdout:
            line = line.strip()
            if line.startswith("ready "):
                try:
                    self.silence_s = float(line.split()[1]) / 1000
                except (IndexError, ValueError):
                    pass
                self._ready.set()
                continue
            report = parse_report(line)
            if report is None:
                self._output.append(line)
                continue
            if report.kind == "ghost":
                self.hidden.setdefault(report.stream, report.silent_s)
            self.timeline.add(*report_line(report, self.silence_s))

    def event(self, kind: str, stream: str | None, detail: str = "") -> None:
        """Pass one participant event on to the screens."""
        command = command_for(kind, stream, detail, self._dropped)
        if command is not None:
            self._send(command)

    def _send(self, command: str) -> None:
        """One line to the script; a script gone away only ends the tile lines."""
        if self.process is None or self.process.stdin is None:
            return
        try:
            self.process.stdin.write(command + "\n")
            self.process.stdin.flush()
        except OSError:
            self.timeline.add("note", "-", "the page kit stopped: no more tile lines")
            self.process = None

    def stop(self) -> None:
        """Ask the script to end, then kill it if it has not within STOP_TIMEOUT."""
        process, self.process = self.process, None
        if process is None:
            return
        try:
            if process.stdin is not None:
                process.stdin.write("quit\n")
                process.stdin.close()
        except OSError:
            pass
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(STOP_TIMEOUT)
        if self._reader is not None:
            self._reader.join(STOP_TIMEOUT)

    def __enter__(self) -> "Tiles":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
