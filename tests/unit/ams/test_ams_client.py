"""AMS client against recorded-shape responses of v2.8.2 and v3.0.0 (httpx.MockTransport)."""

from __future__ import annotations

import json
import logging
import threading
import time

import httpx
import jwt
import pytest

from ams.client import AmsAuthError, AmsError, AmsIncompleteError, AmsMalformedError, AmsUnavailableError
from fakeams import FIXTURES, FakeAms, fixture, make_records

APP = "WebRTCAppEE"
T282 = 1709200305.0
T300 = 1775000000.0
KEY = "a-jwt-secret-of-at-least-32-bytes!"


def test_version_is_detected_once_and_cached(fake282, connect):
    client = connect(fake282)
    first, second = client.version(APP), client.version(APP)
    assert (first.name, first.major, first.minor, first.patch, first.edition) == ("2.8.2", 2, 8, 2, "enterprise")
    assert first is second
    assert fake282.paths().count(f"/{APP}/rest/v2/version") == 1


def test_version_flags_follow_the_reference_timeline(fake282, fake300, connect):
    old, new = connect(fake282).version(APP), connect(fake300).version(APP)
    assert (old.heartbeat_seconds, new.heartbeat_seconds) == (5.0, 10.0)
    assert old.has_conference_rooms and old.has_subtrack_ids and not old.computed_status
    assert not new.has_conference_rooms and not new.has_subtrack_ids and new.computed_status
    assert (old.bearer_prefix, new.bearer_prefix) == (False, True)
    assert (old.delete_subtracks_param, new.delete_subtracks_param) == (False, True)
    assert (old.partial_put_safe, new.partial_put_safe) == (False, True)


def test_unparseable_version_takes_the_safe_side_and_says_so(fake282, connect, caplog):
    fake282.version_body = {"versionName": "nightly-build", "versionType": "Community Edition"}
    with caplog.at_level(logging.WARNING):
        version = connect(fake282).version(APP)
    assert not version.known and version.name == "nightly-build" and version.edition == "community"
    assert version.heartbeat_seconds == 10.0 and not version.bearer_prefix and version.delete_subtracks_param
    assert "not recognised" in caplog.text


def test_snapshot_of_v282_joins_subtrack_ids_and_conference_rooms(fake282, connect):
    snap = connect(fake282).snapshot(APP)
    assert len(snap.broadcasts) == 8 and snap.server_time == T282
    assert dict(snap.rooms) == {"room1": frozenset({"f3kQ9xLmPa2W", "g7hGhost0001", "danglingId99"})}
    assert f"/{APP}/rest/v2/broadcasts/conference-rooms/list/0/250" in fake282.paths()
    alice = next(b for b in snap.broadcasts if b.stream_id == "f3kQ9xLmPa2W")
    assert (alice.main_track_id, alice.update_time_ms, alice.webrtc_viewers, alice.origin) == (
        "room1", 1709200303120, 3, "10.0.1.23")


def test_snapshot_of_v300_finds_members_by_main_track_id(fake300, connect):
    snap = connect(fake300).snapshot(APP)
    assert dict(snap.rooms) == {"room1": frozenset({"f3kQ9xLmPa2W", "g7hGhost0001"})}
    assert not any("conference-rooms" in p for p in fake300.paths())
    room = next(b for b in snap.broadcasts if b.stream_id == "room1")
    assert room.virtual is True and room.subtrack_ids is None
    ghost = next(b for b in snap.broadcasts if b.stream_id == "g7hGhost0001")
    assert (ghost.status, ghost.received_bytes) == ("terminated_unexpectedly", 98765432)


@pytest.mark.parametrize("total", [0, 1, 249, 250, 251, 500, 1003])
def test_paging_collects_every_record_once(connect, total):
    fake = FakeAms(records=make_records(total))
    snap = connect(fake).snapshot(APP)
    assert sorted(b.stream_id for b in snap.broadcasts) == [f"s{i:06d}" for i in range(total)]
    offsets = sorted(int(p.split("/")[-2]) for p in fake.paths() if "/broadcasts/list/" in p)
    assert offsets == list(range(0, total + 1, 250))


def test_paging_copes_with_a_server_cap_below_the_page_size(connect):
    fake = FakeAms(records=make_records(530), cap=100)
    snap = connect(fake).snapshot(APP)
    assert len(snap.broadcasts) == 530


def test_paging_works_without_count(connect):
    fake = FakeAms(records=make_records(777))
    fake.fail(r"/broadcasts/count$", httpx.Response(500))
    snap = connect(fake, max_concurrency=3).snapshot(APP)
    assert len(snap.broadcasts) == 777


def test_paging_keeps_going_when_records_appear_after_count(connect):
    # Within the margin past /count (a tenth, at least one page): streams created during the scrape.
    fake = FakeAms(records=make_records(340))
    fake.fail(r"/broadcasts/count$", httpx.Response(200, json={"number": 100}))
    assert len(connect(fake).snapshot(APP).broadcasts) == 340


def test_pages_are_fetched_concurrently_but_bounded(connect):
    fake = FakeAms(records=make_records(2500))
    lock, state = threading.Lock(), {"now": 0, "max": 0}
    inner = fake.handle

    def slow(request):
        with lock:
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
        time.sleep(0.02)
        with lock:
            state["now"] -= 1
        return inner(request)

    fake.handle = slow
    assert len(connect(fake, max_concurrency=3).snapshot(APP).broadcasts) == 2500
    assert 2 <= state["max"] <= 3 + 1  # +1: the first page runs in the caller while /count runs in the pool


def test_server_ignoring_the_offset_is_malformed(connect):
    fake = FakeAms(records=make_records(300))
    first_page = fake._reply(200, list(fake.records.values())[:250])
    fake.fail(r"/list/", first_page)
    with pytest.raises(AmsMalformedError):
        connect(fake).snapshot(APP)


def test_an_empty_list_is_an_empty_app(connect):
    assert connect(FakeAms()).snapshot(APP).broadcasts == ()


@pytest.mark.parametrize("body", [b"", b"null"])
def test_no_list_or_null_is_a_failed_collection_not_an_empty_app(connect, body):
    fake = FakeAms()
    fake.fail(r"/list/", httpx.Response(204 if not body else 200, content=body))
    with pytest.raises(AmsIncompleteError) as caught:
        connect(fake).snapshot(APP)
    assert caught.value.reason == "incomplete" and isinstance(caught.value, AmsUnavailableError)


@pytest.mark.parametrize(
    ("response", "error"),
    [
        (httpx.Response(503), AmsUnavailableError),
        (httpx.Response(500, content=b"oops"), AmsUnavailableError),
        (httpx.ConnectError("refused"), AmsUnavailableError),
        (httpx.ReadTimeout("slow"), AmsUnavailableError),
        (httpx.Response(403, content=b"Not allowed IP"), AmsAuthError),
        (httpx.Response(400), AmsError),
        (httpx.Response(302, headers={"Location": "/login"}), AmsError),
        (httpx.Response(200, content=b"<html>"), AmsMalformedError),
        (httpx.Response(200, content=b'{"not": "a list"}'), AmsMalformedError),
        (httpx.Response(200, content=b"[" * 100000), AmsMalformedError),
    ],
)
def test_failures_map_to_typed_errors(connect, response, error):
    fake = FakeAms()
    fake.fail(r"/list/", response)
    with pytest.raises(error):
        connect(fake).snapshot(APP)


def test_malformed_records_are_skipped_and_counted(connect):
    records = make_records(3) + [None, 7, {"name": "no id"}, {"streamId": 12}, {"streamId": "x" * 999}]
    fake = FakeAms()
    fake.fail(r"/list/0/", httpx.Response(200, json=records))
    snap = connect(fake).snapshot(APP)
    assert len(snap.broadcasts) == 3 and snap.rejected_records == 5


def test_server_time_is_the_earliest_list_date(connect):
    fake = FakeAms(records=make_records(600))
    inner, list_times = fake.handle, []

    def ticking(request):
        fake.now += 1
        if "/broadcasts/list/" in request.url.path:
            list_times.append(fake.now)
        return inner(request)

    fake.handle = ticking
    snap = connect(fake, max_concurrency=1).snapshot(APP)
    assert len(list_times) == 3 and snap.server_time == min(list_times)


def test_deadline_bounds_a_slow_app(connect):
    fake = FakeAms(records=make_records(3000))
    inner = fake.handle
    fake.handle = lambda request: (time.sleep(0.1), inner(request))[1]
    client = connect(fake, timeout_seconds=0.3, max_concurrency=1)
    started = time.monotonic()
    with pytest.raises(AmsUnavailableError):
        client.snapshot(APP)
    assert time.monotonic() - started < 0.6


def _authorization(fake: FakeAms) -> list[str]:
    return [r.headers.get("authorization") for r in fake.requests]


def test_minted_token_is_raw_on_v282(connect, tmp_path):
    fake = FakeAms.from_fixtures("2.8.2", jwt_secret=KEY)
    connect(fake, jwt_secret=KEY, clock=lambda: T282).snapshot(APP)
    headers = _authorization(fake)
    assert headers and all(not h.startswith("Bearer ") for h in headers)
    claims = jwt.decode(headers[-1], KEY, algorithms=["HS256"], options={"verify_exp": False})
    assert set(claims) == {"exp"} and T282 < claims["exp"] <= T282 + 60


def test_minted_token_gets_bearer_once_v300_is_known(connect):
    fake = FakeAms.from_fixtures("3.0.0", jwt_secret=KEY)
    connect(fake, jwt_secret=KEY, clock=lambda: T300).snapshot(APP)
    headers = _authorization(fake)
    assert not headers[0].startswith("Bearer ")  # the version request: raw works on every version
    assert all(h.startswith("Bearer ") for h in headers[1:])


def test_static_token_is_sent_as_configured(connect):
    token = jwt.encode({"exp": 4102444800}, KEY, algorithm="HS256")
    fake = FakeAms.from_fixtures("2.8.2", jwt_secret=KEY)
    connect(fake, jwt_token=token).snapshot(APP)
    assert set(_authorization(fake)) == {token}


def test_wrong_secret_is_an_auth_error(connect):
    fake = FakeAms.from_fixtures("2.8.2", jwt_secret=KEY)
    with pytest.raises(AmsAuthError):
        connect(fake, jwt_secret="another-secret-of-at-least-32-bytes").snapshot(APP)


def test_token_expiry_follows_ams_clock_not_ours(connect):
    fake = FakeAms.from_fixtures("2.8.2", jwt_secret=KEY)
    fake.now = T282 + 600  # AMS runs 10 minutes ahead: a token minted on our clock is already expired there
    snap = connect(fake, jwt_secret=KEY, clock=lambda: T282).snapshot(APP)
    assert snap.server_time == T282 + 600
    assert [r.url.path for r in fake.requests[:2]] == [f"/{APP}/rest/v2/version"] * 2  # one retry after 403


def test_get_broadcast_returns_none_on_404(fake282, connect):
    client = connect(fake282)
    found, missing = client.get_broadcast(APP, "f3kQ9xLmPa2W"), client.get_broadcast(APP, "nope")
    assert found.broadcast.name == "Alice" and found.server_time == T282
    assert missing.broadcast is None and missing.server_time == T282


def test_ids_cannot_escape_their_path_segment(fake282, connect):
    connect(fake282).get_broadcast(APP, "../../rest/v2/x?y")
    assert fake282.requests[-1].url.raw_path.endswith(b"/broadcasts/..%2F..%2Frest%2Fv2%2Fx%3Fy")


def test_room_members_on_v282_join_both_models(fake282, connect):
    assert connect(fake282).get_room_members(APP, "room1") == {"f3kQ9xLmPa2W", "g7hGhost0001", "danglingId99"}


def test_room_members_on_v300_come_from_subtracks(fake300, connect):
    client = connect(fake300)
    assert client.get_room_members(APP, "room1") == {"f3kQ9xLmPa2W", "g7hGhost0001"}
    assert client.get_room_members(APP, "nope") == set()
    assert f"/{APP}/rest/v2/broadcasts/room1/subtracks/0/250" in fake300.paths()


def test_delete_passes_delete_subtracks_false_where_it_exists(fake282, fake300, connect):
    assert connect(fake300).delete_broadcast(APP, "room1").success
    assert fake300.requests[-1].url.params["deleteSubtracks"] == "false"
    assert "f3kQ9xLmPa2W" in fake300.records  # the members survive their room's deletion
    assert connect(fake282).delete_broadcast(APP, "g7hGhost0001").success
    assert "deleteSubtracks" not in fake282.requests[-1].url.params


def test_stop_never_stops_a_rooms_members_on_v300(fake300, connect):
    result = connect(fake300).stop_broadcast(APP, "g7hGhost0001")
    assert fake300.requests[-1].url.params["stopSubtracks"] == "false"
    assert result.success is False  # terminated_unexpectedly: nothing left to stop


def test_write_failure_is_reported_from_the_body(fake282, connect):
    result = connect(fake282).delete_broadcast(APP, "nope")
    assert result.success is False and result.status_code == 200
    assert fixture("v2.8.2_result_stop_unknown.json")["body"]["success"] is False


def test_finish_on_v282_puts_the_whole_fresh_record(connect):
    fake = FakeAms.from_fixtures("2.8.2")
    assert connect(fake).finish_broadcast(APP, "room1").success
    body = json.loads(fake.requests[-1].content)
    assert fake.requests[-1].method == "PUT" and body["status"] == "finished"
    assert body["subTrackStreamIds"] == ["f3kQ9xLmPa2W", "g7hGhost0001"]
    assert fake.records["room1"]["subTrackStreamIds"] == ["f3kQ9xLmPa2W", "g7hGhost0001"]


def test_finish_on_v300_puts_only_the_status(fake300, connect):
    assert connect(fake300).finish_broadcast(APP, "g7hGhost0001").success
    assert json.loads(fake300.requests[-1].content) == {"status": "finished"}
    assert fake300.requests[-1].headers["content-type"] == "application/json"


def test_finish_refuses_on_an_unrecognised_version(fake282, connect):
    fake282.version_body = {"versionName": "?"}
    with pytest.raises(AmsError):
        connect(fake282).finish_broadcast(APP, "g7hGhost0001")
    assert fake282.paths("PUT") == []


def test_remove_subtrack_then_room_member_on_v282(fake282, connect):
    client = connect(fake282)
    assert client.remove_subtrack(APP, "room1", "g7hGhost0001").success
    assert client.remove_room_member(APP, "room1", "g7hGhost0001").success
    assert fake282.records["room1"]["subTrackStreamIds"] == ["f3kQ9xLmPa2W"]
    assert fake282.conference_rooms["room1"]["roomStreamList"] == ["f3kQ9xLmPa2W", "danglingId99"]
    missing = client.remove_room_member(APP, "noRoom", "g7hGhost0001")
    assert (missing.success, missing.status_code) == (False, 404)


def test_remove_room_member_is_not_applicable_on_v300(fake300, connect):
    result = connect(fake300).remove_room_member(APP, "room1", "g7hGhost0001")
    assert (result.success, result.status_code) == (False, 404)
    assert fake300.paths("DELETE") == []


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("v*.json")))
def test_fake_ams_answers_like_the_recorded_responses(name):
    recorded = fixture(name)
    fake = FakeAms.from_fixtures(recorded["ams_version"])
    method, path = recorded["request"].split(" ", 1)
    response = httpx.Client(transport=fake.transport(), base_url="http://ams.test").request(method, path)
    assert response.status_code == recorded["status"]
    assert response.json() == recorded["body"]
    assert response.headers["Date"] == recorded["headers"]["Date"]


def test_a_record_answered_for_another_id_is_malformed(fake282, connect):
    """A proxy or a broken AMS answering GET /{id} with another record must never be acted on."""
    other = next(b for b in fixture("v2.8.2_broadcasts_list.json")["body"] if b["streamId"] == "f3kQ9xLmPa2W")
    fake282.fail(r"/broadcasts/g7hGhost0001$", json.dumps(other).encode())
    with pytest.raises(AmsMalformedError, match="answered"):
        connect(fake282).get_broadcast(APP, "g7hGhost0001")
