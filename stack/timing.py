"""Timing profiles: accelerated (tests, demo) and production (benchmarks)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Timing:
    """Intervals of one run; the rule files are the same for every profile."""

    name: str
    scrape_interval: float          # Prometheus scrape interval, seconds
    scrape_timeout: float           # at most the interval; above the exporter's AMS timeout
    evaluation_interval: float      # Prometheus rule evaluation interval, seconds
    heartbeat_seconds: float | None  # simulated AMS heartbeat; None = the AMS version's own period
    ams_timeout_seconds: float      # exporter -> AMS timeout, below the scrape timeout
    # Simulated webRTCClientStartTimeoutMs and the config's reconnect_grace_seconds, scaled with
    # the heartbeat; None = AMS's default (10 s) on both sides.
    reconnect_grace_seconds: float | None = None


ACCELERATED = Timing("accelerated", scrape_interval=1.0, scrape_timeout=1.0, evaluation_interval=1.0,
                     heartbeat_seconds=1.0, ams_timeout_seconds=0.8, reconnect_grace_seconds=2.0)
# As rules/prometheus.example.yml ships: 10 s intervals, 8 s scrape timeout, AMS timeout 5 s.
PRODUCTION = Timing("production", scrape_interval=10.0, scrape_timeout=8.0, evaluation_interval=10.0,
                    heartbeat_seconds=None, ams_timeout_seconds=5.0)


def duration(seconds: float) -> str:
    """Seconds as a Prometheus/Alertmanager duration string (e.g. 1500ms, 10s)."""
    millis = round(seconds * 1000)
    if millis % 1000:
        return f"{millis}ms"
    return f"{millis // 1000}s"
