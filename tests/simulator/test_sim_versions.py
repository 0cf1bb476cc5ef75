"""Version parsing and the behaviour thresholds of docs/ams.md, "Version timeline"."""
import pytest

from simulator import AmsVersion, Simulator


@pytest.mark.parametrize("text, expected", [("2.8.2", (2, 8, 2)), ("3.0.0", (3, 0, 0)), ("2.13", (2, 13, 0)),
                                            ("2.10.1-SNAPSHOT", (2, 10, 1))])
def test_versions_parse(text, expected):
    v = AmsVersion.parse(text)
    assert (v.major, v.minor, v.patch) == expected


def test_bad_version_is_a_clear_error():
    with pytest.raises(ValueError, match="not an AMS version"):
        Simulator(ams_version="latest")


@pytest.mark.parametrize("text, flags", [
    ("2.8.2", dict(heartbeat_seconds=5.0, has_conference_rooms=True, has_subtrack_ids=True, partial_put=False,
                   bearer_prefix=False, computed_status=False, has_subtrack_endpoints=False)),
    ("2.9.0", dict(heartbeat_seconds=10.0)),
    ("2.10.1", dict(partial_put=True, bearer_prefix=False)),
    ("2.12.0", dict(bearer_prefix=True, computed_status=False)),
    ("2.13.0", dict(computed_status=True, has_virtual=True, has_subtrack_params=True, has_subtrack_ids=True)),
    ("3.0.0", dict(has_conference_rooms=False, has_subtrack_ids=False,
                   has_subtrack_endpoints=True, master_fields=True)),
])
def test_behaviours_switch_at_the_timeline_versions(text, flags):
    v = AmsVersion.parse(text)
    assert {name: getattr(v, name) for name in flags} == flags


def test_unknown_app_and_bad_ids_are_clear_errors():
    sim = Simulator()
    with pytest.raises(ValueError, match="unknown app"):
        sim.publish("Nope", "s")
    with pytest.raises(ValueError, match="invalid stream id"):
        sim.publish("WebRTCAppEE", "a/b")
    with pytest.raises(ValueError):
        Simulator(heartbeat_seconds=0)
