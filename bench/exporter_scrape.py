"""Exporter scrape benchmark: one scrape of an app with N live broadcasts in rooms, against the floor.

The simulated AMS runs as its own process (like a real AMS). In one run, side by side:
  floor            fetching and JSON-parsing the same pages (/count, every list page, the v2.8.x
                   conference room pages) with the same concurrency, and nothing else; parsing is
                   msgspec's generic decoder (the exporter's JSON library; twice json.loads);
  scrape           the exporter's /metrics work: AmsCollector.collect() rendered to the text exposition;
  generate_latest  the same families rendered by prometheus_client's generate_latest instead.
Each runs with the default exposition and with the detail series (exporter.detail_metrics); the
series per publisher are counted in one scrape. Peak RSS of a scrape is measured in a fresh process
that does only scrapes. Results go to bench/RESULTS.md, section "Exporter scrape".

    python bench/exporter_scrape.py [--sizes 10000] [--versions 2.8.2,3.0.0] [--repeat 5] [--no-write]
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import statistics
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import msgspec
from prometheus_client import generate_latest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from exporter.collector import AmsCollector  # noqa: E402
from ams.server import AmsServer  # noqa: E402
from exporter.exposition import render, render_bytes  # noqa: E402
from exporter.web import _gzip  # noqa: E402
from results import machine, write_section  # noqa: E402  (bench/ is the script's folder)

APP = "WebRTCAppEE"
CONCURRENCY = 4
PAGE = 250
SECTION = "## Exporter scrape"
STREAM_ID = re.compile(rb'stream_id="((?:[^"\\]|\\.)*)"')

SIMULATOR_CHILD = """
import sys
from simulator import Simulator
sim = Simulator(ams_version=sys.argv[1])
sim.populate({app!r}, live=int(sys.argv[2]), rooms=int(sys.argv[3]))
sim.start("127.0.0.1", 0)
print(sim.url, flush=True)
sys.stdin.read()
sim.stop()
"""


def start_simulator(version: str, live: int, rooms: int) -> tuple[subprocess.Popen, str]:
    """A populated simulated AMS in its own process; returns (process, url)."""
    proc = subprocess.Popen([sys.executable, "-c", SIMULATOR_CHILD.format(app=APP), version, str(live), str(rooms)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    url = proc.stdout.readline().strip()
    if not url.startswith("http://127.0.0.1:"):
        proc.kill()
        raise RuntimeError(f"simulator did not start: {url!r}")
    return proc, url


def stop_simulator(proc: subprocess.Popen) -> None:
    """Let the child stop its server and exit."""
    proc.stdin.close()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def server_for(url: str) -> AmsServer:
    """The exporter's config entry for the simulator (generous timeout: we measure, not police)."""
    return AmsServer(name="bench", url=url, apps=(APP,), timeout_seconds=120.0, page_size=PAGE,
                     max_concurrency=CONCURRENCY)


class Floor:
    """Fetch and JSON-parse the scrape's pages with the same concurrency and nothing else.

    Like the exporter's client it keeps its connections and threads between runs.
    """

    def __init__(self, url: str, conference_rooms: bool):
        self.http = httpx.Client(base_url=url, timeout=120)
        self.pool = ThreadPoolExecutor(CONCURRENCY)
        self.conference_rooms = conference_rooms

    def close(self) -> None:
        """Release connections and threads."""
        self.pool.shutdown()
        self.http.close()

    def get(self, path: str):
        """GET and parse one JSON document."""
        return msgspec.json.decode(self.http.get(path).content)

    def run(self) -> float:
        """One pass; returns seconds."""
        started = time.perf_counter()
        base = f"/{APP}/rest/v2/broadcasts"
        total = self.pool.submit(self.get, f"{base}/count")
        self.get(f"{base}/list/0/{PAGE}")
        offsets = range(PAGE, total.result()["number"] + 1, PAGE)
        list(self.pool.map(lambda o: self.get(f"{base}/list/{o}/{PAGE}"), offsets))
        offset = 0
        while self.conference_rooms and len(self.get(f"{base}/conference-rooms/list/{offset}/{PAGE}")) == PAGE:
            offset += PAGE
        return time.perf_counter() - started


def scrape(collector: AmsCollector, gzipped: bool = False) -> tuple[float, int]:
    """One exporter scrape rendered to bytes as /metrics does (the whole exposition, then gzip at the level
    served to Prometheus); returns (seconds, bytes)."""
    started = time.perf_counter()
    chunks = list(render(collector.collect()))
    size = sum(len(chunk) for chunk in (_gzip(chunks) if gzipped else chunks))
    return time.perf_counter() - started, size


def scrape_generate_latest(collector: AmsCollector) -> float:
    """One scrape rendered by prometheus_client's generate_latest; returns seconds."""
    started = time.perf_counter()
    generate_latest(collector)
    return time.perf_counter() - started


def series_per_publisher(exposition: bytes) -> float:
    """Samples naming a publisher's stream_id (main_track 0), per publisher (one app, so ids are unique)."""
    per_stream: Counter = Counter()
    publishers = set()
    for line in exposition.split(b"\n"):
        match = STREAM_ID.search(line)
        if match:
            per_stream[match.group(1)] += 1
            if line.startswith(b"antmedia_broadcast_main_track{") and line.endswith(b"} 0.0"):
                publishers.add(match.group(1))
    return sum(per_stream[p] for p in publishers) / max(1, len(publishers))


def measure(version: str, live: int, repeat: int, detail: bool) -> dict:
    """Interleaved floor/scrape timings for one size, plus a fresh-process peak RSS."""
    rooms = max(1, live // 20)
    proc, url = start_simulator(version, live, rooms)
    try:
        collector = AmsCollector([server_for(url)], detail=detail)
        scrape(collector)  # warm-up: version detection, connections
        floor = Floor(url, collector.clients["bench"].version(APP).has_conference_rooms)
        floor.run()  # warm-up: connections and threads, as the collector's
        floors, scrapes, plain, gzipped, size = [], [], [], [], 0
        for _ in range(repeat):
            floors.append(floor.run())
            seconds, size = scrape(collector)
            scrapes.append(seconds)
            plain.append(scrape_generate_latest(collector))
            gzipped.append(scrape(collector, gzipped=True)[0])
        series = series_per_publisher(render_bytes(collector.collect()))
        collector.close()
        floor.close()
        rss = child_peak_rss(url, detail)
    finally:
        stop_simulator(proc)
    f, s, g = statistics.median(floors), statistics.median(scrapes), statistics.median(plain)
    return {"version": version, "live": live, "rooms": rooms, "detail": detail, "floor": f, "scrape": s,
            "ratio": s / f, "generate_latest": g, "plain_ratio": g / f, "series": series,
            "gzip": statistics.median(gzipped), "bytes": size, "rss_mb": rss}


def child_peak_rss(url: str, detail: bool) -> float:
    """Peak RSS (MB) of a fresh process that imports the exporter and scrapes three times."""
    out = subprocess.run([sys.executable, __file__, "--child-rss", url, *(["--detail"] if detail else [])],
                         capture_output=True, text=True, cwd=ROOT, timeout=600, check=True)
    return float(out.stdout.strip())


def run_child_rss(url: str, detail: bool) -> None:
    """Child mode: scrape three times, print peak RSS in MB."""
    collector = AmsCollector([server_for(url)], detail=detail)
    for _ in range(3):
        scrape(collector)
    collector.close()
    # VmHWM is this process image's own high-water mark; ru_maxrss would include the parent's
    # RSS at fork time, which exec does not reset.
    hwm_kb = int(re.search(r"VmHWM:\s+(\d+)", Path("/proc/self/status").read_text()).group(1))
    print(f"{hwm_kb / 1024:.1f}")


def report(rows: list[dict], repeat: int) -> str:
    """The RESULTS.md section."""
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        SECTION, "",
        f"`python bench/exporter_scrape.py --repeat {repeat}`, {now}, on {machine()}.", "",
        "One scrape of one app whose broadcasts are all live conference participants (N/20 rooms), the",
        "simulated AMS in its own process on the same machine. *floor* = fetching and JSON-parsing the",
        f"same pages (/count, every list page of {PAGE}, the v2.8.x conference-room pages) with the same",
        f"concurrency ({CONCURRENCY}) and nothing else, decoded to plain Python objects by msgspec's generic",
        "decoder (the exporter's JSON library). *scrape* = `AmsCollector.collect()` rendered to the text",
        "exposition by the exporter's renderer (what `/metrics` serves); *generate_latest* = the same",
        "families rendered by prometheus_client's `generate_latest` (a Sample per row, as",
        "`GaugeMetricFamily.add_metric` makes). *detail*: `exporter.detail_metrics: true`. *series per",
        "publisher*: samples naming a publisher's `stream_id`, counted in one scrape. Medians of",
        f"{repeat} interleaved runs. Peak RSS: a fresh process that imports the exporter and scrapes three",
        "times (VmHWM). *scrape + gzip*: the same with the level-1 gzip `/metrics` applies when Prometheus",
        "asks for it (it always does). The machine's 2 cores are shared with other work: runs are short",
        "and a ratio moves by up to 0.2 between runs.", "",
        "| AMS | exposition | broadcasts | rooms | floor s | scrape s | scrape / floor | generate_latest s "
        "| generate_latest / floor | series per publisher | exposition MB | scrape + gzip s | peak RSS MB |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['version']} | {'detail' if r['detail'] else 'default'} | {r['live']:,} | {r['rooms']:,} | "
                     f"{r['floor']:.3f} | {r['scrape']:.3f} | {r['ratio']:.2f} | {r['generate_latest']:.3f} | "
                     f"{r['plain_ratio']:.2f} | {r['series']:.1f} | {r['bytes'] / 1e6:.1f} | {r['gzip']:.3f} | "
                     f"{r['rss_mb']:.0f} |")
    lines += ["", "Targets at 10,000 with the default exposition: scrape ≤ 1.3 × floor, peak RSS ≤ 150 MB, at most "
              "half the series per publisher of the detail exposition (every field, as before the lean default). "
              "The detail figures are for reference.", "", *verdicts(rows), ""]
    return "\n".join(lines)


def verdicts(rows: list[dict]) -> list[str]:
    """Each target, met or not, from this run's rows."""
    def word(ok: bool) -> str:
        return "met" if ok else "NOT met"

    def listing(rows_: list[dict], key: str, fmt: str) -> str:
        return ", ".join(f"{r['version']} {'detail' if r['detail'] else 'default'}: {format(r[key], fmt)}"
                         for r in rows_)

    at_10k = [r for r in rows if r["live"] == 10000]  # the case: 10,000 live broadcasts in 500 rooms
    lean = [r for r in at_10k if not r["detail"]]
    if not lean:
        return ["- not measured (needs the default exposition at 10,000)"]
    full = {r["version"]: r["series"] for r in at_10k if r["detail"]}
    halved = [(r["version"], r["series"], full[r["version"]]) for r in lean if r["version"] in full]
    series = (f"{word(all(s <= f / 2 for _, s, f in halved))} ("
              + ", ".join(f"{v}: {s:.1f} of {f:.1f}" for v, s, f in halved) + ")"
              if halved else "not measured (needs both expositions)")
    return [
        f"- scrape ≤ 1.3 × floor: {word(all(r['ratio'] <= 1.3 for r in lean))} ({listing(lean, 'ratio', '.2f')})",
        f"- peak RSS ≤ 150 MB: {word(all(r['rss_mb'] <= 150 for r in lean))} ({listing(lean, 'rss_mb', '.0f')} MB)",
        f"- series per publisher ≤ half of detail: {series}",
        f"- for reference, detail: scrape / floor {listing([r for r in at_10k if r['detail']], 'ratio', '.2f')}; "
        f"generate_latest / floor {listing(at_10k, 'plain_ratio', '.2f')}",
    ]


def main() -> int:
    """Run the sizes, print and record the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000")
    parser.add_argument("--versions", default="2.8.2,3.0.0", help="the first runs every size, others 10000 only")
    parser.add_argument("--expositions", default="default,detail")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--child-rss", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--detail", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_rss:
        run_child_rss(args.child_rss, args.detail)
        return 0
    versions = args.versions.split(",")
    sizes = [(versions[0], int(n)) for n in args.sizes.split(",")] + [(v, 10000) for v in versions[1:]]
    plan = [(version, live, kind == "detail") for version, live in sizes for kind in args.expositions.split(",")]
    rows = []
    for version, live, detail in plan:
        rows.append(measure(version, live, args.repeat, detail))
        print(json.dumps(rows[-1]), flush=True)
    text = report(rows, args.repeat)
    print(text)
    if not args.no_write:
        write_section(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
