"""The local stack: simulated AMS, exporter, real Prometheus and Alertmanager, remediator."""
from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from stack import api
from stack.configs import (alertmanager_config, load_alertmanager_example, prometheus_config,
                           service_config, without_early_route, write_yaml)
from stack.ports import free_port
from stack.services import (Gossip, Service, start_alertmanager, start_prometheus, start_python_service,
                            wait_ready)
from stack.sink import WebhookSink
from stack.timing import ACCELERATED, Timing

READY_TIMEOUT = 30.0


@dataclass
class StackOptions:
    """What to run: AMS version, timing, HA, and overrides for the simulator and the remediator."""

    ams_version: str = "2.8.2"
    timing: Timing = ACCELERATED
    heartbeat_seconds: float | None = None   # None: the timing profile's (accelerated 1 s) or the version's
    ha: bool = False
    apps: tuple[str, ...] = ("WebRTCAppEE",)
    simulator: dict[str, Any] = field(default_factory=dict)   # extra Simulator(...) keyword arguments
    remediator: dict[str, Any] = field(default_factory=dict)  # overrides of the remediator: section
    ams: dict[str, Any] = field(default_factory=dict)         # overrides of the ams: entry (e.g. stale_heartbeats)
    # An HA member waits peer_timeout x its position before notifying and skips
    # what a peer already sent; Alertmanager's default (15 s) is kept unless a
    # test wants both members to deliver, as they do when gossip lags.
    ha_peer_timeout: float = 15.0
    # Two remediators (an HA pair behind one Service): each Alertmanager of an HA pair posts to its own,
    # and each reads the candidates back from its own Alertmanager.
    remediators: int = 1
    # False: the Alertmanager config without its early-path route (only AntMediaGhostStream reaches the
    # remediator), as when an operator removed it.
    early_route: bool = True
    keep_workdir: bool = False

    def heartbeat(self) -> float | None:
        """Heartbeat period for the simulator and the exporter config."""
        return self.heartbeat_seconds if self.heartbeat_seconds is not None else self.timing.heartbeat_seconds


class Stack:
    """Context manager running the whole pipeline on loopback with data in a temporary folder."""

    def __init__(self, options: StackOptions | None = None):
        self.options = options or StackOptions()
        self.workdir = Path(tempfile.mkdtemp(prefix="antmedia-stack-"))
        self.sim = None
        self.sink = WebhookSink()
        self.exporter: Service | None = None
        self.remediator: Service | None = None
        self.remediators: list[Service] = []
        self.alertmanagers: list[Service] = []
        self.prometheuses: list[Service] = []
        self.token = secrets.token_hex(16)
        self.audit_log = self.workdir / "remediator-audit.jsonl"

    # -- lifecycle -----------------------------------------------------------------

    def __enter__(self) -> "Stack":
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> "Stack":
        """Start every component and wait until each is ready (bounded)."""
        self._start_simulator()
        self.sink.start()
        am_addresses = self._plan_alertmanagers()
        self._write_service_config(am_addresses)
        self.exporter = start_python_service("exporter", "exporter", self.service_config_files[0], self.workdir)
        self.remediators = [start_python_service(self._remediator_name(i), "remediator", config, self.workdir)
                            for i, config in enumerate(self.service_config_files)]
        self.remediator = self.remediators[0]
        self._start_alertmanagers(am_addresses)
        wait_ready(self.exporter, "/-/healthy", READY_TIMEOUT)
        for remediator in self.remediators:
            wait_ready(remediator, "/-/healthy", READY_TIMEOUT)
        for am in self.alertmanagers:
            wait_ready(am, "/-/ready", READY_TIMEOUT)
        self._start_prometheuses()
        return self

    def stop(self) -> None:
        """Stop everything started, in reverse order; remove the data unless kept."""
        for service in [*self.prometheuses, *self.alertmanagers, *self.remediators, self.exporter]:
            if service is not None:
                service.stop()
        self.sink.stop()
        if self.sim is not None:
            self.sim.stop()
            self.sim = None
        if not self.options.keep_workdir and not os.environ.get("STACK_KEEP_WORKDIR"):
            shutil.rmtree(self.workdir, ignore_errors=True)

    # -- components -------------------------------------------------------------------

    def _start_simulator(self) -> None:
        """The simulated AMS runs in this process so that tests can drive it and read its records."""
        from simulator import Simulator
        kwargs = {"ams_version": self.options.ams_version, "apps": self.options.apps,
                  "heartbeat_seconds": self.options.heartbeat()}
        if self.options.timing.reconnect_grace_seconds is not None:
            kwargs["reconnect_grace_seconds"] = self.options.timing.reconnect_grace_seconds
        kwargs.update(self.options.simulator)
        self.sim = Simulator(**kwargs)
        self.sim.start(host="127.0.0.1", port=0)

    def _plan_alertmanagers(self) -> list[str]:
        """Addresses (web) of the Alertmanagers to run: one, or two for HA."""
        count = 2 if self.options.ha else 1
        return [f"127.0.0.1:{free_port()}" for _ in range(count)]

    def _remediator_name(self, index: int) -> str:
        return f"remediator-{index}" if self.options.remediators > 1 else "remediator"

    def audit_log_of(self, index: int) -> Path:
        """The audit log of one remediator."""
        return self.audit_log if index == 0 else self.workdir / f"remediator-{index}-audit.jsonl"

    def restart_remediator(self) -> None:
        """Stop the (first) remediator and start it again on the same address, as a crashed pod would be."""
        old = self.remediators[0]
        old.stop()
        self.remediator = self.remediators[0] = start_python_service(
            old.name, "remediator", self.service_config_files[0], self.workdir, address=old.address)
        wait_ready(self.remediator, "/-/healthy", READY_TIMEOUT)

    def _write_service_config(self, alertmanager_addresses: list[str]) -> None:
        """One YAML file for exporter and remediator (one per remediator), token and JWT secret in files."""
        token_file = self.workdir / "webhook-token"
        token_file.write_text(self.token + "\n")
        token_file.chmod(0o600)
        jwt_file = None
        if self.options.simulator.get("jwt_secret"):
            jwt_file = self.workdir / "jwt-secret"
            jwt_file.write_text(self.options.simulator["jwt_secret"] + "\n")
        ams = dict(self.options.ams)
        if self.sim.cluster:
            # The remediator asks a stream's origin node itself (node_url): each simulated node answers on
            # its own loopback address at the simulator's port. Nothing here may reach another address.
            addresses = [node["address"] for node in self.sim.nodes]
            if self.options.simulator.get("server_jwt_secret") and not all(a.startswith("127.") for a in addresses):
                raise ValueError(f"a cluster whose registry the remediator reads needs loopback node addresses: {addresses}")
            ams.setdefault("node_url", f"http://{{ip}}:{self.sim.port}")
        if self.options.simulator.get("server_jwt_secret"):
            server_file = self.workdir / "server-jwt-secret"
            server_file.write_text(self.options.simulator["server_jwt_secret"] + "\n")
            ams.setdefault("server_jwt_secret_file", str(server_file))
        self.service_config_files = []
        for index in range(self.options.remediators):
            address = alertmanager_addresses[index % len(alertmanager_addresses)]
            config = service_config(self.sim.url, self.options.apps, self._exporter_timing(), str(token_file),
                                    f"http://{address}", str(self.audit_log_of(index)),
                                    str(jwt_file) if jwt_file else None, self.options.remediator, ams)
            name = "antmedia.yml" if index == 0 else f"antmedia-{index}.yml"
            self.service_config_files.append(write_yaml(self.workdir / name, config))
        self.token_file = token_file

    def _exporter_timing(self) -> Timing:
        """The timing with the heartbeat actually in force (overrides included)."""
        return replace(self.options.timing, heartbeat_seconds=self.options.heartbeat())

    def _start_alertmanagers(self, addresses: list[str]) -> None:
        """One Alertmanager, or two gossiping on loopback (each posting to its own remediator when two run)."""
        example = load_alertmanager_example()
        if not self.options.early_route:
            example = without_early_route(example)
        gossips = self._gossips(len(addresses))
        for index, (address, gossip) in enumerate(zip(addresses, gossips)):
            remediator = self.remediators[index % len(self.remediators)]
            config = alertmanager_config(example, remediator.url, str(self.token_file), self.sink.url)
            name = f"alertmanager-{index}" if len(addresses) > 1 else "alertmanager"
            config_file = write_yaml(self.workdir / f"{name}.yml", config)
            self.alertmanagers.append(start_alertmanager(name, config_file, self.workdir, gossip, address))

    def _gossips(self, count: int) -> list[Gossip]:
        """Cluster settings: none for one Alertmanager, a full mesh for several."""
        if count == 1:
            return [Gossip()]
        listens = [f"127.0.0.1:{free_port()}" for _ in range(count)]
        return [Gossip(listen=listen, peers=tuple(p for p in listens if p != listen),
                       peer_timeout=self.options.ha_peer_timeout) for listen in listens]

    def _start_prometheuses(self) -> None:
        """One Prometheus, or an HA pair (replica a and b) sending to every Alertmanager."""
        replicas = ["a", "b"] if self.options.ha else [None]
        for replica in replicas:
            name = f"prometheus-{replica}" if replica else "prometheus"
            config = prometheus_config(self.options.timing, self.exporter.address, self.remediator.address,
                                       [am.address for am in self.alertmanagers], replica=replica)
            config_file = write_yaml(self.workdir / f"{name}.yml", config)
            self.prometheuses.append(start_prometheus(name, config_file, self.workdir))
        for prometheus in self.prometheuses:
            wait_ready(prometheus, "/-/ready", READY_TIMEOUT)

    # -- reading ------------------------------------------------------------------------

    @property
    def prometheus_url(self) -> str:
        """The (first) Prometheus."""
        return self.prometheuses[0].url

    @property
    def alertmanager_url(self) -> str:
        """The (first) Alertmanager."""
        return self.alertmanagers[0].url

    def services(self) -> list[Service]:
        """Every child process, for URLs and health checks."""
        return [s for s in [self.exporter, *self.remediators, *self.alertmanagers, *self.prometheuses] if s]

    def urls(self) -> dict[str, str]:
        """Name -> URL of every service and of the simulated AMS."""
        urls = {s.name: s.url for s in self.services()}
        if self.sim is not None:
            urls["simulated AMS"] = self.sim.url
        return urls

    def audit(self, index: int = 0) -> list[dict]:
        """A remediator's audit records so far (the first one's by default)."""
        return api.read_audit(self.audit_log_of(index))

    def remediator_metrics(self) -> dict:
        """The remediator's /metrics, parsed."""
        return api.scrape(self.remediator.url)

    def check_running(self) -> None:
        """Raise StackError with the log tail of any component that died."""
        for service in self.services():
            if not service.process.running():
                raise service.process.failure("stopped unexpectedly")

    def logs(self, lines: int = 20) -> str:
        """Tails of every component's log, for failure reports."""
        return "\n".join(f"--- {s.name} ({s.process.log_path})\n{s.process.tail(lines)}" for s in self.services())
