"""--web.config.file: exporter-toolkit's TLS and basic auth, on a real server with certificates made at test time."""

from __future__ import annotations

import socket
import ssl
import threading
import time

import bcrypt
import httpx
import pytest
import trustme

from service.config import ConfigError, ServerLimits
from service.web import Server
from service.webconfig import load_web_config

HASH = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode()


def hello(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [environ["wsgi.url_scheme"].encode()]


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def files(tmp_path, ca):
    server_cert = ca.issue_cert("127.0.0.1", "localhost")
    server_cert.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "server.pem"))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    client = ca.issue_cert("prometheus@example.test")
    client.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "client.pem"))
    return tmp_path


def web_file(tmp_path, text: str) -> str:
    path = tmp_path / "web.yml"
    path.write_text(text)
    return str(path)


def running(web, **kwargs):
    server = Server(hello, "127.0.0.1", 0, ServerLimits(request_timeout_seconds=2), web, threads=2, ident="test",
                    max_body_bytes=1024, **kwargs)
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    return server, thread


def trusting(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


TLS = "tls_server_config:\n  cert_file: server.pem\n  key_file: server.pem\n"


def test_tls_with_verified_client_certificates_and_basic_auth(files, ca):
    web = load_web_config(web_file(files, TLS + "  client_ca_file: ca.pem\n"
                                              f"basic_auth_users:\n  prometheus: '{HASH}'\n"))
    server, thread = running(web, exempt=("/-/healthy",))
    base = f"https://127.0.0.1:{server.port}"
    trusted = trusting(ca)
    with_cert = ssl.create_default_context(cafile=str(files / "ca.pem"))
    with_cert.load_cert_chain(str(files / "client.pem"))
    try:
        answer = httpx.get(f"{base}/metrics", verify=with_cert, auth=("prometheus", "s3cret"), timeout=5)
        assert answer.status_code == 200 and answer.text == "https"
        assert httpx.get(f"{base}/metrics", verify=with_cert, auth=("prometheus", "wrong"), timeout=5).status_code == 401
        no_auth = httpx.get(f"{base}/metrics", verify=with_cert, timeout=5)
        assert no_auth.status_code == 401 and no_auth.headers["WWW-Authenticate"].startswith("Basic ")
        assert httpx.get(f"{base}/-/healthy", verify=with_cert, timeout=5).status_code == 200  # probes: no credentials
        with pytest.raises(httpx.HTTPError):  # no client certificate: the handshake fails
            httpx.get(f"{base}/-/healthy", verify=trusted, timeout=5)
        with pytest.raises(httpx.HTTPError):  # plain HTTP on the TLS port
            httpx.get(f"http://127.0.0.1:{server.port}/-/healthy", timeout=5)
    finally:
        server.stop()
        thread.join(timeout=10)


@pytest.mark.slow
def test_a_silent_tls_client_does_not_stall_the_handshakes_of_others(files, ca):
    server, thread = running(load_web_config(web_file(files, TLS)))
    try:
        silent = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(20)]
        start = time.monotonic()
        answer = httpx.get(f"https://127.0.0.1:{server.port}/", verify=trusting(ca), timeout=5)
        assert answer.status_code == 200 and time.monotonic() - start < 2
        for sock in silent:
            sock.close()
    finally:
        server.stop()
        thread.join(timeout=10)


def test_plain_http_without_a_web_config_file():
    web = load_web_config(None)
    assert web.tls_context() is None and web.summary == "http"


@pytest.mark.parametrize(("text", "message"), [
    (TLS + "  cipher_suites: [TLS_AES_128_GCM_SHA256]\n", "tls_server_config.cipher_suites: unknown key"),
    ("http_server_config: {http2: false}\n", "http_server_config: unknown key"),
    (TLS + "  client_auth_type: RequireAnyClientCert\n", "tls_server_config.client_auth_type"),
    (TLS + "  client_auth_type: RequireAndVerifyClientCert\n", "needs client_ca_file"),
    (TLS + "  min_version: TLS13\n  max_version: TLS12\n", "min_version: above max_version"),
    ("tls_server_config:\n  cert_file: absent.pem\n  key_file: absent.pem\n", "cannot load"),
    ("basic_auth_users:\n  alice: plaintext\n", "basic_auth_users.alice: expected a bcrypt hash"),
    ("tls_server_config:\n  key_file: server.pem\n", "tls_server_config.cert_file: required"),
])
def test_a_wrong_web_config_is_refused_by_key(files, text, message):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        load_web_config(web_file(files, text))


def test_client_auth_defaults_to_require_and_verify_when_a_ca_is_given(files):
    web = load_web_config(web_file(files, TLS + "  client_ca_file: ca.pem\n"))
    assert web.tls_server_config.client_auth_type == "RequireAndVerifyClientCert"
    assert web.tls_context().verify_mode == ssl.CERT_REQUIRED
    assert web.summary == "https, client certificates required"


def test_both_commands_take_the_web_config_file_and_check_it(files, capsys):
    import exporter.__main__ as exporter_main
    import remediator.__main__ as remediator_main

    config = files / "antmedia.yml"
    config.write_text("ams:\n  - name: main\n    url: http://127.0.0.1:9\n    apps: [A]\n"
                      "remediator: {insecure_no_auth: true}\n")
    good = web_file(files, TLS + f"basic_auth_users:\n  p: '{HASH}'\n")
    for main in (exporter_main.main, remediator_main.main):
        assert main(["--config.file", str(config), "--web.config.file", good, "--config.check"]) == 0
        assert "https, basic auth (1 users)" in capsys.readouterr().out
    (files / "bad.yml").write_text("tls_server_config: {cert_file: server.pem, key_file: server.pem, x: 1}\n")
    assert exporter_main.main(["--config.file", str(config), "--web.config.file", str(files / "bad.yml"),
                               "--config.check"]) == 2
    assert "tls_server_config.x: unknown key" in capsys.readouterr().err
