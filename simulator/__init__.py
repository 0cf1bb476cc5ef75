"""A simulated Ant Media Server (REST API of v2.8.x and 3.x) with conference participants."""
from .clock import Clock, ManualClock
from .core import Simulator
from .faults import Faults
from .lifecycle import GhostLifecycle, WriteRecord
from .versions import AmsVersion

__all__ = ["AmsVersion", "Clock", "Faults", "GhostLifecycle", "ManualClock", "Simulator", "WriteRecord"]
