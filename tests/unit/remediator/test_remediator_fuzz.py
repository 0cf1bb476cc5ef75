"""Fuzzed webhook bodies never write to AMS and never answer 5xx."""
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from remediator_support import (
    FakeAms,
    alert,
    app_client,
    build_deps,
    notification,
    post,
    remediator_config,
)

# Names the fuzzer may use: healthy streams and rooms that exist, plus hostile values.
NAMES = st.sampled_from(["alive1", "alive2", "room1", "main", "WebRTCAppEE", "http://127.0.0.1:1/x",
                         "../..", "", "ghost\n1", "a" * 300, "%2e%2e", "delete_stream"]) | st.text(max_size=12)
LABEL_KEYS = st.sampled_from(["alertname", "ams", "app", "stream_id", "room", "remediation", "severity"]) | st.text(max_size=8)
JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
JSON_VALUES = st.recursive(JSON_SCALARS, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)
TIMES = st.sampled_from(["2026-11-25T00:00:00Z", "0001-01-01T00:00:00Z", "2026-13-45T99:00:00Z", "now", ""])


def _fuzzed_alert():
    return st.fixed_dictionaries({
        "status": st.sampled_from(["firing", "resolved", "pending", ""]) | JSON_SCALARS,
        "labels": st.dictionaries(LABEL_KEYS, NAMES, max_size=8) | JSON_VALUES,
        "annotations": st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3),
        "startsAt": TIMES | JSON_SCALARS,
        "endsAt": TIMES,
        "fingerprint": st.text(max_size=16) | JSON_SCALARS,
    }, optional={"extra": JSON_VALUES})


BODIES = st.one_of(
    JSON_VALUES.map(json.dumps),
    st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
    st.lists(_fuzzed_alert(), max_size=5).map(lambda alerts: json.dumps(notification(*alerts))),
    st.lists(st.builds(lambda s, r, st_: alert(s, room=r, status=st_), NAMES, NAMES | st.none(),
                       st.sampled_from(["firing", "resolved"])), max_size=5)
      .map(lambda alerts: json.dumps(notification(*alerts))),
)


def _world():
    ams = FakeAms()
    ams.add("alive1", age=1.0)
    ams.add("alive2", room=None, age=2.0)
    deps, _ = build_deps({"main": ams}, config=remediator_config(concurrency=1))
    return ams, app_client(deps)


AMS, CLIENT = _world()


@settings(max_examples=max(5, 300 * settings.default.max_examples // 100), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(BODIES)
def test_fuzzed_payloads_never_write_and_never_answer_5xx(body):
    response = post(CLIENT, None, raw=body.encode("utf-8", "surrogatepass"))
    assert response.status_code in (200, 400), response.get_data(as_text=True)[:300]
    assert AMS.writes == []
