"""Ghost lifetime at production timing: last heartbeat -> removal, and time until a participant can rejoin.

Runs the whole stack (simulated AMS, exporter, real Prometheus and Alertmanager with the
shipped rules and example Alertmanager config, remediator enforcing) with the AMS
versions' own heartbeats (5 s on 2.8.2, 10 s on 3.x) and 10 s scrape and evaluation
intervals. Not a test: `python bench/ghost_lifetime.py` (about 10 minutes); writes the
"Ghost lifetime" section of bench/RESULTS.md and bench/ghost_lifetime.png.

The stale threshold is the exporter's (antmedia_stale_threshold_seconds, read through
Prometheus): what a ghost lives beyond it is what the pipeline adds to what AMS forgives.
"""
from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import httpx  # noqa: E402

from simulator import AmsVersion  # noqa: E402
from stack import api  # noqa: E402
from stack.conference import is_removed, start_populated, wait_members_seen, wait_removed  # noqa: E402
from stack.runner import StackOptions  # noqa: E402
from stack.timing import PRODUCTION  # noqa: E402
from stack.writes import wrongly_touched  # noqa: E402
from results import machine, write_section  # noqa: E402  (bench/ is the script's folder)

APP = "WebRTCAppEE"
# p95 targets of lifetime, set when the threshold was 2 heartbeats (10 s on 2.8.2, 20 s on 3.x).
TARGET_P95 = {"2.8.2": 30.0, "3.0.0": 45.0}
ROOMS, MEMBERS, GHOSTS_PER_ROOM = 3, 8, 4          # per run: 12 ghosts, 3 flappers, 9 steady members
# Prometheus scrapes at a phase set by the target's address and evaluates rules at a
# phase set by the rule file: their lag is fixed within one run and differs between
# runs, so each version runs more than once to sample it.
RUNS = 2
BACKGROUND_LIVE, BACKGROUND_ROOMS = 200, 20
# The caps bound evictions per 10 min (default 20 per app); this run evicts 24 ghosts of
# one app on purpose, so they are raised: the benchmark measures latency, not the guard.
REMEDIATOR = {"caps": {"max_evictions": 200, "max_evictions_per_app": 200}}
# A flapping participant is back this long before AMS's session-recovery window closes
# (webRTCClientStartTimeoutMs): a flap that outlasts it is a ghost, not a flap.
FLAP_MARGIN = 2.0
PLOT = REPO / "bench" / "ghost_lifetime.png"
SINCE = "stream:antmedia_broadcast_heartbeat_unchanged_since:timestamp_seconds"
FIRING = 'ALERTS{{alertname="AntMediaGhostStream",alertstate="firing",stream_id=~"{ids}"}}'


@dataclass
class Plan:
    """Who is in which room and what happens to them."""

    rooms: dict[str, list[str]] = field(default_factory=dict)
    ghosts: list[str] = field(default_factory=list)
    flappers: list[str] = field(default_factory=list)

    def members(self) -> list[str]:
        """Every participant of the benchmark rooms."""
        return [m for names in self.rooms.values() for m in names]


@dataclass
class Phases:
    """Per ghost, seconds: last heartbeat -> first scrape returning it -> alert firing -> removed."""

    seen: list[float] = field(default_factory=list)
    fired: list[float] = field(default_factory=list)
    removed: list[float] = field(default_factory=list)

    def extend(self, other: "Phases") -> None:
        """Pool another run's phases."""
        self.seen += other.seen
        self.fired += other.fired
        self.removed += other.removed


@dataclass
class RunResult:
    """One stack's measurements."""

    threshold: float
    lifetimes: list[float]
    rejoin_after: list[float]
    false_evictions: list[str]
    not_removed: list[str]
    flaps_lost: list[str]
    lag: float | None
    phases: Phases


@dataclass
class VersionResult:
    """Measured outcome for one AMS version."""

    version: str
    heartbeat: float
    flap_seconds: float
    thresholds: set[float] = field(default_factory=set)
    lifetimes: list[float] = field(default_factory=list)
    beyond: list[float] = field(default_factory=list)
    rejoin_after: list[float] = field(default_factory=list)
    false_evictions: list[str] = field(default_factory=list)
    not_removed: list[str] = field(default_factory=list)
    flaps_lost: list[str] = field(default_factory=list)
    lags: list[float] = field(default_factory=list)   # scrape -> rule evaluation lag of each run
    phases: Phases = field(default_factory=Phases)
    runs: int = 0
    wall_seconds: float = 0.0

    @property
    def threshold(self) -> float:
        """The stale threshold the exporter reported (the same in every run)."""
        return max(self.thresholds) if self.thresholds else float("nan")


def make_plan() -> Plan:
    """ROOMS rooms of MEMBERS; the first GHOSTS_PER_ROOM drop, the next one flaps."""
    plan = Plan()
    for r in range(ROOMS):
        names = [f"r{r}m{m}" for m in range(MEMBERS)]
        plan.rooms[f"bench-room-{r}"] = names
        plan.ghosts += names[:GHOSTS_PER_ROOM]
        plan.flappers.append(names[GHOSTS_PER_ROOM])
    return plan


def flap_seconds(heartbeat: float, grace: float) -> float:
    """One heartbeat of silence, cut short to end FLAP_MARGIN inside AMS's session-recovery window."""
    return min(heartbeat, grace - FLAP_MARGIN)


def join_all(stack, plan: Plan, rng: random.Random, heartbeat: float) -> None:
    """Create the rooms and let everyone publish at a random phase of the heartbeat period."""
    joins = sorted((rng.uniform(0, heartbeat), room, name) for room, names in plan.rooms.items() for name in names)
    for room in plan.rooms:
        stack.sim.create_room(APP, room)
    started = time.monotonic()
    for offset, room, name in joins:
        time.sleep(max(0.0, started + offset - time.monotonic()))
        if not stack.sim.join(APP, room, name, name=name):
            raise RuntimeError(f"{name} could not join {room}")
    for room, names in plan.rooms.items():
        wait_members_seen(stack.prometheus_url, room, len(names), timeout=60)


def disturb(stack, plan: Plan, rng: random.Random, flap: float) -> None:
    """Drop the ghosts one by one at random phases; flappers go silent for `flap` seconds and resume."""
    events = [(g, "drop") for g in plan.ghosts] + [(f, "flap") for f in plan.flappers]
    rng.shuffle(events)
    for stream, kind in events:
        # blink resumes on the simulated AMS's own clock, `flap` seconds after the drop
        done = stack.sim.blink(APP, stream, flap) if kind == "flap" else stack.sim.drop(APP, stream)
        if not done:
            raise RuntimeError(f"{stream} was not publishing")
        time.sleep(rng.uniform(0.5, 4.0))


def publishing(stack, stream: str) -> bool:
    """The stream's heartbeat is current: written within the last two periods."""
    record = stack.sim.broadcast(APP, stream) or {}
    age = stack.sim.clock.now() - record.get("updateTime", 0) / 1000
    return record.get("status") == "broadcasting" and age <= 2 * stack.sim.heartbeat_seconds


def removal_time(lc) -> float:
    """When the ghost left its last room listing or its record went, whichever came later."""
    return max(t for t in (lc.unlisted_at, lc.deleted_at) if t is not None)


def measure(stack, plan: Plan) -> tuple[list[float], list[float], list[str], dict]:
    """Lifetimes, rejoin delays (seconds after the last heartbeat), ghosts never removed, lifecycles."""
    lifetimes, rejoins, missing, lifecycles = [], [], [], {}
    for ghost in plan.ghosts:
        lc = stack.sim.lifecycle(APP, ghost)
        if not is_removed(stack.sim, APP, ghost):
            missing.append(ghost)
            continue
        lifecycles[ghost] = lc
        lifetimes.append(removal_time(lc) - lc.last_heartbeat_at)
        if lc.rejoinable_at is not None:
            rejoins.append(lc.rejoinable_at - lc.last_heartbeat_at)
    return lifetimes, rejoins, missing, lifecycles


def phases(prometheus_url: str, lifecycles: dict, start: float, end: float) -> Phases:
    """Where each ghost's lifetime went, from Prometheus's records (its clock is the simulator's: one machine).

    seen: last heartbeat -> the first scrape that returned it (staleness counts from there);
    fired: that scrape -> the evaluation at which AntMediaGhostStream fired;
    removed: that evaluation -> out of every room listing and record gone (Alertmanager, remediator).
    """
    if not lifecycles:
        return Phases()
    ids = "|".join(sorted(lifecycles))
    since = {r["metric"]["stream_id"]: float(r["value"][1]) for r in api.query(
        prometheus_url, f'last_over_time({SINCE}{{app="{APP}",stream_id=~"{ids}"}}[30m])')}
    data = api.query_range(prometheus_url, f"timestamp({FIRING.format(ids=ids)})", start, end, 1.0)
    fired: dict[str, float] = {}
    for series in data["result"]:
        first = min(float(v) for _, v in series["values"])
        stream = series["metric"]["stream_id"]
        fired[stream] = min(first, fired.get(stream, first))
    result = Phases()
    for stream, lc in lifecycles.items():
        if stream in since and stream in fired:
            result.seen.append(since[stream] - lc.last_heartbeat_at)
            result.fired.append(fired[stream] - since[stream])
            result.removed.append(removal_time(lc) - fired[stream])
    return result


def evaluation_lag(prometheus_url: str) -> float | None:
    """Seconds from the exporter's scrape to the ghost rule group's evaluation, within one interval."""
    try:
        targets = httpx.get(f"{prometheus_url}/api/v1/targets", timeout=5).json()["data"]["activeTargets"]
        groups = httpx.get(f"{prometheus_url}/api/v1/rules", timeout=5).json()["data"]["groups"]
        scraped = next(t["lastScrape"] for t in targets if t["labels"]["job"] == "antmedia")
        evaluated = next(g["lastEvaluation"] for g in groups if g["name"] == "antmedia-ghost")
    except (httpx.HTTPError, KeyError, StopIteration, ValueError):
        return None
    lag = datetime.fromisoformat(evaluated[:26].rstrip("Z")) - datetime.fromisoformat(scraped[:26].rstrip("Z"))
    return lag.total_seconds() % PRODUCTION.evaluation_interval


def stale_threshold(prometheus_url: str) -> float:
    """The threshold the exporter exports for the app (what the rule compares against)."""
    value = api.scalar(prometheus_url, f'max(antmedia_stale_threshold_seconds{{app="{APP}"}})')
    if value is None:
        raise RuntimeError("the exporter exports no antmedia_stale_threshold_seconds")
    return value


def run_once(version: str, seed: int) -> RunResult:
    """One production-timing stack: ROOMS x GHOSTS_PER_ROOM ghosts, then the measurements."""
    plan, rng = make_plan(), random.Random(seed)
    options = StackOptions(ams_version=version, timing=PRODUCTION, remediator=REMEDIATOR)
    stack = start_populated(options, APP, BACKGROUND_LIVE, BACKGROUND_ROOMS)
    try:
        heartbeat, grace = stack.sim.heartbeat_seconds, stack.sim.reconnect_grace_seconds
        flap = flap_seconds(heartbeat, grace)
        print(f"[{version} seed {seed}] heartbeat {heartbeat:g} s, grace {grace:g} s, flap {flap:g} s;"
              f" {len(plan.members())} participants join", flush=True)
        join_all(stack, plan, rng, heartbeat)
        threshold = stale_threshold(stack.prometheus_url)
        started = time.time()
        disturb(stack, plan, rng, flap)
        try:
            wait_removed(stack.sim, APP, plan.ghosts, timeout=240)
        except AssertionError as error:
            print(f"[{version}] {error}", flush=True)
        time.sleep(2 * PRODUCTION.evaluation_interval)  # a late false eviction would show here
        lifetimes, rejoins, missing, lifecycles = measure(stack, plan)
        lost = [f for f in plan.flappers if not publishing(stack, f)]
        wrong = [f"{w.method} {w.path}" for w in wrongly_touched(stack.sim.writes, set(plan.ghosts))]
        lag = evaluation_lag(stack.prometheus_url)
        split = phases(stack.prometheus_url, lifecycles, started - 60, time.time())
    finally:
        stack.stop()
    print(f"[{version} seed {seed}] threshold {threshold:g} s, lifetimes {sorted(round(x, 1) for x in lifetimes)}",
          flush=True)
    return RunResult(threshold, lifetimes, rejoins, wrong, missing, lost, lag, split)


def run_version(version: str, seed: int, runs: int) -> VersionResult:
    """RUNS stacks of one version, pooled."""
    started = time.monotonic()
    ams = AmsVersion.parse(version)
    result = VersionResult(version, ams.heartbeat_seconds, 0.0)
    for index in range(runs):
        run = run_once(version, seed + index)
        result.thresholds.add(run.threshold)
        result.lifetimes += run.lifetimes
        result.beyond += [t - run.threshold for t in run.lifetimes]
        result.rejoin_after += run.rejoin_after
        result.false_evictions += run.false_evictions
        result.not_removed += run.not_removed
        result.flaps_lost += run.flaps_lost
        result.phases.extend(run.phases)
        if run.lag is not None:
            result.lags.append(run.lag)
    result.runs = runs
    result.flap_seconds = flap_seconds(ams.heartbeat_seconds, 10.0)
    result.wall_seconds = time.monotonic() - started
    return result


def percentile(values: list[float], q: float) -> float:
    """Inclusive percentile (q in 0..100)."""
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def stats_row(label: str, values: list[float], target: float | None) -> str:
    """One Markdown table row: n, min, median, p95, max, target."""
    if not values:
        return f"| {label} | 0 | - | - | - | - | {'' if target is None else f'<= {target:.0f} s'} |"
    p95 = percentile(values, 95)
    verdict = "" if target is None else f"<= {target:.0f} s: {'met' if p95 <= target else 'not met'}"
    return (f"| {label} | {len(values)} | {min(values):.1f} | {statistics.median(values):.1f} | {p95:.1f} |"
            f" {max(values):.1f} | {verdict} |")


def spread(values: list[float]) -> str:
    """median (min-max), or - when nothing was measured."""
    if not values:
        return "-"
    return f"{statistics.median(values):.1f} ({min(values):.1f}-{max(values):.1f})"


def grid(threshold: float) -> float:
    """The first whole number of scrape intervals beyond the threshold: when a frozen heartbeat fires."""
    step = PRODUCTION.scrape_interval
    return (math.floor(threshold / step) + 1) * step


def method(results: list[VersionResult]) -> list[str]:
    """How the figures were obtained."""
    flaps = ", ".join(f"{r.flap_seconds:g} s on {r.version}" for r in results)
    return [
        "Production timing: the AMS versions' own heartbeats (5 s on 2.8.2, 10 s on 3.x), Prometheus scrape and",
        "evaluation every 10 s (scrape timeout 8 s), the shipped `rules/antmedia.rules.yml` and",
        "`rules/alertmanager.example.yml` (only the webhook URL and the token path rewritten), the default",
        "stale threshold (`stale_heartbeats: 2`, `reconnect_grace_seconds: 10`, AMS's 3.5 s of delays; read from",
        "the exporter's `antmedia_stale_threshold_seconds`), the remediator enforcing with its eviction caps",
        "raised (the run evicts more ghosts of one app in minutes than the default caps allow). Each version",
        f"runs {results[0].runs} stack{'s' if results[0].runs != 1 else ''}; each has {BACKGROUND_LIVE} background"
        f" live streams and {ROOMS} rooms of {MEMBERS} participants who join",
        f"at random phases of the heartbeat period; {GHOSTS_PER_ROOM} per room then drop their network one by one"
        " (0.5-4 s apart)",
        f"and one per room goes silent and resumes its session within AMS's 10 s recovery window ({flaps}).",
        "Lifetime runs from the ghost's last heartbeat to its removal (out of every room listing, record gone or",
        "no longer live), rejoin from the last heartbeat to the moment AMS would accept the same stream id again,",
        "both on the simulated AMS's clock; *beyond the threshold* is lifetime minus the threshold, the part the",
        "pipeline adds. False evictions: writes to any stream that was not a ghost (steady, flapping, background",
        "participants and rooms).",
    ]


def phase_table(results: list[VersionResult]) -> list[str]:
    """Median (min-max) of each part of the lifetime, per version."""
    lines = ["| per ghost, seconds: median (min-max) | " + " | ".join(r.version for r in results) + " |",
             "|---|" + "---|" * len(results)]
    rows = (("last heartbeat -> first scrape returning it", lambda r: spread(r.phases.seen)),
            ("that scrape -> evaluation firing AntMediaGhostStream", lambda r: spread(r.phases.fired)),
            ("firing -> removed (Alertmanager, remediator)", lambda r: spread(r.phases.removed)),
            ("scrape -> evaluation lag of each run",
             lambda r: " / ".join(f"{lag:.1f}" for lag in r.lags) or "-"))
    for label, cell in rows:
        lines.append(f"| {label} | " + " | ".join(cell(r) for r in results) + " |")
    return lines


def budget(results: list[VersionResult]) -> list[str]:
    """Where the time goes, from the measured phases."""
    lines = ["Where the time goes. Staleness is counted on Prometheus's scrape times from the first scrape",
             "that returned the ghost's last heartbeat: that scrape comes 0-10 s after the heartbeat (the scrape",
             "phase). The rule fires at the first evaluation after the first scrape that finds the heartbeat",
             "unchanged for longer than the threshold, i.e. a whole number of scrape intervals beyond it, plus",
             "the scrape -> evaluation lag (fixed within a run, 0-10 s). Then Alertmanager's 1 s group_wait, the",
             "remediator's revalidation (broadcast, room, silence check), its own wait (it writes nothing before its",
             "own reads have shown the heartbeat unchanged for one period plus AMS's 3.5 s of delays: 8.5 s on 2.8.2,",
             "13.5 s on 3.x; the first delivery is answered 503 and Alertmanager's retries bring the alert back)",
             "and the eviction writes."]
    for r in results:
        if not r.lifetimes:
            continue
        g = grid(r.threshold)
        lines.append(
            f"- {r.version}: threshold {r.threshold:g} s, so the alert fires {g:.0f} s of scrapes after the first"
            f" sighting ({g - r.threshold:.1f} s of rounding) plus the lag; measured, median: heartbeat -> scrape"
            f" {statistics.median(r.phases.seen):.1f} s, scrape -> firing {statistics.median(r.phases.fired):.1f} s,"
            f" firing -> removed {statistics.median(r.phases.removed):.1f} s; beyond the threshold"
            f" {statistics.median(r.beyond):.1f} s median, {percentile(r.beyond, 95):.1f} s p95. Worst case:"
            f" 10 s phase + {g:.0f} s + 10 s lag + firing -> removed at most {max(r.phases.removed):.1f} s (measured)"
            f" = {10 + g + 10 + max(r.phases.removed):.1f} s"
            f" ({10 + g + 10 + max(r.phases.removed) - r.threshold:.1f} s beyond the threshold).")
    return lines


def section(results: list[VersionResult]) -> str:
    """The Markdown section for RESULTS.md."""
    lines = ["## Ghost lifetime", "",
             f"`python bench/ghost_lifetime.py`, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, on {machine()}.",
             "", *method(results), "",
             "| seconds after last heartbeat | n | min | median | p95 | max | p95 target |",
             "|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(stats_row(f"{r.version} lifetime (heartbeat {r.heartbeat:g} s, threshold {r.threshold:g} s)",
                               r.lifetimes, TARGET_P95.get(r.version)))
        lines.append(stats_row(f"{r.version} beyond the threshold", r.beyond, None))
        lines.append(stats_row(f"{r.version} rejoin possible", r.rejoin_after, None))
    lines.append("")
    for r in results:
        lines.append(f"- {r.version}: false evictions {len(r.false_evictions)}"
                     f"{' (' + '; '.join(r.false_evictions[:5]) + ')' if r.false_evictions else ''},"
                     f" ghosts not removed {len(r.not_removed)}, flappers not back {len(r.flaps_lost)},"
                     f" {r.runs} run{'s' if r.runs != 1 else ''} took {r.wall_seconds:.0f} s.")
    lines += ["", "The p95 targets (30 s on 2.8.2, 45 s on 3.x) were set when the threshold was 2 heartbeats",
              "(10 s and 20 s): they left the pipeline 20 s and 25 s beyond it. The threshold now also waits out",
              "AMS's 10 s session recovery and its 3.5 s of delays, so a lifetime cannot be shorter than 23.5 s",
              "(2.8.2) or 33.5 s (3.x); the comparable figure is the time beyond the threshold.", "",
              *phase_table(results), "", *budget(results), "",
              "On 3.x the id is free again 2 heartbeats after the last one (AMS computes",
              "`terminated_unexpectedly`), before the eviction; on 2.8.2 only the eviction frees it.", "",
              "![ghost lifetime](ghost_lifetime.png)", ""]
    return "\n".join(lines)


def plot(results: list[VersionResult], path: Path = PLOT) -> None:
    """Empirical CDFs of lifetime (and rejoin) with the thresholds and the p95 targets."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(10, 4.5))
    for r, colour in zip(results, ("tab:blue", "tab:orange")):
        for values, style, what in ((r.lifetimes, "-", "lifetime"), (r.rejoin_after, ":", "rejoin possible")):
            if values:
                xs = sorted(values)
                ax.step(xs, [(i + 1) / len(xs) for i in range(len(xs))], style, where="post", color=colour,
                        label=f"{r.version} {what}")
        if r.thresholds:
            ax.axvline(r.threshold, color=colour, alpha=0.4, linestyle=":",
                       label=f"{r.version} stale threshold ({r.threshold:g} s)")
        if r.version in TARGET_P95:
            ax.axvline(TARGET_P95[r.version], color=colour, alpha=0.4, linestyle="--",
                       label=f"{r.version} p95 target")
    ax.axhline(0.95, color="grey", alpha=0.3)
    ax.set_xlabel("seconds after the ghost's last heartbeat")
    ax.set_ylabel("share of ghosts")
    ax.set_title("Ghost lifetime at production timing (10 s scrape and evaluation)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    """Run each version, print and record the results; fail only on a wrong or missed eviction."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--versions", nargs="+", default=list(TARGET_P95))
    parser.add_argument("--seed", type=int, default=6143)
    parser.add_argument("--runs", type=int, default=RUNS, help="stacks per version (each samples a scrape phase)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md and the plot alone")
    args = parser.parse_args(argv)
    results = [run_version(v, args.seed, args.runs) for v in args.versions]
    text = section(results)
    print(text)
    if not args.no_write:
        write_section(text)
        plot(results)
    # The latency targets are reported, not enforced: `make bench` goes on to the next benchmark.
    correct = all(r.lifetimes and not r.not_removed and not r.false_evictions and not r.flaps_lost for r in results)
    return 0 if correct else 1


if __name__ == "__main__":
    sys.exit(main())
