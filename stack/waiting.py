"""Bounded waiting."""
from __future__ import annotations

import time
from typing import Callable, TypeVar

T = TypeVar("T")


class WaitTimeout(AssertionError):
    """A condition did not hold within its deadline."""


def wait_for(condition: Callable[[], T], timeout: float, message: str, interval: float = 0.25) -> T:
    """Poll condition until it returns a truthy value; raise WaitTimeout after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise WaitTimeout(f"after {timeout:.0f} s: {message}")
        time.sleep(interval)


def hold_for(condition: Callable[[], bool], duration: float, message: str, interval: float = 0.25) -> None:
    """Assert that condition stays true for duration seconds (checked every interval)."""
    deadline = time.monotonic() + duration
    while time.monotonic() < deadline:
        if not condition():
            raise AssertionError(message)
        time.sleep(interval)
    if not condition():
        raise AssertionError(message)
