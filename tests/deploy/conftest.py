"""Fixtures of the deployment tests: one podman storage, stand-in base and image per run."""
from __future__ import annotations

import os
import re
import sys
import time

import pytest

from .podman import Podman
from .tools import DEPLOY, ROOT, run, tool

CONTAINERFILE = DEPLOY / "Containerfile"
IMAGE = "localhost/antmedia-exporter:test"
# What the stand-in base holds: the Python of the Debian release the base's tag names.
STAND_IN_PACKAGES = "python3,python3-venv,ca-certificates"
STAND_IN_ENV = ("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8")


def base_image_name() -> str:
    """The default of the Containerfile's PYTHON_IMAGE build argument."""
    match = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", CONTAINERFILE.read_text(), re.MULTILINE)
    assert match, "deploy/Containerfile: no `ARG PYTHON_IMAGE=...` default"
    return match.group(1)


def debian_suite(image: str) -> str:
    """`bookworm` of `python:3.11-slim-bookworm`."""
    match = re.search(r"-slim-([a-z]+)$", image)
    assert match, f"{image}: the tag names no Debian release (python:X.Y-slim-RELEASE)"
    return match.group(1)


@pytest.fixture(scope="session")
def podman(tmp_path_factory):
    """Root podman on a private storage, removed at the end of the run."""
    if os.geteuid() != 0:
        pytest.fail("the container tests run podman and mmdebstrap as root", pytrace=False)
    engine = Podman(tmp_path_factory.mktemp("podman"))
    try:
        yield engine
    finally:
        engine.close()


@pytest.fixture(scope="session")
def timings() -> dict[str, float]:
    """Seconds each slow step took, printed at the end of the run."""
    measured: dict[str, float] = {}
    yield measured
    if measured:
        print("\ndeploy timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in measured.items()))


@pytest.fixture(scope="session")
def stand_in_base(podman, tmp_path_factory, timings) -> str:
    """The base the Containerfile names, built from Debian packages with mmdebstrap (no registry)."""
    name = base_image_name()
    rootfs = tmp_path_factory.mktemp("stand-in") / "rootfs.tar"
    started = time.monotonic()
    run([tool("mmdebstrap"), "--variant=minbase", f"--include={STAND_IN_PACKAGES}",
         "--dpkgopt=path-exclude=/usr/share/doc/*", "--dpkgopt=path-exclude=/usr/share/man/*",
         "--dpkgopt=path-exclude=/usr/share/locale/*", "--format=tar",
         debian_suite(name), str(rootfs)], timeout=600)
    timings["mmdebstrap"] = time.monotonic() - started
    started = time.monotonic()
    changes = [arg for env in STAND_IN_ENV for arg in ("--change", f"ENV={env}")]
    podman("import", *changes, "--change", 'CMD=["python3"]', str(rootfs), name, timeout=300)
    rootfs.unlink()
    timings["import"] = time.monotonic() - started
    return name


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory, timings):
    """The project's dependencies (and its build backend) as wheels, for a build with no network."""
    wheels = tmp_path_factory.mktemp("wheels")
    started = time.monotonic()
    run([sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(wheels),
         str(ROOT), "setuptools>=77"], timeout=300)
    for own in wheels.glob("antmedia_exporter-*.whl"):
        own.unlink()  # the image builds the project from its source
    timings["wheels"] = time.monotonic() - started
    return wheels


@pytest.fixture(scope="session")
def image(podman, stand_in_base, wheelhouse, timings) -> str:
    """deploy/Containerfile built from the repository, offline, on the stand-in base."""
    started = time.monotonic()
    podman("build", "--network=none", "--pull=never", "--file", str(CONTAINERFILE),
           "--volume", f"{wheelhouse}:/wheels:ro",
           "--build-arg", "PIP_NO_INDEX=1", "--build-arg", "PIP_FIND_LINKS=/wheels",
           *podman_build_limits(podman), "--tag", IMAGE, str(ROOT), timeout=600)
    timings["build"] = time.monotonic() - started
    return IMAGE


def podman_build_limits(podman: Podman) -> list[str]:
    """The build's RUN steps get the same rlimits as test containers."""
    return [flag for flag in podman.run_flags() if flag != "--network=host"]

