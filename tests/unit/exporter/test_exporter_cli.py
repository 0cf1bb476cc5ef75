"""Command line: --config.check, config errors exit non-zero, serving /metrics on 127.0.0.1 and stopping on SIGTERM."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from exporter.__main__ import main

ROOT = Path(__file__).resolve().parents[3]


def write_config(tmp_path, url: str = "http://127.0.0.1:5080", extra: str = "") -> Path:
    path = tmp_path / "antmedia.yml"
    path.write_text(f"ams:\n  - name: main\n    url: {url}\n    apps: [WebRTCAppEE]\n    timeout_seconds: 2\n{extra}")
    return path


def test_config_check_accepts_a_valid_file(tmp_path, capsys):
    assert main(["--config.file", str(write_config(tmp_path)), "--config.check"]) == 0
    assert "OK (1 AMS, 1 apps)" in capsys.readouterr().out


def test_config_error_names_the_key_and_exits_2(tmp_path, capsys):
    path = write_config(tmp_path, extra="    appz: [x]\n")
    assert main(["--config.file", str(path), "--config.check"]) == 2
    assert "ams[0].appz: unknown key" in capsys.readouterr().err


def test_bad_listen_address_is_a_config_error(tmp_path, capsys):
    assert main(["--config.file", str(write_config(tmp_path)), "--web.listen-address", "nowhere"]) == 2
    assert "--web.listen-address: expected HOST:PORT" in capsys.readouterr().err


def test_missing_config_flag_is_a_usage_error():
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2


def _wait_for_port(proc: subprocess.Popen, deadline: float) -> int:
    """Read the exporter's log until it says where it listens."""
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        match = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
        if match:
            return int(match.group(1))
        if not line and proc.poll() is not None:
            break
    raise AssertionError("exporter did not start listening")


def test_exporter_serves_metrics_and_stops_on_sigterm(tmp_path):
    simulator = pytest.importorskip("simulator")
    with simulator.Simulator(ams_version="3.0.0") as sim:
        sim.create_room("WebRTCAppEE", "room1")
        sim.join("WebRTCAppEE", "room1", "alice")
        config = write_config(tmp_path, url=sim.url)
        proc = subprocess.Popen(
            [sys.executable, "-m", "exporter", "--config.file", str(config), "--web.listen-address", "127.0.0.1:0"],
            cwd=ROOT, stderr=subprocess.PIPE, text=True)
        try:
            port = _wait_for_port(proc, time.monotonic() + 20)
            body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
            assert 'antmedia_up{ams="main",app="WebRTCAppEE"} 1.0' in body
            assert 'antmedia_room_member{ams="main",app="WebRTCAppEE",room="room1",stream_id="alice"} 1.0' in body
            assert httpx.get(f"http://127.0.0.1:{port}/-/healthy", timeout=5).text == "OK\n"
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=10) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stderr.close()
