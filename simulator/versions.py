"""AMS version parsing and the behaviour switches of docs/ams.md, "Version timeline"."""
import re
from dataclasses import dataclass
from functools import cached_property

_VERSION = re.compile(r"^(\d+)\.(\d+)(?:\.(\d+))?(?:[-.].*)?$")


@dataclass(frozen=True)
class AmsVersion:
    """One AMS release and the behaviours that changed along the timeline."""

    major: int
    minor: int
    patch: int = 0

    @classmethod
    def parse(cls, text: str) -> "AmsVersion":
        """Parse '2.8.2', '3.0.0' or '2.13' (a build suffix is ignored)."""
        match = _VERSION.match(str(text).strip())
        if not match:
            raise ValueError(f"not an AMS version: {text!r} (expected e.g. 2.8.2 or 3.0.0)")
        major, minor, patch = (int(g) if g else 0 for g in match.groups())
        return cls(major, minor, patch)

    @cached_property
    def name(self) -> str:
        """The versionName AMS reports."""
        return f"{self.major}.{self.minor}.{self.patch}"

    def at_least(self, *parts: int) -> bool:
        """True when this release is at or after the given one."""
        return (self.major, self.minor, self.patch) >= tuple(parts + (0,) * (3 - len(parts)))

    @cached_property
    def heartbeat_seconds(self) -> float:
        """STAT_UPDATE_PERIOD_MS: 5 s in 2.8.x, 10 s from 2.9."""
        return 10.0 if self.at_least(2, 9) else 5.0

    @cached_property
    def has_conference_rooms(self) -> bool:
        """ConferenceRoom records and /conference-rooms endpoints exist until 3.0."""
        return not self.at_least(3)

    @cached_property
    def has_subtrack_ids(self) -> bool:
        """Main tracks store `subTrackStreamIds` until 3.0."""
        return not self.at_least(3)

    @cached_property
    def has_subtrack_endpoints(self) -> bool:
        """/{id}/subtracks and /{id}/active-subtracks exist from 3.0."""
        return self.at_least(3)

    @cached_property
    def partial_put(self) -> bool:
        """From 2.10.1 PUT updates only the fields in the body; before, it wipes others."""
        return self.at_least(2, 10, 1)

    @cached_property
    def bearer_prefix(self) -> bool:
        """From 2.12 the REST JWT filter strips a case-insensitive 'Bearer ' prefix."""
        return self.at_least(2, 12)

    @cached_property
    def computed_status(self) -> bool:
        """From 2.13 getStatus() reports terminated_unexpectedly for stale records."""
        return self.at_least(2, 13)

    @cached_property
    def has_virtual(self) -> bool:
        """The `virtual` main-track flag exists from 2.13."""
        return self.at_least(2, 13)

    @cached_property
    def has_subtrack_params(self) -> bool:
        """`?deleteSubtracks` / `?stopSubtracks` exist from 2.13 (both default true)."""
        return self.at_least(2, 13)

    @cached_property
    def has_conference_mode(self) -> bool:
        """`conferenceMode` is a Broadcast field in 2.10 to 2.17 only."""
        return self.at_least(2, 10) and not self.at_least(3)

    @cached_property
    def master_fields(self) -> bool:
        """The master-only Broadcast fields (width, rttMs, role, ...) are emitted from 3.0."""
        return self.at_least(3)

    @cached_property
    def writes_ingest_counters(self) -> bool:
        """From 2.13 every stats update writes receivedBytes, bitrate and duration."""
        # setQualityParameters L1653, L1671 @ams-v2.13.0; nothing sets them at @ams-v2.12.0
        return self.at_least(2, 13)

    @cached_property
    def source_keepalive(self) -> bool:
        """Until 2.9 a pulled source that is not alive still gets a speed-0.01 stats write every check."""
        # StreamFetcherManager.checkStreamFetchersStatus L471-488 @ams-v2.8.2; removed by e0c59fd (v2.9.0)
        return not self.at_least(2, 9)

    @cached_property
    def restarts_stale_fetchers(self) -> bool:
        """From 2.14 the fetcher check restarts a camera/stream source whose status reads terminated_unexpectedly."""
        # StreamFetcherManager.controlStreamFetchers L615-621 @ams-v3.0.3 (commit 5479032, v2.14.0)
        return self.at_least(2, 14)

    @cached_property
    def read_cache(self) -> bool:
        """From 2.14 MongoStore.get(id) is served from a per-node cache of 3 s."""
        # MongoStore L104-109, L254-274 @ams-v3.0.3 (commit a3b3e14, v2.14.0)
        return self.at_least(2, 14)

    @cached_property
    def closes_silent_ingest(self) -> bool:
        """From 2.14 MuxAdaptor closes an ingest whose last stats write is older than STREAM_TIMEOUT_MS."""
        # MuxAdaptor L1448-1458 @ams-v3.0.3 (commit ca403e2, first in v2.14.0); 2.8.2 relies on Red5's inactivity
        return self.at_least(2, 14)

    @cached_property
    def forward_needs_fresh_update(self) -> bool:
        """RestProxyFilter's streaming test: stored status plus an updateTime check before 2.13, else the computed
        status (which includes the same freshness test)."""
        # RestProxyFilter L101-104 + AMAA.isStreaming L960-964 @ams-v2.8.2; RestProxyFilter L100-102 @ams-v3.0.3
        return not self.computed_status

    @cached_property
    def node_dead_periods(self) -> int:
        """A ClusterNode reads dead after this many NODE_UPDATE_PERIODs (2 before 2.13, 4 from 2.13)."""
        # ClusterNode.getStatus L57-65 @ams-v2.8.2 (x2), L58-66 @ams-v3.0.3 (x4; commit 784c2b7, v2.13.0)
        return 4 if self.at_least(2, 13) else 2

    @cached_property
    def node_query_time(self) -> bool:
        """ClusterNode has dbQueryAveargeTimeMs from 2.13 (ClusterNode L28 @ams-v3.0.3, absent @ams-v2.8.2)."""
        return self.at_least(2, 13)
