"""Fixtures: simulators on free ports with a manual clock, and HTTP clients for them."""
import httpx
import pytest

from simulator import ManualClock, Simulator

APP = "WebRTCAppEE"


@pytest.fixture
def make_sim():
    """Factory: make_sim(version, **kwargs) -> started Simulator with a ManualClock; all stopped afterwards."""
    started = []

    def factory(ams_version: str = "2.8.2", **kwargs) -> Simulator:
        kwargs.setdefault("clock", ManualClock())
        sim = Simulator(ams_version=ams_version, **kwargs).start()
        started.append(sim)
        return sim

    yield factory
    for sim in started:
        sim.stop()


@pytest.fixture
def client():
    """Factory: client(sim) -> httpx.Client on the sim's app REST base; all closed afterwards."""
    clients = []

    def factory(sim: Simulator, base: str | None = None, **kwargs) -> httpx.Client:
        base = base or f"{sim.url}/{APP}/rest/v2/broadcasts"
        c = httpx.Client(base_url=base, timeout=kwargs.pop("timeout", 5.0), **kwargs)
        clients.append(c)
        return c

    yield factory
    for c in clients:
        c.close()


@pytest.fixture(params=["2.8.2", "3.0.0"])
def version(request) -> str:
    """Both reference versions."""
    return request.param


@pytest.fixture(params=["mapdb", "mongodb"])
def store(request) -> str:
    """Both AMS data stores."""
    return request.param
