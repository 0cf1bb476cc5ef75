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
    return parser.parse_args(argv)


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
                     server_jwt_secret=server_secret)


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
    print(f"simulated AMS {sim.version.name} serving {', '.join(sim.apps)} on {sim.url}", flush=True)
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
