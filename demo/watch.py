"""Polls a running stack and turns what changed into timeline events."""
from __future__ import annotations

import time
from typing import Callable

import httpx

from demo.timeline import Timeline, alert_events, alert_states, audit_event

# The early path's alert, then the ghost alert (the backstop), as the timeline shows them.
ALERTS = ("AntMediaGhostCandidate", "AntMediaGhostStream")
from stack import api


class Watcher:
    """Reads Alertmanager, the remediator's audit log and the simulator's ghost lifecycles."""

    def __init__(self, stack, timeline: Timeline, app: str):
        self.stack = stack
        self.timeline = timeline
        self.app = app
        self.ghosts: list[str] = []
        self._alerts: dict[str, dict[str, dict]] = {name: {} for name in ALERTS}
        self._audit_seen = 0
        self._lifecycle_seen: dict[str, set[str]] = {}

    def track(self, stream_id: str) -> None:
        """Follow a dropped participant's lifecycle."""
        if stream_id not in self.ghosts:
            self.ghosts.append(stream_id)
        self._lifecycle_seen[stream_id] = set()

    def poll(self) -> None:
        """One pass over every source."""
        self._poll_alerts()
        self._poll_audit()
        for stream in self.ghosts:
            self._poll_lifecycle(stream)

    def _poll_alerts(self) -> None:
        """The candidate and ghost alerts as Alertmanager holds them (firing, silenced, gone)."""
        try:
            alerts = api.alertmanager_alerts(self.stack.alertmanager_url, f'alertname=~"{"|".join(ALERTS)}"')
        except httpx.HTTPError:
            return  # a missed poll only delays a line; the next one catches up
        for name in ALERTS:
            now = alert_states(alerts, name)
            for kind, stream, detail in alert_events(self._alerts[name], now, name):
                self.timeline.add(kind, stream, detail)
            self._alerts[name] = now

    def _poll_audit(self) -> None:
        """New remediator decisions."""
        records = self.stack.audit()
        for record in records[self._audit_seen:]:
            self.timeline.add(*audit_event(record))
        self._audit_seen = len(records)

    def _poll_lifecycle(self, stream: str) -> None:
        """Ghost out of the room, record deleted, id free again."""
        lifecycle = self.stack.sim.lifecycle(self.app, stream)
        seen = self._lifecycle_seen.setdefault(stream, set())
        steps = (("unlisted_at", "unlisted", "no longer listed in the room"),
                 ("deleted_at", "deleted", "record deleted on AMS"),
                 ("rejoinable_at", "rejoinable", "the participant can publish this id again"))
        for attribute, kind, detail in steps:
            if getattr(lifecycle, attribute, None) is not None and kind not in seen:
                seen.add(kind)
                self.timeline.add(kind, stream, detail)

    def alerts_open(self) -> bool:
        """True while Alertmanager still holds a ghost alert."""
        return any(self._alerts.values())

    def wait(self, condition: Callable[[], bool], timeout: float, interval: float = 0.25) -> bool:
        """Poll until condition holds or timeout passes; True if it held."""
        deadline = time.monotonic() + timeout
        while True:
            self.poll()
            self.stack.check_running()
            if condition():
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(interval)

    def sleep(self, seconds: float) -> None:
        """Keep polling for a while."""
        self.wait(lambda: False, seconds)
