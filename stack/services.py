"""Start one component of the stack as a child process and wait until it is ready."""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from stack.binaries import alertmanager_bin, prometheus_bin
from stack.ports import free_port
from stack.process import ManagedProcess
from stack.timing import duration

REPO = Path(__file__).resolve().parent.parent


@dataclass
class Service:
    """A started component: its process, base URL and host:port."""

    name: str
    process: ManagedProcess
    address: str

    @property
    def url(self) -> str:
        """Base URL on loopback."""
        return f"http://{self.address}"

    def stop(self) -> None:
        """Stop the process (bounded)."""
        self.process.stop()


def _address() -> str:
    """A free 127.0.0.1:PORT."""
    return f"127.0.0.1:{free_port()}"


def start_prometheus(name: str, config_file: Path, workdir: Path) -> Service:
    """Start a real Prometheus on a free port with its TSDB under workdir."""
    address = _address()
    argv = [prometheus_bin(), f"--config.file={config_file}",
            f"--storage.tsdb.path={workdir / name / 'data'}",
            f"--web.listen-address={address}", "--log.level=info"]
    process = ManagedProcess(name, argv, workdir / f"{name}.log").start()
    return Service(name, process, address)


@dataclass(frozen=True)
class Gossip:
    """Cluster settings of one Alertmanager; listen None means no cluster."""

    listen: str | None = None
    peers: tuple[str, ...] = ()
    peer_timeout: float = 15.0


def alertmanager_argv(config_file: Path, storage: Path, address: str, gossip: Gossip) -> list[str]:
    """Alertmanager command line; an empty cluster address disables clustering."""
    argv = [alertmanager_bin(), f"--config.file={config_file}", f"--storage.path={storage}",
            f"--web.listen-address={address}", "--log.level=info"]
    if gossip.listen is None:
        return argv + ["--cluster.listen-address="]
    argv += [f"--cluster.listen-address={gossip.listen}", f"--cluster.advertise-address={gossip.listen}",
             f"--cluster.peer-timeout={duration(gossip.peer_timeout)}",
             # Faster gossip only shortens the settle time at start on loopback.
             "--cluster.gossip-interval=50ms", "--cluster.pushpull-interval=2s"]
    return argv + [f"--cluster.peer={peer}" for peer in gossip.peers]


def start_alertmanager(name: str, config_file: Path, workdir: Path, gossip: Gossip = Gossip(),
                       address: str | None = None) -> Service:
    """Start a real Alertmanager (on address, or a free port) with its storage under workdir."""
    address = address or _address()
    storage = workdir / name / "data"
    storage.mkdir(parents=True, exist_ok=True)
    argv = alertmanager_argv(config_file, storage, address, gossip)
    process = ManagedProcess(name, argv, workdir / f"{name}.log").start()
    return Service(name, process, address)


def start_python_service(name: str, module: str, config_file: Path, workdir: Path,
                         address: str | None = None) -> Service:
    """Start `python -m module --config.file ... --web.listen-address ...` (exporter, remediator); on a free
    loopback port unless address is given (a restart keeps its address)."""
    address = address or _address()
    argv = [sys.executable, "-m", module, f"--config.file={config_file}",
            f"--web.listen-address={address}"]
    process = ManagedProcess(name, argv, workdir / f"{name}.log", cwd=REPO).start()
    return Service(name, process, address)


def wait_ready(service: Service, path: str, timeout: float = 30.0) -> Service:
    """Wait until the service answers 200 on path."""
    service.process.wait_ready(service.url + path, timeout=timeout)
    return service
