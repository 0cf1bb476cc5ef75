"""Decide and act: firing alert -> guards -> revalidate on AMS -> evict -> Outcome."""
from __future__ import annotations

import dataclasses
import logging
import os
import re
import threading
import time
from collections import deque
from typing import Any, Callable, Mapping, Sequence

from ams.client import deadline_scope
from ams.model import is_stream_id
from remediator.alerts import (
    Alert,
    AlertmanagerCheck,
    AlertmanagerUnavailableError,
    Notification,
)
from remediator.countdown import CANDIDATE_ALERT, COUNTDOWN, Countdowns
from remediator.decisions import AuditLog, Decided, Outcome, RemediatorMetrics
from remediator.guards import (
    NODE_HEARTBEAT_SECONDS,
    DeadNodeCaps,
    EvictionCaps,
    FlaggedStreams,
    HandledAlerts,
    Hold,
    LifeHolds,
    denied_by,
)
from remediator.revalidation import Revalidator, Target
from service.config import RemediatorConfig

__all__ = ["Decided", "FairPool", "NOT_RUN", "Outcome", "REMEDIATION", "Remediator"]

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


log = logging.getLogger("remediator")
REMEDIATION = "delete_stream"
GHOST_ALERT = "AntMediaGhostStream"  # the alerts whose evidence (heartbeat_timestamp) this acts on:
ALERTS = {GHOST_ALERT: REMEDIATION, CANDIDATE_ALERT: COUNTDOWN}  # alertname -> its remediation label
DEAD_ORIGIN = "dead"  # the rule's origin label for a ghost whose origin node AMS reports dead
# Configured names (ams, app); anything else (a URL, a path) is refused before any lookup or request.
_NAME = re.compile(r"^(?!\.+$)[A-Za-z0-9_.\-]{1,200}$")
# How long a notification may wait for one of max_concurrent_notifications before it is answered 503.
SLOT_WAIT_SECONDS = 1.0
# How often every hold's witness is read again (a few reads per hold: holds are per app and node).
HOLD_REVIEW_SECONDS = 2.0


def _label(alert: Alert, key: str) -> str:
    """A label value, '' when absent."""
    return alert.labels.get(key, "")


class Remediator:
    """Applies the pipeline to every alert of a notification."""

    def __init__(self, config: RemediatorConfig, revalidators: Mapping[str, Revalidator],
                 metrics: RemediatorMetrics, audit: AuditLog,
                 alertmanager: AlertmanagerCheck | None = None,
                 clock: Callable[[], float] = time.time, concurrency: int = 4,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.revalidators = dict(revalidators)
        self.metrics = metrics
        self.audit = audit
        self.alertmanager = alertmanager
        self.clock = clock
        self.caps = EvictionCaps(config.caps)
        self.dead_node_caps = DeadNodeCaps(config.dead_node)
        self.flagged = FlaggedStreams(config.blast_radius)
        self.handled = HandledAlerts(config.dedup_max_entries)
        self.holds = LifeHolds()
        self._closing = threading.Event()
        threading.Thread(target=self._review_loop, name="hold-review", daemon=True).start()
        # Alerts of one notification run on its own thread plus up to concurrency - 1 shared workers, the
        # workers taking notifications in turns; at most max_concurrent_notifications are worked on at once.
        self._pool = FairPool(workers=max(1, concurrency), per_batch=max(1, concurrency))
        self._slots = threading.BoundedSemaphore(config.max_concurrent_notifications)
        self.countdowns = Countdowns(self, config.countdown, clock=monotonic)

    def handle(self, notification: Notification) -> list[Outcome]:
        """Decide on every alert (never per group) within notification_timeout_seconds; outcomes keep the
        payload order. What is not decided in time, or finds no free slot, is deferred (503: sent again)."""
        deadline = time.monotonic() + self.config.notification_timeout_seconds
        if notification.truncated_alerts:
            self.metrics.truncated_alerts.inc(notification.truncated_alerts)
            log.warning("notification %s left out %d alerts; they come again while they fire",
                        notification.group_key, notification.truncated_alerts)
        if not self._slots.acquire(timeout=SLOT_WAIT_SECONDS):
            return [self._deferred(alert, "busy", f"{self.config.max_concurrent_notifications} notifications "
                                   "already being worked on") for alert in notification.alerts]
        try:
            return self._handle(notification, deadline)
        finally:
            self._slots.release()

    def _handle(self, notification: Notification, deadline: float) -> list[Outcome]:
        """Alerts that need no AMS at once; the others on the fair pool, until the deadline."""
        now = self.clock()
        for alert in notification.alerts:
            if not _candidate(alert):  # a candidate counts once its countdown ends (Countdowns._run)
                self.flag(alert, now)
        outcomes: list = [None if _remediable(alert) and not _candidate(alert) else self.decide(alert)
                          for alert in notification.alerts]
        pending = [i for i, outcome in enumerate(outcomes) if outcome is None]
        # Services found unreachable in this notification: later alerts defer at once instead of
        # each waiting for its own timeout (the whole answer would outlast Alertmanager's patience).
        down: set[str] = set()
        results = self._pool.map(lambda i: self.decide(notification.alerts[i], down, deadline, notification.alerts),
                                 pending, deadline)
        for i, result in zip(pending, results):
            if isinstance(result, Outcome):
                outcomes[i] = result
            else:
                why = "not started" if result is NOT_RUN else type(result).__name__
                outcomes[i] = self._deferred(notification.alerts[i], "timeout",
                                             f"{why} within notification_timeout_seconds")
        return outcomes

    def flag(self, alert: Alert, now: float) -> None:
        """Count a firing remediation alert towards its app's blast radius (configured apps, valid ids only)."""
        if _remediable(alert):
            ams, app, stream = (_label(alert, k) for k in ("ams", "app", "stream_id"))
            revalidator = self.revalidators.get(ams)
            if revalidator is None or app not in revalidator.apps or not is_stream_id(stream):
                return
            # A dead node's participants are judged apart (confirmed on AMS, own budget) where AMS's
            # node registry can be read; elsewhere origin is only a label and counts like any ghost.
            if not (_label(alert, "origin") == DEAD_ORIGIN and revalidator.reads_nodes):
                self.flagged.flag((ams, app), stream, now)

    def outcome_of(self, alert: Alert) -> Outcome:
        """An undecided outcome for one alert; mapped once its ams and app are configured."""
        outcome = Outcome(
            fingerprint=alert.fingerprint, ams=_label(alert, "ams"), app=_label(alert, "app"),
            stream_id=_label(alert, "stream_id"), room=alert.labels.get("room") or None,
            outcome="", reason="", dry_run=self.config.dry_run, alertname=_label(alert, "alertname"))
        revalidator = self.revalidators.get(outcome.ams)
        outcome.mapped = revalidator is not None and outcome.app in revalidator.apps
        return outcome

    def _deferred(self, alert: Alert, reason: str, detail: str) -> Outcome:
        """Defer one alert without deciding it: counted, audited, answered 503."""
        outcome = self.outcome_of(alert)
        outcome.outcome, outcome.reason, outcome.detail = "deferred", reason, detail
        self.record(outcome)
        return outcome

    def decide(self, alert: Alert, down: set[str] | None = None, deadline: float | None = None,
               siblings: tuple[Alert, ...] = (), countdown_ended: bool = False) -> Outcome:
        """Run the pipeline for one alert (every AMS request ends by the deadline), then count and audit.

        A candidate alert (the early path) is only armed here: its countdown runs this pipeline again at
        its deadline, as the candidate whose silences and inhibitions are asked then.

        siblings: the alerts of the same notification (a dead-labelled ghost found on a live node brings
        the others of its node into the blast radius at once).
        """
        outcome = self.outcome_of(alert)
        outcome.mapped = False  # set again by _admit, after the labels are checked
        try:
            with deadline_scope(deadline):
                self._admit(alert, outcome)
                if _candidate(alert) and not countdown_ended:
                    self.countdowns.arm(alert, outcome)
                self._settle_once(alert, outcome, set() if down is None else down, siblings)
        except Decided as decision:
            outcome.outcome, outcome.reason, outcome.detail = decision.outcome, decision.reason, decision.detail
        except Exception as exc:  # a bug must not turn into a retry storm or a lost answer
            log.exception("unexpected error on alert %s", alert.fingerprint)
            outcome.outcome, outcome.reason, outcome.detail = "failed", "internal_error", type(exc).__name__
        self.record(outcome)
        return outcome

    def settled(self, alert: Alert, outcome: Outcome) -> str | None:
        """The decision this alert already settled with (evicted, dry_run, not_found...), if any."""
        return self.handled.outcome(_settle_key(alert, outcome))

    def _admit(self, alert: Alert, outcome: Outcome) -> None:
        """Checks that need no AMS: status, labels, configured AMS and app, lists, kill switch."""
        if not alert.firing:
            raise Decided("skipped", "resolved")
        if not _remediable(alert, firing_only=False):
            raise Decided("skipped", "not_remediable")
        if self._kill_switch_on():
            raise Decided("skipped", "kill_switch", self.config.kill_switch_file or "")
        for key in ("ams", "app"):
            if not _NAME.match(_label(alert, key)):
                raise Decided("skipped", "invalid_labels", f"label {key}")
        revalidator = self.revalidators.get(outcome.ams)
        if revalidator is None:
            raise Decided("skipped", "unknown_ams")
        if outcome.app not in revalidator.apps:
            raise Decided("skipped", "unknown_app")
        outcome.mapped = True
        # The one id rule (AMS's own, ams.model.is_stream_id): a ghost whose id AMS would not accept
        # cannot be acted on here; a failure on its ams/app makes AntMediaRemediationFailing say so.
        for key in ("stream_id",) + (("room",) if outcome.room else ()):
            if not is_stream_id(_label(alert, key)):
                raise Decided("failed", "invalid_id", f"label {key} is not an id AMS accepts; remove it by hand")
        # The room label is only a hint: rooms are judged here when named, and again as AMS reports them.
        rooms = (outcome.room,) if outcome.room else None
        refused = denied_by(self.config.allow, self.config.deny, outcome.app, rooms, outcome.stream_id)
        if refused:
            raise Decided("skipped", "denied", refused)

    def _kill_switch_on(self) -> bool:
        """The operator's stop-everything file."""
        path = self.config.kill_switch_file
        return bool(path) and os.path.exists(path)

    def _settle_once(self, alert: Alert, outcome: Outcome, down: set[str], siblings: tuple[Alert, ...] = ()) -> None:
        """Idempotency: one settled decision per (ams, app, stream, room, startsAt): one id listed in two
        rooms is two alerts, each of which must see its room cleared."""
        key = _settle_key(alert, outcome)
        if self.handled.outcome(key) is None:
            # Locked per stream, not per alert: two alerts for one stream (say from Prometheus
            # replicas with distinct labels) must not evict it twice at once.
            with self.handled.hold(key[:3]):
                if self.handled.outcome(key) is None:
                    self._act_unless_down(alert, outcome, key, down, siblings)
                    return
        self.metrics.duplicates.inc()
        raise Decided("skipped", "duplicate", f"already {self.handled.outcome(key)}")

    def _act_unless_down(self, alert: Alert, outcome: Outcome, key: tuple, down: set[str],
                         siblings: tuple[Alert, ...] = ()) -> None:
        """Defer at once when this notification already found the needed service unreachable."""
        service = {"ams_unavailable": f"ams:{outcome.ams}", "alertmanager_unavailable": "alertmanager"}
        for reason, name in service.items():
            if name in down:
                raise Decided("deferred", reason, "unreachable earlier in this notification")
        try:
            self._act(alert, outcome, key, siblings)
        except Decided as decision:
            if decision.reason in service:
                down.add(service[decision.reason])
            raise

    def _act(self, alert: Alert, outcome: Outcome, key: tuple, siblings: tuple[Alert, ...] = ()) -> None:
        """Silence re-check, revalidation, the origin node, guards, own stillness, then the eviction (or its dry run)."""
        self._check_alertmanager(alert)
        revalidator = self.revalidators[outcome.ams]
        calls = revalidator.calls(outcome.calls)
        try:
            target = revalidator.revalidate(outcome.app, outcome.stream_id, outcome.room, alert.heartbeat_ms, calls)
        except Decided as decision:
            if decision.reason == "not_found":
                self.handled.settle(key, "not_found")
            raise
        outcome.room = target.room or outcome.room
        node = revalidator.origin_node(target, calls)
        ip = node.ip if node is not None else None
        calls.gate = lambda: self._gate(outcome.ams, outcome.app, ip)
        dead_node = self._on_dead_node(alert, target, node, revalidator, calls, siblings)
        self._guard(target, outcome, revalidator, calls, dead_node, ip)
        if node is not None and not dead_node:
            self._node_writes(target, node, revalidator, calls)
        self._witnessed(target, outcome, revalidator, None if dead_node else node)
        stopper = None if dead_node else self._no_life_on_origin(target, outcome, revalidator, node, calls)
        if node is not None and not target.stored_status_blocks:
            target = dataclasses.replace(target, readers=revalidator.readers(calls))
        self._evict(alert, target, outcome, key, revalidator, calls, dead_node, stopper, ip)

    def _on_dead_node(self, alert: Alert, target: Target, node, revalidator: Revalidator, calls,
                      siblings: tuple[Alert, ...] = ()) -> bool:
        """True when the alert says origin=dead and the node is dead by every measure this process has.

        Dead here means: AMS's registry reads it dead, its registry heartbeat has stood still across this
        process's own reads for more than a node period (AMS's verdict compares two clocks), and its
        host does not answer. A host that answers is a node that serves but does not write (it lost its
        database, or its clock stepped): held for a human. A node AMS reads alive, or whose registry
        heartbeat moves (its clock lags the reader's), is a live node: its ghosts take the live-node path.
        """
        if _label(alert, "origin") != DEAD_ORIGIN or not revalidator.reads_nodes:
            return False
        if node is None:
            raise Decided("skipped", "node_unknown", f"AMS lists no node {target.origin or '(none)'}")
        writing = revalidator.nodes.writing(node.ip)
        if writing or not node.dead:  # alive after all: judged with the live nodes' guards, blast radius included
            now, ams = self.clock(), _label(alert, "ams")
            for other in (alert, *siblings):
                if (_label(other, "origin") == DEAD_ORIGIN and _label(other, "ams") == ams
                        and _label(other, "app") == target.app and _label(other, "node") == _label(alert, "node")
                        and is_stream_id(_label(other, "stream_id"))):
                    self.flagged.flag((ams, target.app), _label(other, "stream_id"), now)
            return False
        if writing is None:
            raise Decided("deferred", "node_unconfirmed",
                          f"AMS reads {node.ip} dead; its registry heartbeat has stood still "
                          f"{revalidator.nodes.still_for(node.ip):.1f} s here")
        if revalidator.answers(node.ip, target.app, calls):
            raise Decided("skipped", "node_not_writing",
                          f"AMS reads {node.ip} dead but its host answers: it serves without writing")
        return True

    def _node_writes(self, target: Target, node, revalidator: Revalidator, calls) -> None:
        """A live-path origin node whose registry heartbeat stood still across this process's reads serves
        without writing (lost database) when its host answers: its streams are held for a human; when it
        does not answer, its death is on the way to being confirmed."""
        if revalidator.nodes.writing(node.ip) is not False:
            return
        if not revalidator.answers(node.ip, target.app, calls):
            raise Decided("deferred", "node_unconfirmed", f"{node.ip} neither writes nor answers")
        raise Decided("skipped", "node_not_writing",
                      f"{node.ip}'s registry heartbeat stands still but its host answers")

    def _witnessed(self, target: Target, outcome: Outcome, revalidator: Revalidator, node) -> None:
        """The heartbeat has stood still long enough on this process's clock, and on its node's own.

        On a cluster node the registry heartbeat and the stream's updateTime are written with the same
        clock: a stream's updateTime ahead of its node's registry heartbeat by more than a node period
        means that clock stepped back, and sessions that existed before the step write nothing until it
        has caught up (MuxAdaptor L855-868 @2.8.2, L990-1034 @3.0.3): the node is held until then.
        """
        window = revalidator.witness_seconds(target.app)
        still = revalidator.still_for(target)
        if still < window:
            raise Decided("deferred", "observing",
                          f"heartbeat unchanged {still:.1f} s of {window:.1f} s on this remediator's clock")
        if node is None:
            return
        ahead = (target.evidence_ms - node.last_update_ms) / 1000
        if ahead > NODE_HEARTBEAT_SECONDS:
            hold = Hold("clock_stepped_back", target.app, target.stream_id, target.evidence_ms, revalidator.clock(),
                        until_registry_ms=target.evidence_ms + int((window + NODE_HEARTBEAT_SECONDS) * 1000))
            self.holds.hold(outcome.ams, None, node.ip, hold)
            raise Decided("skipped", "node_clock_stepped",
                          f"updateTime {ahead:.1f} s ahead of node {node.ip}'s registry heartbeat: its clock stepped back")
        if -ahead < window:
            raise Decided("deferred", "observing", f"node {node.ip}'s own clock has passed the heartbeat by "
                          f"{-ahead:.1f} s of {window:.1f} s")
        writing = revalidator.nodes.writing_for(node.ip)
        if writing < window:  # a node back from a lost database: its sessions write again at their next try
            raise Decided("deferred", "observing", f"node {node.ip} seen writing {writing:.1f} s of {window:.1f} s "
                          "on this remediator's clock")

    def _no_life_on_origin(self, target: Target, outcome: Outcome, revalidator: Revalidator, node, calls):
        """Ask the node that would hold the publisher; returns the client the stop goes to.

        AMS forwards no write about a stale record to its origin (RestProxyFilter L101-104 @2.8.2,
        L100-102 @3.0.3) and a stop looks only at the node that runs it, so both the evidence and the
        stop go to the origin itself. That node must answer and hold no live scope for the stream.
        """
        client, where = revalidator.client, outcome.ams
        if node is not None:
            client, where = revalidator.node_client(node.ip), node.ip
        scope = revalidator.scope(client, target, where, calls)
        if scope is None:
            raise Decided("deferred", "origin_unreachable", f"{where} does not answer")
        if scope >= 0:
            window = revalidator.server.rtmp_inactivity_seconds + revalidator.witness_seconds(target.app)
            if target.publish_type == "RTMP" and revalidator.still_for(target) < window:
                # Red5 keeps a silent RTMP connection up to rtmp.max_inactivity (RTMPConnection L1826-1873
                # @2.8.2): its scope is no evidence of life until that has passed.
                raise Decided("deferred", "rtmp_window", f"RTMP connection kept by Red5 for up to {window:.0f} s")
            self._life(outcome, target, revalidator, node.ip if node is not None else None, "alive_on_origin")
            raise Decided("skipped", "alive_on_origin", f"{where} holds a live scope for the stream")
        return client

    def _check_alertmanager(self, alert: Alert) -> None:
        """Skip what an operator silenced (or an inhibition hides) since the notification left."""
        if self.alertmanager is None:
            return
        try:
            verdict = self.alertmanager.suppression(alert)
        except AlertmanagerUnavailableError as exc:
            raise Decided("deferred", "alertmanager_unavailable", str(exc)[:200]) from None
        if verdict is not None:
            raise Decided("skipped", verdict)

    def _guard(self, target: Target, outcome: Outcome, revalidator: Revalidator, calls, dead_node: bool,
               node: str | None) -> None:
        """Room lists on the rooms AMS reports, holds after evidence of life, then the blast radius (live
        nodes only); caps come last."""
        refused = denied_by(self.config.allow, self.config.deny, outcome.app, target.rooms, outcome.stream_id)
        if refused:
            raise Decided("skipped", "denied", refused)
        self._release_holds(outcome.ams, outcome.app, node, revalidator, calls)
        self._gate(outcome.ams, outcome.app, node)
        blast = self.config.blast_radius
        if not blast.enabled or dead_node:
            return
        flagged = self.flagged.count((outcome.ams, outcome.app), self.clock())
        if flagged < blast.min_count:
            return
        live = revalidator.live_count(outcome.app, calls, blast.live_count_ttl_seconds)
        if flagged > blast.max_share * max(live, 1):
            raise Decided("skipped", "blast_radius", f"{flagged} of {live} live streams flagged")

    def _gate(self, ams: str, app: str, node: str | None) -> None:
        """Refuse a write while evidence of life holds this app or this origin node."""
        found = self.holds.holding(ams, app, node)
        if found is not None:
            (scope, _, name), hold = found
            raise Decided("skipped", "held_after_life",
                          f"{scope} {name} held: {hold.reason} on {hold.app}/{hold.stream}; held until its heartbeat moves")

    def _release_holds(self, ams: str, app: str, node: str | None, revalidator: Revalidator, calls) -> None:
        """End the holds of this app / node whose witness moved on (see _moved_on)."""
        for _ in range(2):  # the app's hold, then the node's
            found = self.holds.holding(ams, app, node)
            if found is None or not self._moved_on(*found, revalidator, calls):
                return

    def _moved_on(self, key: tuple[str, str, str], hold: Hold, revalidator: Revalidator, calls) -> bool:
        """Release a hold whose witness stream wrote its heartbeat again, or is gone or finished; a clock-step
        hold once the node's registry heartbeat (its own clock) has passed the frozen heartbeat enough."""
        if hold.until_registry_ms:
            nodes = calls.run("get", "cluster nodes", revalidator.registry) or ()
            moved = next((n.last_update_ms for n in nodes if n.ip == key[2]), 0) >= hold.until_registry_ms
        else:
            again = calls.run("get", f"broadcast {hold.stream}", revalidator.client.get_broadcast, hold.app,
                              hold.stream).broadcast
            moved = again is None or again.status == "finished" or again.update_time_ms != hold.update_ms
        if moved:
            log.info("hold on %s %s released: %s/%s moved on", key[0], key[2], hold.app, hold.stream)
            self.holds.release(key, hold)
        return moved

    def review_holds(self) -> None:
        """Look at every hold once (a few reads each); run every HOLD_REVIEW_SECONDS by a thread of its own, so
        that a hold ends when its witness moves on even if no alert of that app or node comes any more."""
        for key, hold in self.holds.all().items():
            revalidator = self.revalidators.get(key[1])
            if revalidator is None:
                continue
            try:
                with deadline_scope(time.monotonic() + HOLD_REVIEW_SECONDS):
                    self._moved_on(key, hold, revalidator, revalidator.calls([]))
            except Decided:
                pass  # AMS did not answer: the next review reads again

    def _review_loop(self) -> None:
        while not self._closing.wait(HOLD_REVIEW_SECONDS):
            try:
                self.review_holds()
            except Exception:  # a bug must not end the reviews
                log.exception("reviewing the holds failed")

    def _life(self, outcome: Outcome, target: Target, revalidator: Revalidator, node: str | None,
              reason: str) -> None:
        """Evidence of life: hold the app and the origin node at once, before this alert's decision is written."""
        self.holds.hold(outcome.ams, outcome.app, node,
                        Hold(reason, target.app, target.stream_id, target.evidence_ms, revalidator.clock()))
        log.warning("evidence of life (%s) on %s/%s/%s: writes held there until its heartbeat moves",
                    reason, outcome.ams, target.app, target.stream_id)

    def _evict(self, alert: Alert, target: Target, outcome: Outcome, key: tuple,
               revalidator: Revalidator, calls, dead_node: bool, stopper, node: str | None) -> None:
        """Reserve a slot (the dead-node budget, or the caps), then evict or only say so in dry-run."""
        app_key, now = (outcome.ams, outcome.app), self.clock()
        caps = self.dead_node_caps if dead_node else self.caps
        full = caps.reserve((outcome.ams,) if dead_node else app_key, now)
        if full:
            raise Decided("skipped", "rate_limited", full)
        reason = "dead_node" if dead_node else "ok"
        if self.config.dry_run:
            self.handled.settle(key, "dry_run")
            raise Decided("dry_run", reason, target.plan(self.config.non_zombi_action, stop=stopper is not None))
        try:
            # Checked again just before writing: a long notification must stop as soon as the file appears.
            if self._kill_switch_on():
                raise Decided("skipped", "kill_switch", self.config.kill_switch_file or "")
            revalidator.evict(target, self.config.non_zombi_action, calls, stopper,
                              lambda why: self._life(outcome, target, revalidator, node, why),
                              self.holds.stop_lock(outcome.ams, outcome.app))
        except Decided as decision:
            if not calls.wrote:  # a slot is given back only when nothing reached AMS
                caps.release((outcome.ams,) if dead_node else app_key, now)
            if decision.reason == "not_found":
                self.handled.settle(key, "not_found")
            raise
        self.handled.settle(key, "evicted")
        done = self.clock()
        self.metrics.eviction_latency.observe(max(0.0, done - alert.starts_at.timestamp()))
        self.metrics.last_eviction.labels(ams=outcome.ams, app=outcome.app).set(done)
        raise Decided("evicted", reason, target.plan(self.config.non_zombi_action, stop=stopper is not None))

    def record(self, outcome: Outcome) -> None:
        """Decision counter and audit line."""
        ams, app = (outcome.ams, outcome.app) if outcome.mapped else ("", "")
        self.metrics.decisions.labels(ams=ams, app=app, outcome=outcome.outcome, reason=outcome.reason).inc()
        self.audit.write(outcome.as_dict())

    def close(self) -> None:
        """Stop the countdowns and the worker threads."""
        self._closing.set()
        self.countdowns.close()
        self._pool.close()


def _remediable(alert: Alert, firing_only: bool = True) -> bool:
    """A firing ghost or candidate alert that asks for remediation: the only kinds that cost AMS requests."""
    name = _label(alert, "alertname")
    return (alert.firing or not firing_only) and name in ALERTS and _label(alert, "remediation") == ALERTS[name]


def _settle_key(alert: Alert, outcome: Outcome) -> tuple:
    """One settled decision per (ams, app, stream, startsAt, room)."""
    return outcome.ams, outcome.app, outcome.stream_id, alert.starts_at.timestamp(), outcome.room or ""


def _candidate(alert: Alert) -> bool:
    """The early path's alert: armed, not acted on, when it arrives."""
    return _label(alert, "alertname") == CANDIDATE_ALERT
