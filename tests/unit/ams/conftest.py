"""Fixtures of the AMS layer's tests."""
import pytest

from hostileams import HostileAms


@pytest.fixture
def hostile():
    """make(respond) starts a HostileAms answering with respond; every one is closed after the test."""
    servers = []

    def make(respond) -> HostileAms:
        servers.append(HostileAms(respond))
        return servers[-1]

    yield make
    for server in servers:
        server.close()
