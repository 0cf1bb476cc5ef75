"""Which streams a write received by the simulated AMS acted on: the base of every "wrongly touched" check."""
from dataclasses import dataclass

from stack.writes import describe_write, write_targets, wrongly_touched, writes_to


@dataclass
class Write:
    method: str
    path: str
    query: str = ""
    status_code: int = 200
    time: float = 0.0


BASE = "/WebRTCAppEE/rest/v2/broadcasts"


def test_stop_and_delete_act_on_the_stream_in_the_path():
    assert write_targets("POST", f"{BASE}/bob/stop") == {"bob"}
    assert write_targets("DELETE", f"{BASE}/bob") == {"bob"}


def test_subtrack_removal_acts_on_the_participant_not_the_room():
    assert write_targets("DELETE", f"{BASE}/standup/subtrack", "id=bob") == {"bob"}
    assert write_targets("DELETE", f"{BASE}/standup/subtrack", {"id": "bob"}) == {"bob"}


def test_conference_room_member_removal_acts_on_the_member():
    assert write_targets("DELETE", f"{BASE}/conference-rooms/standup/bob") == {"bob"}
    assert write_targets("DELETE", f"{BASE}/conference-rooms/standup") == {"standup"}


def test_deleting_or_updating_a_room_counts_as_touching_the_main_track():
    assert write_targets("DELETE", f"{BASE}/standup", "deleteSubtracks=false") == {"standup"}
    assert write_targets("PUT", f"{BASE}/standup") == {"standup"}


def test_writes_outside_the_ghosts_are_reported():
    writes = [Write("POST", f"{BASE}/bob/stop"), Write("DELETE", f"{BASE}/standup/subtrack", "id=bob"),
              Write("DELETE", f"{BASE}/alice"), Write("POST", "/_sim/drop")]
    assert wrongly_touched(writes, {"bob"}) == [writes[2]]
    assert writes_to(writes, "bob") == writes[:2]


def test_unknown_paths_touch_nothing():
    assert write_targets("POST", "/WebRTCAppEE/rest/v2/other") == set()


def test_a_write_to_a_ghost_after_it_published_again_is_wrong():
    writes = [Write("DELETE", f"{BASE}/bob", time=5.0), Write("DELETE", f"{BASE}/bob", "id=x", 404, time=9.0)]
    wrong = wrongly_touched(writes, {"bob"}, healthy_again={"bob": 8.0})
    assert [describe_write(w) for w in wrong] == [f"DELETE {BASE}/bob?id=x -> 404"]
