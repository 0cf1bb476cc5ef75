"""antmedia-simulator: serve a simulated AMS, optionally playing the conference scenario."""
import argparse
import signal
import sys
import threading

from .core import Simulator
from .scenario import run_conference


def parse_args(argv=None) -> argparse.Namespace:
    """Command-line flags."""
    parser = argparse.ArgumentParser(prog="antmedia-simulator", description="Simulated Ant Media Server REST API.")
    parser.add_argument("--ams-version", default="2.8.2", help="AMS version to behave like (e.g. 2.8.2, 3.0.0)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=5080, help="port to bind (0 = any free port)")
    parser.add_argument("--apps", default="WebRTCAppEE", help="comma-separated application names")
    parser.add_argument("--scenario", choices=("none", "conference"), default="none")
    parser.add_argument("--heartbeat-seconds", type=float, default=None,
                        help="heartbeat period (default: 5 on 2.8.x, 10 from 2.9)")
    parser.add_argument("--jwt-secret-file", default=None, help="enable the REST JWT filter with this secret")
    parser.add_argument("--server-jwt-secret-file", default=None,
                        help="require a server JWT (ProxyAuthorization header) on the management API /rest/v2")
    parser.add_argument("--allowed-cidrs", default="127.0.0.1",
                        help="remoteAllowedCIDR, comma-separated; 'none' disables the IP filter")
    parser.add_argument("--clock-offset-seconds", type=float, default=0.0, help="skew of the server clock")
    parser.add_argument("--reconnect-grace-seconds", type=float, default=10.0,
                        help="session-recovery window, webRTCClientStartTimeoutMs (default 10)")
    parser.add_argument("--proxy-clock-offset-seconds", type=float, default=None,
                        help="put a reverse proxy in front that dates replies with its own clock, skewed by this")
    parser.add_argument("--nodes", default=None,
                        help="run a cluster: a node count or comma-separated node addresses (default: standalone)")
    parser.add_argument("--node-clock-offsets", default=None,
                        help="comma-separated clock offsets in seconds, one per node")
    parser.add_argument("--node-update-seconds", type=float, default=5.0,
                        help="cluster registry heartbeat period, NODE_UPDATE_PERIOD (default 5)")
    parser.add_argument("--store", choices=("mapdb", "mongodb"), default=None,
                        help="data store (default: mapdb standalone, mongodb in a cluster)")
    parser.add_argument("--read-cache-seconds", type=float, default=3.0,
                        help="per-node broadcast read cache on 2.14+ clusters (default 3)")
    parser.add_argument("--rtmp-inactivity-seconds", type=float, default=60.0,
                        help="Red5 rtmp.max_inactivity: a silent RTMP connection closes after this (default 60)")
    parser.add_argument("--webrtc-broadcast-scope", action="store_true",
                        help="WebRTC publishers own a broadcast scope on their origin (broadcast-statistics 0, not -1)")
    return parser.parse_args(argv)


def node_spec(nodes: str | None, offsets: str | None):
    """The Simulator's nodes argument from --nodes and --node-clock-offsets."""
    if nodes is None:
        if offsets:
            raise ValueError("--node-clock-offsets needs --nodes")
        return None
    addresses = [f"10.0.0.{i + 1}" for i in range(int(nodes))] if nodes.strip().isdigit() else \
        [a.strip() for a in nodes.split(",") if a.strip()]
    values = [float(v) for v in offsets.split(",")] if offsets else [0.0] * len(addresses)
    if len(values) != len(addresses):
        raise ValueError(f"{len(addresses)} nodes but {len(values)} clock offsets")
    return [{"address": a, "clock_offset_seconds": o} for a, o in zip(addresses, values)]


def read_secret(path: str) -> str:
    """A secret file's content minus exactly one trailing newline ("\\n" or "\\r\\n")."""
    with open(path, encoding="utf-8", newline="") as handle:
        secret = handle.read()
    for ending in ("\r\n", "\n"):
        if secret.endswith(ending):
            secret = secret[:-len(ending)]
            break
    if not secret:
        raise ValueError(f"{path}: empty secret")
    return secret


def build(args: argparse.Namespace) -> Simulator:
    """The Simulator the flags describe."""
    cidrs = None if args.allowed_cidrs.strip().lower() == "none" else args.allowed_cidrs
    secret = read_secret(args.jwt_secret_file) if args.jwt_secret_file else None
    server_secret = read_secret(args.server_jwt_secret_file) if args.server_jwt_secret_file else None
    return Simulator(ams_version=args.ams_version, apps=args.apps, heartbeat_seconds=args.heartbeat_seconds,
                     jwt_secret=secret, allowed_cidrs=cidrs, clock_offset_seconds=args.clock_offset_seconds,
                     server_jwt_secret=server_secret, reconnect_grace_seconds=args.reconnect_grace_seconds,
                     proxy_clock_offset_seconds=args.proxy_clock_offset_seconds,
                     nodes=node_spec(args.nodes, args.node_clock_offsets),
                     node_update_seconds=args.node_update_seconds, read_cache_seconds=args.read_cache_seconds,
                     store=args.store, rtmp_inactivity_seconds=args.rtmp_inactivity_seconds,
                     webrtc_broadcast_scope=args.webrtc_broadcast_scope)


def main(argv=None) -> int:
    """Serve until interrupted."""
    args = parse_args(argv)
    try:
        sim = build(args)
        sim.start(args.host, args.port)
    except (ValueError, OSError) as exc:
        print(f"antmedia-simulator: {exc}", file=sys.stderr)
        return 2
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    app = sim.apps[0]
    where = f" (cluster of {len(sim.nodes)} nodes, {sim.store})" if sim.cluster else f" ({sim.store})"
    print(f"simulated AMS {sim.version.name}{where} serving {', '.join(sim.apps)} on {sim.url}", flush=True)
    for node in sim.nodes:
        if node["url"]:
            print(f"node {node['id']} answers on {node['url']}", flush=True)
    try:
        if args.scenario == "conference":
            run_conference(sim, app, on_event=lambda e: print(e.line(), flush=True), sleep=done.wait)
        print(f"explore: curl {sim.url}/{app}/rest/v2/broadcasts/list/0/50  (Ctrl-C to stop)", flush=True)
        done.wait()
    finally:
        sim.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
