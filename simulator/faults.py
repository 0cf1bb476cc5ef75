"""Injected failures: added latency, 5xx answers, held (timed-out) requests, malformed JSON, store query errors."""
import itertools
import re
import threading
from dataclasses import dataclass

KINDS = ("latency", "status", "timeout", "malformed", "db_error")
# A held request is released after this long at most, so a stuck client cannot pin a thread forever.
MAX_HOLD_SECONDS = 120.0
DEFAULT_HOLD_SECONDS = 30.0


@dataclass
class Fault:
    """One injected fault; `remaining` None means unlimited."""

    id: int
    kind: str
    path_regex: str
    seconds: float
    status: int
    remaining: int | None
    pattern: re.Pattern

    def describe(self) -> dict:
        """JSON view for the control API."""
        return {"id": self.id, "kind": self.kind, "path_regex": self.path_regex, "seconds": self.seconds,
                "status": self.status, "remaining": self.remaining}


class Faults:
    """Thread-safe fault table consulted for every AMS request (never for /_sim/ control calls)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._ids = itertools.count(1)

    def inject(self, kind: str, path_regex: str = ".*", seconds: float | None = None,
               status: int = 503, count: int | None = None) -> Fault:
        """Add a fault for paths matching path_regex (re.search), for `count` requests or forever."""
        if kind not in KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {', '.join(KINDS)}")
        if count is not None and (not isinstance(count, int) or count < 1):
            raise ValueError("count must be a positive integer or None")
        if not isinstance(status, int) or not 100 <= status <= 599:
            raise ValueError("status must be an HTTP status code")
        pattern = re.compile(path_regex)
        fault = Fault(next(self._ids), kind, path_regex, _seconds(kind, seconds), status, count, pattern)
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        """Remove every fault."""
        with self._lock:
            self._faults.clear()

    def active(self) -> list[dict]:
        """The faults still armed."""
        with self._lock:
            return [f.describe() for f in self._faults]

    def take(self, path: str) -> list[Fault]:
        """Faults that apply to this request (consuming one use of each): all latencies, first other one."""
        taken, terminal = [], False
        with self._lock:
            for fault in list(self._faults):
                if not fault.pattern.search(path) or (fault.kind != "latency" and terminal):
                    continue
                terminal = terminal or fault.kind != "latency"
                taken.append(fault)
                if fault.remaining is not None:
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        self._faults.remove(fault)
        return taken


def _seconds(kind: str, seconds: float | None) -> float:
    """Delay of a latency fault or hold of a timeout fault, bounded."""
    if seconds is None:
        return DEFAULT_HOLD_SECONDS if kind == "timeout" else (1.0 if kind == "latency" else 0.0)
    if seconds < 0:
        raise ValueError("seconds must not be negative")
    return min(float(seconds), MAX_HOLD_SECONDS)
