"""The two AMS data stores and where they differ: MapDB (standalone default) and MongoDB (cluster default).

Everything else in the simulator is the same for both; these are the differences the product can see.
"""
from .reply import Reply, empty, error_page, ok
from .versions import AmsVersion

STORES = ("mapdb", "mongodb")
# DataStore.MAX_ITEM_IN_ONE_LIST (DataStore L41 @ams-v2.8.2)
MAX_ITEM_IN_ONE_LIST = 250


class Store:
    """Store semantics: list order, write results, subtrack removal, subtrack paging, query failures."""

    def __init__(self, kind: str):
        if kind not in STORES:
            raise ValueError(f"unknown store {kind!r}; expected one of {', '.join(STORES)}")
        self.kind = kind

    @property
    def mongo(self) -> bool:
        """True for MongoDB."""
        return self.kind == "mongodb"

    @property
    def key_order(self) -> bool:
        """MapDB keeps broadcasts in a tree map sorted by streamId (MapDBStore L56 @ams-v2.8.2) and lists
        map.values() in that order (MapBasedDataStore.getBroadcastListV2 L238-263 @ams-v2.8.2); MongoDB lists
        in natural (insertion) order, unsorted unless sort_by is given (MongoStore.getBroadcastList L374-418 @ams-v2.8.2)."""
        return self.kind == "mapdb"

    @property
    def subtrack_cap(self) -> int | None:
        """Page cap of GET /{main}/subtracks: MapDB crops to 250 (MapBasedDataStore.getSubtracks L1329-1352 ->
        DataStore.sortAndCropBroadcastList L1250 @ams-v3.0.3); MongoStore.getSubtracks applies no cap."""
        return MAX_ITEM_IN_ONE_LIST if self.kind == "mapdb" else None

    def update_succeeds(self, changed: bool) -> bool:
        """updateBroadcastFields' answer for an existing record: MongoDB returns getModifiedCount()==1
        (MongoStore L824 @ams-v2.8.2, L1100 @ams-v3.0.3), so a write that changes nothing is a failure;
        MapDB returns true whenever the record exists (MapBasedDataStore L499-516 @ams-v2.8.2)."""
        return changed or not self.mongo

    def remove_subtrack(self, main_fields: dict | None, sub_id: str) -> bool:
        """removeSubTrack on a main track's subTrackStreamIds.

        MapDB removes the first copy only (List.remove(Object)) and fails when there is none
        (MapBasedDataStore L1023-1037 @ams-v2.8.2); MongoDB pulls every copy ($pullAll) and succeeds
        whenever the main track matched, whether or not it listed the id (MongoStore L1361-1377 @ams-v2.8.2).
        """
        if main_fields is None:
            return False
        ids = list(main_fields.get("subTrackStreamIds") or [])
        if self.mongo:
            main_fields["subTrackStreamIds"] = [s for s in ids if s != sub_id]
            return True
        if sub_id not in ids:
            return False
        ids.remove(sub_id)
        main_fields["subTrackStreamIds"] = ids
        return True

    def failed_list(self, version: AmsVersion, kind: str) -> Reply:
        """The reply of a list endpoint whose query threw (kind: broadcasts, rooms or subtracks)."""
        if not self.mongo:
            # MapDB reads an in-process map: the simulator lets a failure there reach Jersey as a 500
            return error_page(500, "Internal Server Error")
        if kind == "subtracks":
            # MongoStore.getSubtracks has no catch (L2063-2097 @ams-v3.0.3): the exception reaches Jersey
            return error_page(500, "Internal Server Error")
        if version.at_least(3):
            # getBroadcastList catches and returns the empty list it started with (MongoStore L556-603 @ams-v3.0.3)
            return ok([])
        # getBroadcastList and getConferenceRoomList catch and return null (MongoStore L414-418, L331-359 @ams-v2.8.2),
        # which Jersey answers with HTTP 204 and no body
        return empty(204)
