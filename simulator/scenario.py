"""The conference scenario: join, clean leave, two network drops, one flap; timings scale with the heartbeat."""
from dataclasses import dataclass, field
from typing import Callable

PARTICIPANTS = (("alice", "Alice"), ("bob", "Bob"), ("carol", "Carol"), ("dave", "Dave"), ("erin", "Erin"))


@dataclass(frozen=True)
class Event:
    """One step of the scenario, in simulated time."""

    at: float
    elapsed: float
    kind: str
    stream_id: str | None
    detail: str

    def line(self) -> str:
        """A readable timeline line."""
        who = f" {self.stream_id}" if self.stream_id else ""
        return f"[t+{self.elapsed:6.1f}s] {self.kind:<11}{who}: {self.detail}"


@dataclass
class ConferenceResult:
    """What the scenario did: its events, who left cleanly, who is a ghost now, who flapped, who rejoined."""

    room: str
    events: list[Event] = field(default_factory=list)
    left: tuple[str, ...] = ("bob",)
    ghosts: tuple[str, ...] = ("carol", "dave")
    flapped: tuple[str, ...] = ("erin",)
    rejoined: tuple[str, ...] = ()


class _Timeline:
    """Emits events relative to the scenario start."""

    def __init__(self, sim, on_event):
        self.sim, self.on_event = sim, on_event
        self.start = sim.clock.now()
        self.events: list[Event] = []

    def emit(self, kind: str, stream_id: str | None, detail: str) -> None:
        """Record an event and pass it to the callback."""
        now = self.sim.clock.now()
        event = Event(now, now - self.start, kind, stream_id, detail)
        self.events.append(event)
        if self.on_event is not None:
            self.on_event(event)


def run_conference(sim, app: str | None = None, room: str = "room1", on_event: Callable | None = None,
                   unit: float | None = None, sleep: Callable | None = None,
                   try_rejoin: bool = True) -> ConferenceResult:
    """Play the scenario on `sim` (blocking); `unit` defaults to one heartbeat period."""
    app = app or sim.apps[0]
    unit = unit or sim.heartbeat_seconds
    sleep = sleep or sim.clock.sleep
    line = _Timeline(sim, on_event)
    sim.create_room(app, room)
    line.emit("room", room, f"created on AMS {sim.version.name} (heartbeat {sim.heartbeat_seconds:g}s)")
    for stream_id, name in PARTICIPANTS:
        joined = sim.join(app, room, stream_id, name)
        line.emit("join", stream_id, f"{name} joined {room}" if joined else "join refused: streamIdInUse")
        sleep(0.2 * unit)
    sleep(1.0 * unit)
    _leave_and_drop(sim, app, line, sleep, unit)
    rejoined = ("carol",) if try_rejoin and _try_rejoin(sim, app, line, "carol") else ()
    sleep(1.0 * unit)
    _summarize(sim, app, room, line)
    ghosts = tuple(s for s in ("carol", "dave") if s not in rejoined)
    return ConferenceResult(room, line.events, ghosts=ghosts, rejoined=rejoined)


def _leave_and_drop(sim, app: str, line: _Timeline, sleep, unit: float) -> None:
    """Bob leaves cleanly, Carol and Dave drop, Erin flaps (drop, back within a heartbeat)."""
    sim.leave(app, "bob")
    line.emit("leave", "bob", "left cleanly: record deleted, removed from the room")
    sleep(1.0 * unit)
    for stream_id in ("carol", "dave"):
        sim.drop(app, stream_id)
        line.emit("drop", stream_id, "network dropped: heartbeat stops, record and membership stay")
    sleep(1.0 * unit)
    sim.drop(app, "erin")
    line.emit("flap", "erin", "network dropped")
    sleep(0.8 * unit)
    sim.resume(app, "erin")
    line.emit("flap", "erin", "network back within session recovery: heartbeats resume")
    sleep(2.5 * unit)


def _try_rejoin(sim, app: str, line: _Timeline, stream_id: str) -> bool:
    """A dropped client retries with the same id, as the JS SDK does every 3 s."""
    if sim.reconnect(app, stream_id):
        line.emit("rejoin", stream_id, "republished with the same id (its old record no longer reads as live)")
        return True
    line.emit("rejoin", stream_id, "republish refused: streamIdInUse (the ghost still reads as broadcasting)")
    return False


def _summarize(sim, app: str, room: str, line: _Timeline) -> None:
    """One line per participant: what AMS reports now."""
    now_ms = sim.clock.now() * 1000
    members = set(sim.room_members(app, room))
    for stream_id, _ in PARTICIPANTS:
        record = sim.broadcast(app, stream_id)
        listed = "listed in the room" if stream_id in members else "not in the room"
        if record is None:
            line.emit("state", stream_id, f"no record, {listed}")
            continue
        age = (now_ms - record["updateTime"]) / 1000
        line.emit("state", stream_id, f"status={record['status']}, heartbeat age {age:.1f}s, {listed}")
