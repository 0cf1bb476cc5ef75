"""Podman with a storage of its own, so a test never retags or removes a user's images.

Root podman here runs on cgroupfs and logs events to a file (no systemd, no journal).
The OCI runtime is asked for rlimits no higher than this process's own: podman's
defaults (1048576 open files) exceed the hard limits of sandboxes whose bounding set
lacks CAP_SYS_RESOURCE, where runc then fails with "error setting rlimits".
"""
from __future__ import annotations

import resource
import shutil
import subprocess
from pathlib import Path

from .tools import run, tool

OPEN_FILES, PROCESSES = 4096, 4096


def _limit(kind: int, wanted: int) -> int:
    """`wanted`, or this process's hard limit when that is lower."""
    hard = resource.getrlimit(kind)[1]
    return wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)


class Podman:
    """`podman` on a private storage root under `workdir`."""

    def __init__(self, workdir: Path) -> None:
        tool("runc")
        self.workdir = workdir
        self.base = [tool("podman"), "--root", str(workdir / "storage"), "--runroot", str(workdir / "run"),
                     "--storage-driver", "overlay", "--runtime", "runc",
                     "--cgroup-manager", "cgroupfs", "--events-backend", "file"]

    def __call__(self, *args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
        return run([*self.base, *args], timeout=timeout, check=check)

    def run_flags(self) -> list[str]:
        """Flags every test container gets: the limits above, loopback of the host."""
        nofile = _limit(resource.RLIMIT_NOFILE, OPEN_FILES)
        nproc = _limit(resource.RLIMIT_NPROC, PROCESSES)
        return ["--ulimit", f"nofile={nofile}:{nofile}", "--ulimit", f"nproc={nproc}:{nproc}",
                "--network=host"]

    def remove(self, name: str) -> None:
        """Remove a container, running or not, waiting at most 5 s for it to stop."""
        self("rm", "--force", "--time", "5", name, check=False, timeout=60)

    def close(self) -> None:
        """Drop every container and image of this storage, then the storage itself."""
        self("system", "reset", "--force", check=False, timeout=300)
        shutil.rmtree(self.workdir, ignore_errors=True)
