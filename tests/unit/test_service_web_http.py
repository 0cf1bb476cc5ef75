"""HTTP/1.1 of the shared server (keep-alive, pipelining, chunked bodies, 100-continue, HEAD) and the one guard."""

from __future__ import annotations

import base64
import socket
import time

import bcrypt
import httpx
import pytest

from service.config import ServerLimits
from service.guard import Access, guard
from service.web import Server

from test_service_web_bounds import closed_by_server, connect, serving


def echo(environ, start_response):
    body = environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return [environ["REQUEST_METHOD"].encode(), b" ", environ["PATH_INFO"].encode(), b" ", body]


def server(app=echo, threads=2, max_body_bytes=1024, **limits) -> Server:
    values = {"request_timeout_seconds": 1.0, "idle_timeout_seconds": 5.0, **limits}
    return Server(app, "127.0.0.1", 0, ServerLimits(**values), None, threads=threads, ident="test",
                  max_body_bytes=max_body_bytes)


def read_responses(sock: socket.socket, count: int, within: float = 3.0) -> bytes:
    data, deadline = b"", time.monotonic() + within
    sock.settimeout(within)
    while data.count(b"HTTP/1.1 ") < count and time.monotonic() < deadline:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def test_kept_alive_connection_serves_several_requests_and_a_body():
    instance = server()
    with serving(instance) as address, httpx.Client(base_url=f"http://{address}", timeout=5) as client:
        for i in range(5):
            answer = client.post(f"/p{i}", content=b"x" * 100)
            assert answer.status_code == 200 and answer.content == f"POST /p{i} ".encode() + b"x" * 100
        assert instance.open_connections == 1


def test_pipelined_requests_are_answered_in_order():
    with serving(server()) as address:
        sock = connect(address)
        sock.sendall(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n")
        data = read_responses(sock, 2)
        assert data.count(b"HTTP/1.1 200 ") == 2 and data.index(b"GET /a") < data.index(b"GET /b")
        sock.close()


def test_chunked_body_is_read_up_to_the_limit_and_refused_past_it():
    with serving(server(max_body_bytes=1024)) as address:
        small = httpx.post(f"http://{address}/c", content=iter([b"a" * 500, b"b" * 500]), timeout=5)
        assert small.status_code == 200 and small.content.endswith(b"a" * 500 + b"b" * 500)
        large = httpx.post(f"http://{address}/c", content=iter([b"a" * 1000, b"b" * 1000]), timeout=5)
        assert large.status_code == 413


def test_expect_100_continue_gets_100_only_when_the_body_is_read():
    tokened = Access(bearer={"/hook": "tok"}, max_body_bytes=1024)
    app = guard(echo, tokened)
    instance = Server(app, "127.0.0.1", 0, ServerLimits(request_timeout_seconds=1.0), None, threads=2,
                      ident="test", guarded=True)
    with serving(instance) as address:
        sock = connect(address)
        sock.sendall(b"POST /hook HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer tok\r\nContent-Length: 3\r\n"
                     b"Expect: 100-continue\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 100 ")
        sock.sendall(b"abc")
        assert read_responses(sock, 1).endswith(b"POST /hook abc")
        sock.close()
        sock = connect(address)
        sock.sendall(b"POST /hook HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n")
        answer = sock.recv(4096)
        assert answer.startswith(b"HTTP/1.1 401 ") and b"Connection: close" in answer
        assert closed_by_server(sock, within=2) is not None
        sock.close()


def test_head_has_the_length_of_get_and_no_body():
    with serving(server()) as address:
        sock = connect(address)
        sock.sendall(b"HEAD /h HTTP/1.1\r\nHost: x\r\n\r\nGET /h HTTP/1.1\r\nHost: x\r\n\r\n")
        data = read_responses(sock, 2)
        head, rest = data.split(b"\r\n\r\n", 1)
        assert b"Content-Length: 8" in head and rest.startswith(b"HTTP/1.1 200 ")  # len(b"HEAD /h "), unsent
        assert rest.endswith(b"GET /h ")
        sock.close()


def test_an_app_error_is_a_500_and_the_connection_stays_usable():
    def broken(environ, start_response):
        if environ["PATH_INFO"] == "/boom":
            raise RuntimeError("bug")
        return echo(environ, start_response)

    with serving(server(app=broken)) as address, httpx.Client(base_url=f"http://{address}", timeout=5) as client:
        assert client.get("/boom").status_code == 500
        assert client.get("/ok").status_code == 200


@pytest.mark.slow
def test_an_idle_kept_alive_connection_is_closed_after_idle_timeout():
    with serving(server(idle_timeout_seconds=1.0, request_timeout_seconds=5.0)) as address:
        sock = connect(address)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_responses(sock, 1).startswith(b"HTTP/1.1 200 ")
        seconds = closed_by_server(sock, within=3)
        assert seconds is not None and 0.7 < seconds < 1.6
        sock.close()


# --- the guard on its own -------------------------------------------------------------------------

HASH = bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=4)).decode()


def call(app, path: str, authorization: str = "", length: int | None = None) -> tuple[str, list]:
    seen: list = []
    environ = {"PATH_INFO": path, "REQUEST_METHOD": "POST", "HTTP_AUTHORIZATION": authorization}
    if length is not None:
        environ["CONTENT_LENGTH"] = str(length)
    body = b"".join(app(environ, lambda status, headers: seen.append((status, headers))))
    return seen[0][0][:3], body


def test_one_guard_for_basic_bearer_open_paths_and_the_body_limit():
    refusals: list = []
    access = Access(users={"u": HASH}, bearer={"/hook": "tok"}, open_paths=frozenset({"/-/healthy"}),
                    max_body_bytes=100, realm="r")
    app = guard(lambda environ, start: (start("200 OK", []), [b"in"])[1], access,
                lambda path, code: refusals.append((path, code)))
    basic = "Basic " + base64.b64encode(b"u:pw").decode()
    assert call(app, "/-/healthy")[0] == "200"
    assert call(app, "/metrics")[0] == "401" and call(app, "/metrics", basic)[0] == "200"
    assert call(app, "/hook", basic)[0] == "401"  # the bearer path takes only its token
    assert call(app, "/hook", "Bearer tok")[0] == "200" and call(app, "/hook", "Bearer nope")[0] == "401"
    assert call(app, "/hook", "", length=101)[0] == "413"  # the size first: before any credentials
    assert call(app, "/hook", "Bearer tok", length=100)[0] == "200"
    assert refusals == [("/metrics", 401), ("/hook", 401), ("/hook", 401), ("/hook", 413)]


def guarded_server(app, **limits) -> Server:
    """A server for an app that applies the guard itself (as the remediator's does)."""
    values = {"request_timeout_seconds": 1.0, "idle_timeout_seconds": 5.0, **limits}
    return Server(app, "127.0.0.1", 0, ServerLimits(**values), None, threads=2, ident="test", guarded=True)


def webhook_behind_its_token():
    """A Flask app like the remediator's: its POST /alerts view counts the calls that reached it."""
    from flask import Flask
    app, reached = Flask("hook"), []

    @app.post("/alerts")
    def alerts():
        reached.append(1)
        return "written\n"

    app.wsgi_app = guard(app.wsgi_app, Access(bearer={"/alerts": "tok"}, open_paths=frozenset({"/-/healthy"})))
    return app, reached


@pytest.mark.parametrize("target", [b"//alerts", b"///alerts", b"/%2Falerts", b"http://h//alerts", b"alerts",
                                    b"http:alerts", b"http://[x/alerts"])
def test_no_spelling_of_the_webhook_path_reaches_it_without_the_token(target):
    app, reached = webhook_behind_its_token()
    with serving(guarded_server(app)) as address:
        sock = connect(address)
        sock.sendall(b"POST " + target + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
        answer = read_responses(sock, 1)
        sock.close()
    assert answer.split(b"\r\n", 1)[0] in (b"HTTP/1.1 401 Unauthorized", b"HTTP/1.1 400 Bad Request"), answer
    assert reached == []


def test_a_chunked_body_where_none_is_expected_is_refused_at_once():
    app, _ = webhook_behind_its_token()
    with serving(guarded_server(app, request_timeout_seconds=3.0)) as address:
        sock = connect(address)
        started = time.monotonic()
        sock.sendall(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")  # and no body
        answer = read_responses(sock, 1)
        sock.close()
    assert answer.startswith(b"HTTP/1.1 400 ") and time.monotonic() - started < 1.0


def test_content_length_with_transfer_encoding_is_refused_and_the_connection_closed():
    with serving(server()) as address:
        sock = connect(address)
        sock.sendall(b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"3\r\nabc\r\n0\r\n\r\nGET /next HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = read_responses(sock, 2)
        assert answer.startswith(b"HTTP/1.1 400 ") and answer.count(b"HTTP/1.1 ") == 1
        assert closed_by_server(sock, 2.0) is not None


def test_a_client_reading_a_large_answer_slowly_frees_its_worker_within_two_request_timeouts():
    large = b"x" * (16 * 1024 * 1024)

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        if environ["PATH_INFO"] == "/small":
            return [b"ok"]
        return iter([large[i:i + 65536] for i in range(0, len(large), 65536)])

    with serving(server(app, threads=1)) as address:
        slow = socket.socket()
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
        slow.connect((address.split(":")[0], int(address.split(":")[1])))
        slow.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")  # and reads nothing
        started = time.monotonic()
        answer = httpx.get(f"http://{address}/small", timeout=10)
        waited = time.monotonic() - started
        slow.close()
    assert answer.status_code == 200 and waited < 2.5, waited
