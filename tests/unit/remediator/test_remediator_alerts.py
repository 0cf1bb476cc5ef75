"""Alertmanager webhook payload parsing."""
import json

import pytest
from remediator_support import FIXTURES, fixture

from remediator.alerts import PayloadError, parse_notification


def test_firing_fixture_parses_into_one_firing_alert():
    note = parse_notification((FIXTURES / "firing.json").read_bytes())
    (alert,) = note.alerts
    assert alert.firing and alert.labels["stream_id"] == "ghost1"
    assert alert.starts_at.isoformat() == "2026-11-25T00:00:00.123456+00:00"
    assert alert.ends_at is None and alert.fingerprint == "3f2b1c0d9e8a7b6c"


def test_resolved_fixture_parses_with_its_end_time():
    (alert,) = parse_notification((FIXTURES / "resolved.json").read_bytes()).alerts
    assert alert.status == "resolved" and alert.ends_at.isoformat() == "2026-11-25T00:05:00+00:00"


def test_mixed_fixture_keeps_each_alert_status_and_ignores_unknown_fields():
    note = parse_notification((FIXTURES / "mixed.json").read_bytes())
    assert [a.status for a in note.alerts] == ["firing", "resolved", "firing"]
    assert note.truncated_alerts == 2


def test_malformed_fixture_is_rejected_naming_the_field():
    with pytest.raises(PayloadError, match=r"alerts\[0\]"):
        parse_notification((FIXTURES / "malformed.json").read_bytes())


@pytest.mark.parametrize("body, where", [
    (b"{not json", "not JSON"),
    (b"[]", "object"),
    (b'{"version": "3", "alerts": []}', "version"),
    (b'{"version": "4"}', "alerts"),
    (b'{"alerts": [1]}', r"alerts\[0\]"),
    (b'{"alerts": [], "truncatedAlerts": -1}', "truncatedAlerts"),
])
def test_bad_bodies_raise_payload_error(body, where):
    with pytest.raises(PayloadError, match=where):
        parse_notification(body)


def test_alert_labels_are_read_only():
    (alert,) = parse_notification(json.dumps(fixture("firing.json"))).alerts
    with pytest.raises(TypeError):
        alert.labels["ams"] = "other"  # type: ignore[index]
