"""What one exporter scrape costs AMS: requests and response bytes, at 1,000 and 10,000 broadcasts.

The figures behind the scrape-interval recommendation (README, rules/prometheus.example.yml): a scrape
of one app is /count, the list pages and, on v2.8.x, the conference-room pages. Counted at the client's
transport against the simulated AMS (same pages and page size as a real one), for one warm scrape (the
version is read once and cached). Not a test: `python bench/scrape_cost.py` (about a minute); writes the
"Exporter scrape: cost on AMS" section of bench/RESULTS.md.
"""
from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import httpx  # noqa: E402

from ams.client import AmsClient  # noqa: E402
from exporter.collector import AmsCollector  # noqa: E402
from exporter_scrape import server_for, start_simulator, stop_simulator  # noqa: E402  (bench/ is the script's folder)
from results import machine, write_section  # noqa: E402

SIZES = (1_000, 10_000)
INTERVALS = (5.0, 10.0)


class Counting(httpx.HTTPTransport):
    """A real transport that counts requests and response bytes."""

    def __init__(self) -> None:
        super().__init__()
        self.requests, self.bytes = 0, 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        response.read()
        self.requests += 1
        self.bytes += len(response.content)
        return response


def measure(version: str, size: int) -> tuple[int, int, float]:
    """(requests, bytes, seconds) of one warm scrape of one app with `size` live participants."""
    process, url = start_simulator(version, size, max(1, size // 20))
    try:
        server = server_for(url)
        transport = Counting()
        collector = AmsCollector([server], clients={server.name: AmsClient(server, transport=transport)})
        list(collector.collect())  # warm: the version is read once
        transport.requests = transport.bytes = 0
        started = time.perf_counter()
        list(collector.collect())
        return transport.requests, transport.bytes, time.perf_counter() - started
    finally:
        stop_simulator(process)


def section(rows: list[tuple[str, int, int, int, float]]) -> str:
    """The Markdown section."""
    lines = ["## Exporter scrape: cost on AMS", "",
             f"`python bench/scrape_cost.py`, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, on {machine()}.", "",
             "One warm scrape of one app whose broadcasts are all live participants (N/20 rooms), counted at the",
             "exporter's transport against the simulated AMS (page size 250). Per second at a scrape interval:",
             "the scrape's requests and bytes divided by the interval (one exporter; an HA pair doubles them).", "",
             "| AMS | broadcasts | requests per scrape | MB per scrape | scrape s |"
             + "".join(f" requests/s at {i:g} s | MB/s at {i:g} s |" for i in INTERVALS),
             "|---|---:|---:|---:|---:|" + "---:|---:|" * len(INTERVALS)]
    for version, size, requests, size_bytes, seconds in rows:
        mb = size_bytes / 1e6
        lines.append(f"| {version} | {size:,} | {requests} | {mb:.1f} | {seconds:.2f} |"
                     + "".join(f" {requests / i:.1f} | {mb / i:.2f} |" for i in INTERVALS))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = parser.parse_args(argv)
    rows = [(version, size, *measure(version, size)) for version in ("2.8.2", "3.0.0") for size in SIZES]
    text = section(rows)
    print(text)
    if not args.no_write:
        write_section(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
