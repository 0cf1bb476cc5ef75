"""One configured AMS: where it is, how to reach it, and how to judge its heartbeats."""

from __future__ import annotations

from typing import Annotated

import msgspec

MAX_PAGE_SIZE = 250  # AMS caps every broadcast list page at 250 (DataStore.MAX_ITEM_IN_ONE_LIST)
# Two silent heartbeat periods is where AMS itself stops calling a stream live: isStreaming
# (2 x 5 s) on 2.8.x, STREAM_TIMEOUT_MS (2 x 10 s) from 2.13. Three periods would add 5-10 s
# to every ghost's life and, with 10 s scrape and evaluation intervals, miss the p95 targets.
DEFAULT_STALE_HEARTBEATS = 2
# webRTCClientStartTimeoutMs (AppSettings L1464-1470 @2.8.2, L875-881 @3.0.3, 10000 by default): the
# window in which a publisher whose network blinked may resume its session with the same record.
DEFAULT_RECONNECT_GRACE_SECONDS = 10.0
# The REST base of one cluster node, `{ip}` its registry address: AMS's own RestProxyFilter forwards
# to http://{originAdress}:{defaultHttpPort}/ (RestProxyFilter L159 @2.8.2, L165 @3.0.3), 5080 by default.
DEFAULT_NODE_URL = "http://{ip}:5080"
# Red5 closes a silent RTMP connection after rtmp.max_inactivity (60000 ms in red5.properties;
# RTMPConnection L1826-1873 @2.8.2): until then a dropped RTMP publisher still holds its scope on 2.8.x.
DEFAULT_RTMP_INACTIVITY_SECONDS = 60.0
DEFAULT_MAX_RECORDS = 100_000
DEFAULT_MAX_RESPONSE_BYTES = 8 * 1024 * 1024
SECRET_FIELDS = ("jwt_secret", "jwt_token", "server_jwt_secret")

Name = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]+$", description="letters, digits, '_' or '-'")]
# AMS application names are folder names under webapps/: never "." or "..".
AppName = Annotated[str, msgspec.Meta(pattern=r"^(?!\.{1,2}$)[A-Za-z0-9_.-]+$")]


def _range(low: float, high: float) -> msgspec.Meta:
    """Inclusive bounds (NaN fails both)."""
    return msgspec.Meta(ge=low, le=high)


class AmsServer(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One entry of the `ams:` list: where an AMS is, how to reach it and how to judge its heartbeats."""

    name: Name
    url: str
    apps: Annotated[tuple[AppName, ...], msgspec.Meta(min_length=1)]
    # Secrets are filled from files or the environment by the config layer, never from YAML.
    jwt_secret: str | None = None
    jwt_token: str | None = None
    server_jwt_secret: str | None = None
    jwt_ttl_seconds: Annotated[float, _range(5.0, 86400.0)] = 60.0
    heartbeat_seconds: Annotated[float, _range(0.01, 3600.0)] | None = None
    stale_heartbeats: Annotated[int, _range(1, 1000)] = DEFAULT_STALE_HEARTBEATS
    reconnect_grace_seconds: Annotated[float, _range(0.0, 3600.0)] = DEFAULT_RECONNECT_GRACE_SECONDS
    timeout_seconds: Annotated[float, _range(0.05, 300.0)] = 5.0
    page_size: Annotated[int, _range(1, MAX_PAGE_SIZE)] = MAX_PAGE_SIZE
    max_concurrency: Annotated[int, _range(1, 64)] = 4
    # Records one list may hold, whatever /count says: bounds the requests and memory of a scrape
    # against a server that pages forever. AMS apps keep every finished or VoD record, so this is
    # far above a busy app's live streams (about 100 MB of records at the default).
    max_records: Annotated[int, _range(1, 10_000_000)] = DEFAULT_MAX_RECORDS
    # One AMS answer, decoded: a full page of 250 records at 32 KiB each, over ten times AMS's usual
    # 1-3 KiB record. Larger bodies are not read on.
    max_response_bytes: Annotated[int, _range(65536, 1 << 30)] = DEFAULT_MAX_RESPONSE_BYTES
    ca_file: str | None = None
    tls_insecure_skip_verify: bool = False
    # Cluster: where one node answers for itself (reads that decide a write, the stop), `{ip}` taken
    # only from AMS's node registry. Used only when the registry can be read (server_jwt_secret).
    node_url: str = DEFAULT_NODE_URL
    rtmp_inactivity_seconds: Annotated[float, _range(0.0, 3600.0)] = DEFAULT_RTMP_INACTIVITY_SECONDS

    def node_base(self, ip: str) -> str:
        """node_url for one registry address (IPv6 in brackets); the caller checked ip with is_node_address."""
        return self.node_url.replace("{ip}", f"[{ip}]" if ":" in ip else ip)

    def __repr__(self) -> str:
        """Like the default, with secrets masked."""
        shown = (f"{k}={'***' if k in SECRET_FIELDS and v else v!r}" for k, v in msgspec.structs.asdict(self).items())
        return f"AmsServer({', '.join(shown)})"
