"""The early path: an AntMediaGhostCandidate alert arms a countdown; at its deadline the guarded eviction runs.

The candidate alert fires once Prometheus has seen a live claim's heartbeat unchanged for about one
heartbeat period. It carries durations only (rules/antmedia.rules.yml): the frozen heartbeat value, how
long Prometheus has seen it unchanged (from its own scrape times) and the stale threshold. The deadline is
on this process's monotonic clock: arrival + threshold - frozen. The notification's transit only makes
the real frozen time longer, so the deadline can only be late; no two machines' clocks are compared.

Until the deadline the stream is read about once a second (those reads are also the remediator's own
witness of the heartbeat standing still); a change of the heartbeat, of the record or of the room listing
disarms it. At the deadline the very pipeline of the AntMediaGhostStream alert runs (silences and
inhibitions asked on Alertmanager, revalidation, guards, every cluster check, the eviction). Arming
writes nothing, and the notification is answered at once.

Alertmanager does not send an unchanged group again before its repeat_interval, so the countdowns are
rebuilt from its API (active, neither silenced nor inhibited candidates) at start and every few seconds:
a restart loses nothing, and a second remediator behind the same Service arms the same countdowns. Its
re-read finds the record gone once one of them has evicted.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from ams.errors import AmsError
from ams.model import is_stream_id
from remediator.alerts import Alert
from remediator.decisions import Decided, Outcome
from service.config import CountdownConfig

if TYPE_CHECKING:  # the remediator owns its countdowns
    from remediator.actions import Remediator

__all__ = ["CANDIDATE_ALERT", "COUNTDOWN", "Countdowns"]

log = logging.getLogger("remediator.countdown")
CANDIDATE_ALERT = "AntMediaGhostCandidate"
COUNTDOWN = "countdown"  # the candidate's remediation label
# Outcomes of a deadline's eviction that leave the countdown armed, to run again at the next read:
# nothing was decided (AMS or Alertmanager unreachable, the remediator's own witness not complete yet).
RETRY = "deferred"
RETRY_MAX_SECONDS = 30.0  # backoff of those runs: 2, 4, 8, 16, 30, 30... s
# Disarmed heartbeats remembered, so that Alertmanager's copy of a resolved candidate re-arms nothing.
MAX_DISARMED = 10_000


@dataclass
class Arm:
    """One armed countdown: the alert, its deadline on this process's clock, what the first read saw."""

    alert: Alert
    ams: str
    app: str
    stream_id: str
    room: str | None
    heartbeat_ms: int
    deadline: float
    status: str | None = None      # the record's status at the first read
    listed: bool | None = None     # whether the room listed the stream at the first read
    busy: bool = False             # a read or the eviction is running
    attempts: int = 0              # deadline runs that decided nothing (AMS or Alertmanager unreachable)
    retry_at: float = 0.0          # the next run after such a one, on this process's clock


class Countdowns:
    """Armed countdowns, their reads, their deadlines, and their rebuild from Alertmanager."""

    def __init__(self, remediator: Remediator, config: CountdownConfig,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.remediator, self.config, self.clock = remediator, config, clock
        self._arms: dict[tuple[str, str, str, int], Arm] = {}
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._workers = ThreadPoolExecutor(max_workers=max(1, remediator.config.concurrency),
                                           thread_name_prefix="countdown")
        self._rooms: dict[tuple[str, str, str], tuple[float, set[str] | None]] = {}
        # Heartbeats seen to move on (bounded, oldest first out): an alert still carrying one arms nothing.
        self._disarmed: OrderedDict[tuple[str, str, str, int], None] = OrderedDict()
        self._threads: list[threading.Thread] = []

    # ------------------------------------------------------------ arming

    def arm(self, alert: Alert, outcome: Outcome) -> None:
        """Arm (or find armed) the countdown of one admitted candidate alert; raises its decision."""
        if not self.config.enabled:
            raise Decided("skipped", "countdown_disabled", "remediator.countdown.enabled is false; "
                          "AntMediaGhostStream takes this one")
        frozen, threshold, heartbeat = alert.frozen_seconds, alert.threshold_seconds, alert.heartbeat_ms
        if frozen is None or threshold is None or heartbeat is None:
            raise Decided("skipped", "no_evidence", "the candidate alert lacks heartbeat_timestamp, "
                          "frozen_seconds or threshold_seconds")
        settled = self.remediator.settled(alert, outcome)
        if settled is not None:  # sent again (repeat_interval) after its countdown already ended
            raise Decided("skipped", "duplicate", f"already {settled}")
        key = (outcome.ams, outcome.app, outcome.stream_id, heartbeat)
        deadline = self.clock() + max(0.0, threshold - frozen)
        with self._lock:
            if key in self._disarmed:  # that heartbeat moved on: it never comes back
                raise Decided("skipped", "disarmed_before", "this heartbeat already moved on")
            armed = self._arms.get(key)
            if armed is None:
                if len(self._arms) >= self.config.max_armed:
                    raise Decided("skipped", "countdown_full",
                                  f"{self.config.max_armed} countdowns armed; AntMediaGhostStream takes this one")
                armed = self._arms[key] = Arm(alert, outcome.ams, outcome.app, outcome.stream_id, outcome.room,
                                              heartbeat, deadline)
        raise Decided("armed", COUNTDOWN, f"evicts in {max(0.0, armed.deadline - self.clock()):.1f} s unless "
                      "the heartbeat, the record or the room listing changes")

    def armed(self) -> dict[tuple[str, str], int]:
        """Armed countdowns per (ams, app), for the gauge."""
        counts: dict[tuple[str, str], int] = {}
        with self._lock:
            for arm in self._arms.values():
                counts[(arm.ams, arm.app)] = counts.get((arm.ams, arm.app), 0) + 1
        return counts

    # ------------------------------------------------------------ reading and running

    def tick(self) -> list[Future]:
        """Start a read (and at its deadline the eviction) for every armed countdown not already busy."""
        with self._lock:
            due = [arm for arm in self._arms.values() if not arm.busy]
            for arm in due:
                arm.busy = True
        return [self._workers.submit(self._check, arm) for arm in due]

    def _check(self, arm: Arm) -> None:
        """One read of an armed stream; disarm on a change, run the pipeline once the deadline is reached."""
        try:
            changed = self._changed(arm)
            if changed is not None:
                self._disarm(arm, changed)
            elif self._due(arm):
                self._run(arm)
        except Exception:  # a bug must not stop the other countdowns
            log.exception("countdown of %s/%s/%s", arm.ams, arm.app, arm.stream_id)
        finally:
            arm.busy = False

    def _changed(self, arm: Arm) -> str | None:
        """What changed since arming (a disarm reason), or None; an unanswered read changes nothing."""
        revalidator = self.remediator.revalidators[arm.ams]
        calls = revalidator.calls([])
        try:
            record = revalidator.watch(arm.app, arm.stream_id, calls)
            listed = None if arm.room is None else arm.stream_id in self._members(arm, calls)
        except Decided:
            return None  # AMS did not answer: neither proof of life nor of stillness
        if record is None:
            return "gone"
        if record.update_time_ms != arm.heartbeat_ms:
            return "heartbeat_moved"
        if arm.status is None:
            arm.status, arm.listed = record.status, listed
        if record.status != arm.status:
            if not record.live_status:
                return "record_changed"
            # Still a live claim: from 2.13 AMS computes terminated_unexpectedly for a stale record (Broadcast
            # .getStatus L573-593 @3.0.3), which is the ghost growing older, not the participant coming back.
            arm.status = record.status
        if listed != arm.listed:
            return "room_changed"
        return None

    def _members(self, arm: Arm, calls) -> set[str]:
        """The room's listing, read once per read interval for every countdown of that room."""
        key, now = (arm.ams, arm.app, arm.room or ""), self.clock()
        with self._lock:
            cached = self._rooms.get(key)
        if cached is not None and now - cached[0] < self.config.read_interval_seconds * 0.9:
            return cached[1] or set()
        revalidator = self.remediator.revalidators[arm.ams]
        members = calls.run("get", f"members of {arm.room}", revalidator.client.get_room_members, arm.app, arm.room)
        with self._lock:
            self._rooms[key] = (now, members)
            if len(self._rooms) > 4 * self.config.max_armed:
                self._rooms.clear()
        return members

    def _due(self, arm: Arm) -> bool:
        """The deadline has passed, this process has itself seen the heartbeat stand still long enough (else
        the pipeline would only say `observing`), and no retry is pending."""
        now = self.clock()
        if now < arm.deadline or now < arm.retry_at:
            return False
        revalidator = self.remediator.revalidators[arm.ams]
        still = revalidator.stillness.known((arm.app, arm.stream_id, arm.heartbeat_ms))
        try:
            return still is not None and still >= revalidator.witness_seconds(arm.app)
        except AmsError:  # the version unknown and AMS not answering: the next read tries again
            return False

    def _run(self, arm: Arm) -> None:
        """The deadline: the ghost alert's own pipeline; tried again, backing off, when nothing was decided."""
        deadline = time.monotonic() + self.remediator.config.notification_timeout_seconds
        # Counted in the blast radius now, when it has become a ghost, as AntMediaGhostStream would be, and
        # with it every countdown of its app that a read found still frozen: a clock step or a stalled stats
        # writer freezes many heartbeats at once, and must be held as the storm it is before the storm alert
        # (which fires only at the threshold) can inhibit anything.
        with self._lock:
            frozen = [a.alert for a in self._arms.values()
                      if (a.ams, a.app) == (arm.ams, arm.app) and a.status is not None]
        now = self.remediator.clock()
        for alert in frozen:  # the countdown itself among them: its own reads found it frozen
            self.remediator.flag(alert, now)
        outcome = self.remediator.decide(arm.alert, deadline=deadline, countdown_ended=True)
        if outcome.outcome != RETRY:
            self._drop(arm)
            return
        arm.attempts += 1
        arm.retry_at = self.clock() + min(RETRY_MAX_SECONDS, 2.0 ** arm.attempts)

    def _disarm(self, arm: Arm, reason: str) -> None:
        """Disarmed by a change: counted and audited like any decision."""
        self._drop(arm)
        with self._lock:
            self._disarmed[(arm.ams, arm.app, arm.stream_id, arm.heartbeat_ms)] = None
            while len(self._disarmed) > MAX_DISARMED:
                self._disarmed.popitem(last=False)
        outcome = self.remediator.outcome_of(arm.alert)
        outcome.outcome, outcome.reason = "disarmed", reason
        outcome.detail = "seen on AMS before the deadline; nothing written"
        self.remediator.record(outcome)

    def _drop(self, arm: Arm) -> None:
        with self._lock:
            self._arms.pop((arm.ams, arm.app, arm.stream_id, arm.heartbeat_ms), None)

    # ------------------------------------------------------------ rebuilding from Alertmanager

    def rebuild(self) -> int:
        """Arm every active, unsuppressed candidate Alertmanager holds; returns how many it listed.

        A countdown armed here is audited like one armed by a notification; one already armed is left as is.
        """
        alertmanager = self.remediator.alertmanager
        if alertmanager is None:
            return 0
        alerts = alertmanager.firing(CANDIDATE_ALERT, self.config.receiver)
        for alert in alerts:
            outcome = self.remediator.outcome_of(alert)
            heartbeat = alert.heartbeat_ms
            if not (outcome.mapped and is_stream_id(outcome.stream_id)) or heartbeat is None:
                continue
            key = (outcome.ams, outcome.app, outcome.stream_id, heartbeat)
            with self._lock:
                if key in self._arms or key in self._disarmed:
                    continue
            if self.remediator.settled(alert, outcome) is not None:
                continue
            try:
                self.arm(alert, outcome)
            except Decided as decision:
                if decision.outcome == "armed":
                    outcome.outcome, outcome.reason = decision.outcome, decision.reason
                    outcome.detail = f"{decision.detail} (read back from Alertmanager)"
                    self.remediator.record(outcome)
        return len(alerts)

    # ------------------------------------------------------------ threads

    def start(self) -> None:
        """The read loop, and the rebuild loop when an Alertmanager is configured."""
        if not self.config.enabled:
            return
        loops: list[tuple[str, float, Callable[[], object]]] = [
            ("countdown-reads", self.config.read_interval_seconds, self.tick)]
        if self.remediator.alertmanager is not None:
            loops.append(("countdown-rebuild", self.config.rebuild_interval_seconds, self._rebuild_quietly))
        for name, every, step in loops:
            thread = threading.Thread(target=self._loop, args=(every, step), name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def _rebuild_quietly(self) -> None:
        try:
            self.rebuild()
        except Exception as exc:  # Alertmanager down: the notifications and the backstop still work
            log.warning("rebuilding countdowns from Alertmanager failed: %s", exc)

    def _loop(self, every: float, step: Callable[[], object]) -> None:
        """Run step now and then every `every` seconds until closed."""
        while not self._closing.is_set():
            started = time.monotonic()
            step()
            self._closing.wait(max(0.05, every - (time.monotonic() - started)))

    def close(self) -> None:
        """Stop the loops and the workers (a running eviction completes)."""
        self._closing.set()
        for thread in self._threads:
            thread.join(timeout=5)
        self._workers.shutdown(wait=True, cancel_futures=True)
