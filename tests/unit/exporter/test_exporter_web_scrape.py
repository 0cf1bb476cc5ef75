"""/metrics and /probe as a scraper meets them: its scrape timeout honoured, the GC pause over before the body."""

from __future__ import annotations

import gc
import time

import pytest
from werkzeug.test import Client

from ams.client import AmsClient
from exporter.collector import AmsCollector
from exporter.web import TIMEOUT_OFFSET_SECONDS, create_app, scrape_timeout
from fakeams import FakeAms, make_server

HEADER = "X-Prometheus-Scrape-Timeout-Seconds"


@pytest.fixture
def hanging():
    """A collector whose AMS answers every request after 3 s, with timeout_seconds 2."""
    fake = FakeAms.from_fixtures("3.0.0")
    inner = fake.handle
    fake.handle = lambda request: (time.sleep(3.0), inner(request))[1]  # MockTransport ignores timeouts
    server = make_server(timeout_seconds=2.0)
    collector = AmsCollector([server], {"main": AmsClient(server, transport=fake.transport())})
    yield collector
    collector.close()


@pytest.fixture
def healthy():
    fake = FakeAms.from_fixtures("3.0.0")
    server = make_server()
    collector = AmsCollector([server], {"main": AmsClient(server, transport=fake.transport())})
    yield collector
    collector.close()


@pytest.mark.parametrize(("header", "expected"), [
    (None, None), ("", None), ("10", 10 - TIMEOUT_OFFSET_SECONDS), ("1.5", 1.0), ("0.5", None), ("0.2", None),
    ("-3", None), ("nan", None), ("inf", None), ("ten", None),
])
def test_the_scrapers_timeout_less_the_offset(header, expected):
    environ = {} if header is None else {"HTTP_X_PROMETHEUS_SCRAPE_TIMEOUT_SECONDS": header}
    assert scrape_timeout(environ) == expected


@pytest.mark.parametrize("path", ["/metrics", "/probe?target=main"])
def test_a_shorter_scrape_timeout_ends_the_ams_work_before_prometheus_gives_up(hanging, path):
    started = time.monotonic()
    response = Client(create_app(hanging)).get(path, headers={HEADER: "1"})
    elapsed = time.monotonic() - started
    assert response.status_code == 200
    assert 'antmedia_up{ams="main",app="WebRTCAppEE"} 0.0' in response.get_data(as_text=True)
    assert elapsed < 1.0  # 1 s less the 0.5 s offset, plus the collector's 0.25 s grace


@pytest.mark.slow
def test_a_longer_scrape_timeout_never_lengthens_timeout_seconds(hanging):
    started = time.monotonic()
    response = Client(create_app(hanging)).get("/metrics", headers={HEADER: "30"})
    elapsed = time.monotonic() - started
    assert 'antmedia_up{ams="main",app="WebRTCAppEE"} 0.0' in response.get_data(as_text=True)
    assert 2.0 <= elapsed < 2.0 + 0.5


def test_garbage_collection_runs_again_before_the_body_is_streamed(healthy):
    assert gc.isenabled()
    for headers in ({}, {"Accept-Encoding": "gzip"}):
        environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/metrics", "QUERY_STRING": "",
                   **{f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items()}}
        started = []
        body = create_app(healthy)(environ, lambda status, headers: started.append(status))
        assert started == ["200 OK"]
        enabled = []
        for _chunk in body:  # a slow scraper reads the body chunk by chunk
            enabled.append(gc.isenabled())
        assert enabled and all(enabled)
