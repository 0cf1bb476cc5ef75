"""The simulated server's clock: real time (or a manual source) plus an offset."""
import threading
import time


class Clock:
    """AMS's wall clock in epoch seconds; `offset_seconds` models a skewed server clock."""

    def __init__(self, offset_seconds: float = 0.0, source=time.time):
        self.offset_seconds = float(offset_seconds)
        self._source = source

    def now(self) -> float:
        """Current simulated time in epoch seconds."""
        return self._source() + self.offset_seconds

    def now_ms(self) -> int:
        """Current simulated time in epoch milliseconds, as AMS writes it."""
        return int(self.now() * 1000)

    def sleep(self, seconds: float) -> None:
        """Let `seconds` of simulated time pass."""
        if seconds > 0:
            time.sleep(seconds)


class ManualClock(Clock):
    """A clock that only moves when told to, so tests can skip 20 s in no time."""

    def __init__(self, start: float = 1_767_225_600.0, offset_seconds: float = 0.0):
        self._lock = threading.Lock()
        self._t = float(start)
        super().__init__(offset_seconds, source=self._read)

    def _read(self) -> float:
        """Return the manual time."""
        with self._lock:
            return self._t

    def advance(self, seconds: float) -> float:
        """Move time forward and return the new simulated now."""
        if seconds < 0:
            raise ValueError("a manual clock only moves forward")
        with self._lock:
            self._t += seconds
        return self.now()

    def sleep(self, seconds: float) -> None:
        """Simulated sleep: advance instantly."""
        if seconds > 0:
            self.advance(seconds)
