"""deploy/systemd: units that systemd-analyze verifies, hardened to an exposure of "OK" or better."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from .tools import SYSTEMD, run, tool

UNITS = ("antmedia-exporter", "antmedia-remediator")
# systemd-analyze security: 0 is fully locked down, 10 fully exposed; below 2 reads "OK".
MAX_EXPOSURE = 2.0
HOST_UNITS = Path("/usr/lib/systemd/system")


def unit(name: str) -> dict[str, list[str]]:
    """[Service] settings of a unit file; a setting given twice keeps every value."""
    values: dict[str, list[str]] = {}
    section = None
    for line in (SYSTEMD / f"{name}.service").read_text().splitlines():
        if line.startswith("["):
            section = line.strip("[]")
        elif section == "Service" and "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            values.setdefault(key, []).append(value)
    return values


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """A root for `systemd-analyze verify --root`: the host's units, the two units, stub commands.
    The stubs stand where `pip install` puts the commands (verify checks ExecStart= is executable)."""
    tool("systemd-analyze")
    root = tmp_path_factory.mktemp("systemd-root")
    if not HOST_UNITS.is_dir():
        pytest.fail(f"{HOST_UNITS} missing: install the Debian package systemd", pytrace=False)
    shutil.copytree(HOST_UNITS, root / HOST_UNITS.relative_to("/"), symlinks=True)
    (root / "etc/systemd/system").mkdir(parents=True)
    for name in UNITS:
        shutil.copy(SYSTEMD / f"{name}.service", root / "etc/systemd/system")
        command = Path(unit(name)["ExecStart"][0].split()[0])
        stub = root / command.relative_to("/")
        stub.parent.mkdir(parents=True, exist_ok=True)
        stub.write_text("#!/bin/sh\n")
        stub.chmod(0o755)
    return root


@pytest.mark.parametrize("name", UNITS)
def test_unit_passes_systemd_analyze_verify(root, name):
    result = run([tool("systemd-analyze"), "verify", "--man=no", f"--root={root}",
                  str(root / "etc/systemd/system" / f"{name}.service")], timeout=60, check=False)
    assert result.returncode == 0 and not result.stdout.strip() and not result.stderr.strip(), \
        result.stdout + result.stderr


@pytest.mark.parametrize("name", UNITS)
def test_unit_exposure_is_ok_by_systemd_analyze_security(name):
    result = run([tool("systemd-analyze"), "security", "--offline=yes", "--no-pager",
                  str(SYSTEMD / f"{name}.service")], timeout=60)
    score = float(re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout).group(1))
    print(f"{name}.service exposure {score}")
    assert score <= MAX_EXPOSURE, result.stdout


@pytest.mark.parametrize("name", UNITS)
def test_unit_runs_as_a_dedicated_user_without_privileges(name):
    service = unit(name)
    assert service["User"] == ["antmedia"] and service["Group"] == ["antmedia"]
    assert service["ProtectSystem"] == ["strict"] and service["NoNewPrivileges"] == ["yes"]
    assert service["CapabilityBoundingSet"] == [""] and service["AmbientCapabilities"] == [""]
    assert service["ExecStart"][0].split()[1:] == ["--config.file=%d/antmedia.yml"]
    assert "u antmedia " in (SYSTEMD / "antmedia.sysusers.conf").read_text()


def test_secrets_come_as_credentials_and_only_the_remediator_gets_the_webhook_token():
    exporter, remediator = (unit(name)["LoadCredential"] for name in UNITS)
    assert exporter == ["antmedia.yml:/etc/antmedia/antmedia.yml"]
    assert remediator == exporter + ["webhook-token:/etc/antmedia/secrets/webhook-token"]
    assert not any("Environment" in key for name in UNITS for key in unit(name))
