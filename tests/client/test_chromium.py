"""The kit in a real headless Chromium: the real WebRTCAdaptor (2.16.2) plays a room from a fake AMS
on loopback whose participants are aiortc audio tracks. A dropped participant is reported gone and,
once its packets return, back; talking and muted participants never are."""

from __future__ import annotations

import importlib.util
import os
import time

import pytest

# `make client-test` sets CLIENT_BROWSER_TEST=required: there, a missing piece is a failure; in a
# plain `pytest` run without Chromium or client/node_modules the test is skipped, saying why.
REQUIRED = os.environ.get("CLIENT_BROWSER_TEST") == "required"


def unavailable() -> str | None:
    for module in ("aiortc", "websockets", "playwright"):
        if importlib.util.find_spec(module) is None:
            return f"the browser test needs the Python package {module} (the test extra)"
    import room_server

    return room_server.missing()


REASON = unavailable()
pytestmark = pytest.mark.skipif(REASON is not None and not REQUIRED, reason=f"client browser test: {REASON}")

PARTICIPANTS = {"talker": "talking", "muted": "muted", "dtx": "dtx", "dropper": "talking"}


def named(events, name, pid=None):
    return [e for e in events if e["name"] == name and (pid is None or e.get("participantId") == pid)]


@pytest.fixture
def room():
    if REASON is not None:
        pytest.fail(f"CLIENT_BROWSER_TEST=required but {REASON}", pytrace=False)
    import room_server

    server = room_server.FakeAms("room1", PARTICIPANTS).start()
    try:
        with room_server.Browser() as browser:
            browser.page.goto(server.url)
            events = browser.wait_for(lambda ev: len(named(ev, "track")) >= len(PARTICIPANTS), 30)
            assert len(named(events, "track")) == len(PARTICIPANTS), events
            yield server, browser
    finally:
        server.stop()


def test_dropped_participant_is_hidden_and_shown_again(room):
    server, browser = room
    time.sleep(3)  # everyone has been heard for a while
    assert named(browser.events(), "ghost") == []

    dropped_at = server.drop("dropper")
    events = browser.wait_for(lambda ev: named(ev, "ghost", "dropper"), 10)
    ghost = named(events, "ghost", "dropper")
    assert ghost, f"no onGhost 10 s after the drop: {events}"
    assert 4.8 <= (ghost[0]["at"] - dropped_at) / 1000 <= 6.5, ghost
    assert browser.page.evaluate("document.getElementById('tile-dropper').hidden")

    time.sleep(2)  # still gone: reported once
    back_from = server.restore("dropper")
    events = browser.wait_for(lambda ev: named(ev, "back", "dropper"), 5)
    back = named(events, "back", "dropper")
    assert back, f"no onBack 5 s after packets returned: {events}"
    assert (back[0]["at"] - back_from) / 1000 <= 1.0, back
    assert not browser.page.evaluate("document.getElementById('tile-dropper').hidden")

    time.sleep(2)
    events = browser.events()
    assert len(named(events, "ghost", "dropper")) == 1
    assert [e["participantId"] for e in named(events, "ghost")] == ["dropper"], "talking and muted are never ghosts"
    assert named(events, "selfLost") == [] and named(events, "error") == []
