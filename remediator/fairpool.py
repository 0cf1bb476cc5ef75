"""A worker pool that notifications share in turns: a small one never waits behind another's backlog."""
from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any, Callable, Sequence

__all__ = ["FairPool", "NOT_RUN"]

NOT_RUN = object()  # the result of an item not started before its batch's deadline
_IDLE_CHECK_SECONDS = 0.5  # idle workers look again this often (deadlines pass without a notify)


class _Batch:
    """One notification's alerts: the next one to start, how many run, and their results."""

    def __init__(self, fn: Callable[[Any], Any], items: Sequence[Any], deadline: float) -> None:
        self.fn, self.items, self.deadline = fn, items, deadline
        self.next = 0
        self.running = 0
        self.results: list[Any] = [NOT_RUN] * len(items)


class FairPool:
    """Runs each batch's items with its caller's thread plus at most per_batch - 1 shared workers.

    Workers serve the batches round-robin, one item at a time, so a notification of one alert
    starts at once (its own thread works on it) and gets its share of the workers however large
    the others are. Nothing starts after the batch's deadline.
    """

    def __init__(self, workers: int, per_batch: int, name: str = "remediate") -> None:
        self._cond = threading.Condition()
        self._batches: deque[_Batch] = deque()
        self._per_batch = max(1, per_batch)
        self._closed = False
        self._threads = [threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True)
                         for i in range(max(0, workers))]
        for thread in self._threads:
            thread.start()

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any], deadline: float) -> list[Any]:
        """fn over items, results in order; NOT_RUN for those not started by the deadline (monotonic)."""
        batch = _Batch(fn, items, deadline)
        with self._cond:
            self._batches.append(batch)
            self._cond.notify_all()
        try:
            while (index := self._take(batch, owner=True)) is not None:
                self._run(batch, index)
            with self._cond:
                self._cond.wait_for(lambda: batch.running == 0)
        finally:
            with self._cond:
                if batch in self._batches:
                    self._batches.remove(batch)
        return batch.results

    def _take(self, batch: _Batch, owner: bool) -> int | None:
        """Reserve the batch's next item (the owner always may; helpers within per_batch)."""
        with self._cond:
            return self._take_locked(batch, owner)

    def _take_locked(self, batch: _Batch, owner: bool) -> int | None:
        if batch.next >= len(batch.items) or time.monotonic() >= batch.deadline:
            return None
        if not owner and batch.running >= self._per_batch - 1:
            return None
        index = batch.next
        batch.next += 1
        batch.running += 1
        return index

    def _run(self, batch: _Batch, index: int) -> None:
        """One item; an exception is its result (the caller decides what it means)."""
        try:
            batch.results[index] = batch.fn(batch.items[index])
        except Exception as exc:  # noqa: BLE001 - handed back, never lost in a worker
            batch.results[index] = exc
        finally:
            with self._cond:
                batch.running -= 1
                self._cond.notify_all()

    def _work(self) -> None:
        """Worker: the next batch in turn that has an item to start, round-robin."""
        while True:
            with self._cond:
                picked = None
                while picked is None:
                    if self._closed:
                        return
                    for _ in range(len(self._batches)):
                        batch = self._batches[0]
                        self._batches.rotate(-1)
                        index = self._take_locked(batch, owner=False)
                        if index is not None:
                            picked = (batch, index)
                            break
                    else:
                        self._cond.wait(_IDLE_CHECK_SECONDS)
            self._run(*picked)

    def close(self) -> None:
        """Stop the workers once their current item is done."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout=5)
