"""End to end on both AMS versions: real Prometheus and Alertmanager clear ghosts from a simulated conference."""
from __future__ import annotations

import importlib.util
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from stack import api
from stack.conference import flap, ghost_alert_state, is_removed, wait_members_seen, wait_removed
from stack.waiting import hold_for, wait_for
from stack.writes import describe_write, writes_to, wrongly_touched

pytestmark = pytest.mark.e2e
APP = "WebRTCAppEE"
REMOVAL_TIMEOUT = 60.0   # seconds; ghosts go about 5-10 s after the drop with a 1 s heartbeat
# Longer than a ghost takes to go when everything works, so that "nothing happened" means something.
QUIET_WINDOW = 20.0
# A hiccup of one heartbeat: the heartbeat age peaks near 2 s, under the 3 s stale threshold.
FLAP_SECONDS = 1.0


@dataclass
class Story:
    """Who did what in the shared conference."""

    room: str
    healthy: tuple[str, ...]
    leaver: str
    ghosts: tuple[str, ...]
    flapper: str
    silenced: str
    silence_id: str
    started: float = 0.0

    def protected(self) -> tuple[str, ...]:
        """Streams no write may ever touch."""
        return (*self.healthy, self.leaver, self.flapper, self.room)


# Per stack: every stream dropped on purpose, and when a removed ghost published again.
GHOSTS: dict[int, set[str]] = {}
BACK: dict[int, dict[str, float]] = {}


def drop(stack, stream: str) -> None:
    """A participant's network drops: the one kind of stream a write may touch."""
    GHOSTS.setdefault(id(stack), set()).add(stream)
    stack.sim.drop(APP, stream)


def rejoin(stack, stream: str) -> bool:
    """A removed ghost publishes again; from then on it is healthy."""
    BACK.setdefault(id(stack), {})[stream] = stack.sim.clock.now()
    return stack.sim.reconnect(APP, stream)


def join(stack, room: str, names) -> None:
    """Create a room and let everyone publish into it; wait until Prometheus sees them."""
    stack.sim.create_room(APP, room)
    for name in names:
        assert stack.sim.join(APP, room, name, name=name.title())
    wait_members_seen(stack.prometheus_url, room, len(names))


@pytest.fixture(scope="module")
def story(stack):
    """The conference: two stay, one leaves, two drop, one flaps, one drops under a silence."""
    s = Story("standup", ("alice", "erin"), "frank", ("bob", "carol"), "dave", "sam", "", time.time())
    join(stack, s.room, (*s.healthy, s.leaver, *s.ghosts, s.flapper, s.silenced))
    # An SRE silences one stream before its alert fires, as `amtool silence add stream_id=sam` would.
    s.silence_id = api.create_silence(stack.alertmanager_url, {"stream_id": s.silenced}, 900, "keep for debugging")
    stack.sim.leave(APP, s.leaver)
    for ghost in (*s.ghosts, s.silenced):
        drop(stack, ghost)
    assert flap(stack.sim, APP, s.flapper, FLAP_SECONDS)
    wait_removed(stack.sim, APP, s.ghosts, REMOVAL_TIMEOUT)
    wait_for(lambda: ghost_alert_state(stack.alertmanager_url, s.silenced) == "suppressed", 30,
             "the silenced ghost's alert never reached Alertmanager")
    return s


def test_every_ghost_leaves_its_room(alive, story):
    for ghost in story.ghosts:
        assert is_removed(alive.sim, APP, ghost)
        assert alive.sim.lifecycle(APP, ghost).unlisted_at is not None


def test_each_ghost_eviction_is_audited_as_evicted(alive, story):
    evicted = {r["stream_id"] for r in alive.audit() if r.get("decision") == "evicted"}
    assert set(story.ghosts) <= evicted


def test_no_healthy_flapping_leaving_or_main_track_stream_is_written_to(alive, story):
    for stream in story.protected():
        assert writes_to(alive.sim.writes, stream) == [], stream


def test_room_keeps_its_healthy_members(alive, story):
    room = alive.sim.broadcast(APP, story.room)
    assert room is not None and room["status"] == "broadcasting"
    for stream in (*story.healthy, story.flapper):
        assert alive.sim.broadcast(APP, stream)["status"] == "broadcasting"


def test_silenced_ghost_stays_in_place_while_the_others_go(alive, story):
    hold_for(lambda: not writes_to(alive.sim.writes, story.silenced), 3.0, "the silenced ghost was written to")
    assert alive.sim.lifecycle(APP, story.silenced).unlisted_at is None
    assert ghost_alert_state(alive.alertmanager_url, story.silenced) == "suppressed"
    assert story.silenced not in {r["stream_id"] for r in alive.audit()}


def test_ghost_goes_once_its_silence_expires(alive, story):
    api.expire_silence(alive.alertmanager_url, story.silence_id)
    wait_removed(alive.sim, APP, [story.silenced], REMOVAL_TIMEOUT)


def test_every_removed_ghost_can_rejoin_with_its_stream_id(alive, story):
    for ghost in (*story.ghosts, story.silenced):
        assert rejoin(alive, ghost), ghost
        assert alive.sim.broadcast(APP, ghost)["status"] == "broadcasting"


def load_dashboards():
    """tests/grafana/dashboards.py, loaded by path (tests/ is not a package)."""
    path = Path(__file__).resolve().parents[1] / "grafana" / "dashboards.py"
    spec = importlib.util.spec_from_file_location("grafana_dashboards", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_grafana_panel_query_runs_and_returns_data(alive, story):
    dashboards = load_dashboards()
    values = {"ams": "main", "app": APP, "room": story.room, "runbook_base": "rules/RUNBOOK.md"}
    queries = [(path.name, title, expr) for path in dashboards.dashboard_paths()
               for title, expr in dashboards.panel_queries(path, values)]
    assert queries

    def empty() -> list[str]:
        """Panels whose query returns nothing over the story so far."""
        return [f"{dashboard} / {title}: {expr}" for dashboard, title, expr in queries
                if not api.query_range(alive.prometheus_url, expr, story.started, time.time(), 1.0)["result"]]

    # The remediator's gauges and counters reach Prometheus at its next scrapes (an increase needs
    # two samples): give a panel a few scrape intervals before calling it empty.
    missing = empty()
    deadline = time.monotonic() + 10.0
    while missing and time.monotonic() < deadline:
        time.sleep(1.0)
        missing = empty()
    assert missing == []


def test_exporter_blind_to_ams_evicts_nothing(alive):
    join(alive, "blind", ("bea", "ben"))
    writes_before = len(alive.sim.writes)
    alive.sim.faults.inject(kind="status", path_regex=r"/broadcasts/(list|count|active|conference-rooms)", status=503)
    try:
        wait_for(lambda: api.scalar(alive.prometheus_url, 'max(antmedia_up{app="WebRTCAppEE"})') == 0, 15,
                 "the exporter still reports AMS up")
        drop(alive, "ben")
        hold_for(lambda: len(alive.sim.writes) == writes_before, QUIET_WINDOW, "a write reached AMS while blind")
    finally:
        alive.sim.faults.clear()
    # Once the exporter sees AMS again the ghost is found and removed as usual.
    wait_removed(alive.sim, APP, ["ben"], REMOVAL_TIMEOUT)
    assert writes_to(alive.sim.writes, "bea") == []


# A step back of AMS's clock freezes every heartbeat until the clock catches up (AMS writes one only
# once more than a period has passed since the last, MuxAdaptor L859 @2.8.2): every stream then
# looks stale and a storm holds them all. That case runs on its own stack (test_e2e_clocks.py),
# since the storm's inhibition outlasts it by keep_firing_for.
@pytest.mark.parametrize("offset", [300.0], ids=["ams-steps-ahead-5min"])
def test_skewed_ams_clock_evicts_ghosts_and_nothing_healthy(alive, offset):
    room = "skewahead" if offset > 0 else "skewbehind"
    healthy, ghost, flapper = f"{room}-ok", f"{room}-ghost", f"{room}-flap"
    # The clock stays ahead for the rest of the module: stepping it back would freeze every heartbeat
    # written meanwhile until the clock caught up (see the note above).
    alive.sim.clock.offset_seconds = offset
    join(alive, room, (healthy, ghost, flapper))
    drop(alive, ghost)
    assert flap(alive.sim, APP, flapper, FLAP_SECONDS)
    wait_removed(alive.sim, APP, [ghost], REMOVAL_TIMEOUT)
    assert writes_to(alive.sim.writes, healthy) == [] and writes_to(alive.sim.writes, flapper) == []
    assert writes_to(alive.sim.writes, room) == []


def test_ams_answering_5xx_delays_then_completes_the_eviction(alive):
    join(alive, "flaky", ("fay", "fred"))
    alive.sim.faults.inject(kind="status", path_regex=r"/broadcasts/fred(/|$)", status=503)
    try:
        drop(alive, "fred")
        wait_for(lambda: any(r["stream_id"] == "fred" and r["decision"] == "deferred" for r in alive.audit()),
                 REMOVAL_TIMEOUT, "the remediator never met the 5xx")
        # AMS stays broken a little longer while Alertmanager keeps retrying: nothing may give.
        hold_for(lambda: not is_removed(alive.sim, APP, "fred"), 2.0, "evicted while AMS answered 5xx")
    finally:
        alive.sim.faults.clear()
    wait_removed(alive.sim, APP, ["fred"], REMOVAL_TIMEOUT)
    assert any(r["stream_id"] == "fred" and r["decision"] == "evicted" for r in alive.audit())
    assert writes_to(alive.sim.writes, "fay") == []


def test_no_write_ever_touched_a_stream_that_was_not_a_ghost_at_the_time(alive):
    # Last in the module: covers every test above, the background participants and every room.
    ghosts, back = GHOSTS.get(id(alive), set()), BACK.get(id(alive), {})
    assert ghosts and alive.sim.writes
    assert [describe_write(w) for w in wrongly_touched(alive.sim.writes, ghosts, back)] == []
