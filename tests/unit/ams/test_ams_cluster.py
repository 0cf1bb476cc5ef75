"""The AMS client reads the cluster's node registry with a server JWT, against the simulator served in process."""

from __future__ import annotations

import httpx
import pytest

from ams.client import AmsClient
from ams.errors import AmsAuthError
from ams.server import AmsServer
from simulator import ManualClock, Simulator

SECRET = "server-secret-of-at-least-32-bytes!!"
VERSIONS = ("2.8.2", "3.0.0")


def client_for(sim: Simulator, secret: str | None = SECRET) -> AmsClient:
    server = AmsServer(name="main", url="http://ams.test", apps=("WebRTCAppEE",), server_jwt_secret=secret)
    return AmsClient(server, transport=httpx.WSGITransport(app=sim.wsgi_app()))


@pytest.mark.parametrize("version", VERSIONS)
def test_a_standalone_server_has_no_node_registry(version):
    sim = Simulator(ams_version=version, server_jwt_secret=SECRET, clock=ManualClock())
    with client_for(sim) as client:
        assert client.cluster_nodes() is None


@pytest.mark.parametrize("version", VERSIONS)
def test_a_killed_node_reads_dead_once_ams_says_so(version):
    sim = Simulator(ams_version=version, nodes=3, server_jwt_secret=SECRET, clock=ManualClock())
    with client_for(sim) as client:
        assert [(n.ip, n.status) for n in client.cluster_nodes()] == [
            ("10.0.0.1", "alive"), ("10.0.0.2", "alive"), ("10.0.0.3", "alive")]
        sim.kill_node("10.0.0.2")
        sim.clock.advance(5.0)
        assert not any(n.dead for n in client.cluster_nodes())  # AMS has not given up on it yet
        sim.clock.advance(25.0)
        assert [n.ip for n in client.cluster_nodes() if n.dead] == ["10.0.0.2"]


def test_the_registry_refuses_a_wrong_server_secret():
    sim = Simulator(ams_version="3.0.0", nodes=2, server_jwt_secret=SECRET, clock=ManualClock())
    with client_for(sim, secret="another-secret-of-at-least-32-bytes") as client, pytest.raises(AmsAuthError):
        client.cluster_nodes()
