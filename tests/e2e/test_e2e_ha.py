"""HA: two Prometheus replicas and two clustered Alertmanagers evict each ghost exactly once."""
from __future__ import annotations

import httpx
import pytest

from stack import api
from stack.conference import wait_members_seen, wait_removed
from stack.waiting import wait_for
from stack.writes import writes_to

pytestmark = pytest.mark.e2e
APP = "WebRTCAppEE"
ROOM, HEALTHY, GHOSTS = "ha-room", ("hana", "hugo"), ("gus", "gina", "gil")


@pytest.fixture(scope="module")
def evicted(ha_stack):
    """The ghosts of one room dropped and removed through the HA pair."""
    sim = ha_stack.sim
    sim.create_room(APP, ROOM)
    for name in (*HEALTHY, *GHOSTS):
        assert sim.join(APP, ROOM, name, name=name.title())
    for prometheus in ha_stack.prometheuses:
        wait_members_seen(prometheus.url, ROOM, len(HEALTHY) + len(GHOSTS))
    for ghost in GHOSTS:
        sim.drop(APP, ghost)
    wait_removed(sim, APP, GHOSTS, 60)
    # Both members deliver; wait until the second delivery of every ghost was answered.
    wait_for(lambda: duplicates(ha_stack) >= len(GHOSTS), 30, "the remediator absorbed no duplicate delivery")
    return ha_stack


def duplicates(stack) -> float:
    """The remediator's duplicate counter."""
    return api.metric_sum(stack.remediator_metrics(), "antmedia_remediator_duplicates_total")


def test_alertmanagers_form_one_cluster(evicted):
    for am in evicted.alertmanagers:
        status = httpx.get(f"{am.url}/api/v2/status", timeout=5).json()
        assert status["cluster"]["status"] == "ready" and len(status["cluster"]["peers"]) == 2


def test_both_replicas_alerts_merge_into_one_alert_per_ghost(evicted):
    # With the replica label left on, each ghost would be two alerts of each name with two fingerprints.
    for ghost in GHOSTS:
        names = {r["alertname"] for r in evicted.audit() if r["stream_id"] == ghost}
        assert names, ghost
        for name in names:
            fingerprints = {r["fingerprint"] for r in evicted.audit()
                            if r["stream_id"] == ghost and r["alertname"] == name}
            assert len(fingerprints) == 1, (name, fingerprints)


def test_each_ghost_is_evicted_exactly_once(evicted):
    for ghost in GHOSTS:
        ghost_writes = writes_to(evicted.sim.writes, ghost)
        calls = [(w.method, w.path, w.query) for w in ghost_writes]
        assert len(calls) == len(set(calls)), f"{ghost} written twice: {calls}"
        deletes = [w for w in ghost_writes if w.method == "DELETE" and w.path.endswith(f"/broadcasts/{ghost}")]
        assert len(deletes) == 1
        assert [r["decision"] for r in evicted.audit() if r["stream_id"] == ghost].count("evicted") == 1


def test_duplicates_are_absorbed_without_error(evicted):
    metrics = evicted.remediator_metrics()
    assert api.metric_sum(metrics, "antmedia_remediator_duplicates_total") >= len(GHOSTS)
    assert api.metric_sum(metrics, "antmedia_remediator_decisions_total", outcome="failed") == 0
    for code in ("400", "401", "413"):
        assert api.metric_sum(metrics, "antmedia_remediator_webhook_requests_total", code=code) == 0
    # The only 503s: a first delivery, before the remediator had itself seen the heartbeat stand still
    # (observing); Alertmanager sends those again, and counts them as failed notifications meanwhile.
    deferred = api.metric_sum(metrics, "antmedia_remediator_decisions_total", outcome="deferred")
    assert deferred == api.metric_sum(metrics, "antmedia_remediator_decisions_total", outcome="deferred",
                                      reason="observing")


def test_healthy_members_are_never_written_to(evicted):
    for stream in (*HEALTHY, ROOM):
        assert writes_to(evicted.sim.writes, stream) == []
