"""The AMS client against a hostile AMS on loopback: every request ends by its deadline, and no list or
answer grows without bound. Each test states its bound in requests, bytes or seconds."""

from __future__ import annotations

import re
import time

import pytest

from ams.client import AmsClient
from ams.errors import AmsLimitError, AmsMalformedError, AmsUnavailableError
from ams.server import AmsServer
from hostileams import HostileAms, Reply, records

APP = "LiveApp"
VERSION = {"versionName": "3.0.3", "versionType": "Community Edition"}


def client_for(ams: HostileAms, **overrides) -> AmsClient:
    values = {"name": "hostile", "url": ams.url, "apps": (APP,), "timeout_seconds": 1.0}
    values.update(overrides)
    return AmsClient(AmsServer(**values))


def answer_head(length: int) -> bytes:
    return f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n".encode()


@pytest.mark.slow
@pytest.mark.parametrize("where", ["head", "body"])
def test_a_dripping_ams_cannot_hold_a_request_past_its_deadline(hostile, where):
    body = b'{"versionName": "3.0.3"}' + b" " * 400
    ams = hostile(lambda path, reply: reply.drip(answer_head(len(body)) + body, 0.05) if where == "head"
                  else reply.send(answer_head(len(body))) and reply.drip(body, 0.05))
    with client_for(ams, timeout_seconds=1.0) as client:
        started = time.monotonic()
        with pytest.raises(AmsUnavailableError, match="timed out"):
            client.version(APP)
        elapsed = time.monotonic() - started
    # One byte every 50 ms never trips a per-read timeout; the total deadline ends it at 1 s.
    assert 0.9 <= elapsed < 1.3, elapsed
    assert ams.connections == 1 and len(ams.requests) == 1 and ams.bytes_sent < 72 + 25  # head + 1 s of drip


@pytest.mark.slow
def test_a_dripping_ams_ends_a_whole_snapshot_by_its_deadline(hostile):
    def respond(path: str, reply: Reply) -> bool:
        if path.endswith("/version"):
            return reply.json(VERSION)
        body = b"[" + b" " * 10000 + b"]"
        return reply.send(answer_head(len(body))) and reply.drip(body, 0.1)

    ams = hostile(respond)
    with client_for(ams, timeout_seconds=1.5) as client:
        started = time.monotonic()
        with pytest.raises(AmsUnavailableError):
            client.snapshot(APP)
        assert time.monotonic() - started < 1.5 + 0.3


def test_endless_pages_stop_at_count_plus_margin(hostile):
    served = {"records": 0}

    def respond(path: str, reply: Reply) -> bool:
        if path.endswith("/version"):
            return reply.json(VERSION)
        if path.endswith("/count"):
            return reply.json({"number": 10})
        page = int(re.search(r"/list/(\d+)/(\d+)$", path).group(2))
        served["records"] += page
        return reply.json(records(served["records"], page))  # a full page of new ids, forever

    ams = hostile(respond)
    with client_for(ams, timeout_seconds=5.0) as client, pytest.raises(AmsLimitError, match="past 260 records"):
        client.snapshot(APP)
    # /count 10 plus one page of margin: three list pages at most, where the unbounded loop made 1,207.
    assert len(ams.paths("/list/")) <= 3 and served["records"] <= 750
    assert len(ams.requests) <= 5


def test_endless_pages_without_a_count_stop_at_max_records(hostile):
    def respond(path: str, reply: Reply) -> bool:
        if path.endswith("/version"):
            return reply.json(VERSION)
        if path.endswith("/count"):
            return reply.json({"error": "down"}, status="500 Internal Server Error")
        offset, size = map(int, re.search(r"/list/(\d+)/(\d+)$", path).groups())
        return reply.json(records(offset, size))

    ams = hostile(respond)
    with client_for(ams, timeout_seconds=5.0, max_records=2000) as client, pytest.raises(AmsLimitError):
        client.snapshot(APP)
    # 2,000 records are 8 pages; the client stops within one concurrent batch past them.
    assert len(ams.paths("/list/")) <= 2000 // 250 + 1 + 4


def test_a_count_above_max_records_is_refused_before_paging(hostile):
    ams = hostile(lambda path, reply: reply.json(VERSION) if path.endswith("/version")
                  else reply.json({"number": 10**9}) if path.endswith("/count") else reply.json(records(0, 250)))
    with client_for(ams, timeout_seconds=5.0) as client, pytest.raises(AmsLimitError, match="above max_records"):
        client.snapshot(APP)
    assert len(ams.paths("/list/")) == 1  # the first page runs alongside /count


@pytest.mark.parametrize("announced", [True, False])
def test_a_huge_answer_is_not_read_past_max_response_bytes(hostile, announced):
    huge = 100 * 1024 * 1024  # one 100 MB field

    def respond(path: str, reply: Reply) -> bool:
        if path.endswith("/version"):
            return reply.json(VERSION)
        if path.endswith("/count"):
            return reply.json({"number": 1})
        start = b'[{"streamId": "s1", "name": "'
        head = (answer_head(huge + len(start) + 3) if announced
                else b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n")
        return reply.endless(head + start, b"x" * 65536, huge)

    ams = hostile(respond)
    cap = 1024 * 1024
    with client_for(ams, timeout_seconds=5.0, max_response_bytes=cap) as client:
        started = time.monotonic()
        with pytest.raises(AmsLimitError, match="max_response_bytes"):
            client.snapshot(APP)
        elapsed = time.monotonic() - started
    time.sleep(0.2)  # let the server notice the closed connection
    # An announced size is refused before the body; a counted one after the cap. Either way the rest of
    # the 100 MB is never read: what the server managed to send is the cap plus socket buffers.
    assert ams.bytes_sent < cap + 16 * 1024 * 1024 and elapsed < 2.0
    assert len(ams.paths("/list/")) == 1


def test_a_page_repeated_at_every_offset_is_fetched_a_bounded_number_of_times(hostile):
    page = records(0, 250, name="n" * 4000)  # 1 MB, the same at every offset

    def respond(path: str, reply: Reply) -> bool:
        if path.endswith("/version"):
            return reply.json(VERSION)
        if path.endswith("/count"):
            return reply.json({"number": 26 * 250})
        return reply.json(page)

    ams = hostile(respond)
    with client_for(ams, timeout_seconds=5.0, max_concurrency=4) as client:
        with pytest.raises(AmsMalformedError, match="does not advance"):
            client.snapshot(APP)
    time.sleep(0.2)
    # The first page, then the pages already running when the repeat was noticed (max_concurrency),
    # where it was 26.
    assert len(ams.paths("/list/")) <= 1 + 4
