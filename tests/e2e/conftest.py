"""Shared stacks for the end-to-end tests: one per AMS version, reused by every test of a module."""
from __future__ import annotations

import pytest

from stack.conference import start_populated
from stack.runner import StackOptions

APP = "WebRTCAppEE"
VERSIONS = ("2.8.2", "3.0.0")
# Healthy participants in other rooms (see start_populated).
BACKGROUND_LIVE, BACKGROUND_ROOMS = 60, 6


@pytest.fixture(scope="module", params=VERSIONS, ids=lambda v: f"ams-{v}")
def stack(request):
    """A running accelerated stack (1 s heartbeat) on one AMS version, shared by the module's tests."""
    running = start_populated(StackOptions(ams_version=request.param), APP, BACKGROUND_LIVE, BACKGROUND_ROOMS)
    yield running
    running.stop()


@pytest.fixture
def alive(stack):
    """Fails a test whose stack lost a component, with the component's log tail."""
    stack.check_running()
    yield stack
    stack.check_running()


@pytest.fixture(scope="module")
def ha_stack():
    """2 Prometheus (replica a/b) -> 2 Alertmanagers gossiping on loopback -> one remediator.

    peer_timeout 0 makes both Alertmanagers deliver every notification, as they do when
    gossip lags or the pair is split: the remediator must absorb the duplicates.
    """
    running = start_populated(StackOptions(ams_version="2.8.2", ha=True, ha_peer_timeout=0.0),
                              APP, BACKGROUND_LIVE, BACKGROUND_ROOMS)
    yield running
    running.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed e2e test shows the tail of every component's log in its report."""
    outcome = yield
    report = outcome.get_result()
    if report.when in ("setup", "call") and report.failed:
        for name in ("stack", "ha_stack", "pair", "backstop_only", "patient"):
            running = getattr(item, "funcargs", {}).get(name)
            if running is not None:
                report.sections.append((f"{name} component logs", running.logs()))
