"""Shared fixtures for the unit tests: configured servers, fake AMS instances, clients."""

from __future__ import annotations

import pytest

from ams.client import AmsClient
from fakeams import FakeAms, make_server


@pytest.fixture
def fake282() -> FakeAms:
    return FakeAms.from_fixtures("2.8.2")


@pytest.fixture
def fake300() -> FakeAms:
    return FakeAms.from_fixtures("3.0.0")


@pytest.fixture
def connect():
    """connect(fake, **server_overrides) -> AmsClient on the fake; closed after the test."""
    clients = []

    def _connect(fake: FakeAms, clock=None, **overrides) -> AmsClient:
        kwargs = {"clock": clock} if clock else {}
        client = AmsClient(make_server(**overrides), transport=fake.transport(), **kwargs)
        clients.append(client)
        return client

    yield _connect
    for client in clients:
        client.close()
