"""One configured AMS: where it is, how to reach it, and how to judge its heartbeats."""

from __future__ import annotations

from dataclasses import dataclass, field

MAX_PAGE_SIZE = 250  # AMS caps every broadcast list page at 250 (DataStore.MAX_ITEM_IN_ONE_LIST)
# Two silent heartbeat periods is where AMS itself stops calling a stream live: isStreaming
# (2 x 5 s) on 2.8.x, STREAM_TIMEOUT_MS (2 x 10 s) from 2.13. Three periods would add 5-10 s
# to every ghost's life and, with 10 s scrape and evaluation intervals, miss the p95 targets.
DEFAULT_STALE_HEARTBEATS = 2
# webRTCClientStartTimeoutMs (AppSettings L1464-1470 @2.8.2, L875-881 @3.0.3, 10000 by default): the
# window in which a publisher whose network blinked may resume its session with the same record.
DEFAULT_RECONNECT_GRACE_SECONDS = 10.0


@dataclass(frozen=True)
class AmsServer:
    """One entry of the `ams:` list: where an AMS is, how to reach it and how to judge its heartbeats."""

    name: str
    url: str
    apps: tuple[str, ...]
    jwt_secret: str | None = field(default=None, repr=False)
    jwt_token: str | None = field(default=None, repr=False)
    jwt_ttl_seconds: float = 60.0
    heartbeat_seconds: float | None = None
    stale_heartbeats: int = DEFAULT_STALE_HEARTBEATS
    reconnect_grace_seconds: float = DEFAULT_RECONNECT_GRACE_SECONDS
    timeout_seconds: float = 5.0
    page_size: int = MAX_PAGE_SIZE
    max_concurrency: int = 4
    ca_file: str | None = None
    tls_insecure_skip_verify: bool = False
