"""ams.transport: the total deadline through public httpx and httpcore interfaces, TLS settings, and the
AMS layer touching no private attribute of another object."""

from __future__ import annotations

import ast
import json
import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from ams.client import AmsClient
from ams.errors import AmsUnavailableError, AmsUnreachableError
from ams.server import AmsServer
from ams.transport import DeadlineTransport, deadline_request, ssl_context_for

AMS = Path(__file__).resolve().parents[3] / "ams"


def test_the_ams_layer_reads_no_private_attribute_of_another_object():
    """Only self's and cls's own underscored names: no private attribute of httpx, httpcore or msgspec."""
    found = []
    for path in sorted(AMS.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
                    and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))):
                found.append(f"{path.name}:{node.lineno} .{node.attr}")
    assert found == []


def test_the_deadline_transport_answers_like_httpx(hostile):
    ams = hostile(lambda path, reply: reply.json({"path": path}))
    limits = httpx.Limits(max_connections=2, max_keepalive_connections=2)
    transport = DeadlineTransport(ssl_context_for(server_for(ams.url)), limits)
    with httpx.Client(base_url=ams.url, transport=transport) as http:
        with deadline_request(time.monotonic() + 5):
            first = http.get("/a", params={"x": "1 2"})
        second = http.get("/b")  # no deadline set: plain per-operation timeouts
    assert (first.status_code, first.json(), second.json()) == (200, {"path": "/a?x=1+2"}, {"path": "/b"})
    assert ams.connections == 1  # kept alive


@pytest.mark.slow
def test_the_deadline_transport_ends_a_dripped_head_by_the_deadline(hostile):
    ams = hostile(lambda path, reply: reply.drip(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}", 0.05))
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    with httpx.Client(base_url=ams.url, transport=DeadlineTransport(ssl_context_for(server_for(ams.url)), limits),
                      timeout=30) as http:
        started = time.monotonic()
        with deadline_request(started + 0.5), pytest.raises(httpx.ReadTimeout):
            http.get("/x")  # each byte comes within the 30 s read timeout; the deadline ends it
        assert 0.45 <= time.monotonic() - started < 0.8


def test_a_closed_port_is_unreachable():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with AmsClient(server_for(f"http://127.0.0.1:{port}")) as client:
        assert client.answers("LiveApp") is False
        with pytest.raises(AmsUnreachableError):
            client.version("LiveApp")


def test_https_to_an_ams_signed_by_the_configured_ca(tmp_path):
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))

    class Version(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            body = json.dumps({"versionName": "3.0.3", "versionType": "Community Edition"}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Version)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"https://127.0.0.1:{httpd.server_address[1]}"
    try:
        with AmsClient(server_for(url, ca_file=str(tmp_path / "ca.pem"))) as client:
            assert client.version("LiveApp").name == "3.0.3"
        with AmsClient(server_for(url)) as client, pytest.raises(AmsUnavailableError):
            client.version("LiveApp")  # not trusted without the CA
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_tls_settings_make_the_context(tmp_path):
    trustme = pytest.importorskip("trustme")
    ca = tmp_path / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(ca))
    insecure = ssl_context_for(server_for("https://ams.test", tls_insecure_skip_verify=True))
    own_ca = ssl_context_for(server_for("https://ams.test", ca_file=str(ca)))
    default = ssl_context_for(server_for("https://ams.test"))
    assert (insecure.verify_mode, insecure.check_hostname) == (ssl.CERT_NONE, False)
    assert own_ca.verify_mode == ssl.CERT_REQUIRED and own_ca.check_hostname and len(own_ca.get_ca_certs()) == 1
    assert default.verify_mode == ssl.CERT_REQUIRED and len(default.get_ca_certs()) > 1


def server_for(url: str, **overrides) -> AmsServer:
    return AmsServer(**{"name": "t", "url": url, "apps": ("LiveApp",), "timeout_seconds": 2.0, **overrides})
