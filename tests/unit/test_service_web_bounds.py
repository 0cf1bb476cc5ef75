"""What a client can hold of either service's HTTP server, reproduced on loopback.

Each attack is a bounded loop against 127.0.0.1 that stops by itself; each test measures the bound
it asserts: connections, bytes, seconds.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from remediator.__main__ import make_server as make_remediator
from remediator.app import close_deps
from service.config import ServerLimits, load_config
from service.web import Server

TIMEOUT = 1.0  # request_timeout_seconds in these tests (10 by default)


def hello(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"OK\n"]


@contextmanager
def serving(server) -> Iterator[str]:
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.port}"
    finally:
        server.stop()
        thread.join(timeout=10)


def small_server(threads: int = 4, **limits) -> Server:
    values = {"request_timeout_seconds": TIMEOUT, "idle_timeout_seconds": 5.0, **limits}
    return Server(hello, "127.0.0.1", 0, ServerLimits(**values), None, threads=threads, ident="test",
                  max_body_bytes=65536)


def connect(address: str) -> socket.socket:
    host, port = address.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=5)
    return sock


def closed_by_server(sock: socket.socket, within: float) -> float | None:
    """Seconds until the server closed sock (EOF or reset), or None if it stayed open."""
    start = time.monotonic()
    sock.settimeout(within)
    try:
        while sock.recv(4096):
            pass
    except TimeoutError:
        return None
    except OSError:
        pass
    return time.monotonic() - start


def timed_get(url: str) -> tuple[int, float]:
    start = time.monotonic()
    status = httpx.get(url, timeout=5).status_code
    return status, time.monotonic() - start


@pytest.mark.slow
def test_silent_and_half_sent_connections_block_no_one_and_are_closed_after_the_request_timeout():
    """98 connections sending nothing or half a request line held every worker of a waitress server for good."""
    with serving(small_server(threads=4)) as address:
        silent = [connect(address) for _ in range(49)]
        partial = [connect(address) for _ in range(49)]
        for sock in partial:
            sock.sendall(b"GET /metr")
        time.sleep(0.2)
        status, seconds = timed_get(f"http://{address}/-/healthy")
        assert status == 200 and seconds < 2, f"a new request waited {seconds:.2f}s behind 98 idle connections"
        started = time.monotonic()
        closes = [closed_by_server(sock, within=TIMEOUT + 3) for sock in silent + partial]
        assert all(c is not None for c in closes), "an attacking connection outlived the request timeout"
        assert time.monotonic() - started < TIMEOUT + 3  # all 98 closed within the timeout plus the sweep
        for sock in silent + partial:
            sock.close()


@pytest.mark.slow
def test_a_client_trickling_one_byte_at_a_time_is_cut_at_the_request_timeout():
    with serving(small_server()) as address:
        sock = connect(address)
        start, sent = time.monotonic(), 0
        request = b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n"
        try:
            while time.monotonic() - start < TIMEOUT + 3:  # bounded: stops by itself
                sock.sendall(request[sent % len(request):][:1])
                sent += 1
                time.sleep(0.2)
        except OSError:
            pass
        held = time.monotonic() - start
        assert held < TIMEOUT + 1, f"a trickling client held its connection {held:.1f}s"
        assert sent <= (TIMEOUT + 1) / 0.2 + 1
        sock.close()


@pytest.mark.slow
def test_past_max_connections_the_least_recently_active_waiting_connection_makes_room():
    server = small_server(max_connections=16, request_timeout_seconds=30.0)
    with serving(server) as address:
        silent = [connect(address) for _ in range(60)]
        time.sleep(0.3)
        assert server.open_connections <= 16
        status, seconds = timed_get(f"http://{address}/-/healthy")
        assert status == 200 and seconds < 2
        closed = sum(closed_by_server(sock, within=0.05) is not None for sock in silent)
        assert closed >= 60 - 16, f"only {closed} of 60 silent connections were closed with a cap of 16"
        for sock in silent:
            sock.close()


def test_a_request_head_larger_than_max_header_bytes_is_refused_without_reading_more():
    with serving(small_server(max_header_bytes=1024)) as address:
        sock = connect(address)
        sock.sendall(b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 4096)
        answer = sock.recv(4096)
        assert answer.startswith(b"HTTP/1.1 431 ")
        assert closed_by_server(sock, within=2) is not None
        sock.close()


# --- the webhook: refused before its body is read -------------------------------------------


@pytest.fixture
def remediator(tmp_path):
    config = tmp_path / "antmedia.yml"
    config.write_text("ams:\n  - name: main\n    url: http://127.0.0.1:9\n    apps: [WebRTCAppEE]\n"
                      "remediator:\n  webhook_token_env: HOOK\n  audit_log: audit.jsonl\n"
                      "  max_body_bytes: 1048576\n  limits: {request_timeout_seconds: 1}\n")
    server, deps, _ = make_remediator(load_config(config, env={"HOOK": "tok"}), "127.0.0.1", 0)
    with serving(server) as address:
        yield address
    close_deps(deps)


def upload(address: str, headers: str, total: int, seconds: float = 5.0) -> tuple[bytes, int, float]:
    """Announce a body of `total` bytes and send as much as the server takes; (answer, bytes sent, seconds)."""
    sock = connect(address)
    sock.sendall(f"POST /alerts HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 f"Content-Length: {total}\r\n{headers}\r\n".encode())
    chunk, sent, start = b"x" * 65536, 0, time.monotonic()
    sock.settimeout(0.5)
    try:
        while sent < total and time.monotonic() - start < seconds:  # bounded by bytes and by time
            sent += sock.send(chunk)
    except OSError:
        pass
    sock.settimeout(5)
    try:
        answer = sock.recv(4096)
    except OSError:
        answer = b""
    elapsed = time.monotonic() - start
    sock.close()
    return answer, sent, elapsed


def test_four_900_mb_uploads_are_refused_before_their_body_is_read(remediator):
    """Four such uploads without a token added 3.5 GiB of temp files under waitress."""
    for headers in ("", "Authorization: Bearer wrong\r\n", "", "Authorization: Bearer tok\r\n"):
        answer, sent, seconds = upload(remediator, headers, 900 * 1024 * 1024)
        assert answer.startswith(b"HTTP/1.1 413 "), answer[:80]  # from Content-Length, before the app
        # What the client got into socket buffers before the refusal; the server kept none of it.
        assert sent < 16 * 1024 * 1024, f"{sent} bytes went out before the refusal"
        assert seconds < 6


def test_an_unauthenticated_body_within_the_size_limit_is_refused_without_waiting_for_it(remediator):
    sock = connect(remediator)
    start = time.monotonic()
    sock.sendall(b"POST /alerts HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n")  # and no body byte
    answer = sock.recv(4096)
    seconds = time.monotonic() - start
    assert answer.startswith(b"HTTP/1.1 401 ") and b"Connection: close" in answer
    assert seconds < TIMEOUT, f"the refusal waited {seconds:.2f}s for a body"
    assert closed_by_server(sock, within=2) is not None  # closed, not drained
    sock.close()


@pytest.mark.slow
def test_an_authenticated_body_that_trickles_is_cut_at_the_request_timeout(remediator):
    sock = connect(remediator)
    sock.sendall(b"POST /alerts HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer tok\r\nContent-Length: 1000\r\n\r\n")
    start, sent = time.monotonic(), 0
    try:
        while time.monotonic() - start < TIMEOUT + 3:  # bounded
            sock.sendall(b"{")
            sent += 1
            time.sleep(0.2)
    except OSError:
        pass
    assert time.monotonic() - start < TIMEOUT + 1.5
    sock.close()
