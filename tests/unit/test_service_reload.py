"""Configuration reload (service/reload.py) in both services: SIGHUP, and POST /-/reload with
--web.enable-lifecycle. A bad file, or one that changes what cannot change in place, keeps the running
configuration and says why."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from exporter.__main__ import Current
from exporter.__main__ import reload_into as exporter_reload
from exporter.collector import AmsCollector
from exporter.web import create_app as exporter_app
from remediator.__main__ import make_server as make_remediator
from remediator.app import close_deps
from service.config import load_config
from service.reload import Reloader, changed_keys

REPO = Path(__file__).resolve().parents[2]
AMS = "ams:\n  - name: main\n    url: http://127.0.0.1:9\n    apps: [WebRTCAppEE]\n"
REMEDIATOR = "remediator:\n  webhook_token_file: token\n  audit_log: audit.jsonl\n  dry_run: {dry_run}\n"


def write(tmp_path, ams: str = AMS, dry_run: str = "true", extra: str = "") -> Path:
    (tmp_path / "token").write_text("tok\n")
    path = tmp_path / "antmedia.yml"
    path.write_text(ams + REMEDIATOR.format(dry_run=dry_run) + extra)
    return path


def call(app, method: str, path: str = "/-/reload") -> tuple[int, str]:
    """One WSGI request."""
    seen = {}
    body = b"".join(app({"REQUEST_METHOD": method, "PATH_INFO": path, "wsgi.input": None},
                        lambda status, headers: seen.setdefault("status", status)))
    return int(seen["status"].split()[0]), body.decode()


def test_changed_keys_names_each_differing_field_by_its_path(tmp_path):
    old = load_config(write(tmp_path), read_secrets=("ams", "remediator"))
    new = load_config(write(tmp_path, dry_run="false", extra="  deny: {rooms: [board]}\n"),
                      read_secrets=("ams", "remediator"))
    assert changed_keys(new, old) == ["remediator.dry_run", "remediator.deny.rooms"]


def test_the_exporter_collects_the_new_ams_list_and_keeps_serving_on_a_bad_file(tmp_path):
    path = write(tmp_path)
    config = load_config(path, read_secrets=("ams",))
    current = Current(AmsCollector(config.ams))
    reloader = Reloader(str(path), ("ams",), config, exporter_reload(current))
    app = exporter_app(current, reloader=reloader)
    first = current.collector
    path.write_text(AMS.replace("main", "backup") + REMEDIATOR.format(dry_run="true"))
    assert call(app, "POST") == (200, "OK\n")
    assert current.collector is not first and [s.name for s in current.servers] == ["backup"]
    path.write_text(AMS + "  - name: main\n    url: ftp://nowhere\n    apps: [x]\n")
    status, text = call(app, "POST")
    assert status == 500 and "ams[1]" in text and [s.name for s in current.servers] == ["backup"]
    path.write_text(AMS.replace("main", "backup") + "exporter:\n  listen_address: 127.0.0.1:1\n")
    status, text = call(app, "POST")
    assert status == 500 and "exporter.listen_address: cannot change while running" in text
    assert call(app, "GET") == (405, "only POST or PUT\n")
    assert call(exporter_app(current), "POST") == (403, "Lifecycle API is not enabled.\n")


def test_the_remediator_goes_enforcing_on_reload_and_keeps_what_cannot_change_in_place(tmp_path):
    path = write(tmp_path)
    settings = load_config(path, read_secrets=("ams", "remediator"))
    server, deps, reloader = make_remediator(settings, "127.0.0.1", 0, lifecycle=True)
    try:
        remediator = deps.remediator
        path.write_text(AMS + REMEDIATOR.format(dry_run="false"))
        assert reloader.reload() is None
        assert remediator.config.dry_run is False and deps.metrics.dry_run._value.get() == 0
        (tmp_path / "token").write_text("another\n")
        error = reloader.reload()
        assert error is not None and "remediator.token: cannot change while running" in error and "another" not in error
        assert remediator.config.dry_run is False and deps.token == "tok"
        path.write_text(AMS + REMEDIATOR.format(dry_run="maybe"))
        (tmp_path / "token").write_text("tok\n")
        assert "remediator.dry_run" in reloader.reload()
        assert deps.remediator is remediator and remediator.config.dry_run is False
    finally:
        server.stop()
        close_deps(deps)


@pytest.mark.slow
def test_sighup_reloads_a_running_remediator(tmp_path):
    path = write(tmp_path)
    port_probe = httpx.Client(timeout=2)
    process = subprocess.Popen([sys.executable, "-m", "remediator", f"--config.file={path}",
                                "--web.listen-address=127.0.0.1:0", "--log.level=info"],
                               cwd=REPO, stderr=subprocess.PIPE, text=True)
    try:
        line = ""
        deadline = time.monotonic() + 20
        while "listening on" not in line and time.monotonic() < deadline:
            line = process.stderr.readline()
        port = int(line.split("listening on 127.0.0.1:")[1].split(",")[0])

        def dry_run() -> str:
            metrics = port_probe.get(f"http://127.0.0.1:{port}/metrics").text
            return next(l for l in metrics.splitlines() if l.startswith("antmedia_remediator_dry_run "))

        assert dry_run() == "antmedia_remediator_dry_run 1.0"
        path.write_text(AMS + REMEDIATOR.format(dry_run="false"))
        os.kill(process.pid, signal.SIGHUP)
        deadline = time.monotonic() + 10
        while dry_run() != "antmedia_remediator_dry_run 0.0" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert dry_run() == "antmedia_remediator_dry_run 0.0"
        assert port_probe.post(f"http://127.0.0.1:{port}/-/reload").status_code == 403  # lifecycle not enabled
    finally:
        process.terminate()
        process.wait(timeout=20)
        port_probe.close()
