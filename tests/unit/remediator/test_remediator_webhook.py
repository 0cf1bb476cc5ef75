"""POST /alerts with in-memory AMS fakes: answers, guards, idempotency, audit, metrics."""
import json
import shutil
import subprocess
import threading

import httpx
import pytest
from remediator_support import (
    APP,
    TOKEN,
    Clock,
    FakeAms,
    alert,
    app_client,
    audit_lines,
    build_deps,
    notification,
    post,
    remediator_config,
    sample,
)

from remediator.alerts import AlertmanagerCheck

DECISIONS = "antmedia_remediator_decisions_total"


@pytest.fixture
def ams():
    fake = FakeAms()
    fake.add("ghost1")
    fake.add("alive1", age=1.0)
    return fake


def _deps(ams, **config):
    return build_deps({"main": ams}, config=remediator_config(**config))


def _decisions(response):
    return [(o["stream_id"], o["decision"], o["reason"]) for o in response.get_json()["outcomes"]]


def test_missing_or_wrong_token_is_401_and_nothing_runs(ams):
    deps, audit = _deps(ams)
    client = app_client(deps)
    assert post(client, notification(alert("ghost1")), token=None).status_code == 401
    assert post(client, notification(alert("ghost1")), token=TOKEN + "x").status_code == 401
    response = client.post("/alerts", data="{}", headers={"Authorization": f"Basic {TOKEN}"})
    assert response.status_code == 401 and ams.writes == [] and audit.getvalue() == ""
    assert sample(deps, "antmedia_remediator_webhook_requests_total", code="401") == 3


def test_malformed_json_is_400(ams):
    deps, _ = _deps(ams)
    response = post(app_client(deps), None, raw=b'{"alerts": [')
    assert response.status_code == 400 and "not JSON" in response.get_json()["error"]


def test_oversize_body_is_413_before_parsing(ams):
    deps, _ = _deps(ams, max_body_bytes=1000)
    body = notification(*[alert(f"s{i}") for i in range(20)])
    assert post(app_client(deps), body).status_code == 413
    assert ams.writes == []


def test_resolved_alert_deletes_nothing(ams):
    deps, audit = _deps(ams)
    response = post(app_client(deps), notification(alert("ghost1", status="resolved")))
    assert response.status_code == 200 and _decisions(response) == [("ghost1", "skipped", "resolved")]
    assert ams.writes == [] and "ghost1" in ams.records
    assert audit_lines(audit)[0]["decision"] == "skipped"


def test_mixed_group_acts_only_on_firing_delete_stream_alerts(ams):
    deps, _ = _deps(ams)
    body = notification(alert("ghost1"), alert("alive1", status="resolved"),
                        alert("ghost1", remediation="notify_only", starts_at="2026-11-25T00:01:00Z"))
    response = post(app_client(deps), body)
    assert _decisions(response) == [("ghost1", "evicted", "ok"), ("alive1", "skipped", "resolved"),
                                    ("ghost1", "skipped", "not_remediable")]


def test_healthy_stream_named_in_a_firing_alert_is_not_touched(ams):
    deps, _ = _deps(ams)
    response = post(app_client(deps), notification(alert("alive1")))
    assert _decisions(response) == [("alive1", "skipped", "not_ghost")]
    assert ams.writes == []


def test_main_track_is_never_touched(ams):
    deps, _ = _deps(ams)
    response = post(app_client(deps), notification(alert("room1", room=None)))
    assert _decisions(response) == [("room1", "skipped", "main_track")]
    assert ams.writes == []


def test_unknown_ams_and_unknown_app_are_skipped_without_labels_in_metrics(ams):
    deps, _ = _deps(ams)
    body = notification(alert("ghost1", ams="elsewhere"), alert("ghost1", app="OtherApp"))
    response = post(app_client(deps), body)
    assert _decisions(response) == [("ghost1", "skipped", "unknown_ams"), ("ghost1", "skipped", "unknown_app")]
    assert sample(deps, DECISIONS, ams="", app="", outcome="skipped", reason="unknown_ams") == 1
    assert ams.writes == []


@pytest.mark.parametrize("labels", [
    {"stream_id": "http://evil.example/x"},
    {"room": "http://evil.example/room"},
    {"app": "../../rest"},
    {"ams": "http://127.0.0.1:1"},
    {"stream_id": ".."},
])
def test_labels_carrying_urls_or_paths_cause_no_request(ams, labels):
    deps, _ = _deps(ams)
    stream = labels.pop("stream_id", "ghost1")
    response = post(app_client(deps), notification(alert(stream, **labels)))
    (decision,) = _decisions(response)
    assert decision[1:] in (("skipped", "invalid_labels"), ("skipped", "unknown_ams"), ("failed", "invalid_id"))
    assert ams.writes == [] and response.get_json()["outcomes"][0]["calls"] == []


def test_triple_delivery_evicts_once_and_answers_2xx_each_time(ams):
    deps, _ = _deps(ams)
    client = app_client(deps)
    codes = [post(client, notification(alert("ghost1"))).status_code for _ in range(3)]
    assert codes == [200, 200, 200]
    assert ams.writes.count(("delete", "ghost1")) == 1
    assert sample(deps, "antmedia_remediator_duplicates_total") == 2


def test_concurrent_delivery_from_an_ha_pair_evicts_once(ams):
    deps, _ = _deps(ams)
    client = app_client(deps)
    codes = []
    threads = [threading.Thread(target=lambda: codes.append(post(client, notification(alert("ghost1"))).status_code))
               for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert codes == [200] * 4 and ams.writes.count(("delete", "ghost1")) == 1


def test_dry_run_writes_nothing_but_decides_and_counts_the_same(ams):
    deps, audit = _deps(ams, dry_run=True)
    response = post(app_client(deps), notification(alert("ghost1"), alert("alive1")))
    assert _decisions(response) == [("ghost1", "dry_run", "ok"), ("alive1", "skipped", "not_ghost")]
    assert ams.writes == [] and "ghost1" in ams.records
    assert sample(deps, "antmedia_remediator_dry_run") == 1
    assert {line["dry_run"] for line in audit_lines(audit)} == {True}
    assert "delete" in response.get_json()["outcomes"][0]["detail"]


def test_ams_down_answers_503_without_writing_then_evicts_after_recovery(ams):
    deps, _ = _deps(ams)
    client = app_client(deps)
    ams.down = True
    response = post(client, notification(alert("ghost1")))
    assert response.status_code == 503 and _decisions(response) == [("ghost1", "deferred", "ams_unavailable")]
    ams.down = False
    assert ams.writes == []
    response = post(client, notification(alert("ghost1")))
    assert response.status_code == 200 and _decisions(response) == [("ghost1", "evicted", "ok")]


def test_ams_not_found_counts_as_done(ams):
    deps, _ = _deps(ams)
    client = app_client(deps)
    response = post(client, notification(alert("vanished")))
    assert _decisions(response) == [("vanished", "skipped", "not_found")]
    assert _decisions(post(client, notification(alert("vanished")))) == [("vanished", "skipped", "duplicate")]


def test_global_cap_limits_evictions_per_window():
    ams = FakeAms()
    for i in range(5):
        ams.add(f"g{i}")
    clock = Clock()
    deps, _ = build_deps({"main": ams}, clock=clock, config=remediator_config(
        concurrency=1, caps={"window_seconds": 60, "max_evictions": 2, "max_evictions_per_app": None}))
    client = app_client(deps)
    response = post(client, notification(*[alert(f"g{i}") for i in range(4)]))
    assert [d[1:] for d in _decisions(response)] == [("evicted", "ok")] * 2 + [("skipped", "rate_limited")] * 2
    clock.now += 61
    assert _decisions(post(client, notification(alert("g2"))))[0][1] == "evicted"


def test_per_app_cap_applies_to_one_app_only():
    ams = FakeAms()
    for i in range(3):
        ams.add(f"g{i}")
    deps, _ = build_deps({"main": ams}, config=remediator_config(
        concurrency=1, caps={"max_evictions": 10, "max_evictions_per_app": 1}))
    response = post(app_client(deps), notification(*[alert(f"g{i}") for i in range(3)]))
    assert [d[2] for d in _decisions(response)] == ["ok", "rate_limited", "rate_limited"]
    assert response.get_json()["outcomes"][1]["detail"] == "caps.max_evictions_per_app"


def test_blast_radius_stops_an_app_when_too_many_of_its_streams_are_flagged():
    ams = FakeAms()
    for i in range(6):
        ams.add(f"g{i}")
    for i in range(4):
        ams.add(f"ok{i}", age=1.0)
    deps, _ = build_deps({"main": ams}, config=remediator_config(
        blast_radius={"max_share": 0.5, "min_count": 3, "window_seconds": 60}))
    response = post(app_client(deps), notification(*[alert(f"g{i}") for i in range(6)]))
    assert {d[2] for d in _decisions(response)} == {"blast_radius"}
    assert "6 of 10 live streams" in response.get_json()["outcomes"][0]["detail"]
    assert ams.writes == []


def test_blast_radius_lets_a_small_share_through():
    ams = FakeAms()
    for i in range(2):
        ams.add(f"g{i}")
    for i in range(8):
        ams.add(f"ok{i}", age=1.0)
    deps, _ = build_deps({"main": ams}, config=remediator_config(
        blast_radius={"max_share": 0.5, "min_count": 2}))
    response = post(app_client(deps), notification(alert("g0"), alert("g1")))
    assert {d[1] for d in _decisions(response)} == {"evicted"}


def test_allow_and_deny_lists_skip_with_the_list_named(ams):
    ams.add("ghost2", room="vip")
    deps, _ = _deps(ams, deny={"rooms": ["vip"]}, allow={"streams": ["ghost1", "ghost2"]})
    response = post(app_client(deps), notification(alert("ghost2", room=None), alert("ghost3")))
    outcomes = response.get_json()["outcomes"]
    assert [(o["reason"], o["detail"]) for o in outcomes] == [("denied", "deny.rooms"), ("denied", "allow.streams")]
    assert ams.writes == []


def test_kill_switch_file_stops_all_remediation(ams, tmp_path):
    switch = tmp_path / "stop"
    deps, _ = _deps(ams, kill_switch_file=str(switch))
    client = app_client(deps)
    switch.write_text("")
    assert _decisions(post(client, notification(alert("ghost1")))) == [("ghost1", "skipped", "kill_switch")]
    switch.unlink()
    assert _decisions(post(client, notification(alert("ghost1")))) == [("ghost1", "evicted", "ok")]


@pytest.mark.parametrize("action, record_left", [("finish", "finished"), ("delete", None)])
def test_non_zombi_records_are_finished_or_deleted_as_configured(action, record_left):
    ams = FakeAms()
    ams.add("precreated", zombi=False)
    deps, _ = build_deps({"main": ams}, config=remediator_config(non_zombi_action=action))
    post(app_client(deps), notification(alert("precreated")))
    left = ams.records.get("precreated")
    assert (left.status if left else None) == record_left
    # 2.8.2 refuses the id to a rejoin while the stored status is live: the last write frees it, so no
    # write can follow a rejoin.
    assert ams.writes == [("stop", "precreated"), ("remove_subtrack", "room1/precreated"),
                          ("remove_room_member", "room1/precreated"), (action, "precreated")]


def test_truncated_alerts_are_counted(ams):
    deps, _ = _deps(ams)
    post(app_client(deps), notification(alert("alive1"), truncated=7))
    assert sample(deps, "antmedia_remediator_truncated_alerts_total") == 7


def test_audit_line_names_alert_stream_decision_calls_and_mode(ams):
    deps, audit = _deps(ams)
    post(app_client(deps), notification(alert("ghost1")))
    first, line = audit_lines(audit)  # the first delivery showed the remediator the heartbeat; the second evicted
    assert (first["decision"], first["reason"]) == ("deferred", "observing")
    assert line["fingerprint"] == "fp-main-WebRTCAppEE-ghost1" and line["decision"] == "evicted"
    assert line["ams"] == "main" and line["app"] == APP and line["room"] == "room1"
    assert [c["action"] for c in line["calls"] if c["action"] not in ("get", "probe")] == [
        "stop", "remove_subtrack", "remove_room_member", "delete"]
    assert line["dry_run"] is False


def test_metrics_are_preinitialised_and_served(ams):
    deps, _ = _deps(ams)
    text = app_client(deps).get("/metrics").get_data(as_text=True)
    assert 'antmedia_remediator_decisions_total{ams="main",app="WebRTCAppEE",outcome="evicted",reason="ok"} 0.0' in text
    assert 'antmedia_remediator_ams_requests_total{action="delete",ams="main",result="success"} 0.0' in text
    assert "antmedia_remediator_eviction_latency_seconds_count 0.0" in text
    assert app_client(deps).get("/-/healthy").status_code == 200


def _alertmanager(state="active", silenced=(), inhibited=(), status=200, seen=None):
    def handler(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        if status != 200:
            return httpx.Response(status)
        entry = {"fingerprint": "fp-main-WebRTCAppEE-ghost1", "labels": {},
                 "status": {"state": state, "silencedBy": list(silenced), "inhibitedBy": list(inhibited)}}
        return httpx.Response(200, json=[entry])
    return AlertmanagerCheck("http://alertmanager.test", 1.0, transport=httpx.MockTransport(handler))


@pytest.mark.parametrize("check, reason", [
    (dict(state="suppressed", silenced=["abc"]), "silenced"),
    (dict(state="suppressed", inhibited=["fp"]), "inhibited"),
])
def test_alert_silenced_or_inhibited_since_the_notification_is_skipped(ams, check, reason):
    seen = []
    deps, _ = build_deps({"main": ams}, alertmanager=_alertmanager(seen=seen, **check))
    response = post(app_client(deps), notification(alert("ghost1")))
    assert _decisions(response) == [("ghost1", "skipped", reason)] and ams.writes == []
    params = seen[0].url.params.get_list("filter")
    assert 'stream_id="ghost1"' in params and 'ams="main"' in params


def test_active_alert_confirmed_by_alertmanager_is_evicted(ams):
    deps, _ = build_deps({"main": ams}, alertmanager=_alertmanager())
    assert _decisions(post(app_client(deps), notification(alert("ghost1")))) == [("ghost1", "evicted", "ok")]


def test_alertmanager_api_down_defers_with_503_and_no_write(ams):
    deps, _ = build_deps({"main": ams}, alertmanager=_alertmanager(status=500))
    response = post(app_client(deps), notification(alert("ghost1")))
    assert response.status_code == 503 and ams.writes == []


def test_answer_is_json_with_one_outcome_per_alert(ams):
    deps, _ = _deps(ams)
    response = post(app_client(deps), notification(alert("ghost1"), alert("alive1")))
    assert response.is_json and len(json.loads(response.data)["outcomes"]) == 2


def test_room_allowlist_is_judged_on_the_room_ams_reports_not_the_label():
    ams = FakeAms()
    ams.add("ghost1", room="room2")
    deps, _ = build_deps({"main": ams}, config=remediator_config(allow={"rooms": ["room1"]}))
    response = post(app_client(deps), notification(alert("ghost1", room="room1")))
    assert response.get_json()["outcomes"][0]["detail"] == "allow.rooms" and ams.writes == []


def test_stream_in_no_room_is_evicted_without_room_calls():
    ams = FakeAms()
    ams.add("solo", room=None)
    deps, _ = build_deps({"main": ams}, config=remediator_config())
    response = post(app_client(deps), notification(alert("solo", room=None)))
    assert _decisions(response) == [("solo", "evicted", "ok")]
    assert ams.writes == [("stop", "solo"), ("delete", "solo")]


def test_ams_found_down_defers_the_rest_of_the_notification_without_waiting_on_each():
    ams = FakeAms()
    for i in range(10):
        ams.add(f"g{i}")
    ams.down = True
    deps, _ = build_deps({"main": ams}, config=remediator_config(concurrency=1))
    response = post(app_client(deps), notification(*[alert(f"g{i}") for i in range(10)]))
    assert response.status_code == 503 and {d[2] for d in _decisions(response)} == {"ams_unavailable"}
    assert ams.refused_calls == 1


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
@pytest.mark.slow
def test_exposition_passes_promtool_lint(ams):
    deps, _ = _deps(ams)
    client = app_client(deps)
    post(client, notification(alert("ghost1")))
    lint = subprocess.run(["promtool", "check", "metrics"], input=client.get("/metrics").get_data(),
                          capture_output=True, timeout=30)
    assert lint.returncode == 0, lint.stdout + lint.stderr


def test_kill_switch_set_while_a_notification_is_worked_through_stops_the_next_write(tmp_path):
    switch = tmp_path / "stop"

    class OperatorActsMidway(FakeAms):
        def get_broadcast(self, app, stream):
            switch.write_text("")
            return super().get_broadcast(app, stream)

    ams = OperatorActsMidway()
    ams.add("ghost1")
    deps, _ = build_deps({"main": ams}, config=remediator_config(kill_switch_file=str(switch)))
    response = post(app_client(deps), notification(alert("ghost1")))
    assert _decisions(response) == [("ghost1", "skipped", "kill_switch")] and ams.writes == []


def test_two_alerts_for_one_stream_arriving_together_evict_it_once(ams):
    deps, _ = _deps(ams)
    client = app_client(deps)
    bodies = [notification(alert("ghost1", starts_at=f"2026-11-25T00:00:0{i}Z", replica=str(i))) for i in range(4)]
    answers = []
    threads = [threading.Thread(target=lambda b=b: answers.append(_decisions(post(client, b))[0][1:]))
               for b in bodies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert sorted(answers) == [("evicted", "ok")] + [("skipped", "not_found")] * 3
    assert ams.writes.count(("delete", "ghost1")) == 1
