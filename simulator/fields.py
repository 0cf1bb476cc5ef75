"""Broadcast JSON field sets and defaults per version (docs/ams.md, "Broadcast fields"), nulls included."""
from .versions import AmsVersion

# v2.8.2 fields in the order AMS serializes them (Broadcast.java L26-356 @2.8.2); values are the Broadcast defaults.
BASE_FIELDS: tuple[tuple[str, object], ...] = (
    ("streamId", None), ("status", "created"), ("playListStatus", None), ("type", "liveStream"),
    ("publishType", None), ("name", None), ("description", None), ("publish", True), ("date", 0),
    ("plannedStartDate", 0), ("plannedEndDate", 0), ("duration", 0), ("endPointList", None),
    ("playListItemList", None), ("publicStream", True), ("is360", False), ("listenerHookURL", None),
    ("category", None), ("ipAddr", None), ("username", None), ("password", None), ("quality", None),
    ("speed", 0.0), ("streamUrl", None), ("originAdress", None), ("mp4Enabled", 0), ("webMEnabled", 0),
    ("expireDurationMS", 0), ("rtmpURL", None), ("zombi", False), ("pendingPacketSize", 0),
    ("hlsViewerCount", 0), ("dashViewerCount", 0), ("webRTCViewerCount", 0), ("rtmpViewerCount", 0),
    ("startTime", 0), ("receivedBytes", 0), ("bitrate", 0), ("userAgent", "N/A"), ("latitude", None),
    ("longitude", None), ("altitude", None), ("mainTrackStreamId", None), ("subTrackStreamIds", []),
    ("absoluteStartTimeMs", 0), ("webRTCViewerLimit", -1), ("hlsViewerLimit", -1), ("dashViewerLimit", -1),
    ("subFolder", None), ("currentPlayIndex", 0), ("metaData", None), ("playlistLoopEnabled", True),
    ("updateTime", 0),
)

# Fields master has and v2.8.2 lacks (docs/ams.md, "Broadcast fields").
MASTER_FIELDS: tuple[tuple[str, object], ...] = (
    ("seekTimeInMs", 0), ("subtracksLimit", -1), ("width", 0), ("height", 0), ("encoderQueueSize", 0),
    ("dropPacketCountInIngestion", 0), ("dropFrameCountInEncoding", 0), ("packetLostRatio", 0.0),
    ("packetsLost", 0), ("jitterMs", 0), ("rttMs", 0), ("remoteIp", None), ("role", None),
    ("hlsParameters", None), ("autoStartStopEnabled", False), ("encoderSettingsList", None),
    ("virtual", False), ("maxIdleTime", 0), ("anyoneWatching", False),
)

# v2.8.2 update paths copy these from the request object even when the body omits them (§3.3).
WIPED_BY_PARTIAL_PUT = ("subTrackStreamIds", "receivedBytes", "bitrate", "userAgent",
                        "webRTCViewerLimit", "hlsViewerLimit", "dashViewerLimit")

# ... and MongoStore.updateBroadcastFields also sets these unconditionally (MongoStore L810-820 @ams-v2.8.2).
MONGO_WIPED_BY_PARTIAL_PUT = ("metaData", "updateTime", "playlistLoopEnabled", "currentPlayIndex")

VIEWER_FIELDS = ("hlsViewerCount", "dashViewerCount", "webRTCViewerCount", "rtmpViewerCount")
LIVE_STATUSES = ("broadcasting", "preparing")
TYPES = ("liveStream", "ipCamera", "streamSource", "VoD", "playlist")


def field_defaults(version: AmsVersion) -> dict:
    """The full field set of `version` with default values, in serialization order."""
    fields = dict(BASE_FIELDS)
    if not version.has_subtrack_ids:
        del fields["subTrackStreamIds"]
    if version.has_conference_mode:
        fields["conferenceMode"] = None
    if version.master_fields:
        fields.update(MASTER_FIELDS)
    elif version.has_virtual:
        fields["virtual"] = False
    return fields


def template(version: AmsVersion) -> dict:
    """A fresh record dict holding every field of `version` (lists copied)."""
    return {k: (list(v) if isinstance(v, list) else v) for k, v in field_defaults(version).items()}
