"""WSGI app of the exporter: /metrics, /probe?target=NAME, landing page /, /-/healthy, /-/ready, /-/reload."""

from __future__ import annotations

import html
import logging
import math
import zlib
from http import HTTPStatus
from collections.abc import Callable, Iterable, Iterator
from urllib.parse import parse_qs

from prometheus_client import CollectorRegistry

from exporter.collector import AmsCollector, select_servers
from exporter.exposition import CONTENT_TYPE, render
from service.build import register_process_metrics
from service.reload import Reloader, reload_endpoint

log = logging.getLogger(__name__)

Wsgi = Callable[[dict, Callable], Iterable[bytes]]
# Prometheus tells every target its scrape timeout in this header; the exporter ends its AMS work
# this much earlier, so the answer is written before Prometheus gives up (blackbox_exporter's
# --timeout-offset, default 0.5 s). The exporter's own GRACE_SECONDS fits inside the offset.
SCRAPE_TIMEOUT_HEADER = "HTTP_X_PROMETHEUS_SCRAPE_TIMEOUT_SECONDS"
TIMEOUT_OFFSET_SECONDS = 0.5
GZIP_LEVEL = 1  # the exposition is large and repetitive: level 1 gets most of the gain at a fraction of the CPU


def own_registry() -> CollectorRegistry:
    """The exporter's own process: antmedia_exporter_build_info, process_*, python_info (on /metrics only)."""
    registry = CollectorRegistry(auto_describe=False)
    register_process_metrics(registry, "antmedia_exporter_build_info", "exporter")
    return registry


def create_app(collector: AmsCollector, ready: Callable[[], bool] = lambda: True,
               registry: CollectorRegistry | None = None, reloader: Reloader | None = None) -> Wsgi:
    """Build the WSGI callable around a collector; ready() answers /-/ready (False while stopping);
    POST /-/reload reloads the config when a reloader is given (--web.enable-lifecycle)."""
    own = own_registry() if registry is None else registry

    def everything(timeout: float | None) -> Iterator:
        yield from collector.collect_servers(collector.servers, timeout)
        yield from own.collect()

    def app(environ: dict, start_response: Callable) -> Iterable[bytes]:
        """Route by path; only GET (and HEAD)."""
        path = environ.get("PATH_INFO", "/")
        if path == "/-/reload":
            status, text = reload_endpoint(reloader, environ.get("REQUEST_METHOD", "GET"))
            return _text(start_response, f"{status} {HTTPStatus(status).phrase}", text)
        if environ.get("REQUEST_METHOD", "GET") not in ("GET", "HEAD"):
            return _text(start_response, "405 Method Not Allowed", "only GET\n")
        if path == "/metrics":
            timeout = scrape_timeout(environ)
            return _metrics(environ, start_response, lambda: everything(timeout))
        if path == "/probe":
            return _probe(environ, start_response, collector)
        if path == "/-/healthy":
            return _text(start_response, "200 OK", "OK\n")
        if path == "/-/ready":
            if ready():
                return _text(start_response, "200 OK", "OK\n")
            return _text(start_response, "503 Service Unavailable", "stopping\n")
        if path == "/":
            return _landing(start_response, collector)
        return _text(start_response, "404 Not Found", "not found\n")

    return app


def _probe(environ: dict, start_response: Callable, collector: AmsCollector) -> Iterable[bytes]:
    """Multi-target pattern: only the configured AMS named by ?target= (never a URL)."""
    targets = parse_qs(environ.get("QUERY_STRING", "")).get("target", [])
    if len(targets) != 1:
        return _text(start_response, "400 Bad Request", "exactly one target=NAME is required\n")
    servers = select_servers(collector.servers, targets[0])
    if not servers:
        return _text(start_response, "404 Not Found", "unknown target: not a configured ams name\n")
    timeout = scrape_timeout(environ)
    return _metrics(environ, start_response, lambda: collector.collect_servers(servers, timeout))


def scrape_timeout(environ: dict) -> float | None:
    """The scraper's deadline for AMS work: X-Prometheus-Scrape-Timeout-Seconds less TIMEOUT_OFFSET_SECONDS.

    None (each AMS entry's timeout_seconds applies) without the header, when it is not a positive
    number, or when the offset leaves nothing, as blackbox_exporter does. The caller only ever
    shortens timeout_seconds with it.
    """
    raw = environ.get(SCRAPE_TIMEOUT_HEADER)
    if not raw:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        return None
    if not math.isfinite(seconds) or seconds - TIMEOUT_OFFSET_SECONDS <= 0:
        return None
    return seconds - TIMEOUT_OFFSET_SECONDS


def _metrics(environ: dict, start_response: Callable, families: Callable[[], Iterator]) -> Iterable[bytes]:
    """Render the whole exposition, then answer: a failure is a clean 500, and the collector's GC pause
    has ended before the first byte goes out, so a slow scraper reading the body never holds it."""
    try:
        chunks = list(render(families()))
    except Exception:  # noqa: BLE001 - the collector guards AMS errors; this is a bug, report it as such
        log.exception("building /metrics failed")
        return _text(start_response, "500 Internal Server Error", "internal error, see the exporter log\n")
    headers = [("Content-Type", CONTENT_TYPE)]
    body: Iterable[bytes] = chunks
    if "gzip" in environ.get("HTTP_ACCEPT_ENCODING", ""):
        headers.append(("Content-Encoding", "gzip"))
        body = _gzip(chunks)
    start_response("200 OK", headers)
    return body


def _gzip(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Gzip a chunk stream on the fly."""
    compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)
    for chunk in chunks:
        data = compressor.compress(chunk)
        if data:
            yield data
    yield compressor.flush()


def _landing(start_response: Callable, collector: AmsCollector) -> Iterable[bytes]:
    """A small HTML page linking the endpoints and the configured targets."""
    items = "".join(
        f'<li><a href="/probe?target={html.escape(s.name)}">{html.escape(s.name)}</a>: '
        f"{html.escape(', '.join(s.apps))}</li>"
        for s in collector.servers
    )
    page = (
        "<!DOCTYPE html><html><head><title>Ant Media Server exporter</title></head><body>"
        "<h1>Ant Media Server exporter</h1>"
        '<p><a href="/metrics">Metrics</a> (every configured AMS) &middot; <a href="/-/healthy">Health</a>'
        ' &middot; <a href="/-/ready">Readiness</a></p>'
        f"<h2>Probe targets</h2><ul>{items}</ul></body></html>"
    )
    start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
    return [page.encode()]


def _text(start_response: Callable, status: str, text: str) -> list[bytes]:
    """A plain-text response."""
    start_response(status, [("Content-Type", "text/plain; charset=utf-8")])
    return [text.encode()]
