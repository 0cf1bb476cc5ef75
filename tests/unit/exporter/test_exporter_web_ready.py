"""The exporter's own endpoints: /-/ready turns 503 while stopping; /metrics carries build and process metrics."""

from __future__ import annotations

import io

from fakeams import make_server

from exporter.collector import AmsCollector
from exporter.web import create_app


def get(app, path: str, query: str = "") -> tuple[str, bytes]:
    seen = {}

    def start_response(status, headers, exc_info=None):
        seen["status"] = status

    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": query, "wsgi.input": io.BytesIO()}
    body = b"".join(app(environ, start_response))
    return seen["status"], body


def test_ready_until_stopping():
    stopping = []
    collector = AmsCollector((make_server(url="http://127.0.0.1:9", timeout_seconds=0.5),))
    app = create_app(collector, ready=lambda: not stopping)
    assert get(app, "/-/ready") == ("200 OK", b"OK\n")
    stopping.append(True)
    assert get(app, "/-/ready")[0].startswith("503")
    assert get(app, "/-/healthy")[0] == "200 OK"
    collector.close()


def test_metrics_carry_build_info_and_process_metrics_but_probes_do_not():
    collector = AmsCollector((make_server(name="main", url="http://127.0.0.1:9", timeout_seconds=0.5),))
    app = create_app(collector)
    _, body = get(app, "/metrics")
    text = body.decode()
    assert 'antmedia_exporter_build_info{python_version="' in text and 'version="0.' in text
    assert "process_cpu_seconds_total" in text and "python_info{" in text
    status, probe = get(app, "/probe", "target=main")
    assert status == "200 OK" and b"antmedia_up" in probe and b"build_info" not in probe
    collector.close()
