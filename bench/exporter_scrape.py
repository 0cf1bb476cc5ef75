"""Exporter scrape benchmark: one scrape of an app with N live broadcasts in rooms, against the floor.

The simulated AMS runs as its own process (like a real AMS). In one run, side by side:
  floor   fetching and JSON-parsing the same pages (/count, every list page, the v2.8.x conference
          room pages) with the same concurrency, and nothing else; parsing is msgspec's generic
          decoder (the exporter's JSON library; as fast as orjson, twice json.loads);
  scrape  the exporter's /metrics work: AmsCollector.collect() rendered to the text exposition.
Peak RSS of a scrape is measured in a fresh process that does only scrapes.
Results go to bench/RESULTS.md, section "Exporter scrape".

    python bench/exporter_scrape.py [--sizes 1000,10000,50000] [--repeat 5] [--no-write]
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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import msgspec

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from exporter.collector import AmsCollector  # noqa: E402
from ams.server import AmsServer  # noqa: E402
from exporter.exposition import render  # noqa: E402
from exporter.web import _gzip  # noqa: E402
from results import machine, write_section  # noqa: E402  (bench/ is the script's folder)

APP = "WebRTCAppEE"
CONCURRENCY = 4
PAGE = 250
SECTION = "## Exporter scrape"

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
    """One exporter scrape rendered to bytes (gzip level as served to Prometheus); returns (seconds, bytes)."""
    started = time.perf_counter()
    chunks = render(collector.collect())
    size = sum(len(chunk) for chunk in (_gzip(chunks) if gzipped else chunks))
    return time.perf_counter() - started, size


def measure(version: str, live: int, repeat: int) -> dict:
    """Interleaved floor/scrape timings for one size, plus a fresh-process peak RSS."""
    rooms = max(1, live // 20)
    proc, url = start_simulator(version, live, rooms)
    try:
        collector = AmsCollector([server_for(url)])
        scrape(collector)  # warm-up: version detection, connections
        floor = Floor(url, collector.clients["bench"].version(APP).has_conference_rooms)
        floor.run()  # warm-up: connections and threads, as the collector's
        floors, scrapes, gzipped, size = [], [], [], 0
        for _ in range(repeat):
            floors.append(floor.run())
            seconds, size = scrape(collector)
            scrapes.append(seconds)
            gzipped.append(scrape(collector, gzipped=True)[0])
        collector.close()
        floor.close()
        rss = child_peak_rss(url)
    finally:
        stop_simulator(proc)
    f, s = statistics.median(floors), statistics.median(scrapes)
    return {"version": version, "live": live, "rooms": rooms, "floor": f, "scrape": s, "ratio": s / f,
            "gzip": statistics.median(gzipped),
            "bytes": size, "rss_mb": rss, "us_per_broadcast": s / (live + rooms) * 1e6}


def child_peak_rss(url: str) -> float:
    """Peak RSS (MB) of a fresh process that imports the exporter and scrapes three times."""
    out = subprocess.run([sys.executable, __file__, "--child-rss", url], capture_output=True, text=True,
                         cwd=ROOT, timeout=600, check=True)
    return float(out.stdout.strip())


def run_child_rss(url: str) -> None:
    """Child mode: scrape three times, print peak RSS in MB."""
    collector = AmsCollector([server_for(url)])
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
        f"`python bench/exporter_scrape.py`, {now}, on {machine()}.", "",
        "One scrape of one app whose broadcasts are all live conference participants (N/20 rooms), the",
        "simulated AMS in its own process on the same machine. *floor* = fetching and JSON-parsing the",
        f"same pages (/count, every list page of {PAGE}, the v2.8.x conference-room pages) with the same",
        f"concurrency ({CONCURRENCY}) and nothing else, decoded to plain Python objects by msgspec's generic",
        "decoder (the exporter's JSON library; `json.loads` takes twice as long and would lower the ratio).",
        "*scrape* = `AmsCollector.collect()` rendered to the text exposition (what `/metrics` serves).",
        f"Medians of {repeat} interleaved runs. Peak RSS: a fresh process that imports the exporter and",
        "scrapes three times (VmHWM). *scrape + gzip*: the same with the level-1 gzip `/metrics` applies",
        "when Prometheus asks for it (it always does).", "",
        "| AMS | broadcasts | rooms | floor s | scrape s | scrape / floor | µs per broadcast | exposition MB "
        "| scrape + gzip s | peak RSS MB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['version']} | {r['live']:,} | {r['rooms']:,} | {r['floor']:.3f} | {r['scrape']:.3f} | "
                     f"{r['ratio']:.2f} | {r['us_per_broadcast']:.1f} | {r['bytes'] / 1e6:.1f} | {r['gzip']:.3f} | "
                     f"{r['rss_mb']:.0f} |")
    lines += ["", "Targets: scrape ≤ 1.3 × floor and peak RSS ≤ 150 MB at 10,000, cost linear in N from 1k to 50k "
              "(the marginal cost per broadcast between consecutive sizes within 1.3× of each other).", "",
              *verdicts(rows), ""]
    return "\n".join(lines)


def verdicts(rows: list[dict]) -> list[str]:
    """Each target, met or not, from this run's rows."""
    def word(ok: bool) -> str:
        return "met" if ok else "NOT met"
    at_10k = [r for r in rows if r["live"] == 10000]  # the case: 10,000 live broadcasts in 500 rooms
    ratios = ", ".join(f"{r['version']}: {r['ratio']:.2f}" for r in at_10k)
    others = ", ".join(f"{r['version']} {r['live']:,}: {r['ratio']:.2f}" for r in rows if r["live"] != 10000)
    rss_text = ", ".join(f"{r['version']}: {r['rss_mb']:.0f} MB" for r in at_10k)
    # Linear cost is a + b*N: the fixed part (threads, /version, the final join) weighs most at 1k,
    # so linearity is judged on the marginal cost between consecutive sizes, which must stay flat.
    sized = sorted((r for r in rows if r["version"] == rows[0]["version"]), key=lambda r: r["live"])
    slopes = [(b["scrape"] - a["scrape"]) / (b["live"] + b["rooms"] - a["live"] - a["rooms"]) * 1e6
              for a, b in zip(sized, sized[1:])]
    slope_text = ", ".join(f"{a['live']:,}→{b['live']:,}: {s:.1f}" for a, b, s in zip(sized, sized[1:], slopes))
    linear = (f"{word(max(slopes) <= 1.3 * min(slopes))} (marginal µs per broadcast {slope_text})"
              if len(slopes) > 1 else "not measured (needs three sizes)")
    ratio_ok = word(all(r["ratio"] <= 1.3 for r in at_10k)) if at_10k else "not measured"
    rss_ok = word(all(r["rss_mb"] <= 150 for r in at_10k)) if at_10k else "not measured"
    return [
        f"- scrape ≤ 1.3 × floor at 10,000: {ratio_ok} ({ratios}; other sizes, for reference: {others or 'none'})",
        f"- peak RSS ≤ 150 MB at 10,000: {rss_ok} ({rss_text})",
        f"- linear: {linear}",
    ]


def main() -> int:
    """Run the sizes, print and record the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,50000")
    parser.add_argument("--versions", default="2.8.2,3.0.0", help="the first runs every size, others 10000 only")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--child-rss", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_rss:
        run_child_rss(args.child_rss)
        return 0
    versions = args.versions.split(",")
    plan = [(versions[0], int(n)) for n in args.sizes.split(",")] + [(v, 10000) for v in versions[1:]]
    rows = []
    for version, live in plan:
        rows.append(measure(version, live, args.repeat))
        print(json.dumps(rows[-1]), flush=True)
    text = report(rows, args.repeat)
    print(text)
    if not args.no_write:
        write_section(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
