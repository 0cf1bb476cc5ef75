"""Per-alert decisions: the Outcome record and the exception that ends the pipeline."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Decided", "Outcome"]


class Decided(Exception):
    """Ends the pipeline for one alert with an outcome and a reason."""

    def __init__(self, outcome: str, reason: str, detail: str = "") -> None:
        super().__init__(f"{outcome}/{reason}")
        self.outcome, self.reason, self.detail = outcome, reason, detail


@dataclass
class Outcome:
    """What happened to one alert; also the audit record."""

    fingerprint: str
    ams: str
    app: str
    stream_id: str
    room: str | None
    outcome: str
    reason: str
    dry_run: bool
    detail: str = ""
    calls: list[dict[str, Any]] = field(default_factory=list)
    alertname: str = ""  # AntMediaGhostStream, or AntMediaGhostCandidate (the early path)
    # True once (ams, app) is a configured pair: only then do they become metric labels.
    mapped: bool = False

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (the webhook answer and the audit line)."""
        return {
            "fingerprint": self.fingerprint, "alertname": self.alertname, "ams": self.ams, "app": self.app,
            "stream_id": self.stream_id, "room": self.room, "decision": self.outcome,
            "reason": self.reason, "detail": self.detail, "dry_run": self.dry_run, "calls": self.calls,
        }
