"""Remediator throughput: one Alertmanager notification carrying 500 firing ghost alerts.

Simulated AMS (2.8.2 and 3.0.0, its own process) with 600 conference participants in 50 rooms,
500 of which drop their network; the remediator enforces with its caps and blast radius relaxed,
served by its own HTTP server (service/web.py) on 127.0.0.1, and gets one notification naming
all 500 ghosts (sent again while it answers 503, as Alertmanager does). Measures the time to answer and evictions per second, and checks that every
ghost is gone and no healthy stream or room was written to. Not a test:
`python bench/remediator_notification.py`; writes the "Remediator notification" section of
bench/RESULTS.md.
"""
from __future__ import annotations

import argparse
import io
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import parse_qs

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import httpx  # noqa: E402
from results import machine, write_section  # noqa: E402  (bench/ is the script's folder)

from ams.server import AmsServer  # noqa: E402
from remediator.__main__ import SERVER_THREADS  # noqa: E402
from remediator.app import (  # noqa: E402
    build_deps,
    close_deps,
    create_app,  # noqa: E402
)
from remediator.decisions import AuditLog  # noqa: E402
from service.config import Config as Settings  # noqa: E402
from service.config import parse_remediator
from service.web import Server  # noqa: E402

TITLE = "## Remediator notification"
APP = "WebRTCAppEE"
TOKEN = "bench-token"
LIVE, ROOMS, GHOSTS = 600, 50, 500
WITNESS_SECONDS = 1.0 + 3.5  # the remediator's own wait: one heartbeat period (1 s here) plus AMS's delays


@dataclass
class Run:
    """One measured notification."""

    version: str
    concurrency: int
    seconds: float
    status: int
    evicted: int
    left_over: int
    wrong_writes: int
    writes: int


class SimProcess:
    """The simulated AMS as its own process (`python -m simulator`), driven by its /_sim/ endpoints."""

    def __init__(self, version: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "simulator", "--ams-version", version, "--port", "0", "--heartbeat-seconds", "1"],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.process.stdout.readline()
        self.url = line.rsplit(" on ", 1)[-1].strip()
        if not self.url.startswith("http://"):
            self.stop()
            raise RuntimeError(f"simulator did not start: {line!r}")
        self.http = httpx.Client(base_url=self.url, timeout=30)

    def control(self, name: str, **body) -> dict:
        """POST /_sim/{name}."""
        answer = self.http.post(f"/_sim/{name}", json={"app": APP, **body})
        answer.raise_for_status()
        return answer.json()

    def broadcast(self, stream: str) -> dict | None:
        """The stored record, or None."""
        answer = self.http.get(f"/_sim/broadcast/{APP}/{stream}")
        return answer.json() if answer.status_code == 200 else None

    def writes(self) -> list[dict]:
        """Every write the simulated AMS received."""
        return self.http.get("/_sim/writes").json()

    def stop(self) -> None:
        """Terminate the process."""
        self.process.terminate()
        self.process.wait(timeout=10)


def world(version: str) -> tuple[SimProcess, list[str]]:
    """LIVE participants in ROOMS rooms; GHOSTS of them dropped, then AMS's clock moved 10 s on."""
    sim = SimProcess(version)
    sim.control("populate", live=LIVE, rooms=ROOMS, prefix="p")
    ghosts = [f"p-{i:07d}" for i in range(GHOSTS)]
    for stream in ghosts:
        sim.control("drop", stream_id=stream)
    sim.control("clock", offset_seconds=10.0)  # stale threshold: 3 heartbeats of 1 s
    return sim, ghosts


def payload(sim: SimProcess, ghosts: list[str]) -> dict:
    """One notification with an AntMediaGhostStream alert per ghost."""
    alerts = []
    for stream in ghosts:
        record = sim.broadcast(stream) or {}
        room = record.get("mainTrackStreamId") or ""
        labels = {"alertname": "AntMediaGhostStream", "ams": "main", "app": APP, "stream_id": stream,
                  "room": room, "remediation": "delete_stream", "severity": "warning"}
        # The rule's evidence: the updateTime it saw frozen (the remediator acts only on that very value).
        evidence = {"heartbeat_timestamp": f"{(record.get('updateTime') or 0) / 1000:.3f}"}
        alerts.append({"status": "firing", "labels": labels, "annotations": evidence,
                       "startsAt": datetime.now(timezone.utc).isoformat().replace("+00:00", "Z"),
                       "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "", "fingerprint": stream})
    return {"version": "4", "status": "firing", "receiver": "antmedia-remediator", "groupKey": "bench",
            "truncatedAlerts": 0, "alerts": alerts}


def serve(sim: SimProcess, concurrency: int):
    """The remediator on a free port behind the product's server, as `antmedia-remediator` serves it, enforcing
    with its guards relaxed."""
    server_cfg = AmsServer(name="main", url=sim.url, apps=(APP,), heartbeat_seconds=1.0, timeout_seconds=10.0)
    section = {"dry_run": False, "webhook_token_env": "BENCH", "concurrency": concurrency,
               "caps": {"max_evictions": None, "max_evictions_per_app": None},
               "blast_radius": {"enabled": False}, "max_body_bytes": 16 * 1024 * 1024}
    config = parse_remediator(section, environ={"BENCH": TOKEN})
    deps = build_deps(Settings(ams=(server_cfg,), remediator=config), audit=AuditLog(io.StringIO()))
    server = Server(create_app(deps), "127.0.0.1", 0, config.limits, None, threads=SERVER_THREADS,
                    ident="antmedia-remediator", guarded=True)
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    return server, thread, deps


def measure(version: str, concurrency: int) -> Run:
    """Build the world, send the notification once, check the result."""
    sim, ghosts = world(version)
    server, thread, deps = serve(sim, concurrency)
    try:
        body = payload(sim, ghosts)
        answer, seconds, evicted = deliver(f"http://127.0.0.1:{server.port}/alerts", body)
        left = sum(1 for s in ghosts if sim.broadcast(s) is not None)
        writes = sim.writes()
        wrong = sum(1 for w in writes if write_target(w) not in set(ghosts))
        return Run(version, concurrency, seconds, answer.status_code, evicted, left, wrong, len(writes))
    finally:
        server.stop()
        thread.join(timeout=5)
        close_deps(deps)
        sim.stop()


def deliver(url: str, body: dict) -> tuple[httpx.Response, float, int]:
    """POST the notification as Alertmanager would: the first delivery is answered 503 with every alert
    deferred while the remediator watches each heartbeat stand still (one period plus AMS's 3.5 s of
    delays); once that has passed, send it again (and again a second later while it answers 503).
    Returns the last answer, the seconds of the deliveries after the first, and the evictions in them."""
    def post() -> tuple[httpx.Response, float]:
        start = time.perf_counter()
        answer = httpx.post(url, json=body, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=600)
        return answer, time.perf_counter() - start

    answer, seconds = post()
    outcomes = answer.json().get("outcomes", [])
    if answer.status_code != 503 or not all(o["decision"] == "deferred" for o in outcomes):
        return answer, seconds, sum(o["decision"] == "evicted" for o in outcomes)
    time.sleep(WITNESS_SECONDS + 1.0)
    total, evicted = 0.0, 0
    for _ in range(10):
        answer, seconds = post()
        total += seconds
        evicted += sum(o["decision"] == "evicted" for o in answer.json().get("outcomes", []))
        if answer.status_code != 503:
            break
        time.sleep(1.0)
    return answer, total, evicted


def write_target(write) -> str:
    """The stream a write acted on: the subtrack's id=, else the path's stream segment."""
    parts = write["path"].rstrip("/").split("/")
    if parts[-1] == "subtrack":
        return parse_qs(write["query"]).get("id", [""])[0]
    return parts[-2] if parts[-1] == "stop" else parts[-1]


def section(runs: list[Run]) -> str:
    """The Markdown section for RESULTS.md."""
    lines = [TITLE, "",
             f"`python bench/remediator_notification.py`, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC,"
             f" on {machine()}.", "",
             f"One Alertmanager notification with {GHOSTS} firing `AntMediaGhostStream` alerts."
             " The simulated AMS runs as its own",
             f"process on the same machine, with {LIVE} participants in {ROOMS} rooms, {GHOSTS} of them dropped and stale.",
             "The remediator enforces with its caps and blast radius off, served by its own server on 127.0.0.1;",
             "`concurrency` is its `concurrency` key (alerts of one notification handled in parallel, the",
             "notification's own thread included); each alert carries the rule's evidence. The first",
             "delivery is answered 503, every alert deferred while the remediator watches the heartbeats",
             f"stand still ({WITNESS_SECONDS:g} s); the notification is then sent again, as Alertmanager does,",
             "and the time is that of the deliveries after the first. The machine is shared with other",
             "work, so figures vary between runs.", "",
             "| AMS | concurrency | HTTP | time to answer (s) | evictions/s | evicted | ghosts left | AMS writes |"
             " writes to healthy streams or rooms |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        lines.append(f"| {r.version} | {r.concurrency} | {r.status} | {r.seconds:.2f} | {r.evicted / r.seconds:.0f} |"
                     f" {r.evicted} | {r.left_over} | {r.writes} | {r.wrong_writes} |")
    lines += ["", "Each eviction is 4 AMS writes on 2.8.2 (stop, subtrack, conference-room member, delete) and 3 on",
              "3.0.0, plus the reads: revalidation (version cached, broadcast, room membership), the record again",
              "after the stop and before its delete, and the membership after leaving the room; 13 requests per",
              "ghost on 2.8.2 and 10 on 3.0.0 in all. The answer comes once every alert of the notification",
              "is decided.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run both versions at concurrency 1 and 4 and record the section."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4])
    args = parser.parse_args(argv)
    runs = [measure(version, c) for version in ("2.8.2", "3.0.0") for c in args.concurrency]
    text = section(runs)
    print(text)
    if not args.no_write:
        write_section(text)
    return 0 if all(r.status == 200 and r.left_over == 0 and r.wrong_writes == 0 for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
