"""Log lines: formats, redaction, escaping and clipping of outside text, no per-request noise."""

from __future__ import annotations

import io
import json
import logging

import httpx
import pytest

from service.logs import MAX_ARG_CHARS, configure_logging


@pytest.fixture
def capture():
    """configure_logging on a buffer; the root logger is restored afterwards."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level, {n: logging.getLogger(n).level for n in ("httpx", "httpcore")})
    buffers = []

    def configure(level="info", fmt="logfmt") -> io.StringIO:
        buffer = io.StringIO()
        configure_logging(level, fmt, stream=buffer)
        buffers.append(buffer)
        return buffer

    yield configure
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    for name, level in saved[2].items():
        logging.getLogger(name).setLevel(level)


def test_logfmt_is_the_default_with_quoted_values(capture):
    buffer = capture()
    logging.getLogger("exporter").info("listening on %s:%s", "127.0.0.1", 15080)
    line = buffer.getvalue()
    assert line.startswith("ts=") and " level=info logger=exporter " in line
    assert 'msg="listening on 127.0.0.1:15080"' in line and line.count("\n") == 1


def test_json_lines_carry_the_same_keys(capture):
    buffer = capture(fmt="json")
    logging.getLogger("remediator").warning("x=%d", 3)
    record = json.loads(buffer.getvalue())
    assert set(record) == {"ts", "level", "logger", "msg"} and record["msg"] == "x=3" and record["level"] == "warning"


@pytest.mark.parametrize("fmt", ["logfmt", "json"])
def test_a_group_key_with_a_newline_cannot_forge_a_line_and_a_3_mb_one_is_clipped(capture, fmt):
    buffer = capture(fmt=fmt)
    forged = '{}:{alertname="x"}\nts=2026-01-01T00:00:00Z level=error msg="forged"'
    logging.getLogger("remediator").warning("notification %s left out %d alerts", forged, 1)
    logging.getLogger("remediator").warning("notification %s left out %d alerts", "k" * 3_000_000, 1)
    lines = buffer.getvalue().splitlines()
    assert len(lines) == 2 and "\\n" in lines[0]
    assert len(lines[1]) < MAX_ARG_CHARS + 400  # 3 MB of outside text became one short line


def test_credentials_are_redacted_from_any_line(capture):
    buffer = capture("debug")
    log = logging.getLogger("ams")
    log.info("GET %s failed", "http://admin:hunter2@ams.example:5080/WebRTCAppEE/rest/v2/broadcasts/list/0/50")
    log.info("headers %s", {"Authorization": "Bearer eyJhbGciOi.secret", "ProxyAuthorization": "tok3n"})
    text = buffer.getvalue()
    assert "hunter2" not in text and "eyJhbGciOi" not in text and "tok3n" not in text
    assert "http://***@ams.example:5080" in text


def test_httpx_request_lines_are_silent_at_the_default_level_and_redacted_at_debug(capture):
    def transport(request):
        return httpx.Response(200)

    buffer = capture("info")
    with httpx.Client(transport=httpx.MockTransport(transport)) as client:
        client.get("http://user:pw@ams.example:5080/x")
    assert buffer.getvalue() == ""
    buffer = capture("debug")
    with httpx.Client(transport=httpx.MockTransport(transport)) as client:
        client.get("http://user:pw@ams.example:5080/x")
    assert "HTTP Request" in buffer.getvalue() and "pw@" not in buffer.getvalue()
