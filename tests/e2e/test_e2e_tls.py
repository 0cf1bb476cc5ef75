"""TLS end to end: real Prometheus scrapes the exporter over TLS with a client certificate and basic auth;
real Alertmanager posts to the remediator over TLS with a client certificate and the bearer token.

Both services read one --web.config.file (exporter-toolkit format); every certificate is made at
test time by trustme. No AMS is needed: the exporter reports antmedia_up 0 and Prometheus's `up`
is 1; the remediator defers the alert (AMS unreachable) after taking the authenticated request.
"""

from __future__ import annotations

import json
import ssl
import sys
from pathlib import Path

import bcrypt
import httpx
import pytest
import trustme

from stack.binaries import alertmanager_bin, prometheus_bin
from stack.ports import free_port
from stack.process import ManagedProcess
from stack.waiting import wait_for

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "scrape-pass"
TOKEN = "hook-token"


@pytest.fixture(scope="module")
def tls_stack(tmp_path_factory):
    """Exporter and remediator behind TLS + auth, Prometheus and Alertmanager configured to reach them."""
    d = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(d / "ca.pem"))
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(d / "server.pem"))
    client = ca.issue_cert("prometheus.test")
    client.cert_chain_pems[0].write_to_path(str(d / "client.crt"))
    client.private_key_pem.write_to_path(str(d / "client.key"))
    (d / "password").write_text(PASSWORD)
    (d / "token").write_text(TOKEN + "\n")
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=10)).decode()
    (d / "web.yml").write_text(
        "tls_server_config:\n  cert_file: server.pem\n  key_file: server.pem\n  client_ca_file: ca.pem\n"
        "  client_auth_type: RequireAndVerifyClientCert\n  min_version: TLS12\n"
        f"basic_auth_users:\n  prometheus: '{hashed}'\n")
    exporter_port, remediator_port, prom_port, am_port = (free_port() for _ in range(4))
    (d / "antmedia.yml").write_text(
        "ams:\n  - name: main\n    url: http://127.0.0.1:9\n    apps: [WebRTCAppEE]\n    timeout_seconds: 1\n"
        "remediator:\n  dry_run: true\n  webhook_token_file: token\n  audit_log: audit.jsonl\n")
    (d / "rules.yml").write_text(
        "groups:\n  - name: tls\n    rules:\n      - alert: TlsEndToEnd\n        expr: vector(1)\n"
        "        labels: {remediation: delete_stream, ams: main, app: WebRTCAppEE, stream_id: s1}\n")
    (d / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\nrule_files: [rules.yml]\n"
        f"alerting:\n  alertmanagers:\n    - static_configs: [{{targets: ['127.0.0.1:{am_port}']}}]\n"
        "scrape_configs:\n  - job_name: antmedia\n    scheme: https\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{exporter_port}']}}]\n"
        "    basic_auth: {username: prometheus, password_file: password}\n"
        "    tls_config: {ca_file: ca.pem, cert_file: client.crt, key_file: client.key}\n")
    (d / "alertmanager.yml").write_text(
        "route: {receiver: remediator, group_wait: 0s, group_interval: 1s, repeat_interval: 1m}\n"
        "receivers:\n  - name: remediator\n    webhook_configs:\n"
        f"      - url: https://127.0.0.1:{remediator_port}/alerts\n        send_resolved: false\n"
        "        http_config:\n          authorization: {credentials_file: token}\n"
        "          tls_config: {ca_file: ca.pem, cert_file: client.crt, key_file: client.key}\n")
    common = ["--config.file", str(d / "antmedia.yml"), "--web.config.file", str(d / "web.yml"), "--log.format=json"]
    procs = [
        ManagedProcess("exporter", [sys.executable, "-m", "exporter", *common,
                                    f"--web.listen-address=127.0.0.1:{exporter_port}"], d / "exporter.log", cwd=ROOT),
        ManagedProcess("remediator", [sys.executable, "-m", "remediator", *common,
                                      f"--web.listen-address=127.0.0.1:{remediator_port}"], d / "remediator.log",
                       cwd=ROOT),
        ManagedProcess("alertmanager", [alertmanager_bin(), f"--config.file={d / 'alertmanager.yml'}",
                                        f"--storage.path={d / 'am-data'}", f"--web.listen-address=127.0.0.1:{am_port}",
                                        "--cluster.listen-address="], d / "alertmanager.log", cwd=d),
        ManagedProcess("prometheus", [prometheus_bin(), f"--config.file={d / 'prometheus.yml'}",
                                      f"--storage.tsdb.path={d / 'prom-data'}",
                                      f"--web.listen-address=127.0.0.1:{prom_port}"], d / "prometheus.log", cwd=d),
    ]
    context = ssl.create_default_context(cafile=str(d / "ca.pem"))
    context.load_cert_chain(str(d / "client.crt"), str(d / "client.key"))
    try:
        for proc in procs:
            proc.start()
        wait_for(lambda: _ok(f"https://127.0.0.1:{exporter_port}/-/ready", context), 30, "exporter ready over TLS")
        wait_for(lambda: _ok(f"https://127.0.0.1:{remediator_port}/-/ready", context), 30, "remediator ready")
        procs[3].wait_ready(f"http://127.0.0.1:{prom_port}/-/ready", 30)
        yield {"dir": d, "context": context, "exporter": exporter_port, "remediator": remediator_port,
               "prometheus": prom_port, "procs": procs}
    finally:
        for proc in reversed(procs):
            proc.stop()


def _ok(url: str, context: ssl.SSLContext) -> bool:
    try:
        return httpx.get(url, verify=context, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _query(port: int, expr: str) -> list:
    answer = httpx.get(f"http://127.0.0.1:{port}/api/v1/query", params={"query": expr}, timeout=5).json()
    return answer["data"]["result"]


def test_prometheus_scrapes_the_exporter_over_tls_with_a_client_certificate_and_basic_auth(tls_stack):
    port = tls_stack["prometheus"]
    wait_for(lambda: _query(port, 'up{job="antmedia"} == 1'), 30, "Prometheus scraping the exporter over TLS")
    build = wait_for(lambda: _query(port, "antmedia_exporter_build_info"), 30, "build info scraped")
    assert build[0]["metric"]["version"].startswith("0.")


def test_the_exporter_refuses_a_scrape_without_credentials_or_without_a_client_certificate(tls_stack):
    base = f"https://127.0.0.1:{tls_stack['exporter']}"
    assert httpx.get(f"{base}/metrics", verify=tls_stack["context"], timeout=5).status_code == 401
    no_cert = ssl.create_default_context(cafile=str(tls_stack["dir"] / "ca.pem"))
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{base}/metrics", verify=no_cert, auth=("prometheus", PASSWORD), timeout=5)


def test_alertmanager_posts_to_the_remediator_over_tls_with_its_token(tls_stack):
    base = f"https://127.0.0.1:{tls_stack['remediator']}"

    def taken() -> float:
        text = httpx.get(f"{base}/metrics", verify=tls_stack["context"], auth=("prometheus", PASSWORD), timeout=5).text
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith("antmedia_remediator_webhook_requests_total{")
                   and 'code="401"' not in line and 'code="400"' not in line)

    wait_for(lambda: taken() >= 1, 60, "a notification from Alertmanager over TLS")
    audit = (tls_stack["dir"] / "audit.jsonl").read_text().splitlines()
    decisions = [json.loads(line) for line in audit]
    assert any(d["stream_id"] == "s1" for d in decisions)
    log = (tls_stack["dir"] / "remediator.log").read_text()
    assert all(json.loads(line)["level"] for line in log.splitlines())  # --log.format=json, one object a line
    assert TOKEN not in log and PASSWORD not in log
