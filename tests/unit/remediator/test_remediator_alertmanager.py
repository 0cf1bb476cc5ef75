"""Silence re-check against a real Alertmanager process (API v2)."""
import os
import shutil
import socket
import subprocess
import time
from datetime import datetime, timedelta, timezone

import httpx
import pytest
from remediator_support import (
    FakeAms,
    alert,
    app_client,
    build_deps,
    notification,
    post,
)

from remediator.alerts import AlertmanagerCheck

BINARY = os.environ.get("ALERTMANAGER_BIN") or shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
pytestmark = [pytest.mark.slow,  # starts a real Alertmanager
              pytest.mark.skipif(BINARY is None, reason="no Alertmanager binary (prometheus-alertmanager)")]
CONFIG = 'route:\n  receiver: "null"\nreceivers:\n  - name: "null"\n'


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def alertmanager(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("alertmanager")
    (workdir / "am.yml").write_text(CONFIG)
    url = f"http://127.0.0.1:{_free_port()}"
    process = subprocess.Popen(
        [BINARY, f"--config.file={workdir / 'am.yml'}", f"--storage.path={workdir / 'data'}",
         f"--web.listen-address={url.removeprefix('http://')}", "--cluster.listen-address="],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_ready(url)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def _wait_ready(url: str) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError("Alertmanager did not become ready")


def _fire(url: str, item: dict) -> dict:
    """Post the alert to Alertmanager and return the webhook alert with Alertmanager's fingerprint."""
    httpx.post(f"{url}/api/v2/alerts", json=[{"labels": item["labels"]}], timeout=5).raise_for_status()
    found = httpx.get(f"{url}/api/v2/alerts", params={"filter": f'stream_id="{item["labels"]["stream_id"]}"'},
                      timeout=5).json()
    return {**item, "fingerprint": found[0]["fingerprint"]}


def _silence(url: str, stream: str) -> None:
    now = datetime.now(timezone.utc)
    body = {"matchers": [{"name": "remediation", "value": "delete_stream", "isRegex": False},
                         {"name": "stream_id", "value": stream, "isRegex": False}],
            "startsAt": now.isoformat(), "endsAt": (now + timedelta(hours=1)).isoformat(),
            "createdBy": "test", "comment": "remediation paused"}
    httpx.post(f"{url}/api/v2/silences", json=body, timeout=5).raise_for_status()


def test_alert_silenced_on_a_real_alertmanager_is_skipped_and_others_evicted(alertmanager):
    ams = FakeAms()
    ams.add("ghost1")
    ams.add("ghost2")
    deps, _ = build_deps({"main": ams}, alertmanager=AlertmanagerCheck(alertmanager, 2.0))
    quiet, loud = _fire(alertmanager, alert("ghost1")), _fire(alertmanager, alert("ghost2"))
    _silence(alertmanager, "ghost1")
    response = post(app_client(deps), notification(quiet, loud))
    decisions = [(o["stream_id"], o["decision"], o["reason"]) for o in response.get_json()["outcomes"]]
    assert decisions == [("ghost1", "skipped", "silenced"), ("ghost2", "evicted", "ok")]
    assert ("delete", "ghost1") not in ams.writes


def test_alert_unknown_to_alertmanager_is_not_acted_on(alertmanager):
    ams = FakeAms()
    ams.add("ghost9")
    deps, _ = build_deps({"main": ams}, alertmanager=AlertmanagerCheck(alertmanager, 2.0))
    response = post(app_client(deps), notification(alert("ghost9")))
    assert response.get_json()["outcomes"][0]["reason"] == "not_active" and ams.writes == []
