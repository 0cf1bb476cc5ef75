"""Audit log: one JSON line per decision, to stdout or a file."""
from __future__ import annotations

import json
import sys
import threading
from datetime import datetime, timezone
from typing import Any, TextIO

__all__ = ["AuditLog", "open_audit_log"]


class AuditLog:
    """Writes decisions as JSON lines; thread-safe, flushed per line."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._lock = threading.Lock()

    def write(self, record: dict[str, Any]) -> None:
        """Append one decision, stamped with the local time."""
        line = {"time": datetime.now(timezone.utc).isoformat(timespec="milliseconds")}
        line.update(record)
        text = json.dumps(line, sort_keys=False, default=str, separators=(",", ":"))
        with self._lock:
            self.stream.write(text + "\n")
            self.stream.flush()

    def close(self) -> None:
        """Close a file (never stdout)."""
        if self.stream is not sys.stdout:
            self.stream.close()


def open_audit_log(target: str) -> AuditLog:
    """'-' for stdout, else append to a file."""
    if target == "-":
        return AuditLog(sys.stdout)
    return AuditLog(open(target, "a", encoding="utf-8"))
