"""What was built: version, revision when known, Python; as --version text and as a *_build_info metric."""

from __future__ import annotations

import importlib.metadata
import json
import platform
from functools import cache
from pathlib import Path
from typing import NamedTuple

from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector
from prometheus_client.core import GaugeMetricFamily

__all__ = ["Build", "BuildInfoCollector", "build", "register_process_metrics", "version_text"]

DISTRIBUTION = "antmedia-exporter"  # the one package both commands ship in
ROOT = Path(__file__).resolve().parents[1]


class Build(NamedTuple):
    """Labels of *_build_info."""

    version: str
    revision: str
    python_version: str


@cache
def build() -> Build:
    """This installation's version, its git revision when it can be known without running git, and Python's."""
    try:
        version = importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    return Build(version, _revision() or "unknown", platform.python_version())


def _revision() -> str | None:
    """pip's record of a VCS install, else the checkout this code runs from."""
    try:
        direct = importlib.metadata.distribution(DISTRIBUTION).read_text("direct_url.json")
        commit = json.loads(direct or "{}").get("vcs_info", {}).get("commit_id")
        if commit:
            return commit
    except (importlib.metadata.PackageNotFoundError, ValueError):
        pass
    return _git_head(ROOT / ".git")


def _git_head(git: Path) -> str | None:
    """Resolve .git/HEAD by reading files (a ref, a packed ref, or a detached commit)."""
    try:
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref: "):
            return head or None
        ref = head[5:]
        if (git / ref).is_file():
            return (git / ref).read_text().strip() or None
        for line in (git / "packed-refs").read_text().splitlines():
            commit, _, name = line.partition(" ")
            if name == ref:
                return commit
    except OSError:
        return None
    return None


def version_text(prog: str) -> str:
    """Prometheus style: 'antmedia-exporter, version 0.1.0 (revision: 1a2b...)\\n  python version: 3.11.2'."""
    info = build()
    return f"{prog}, version {info.version} (revision: {info.revision})\n  python version: {info.python_version}"


class BuildInfoCollector:
    """NAME_build_info{version,revision,python_version} 1."""

    def __init__(self, name: str, documentation: str) -> None:
        self.name, self.documentation = name, documentation

    def collect(self):
        info = build()
        family = GaugeMetricFamily(self.name, self.documentation, labels=list(Build._fields))
        family.add_metric(list(info), 1)
        yield family


def register_process_metrics(registry: CollectorRegistry, build_info: str, what: str) -> None:
    """Build info plus prometheus_client's process_* and python_info collectors in registry."""
    registry.register(BuildInfoCollector(build_info, f"A metric with a constant '1' value labelled by the {what}'s "
                                                     "version, revision and Python version."))
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
