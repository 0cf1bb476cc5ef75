"""antmedia-exporter: flags -> config -> collector -> WSGI server."""

from __future__ import annotations

import argparse
import logging
import sys

from waitress.server import create_server

from exporter.collector import AmsCollector
from exporter.web import create_app
from service.cli import EXIT_FAILURE, EXIT_OK, configure_logging, load, make_parser, on_stop_signals
from service.config import DEFAULT_LISTEN_ADDRESS, Config

log = logging.getLogger("exporter")
PROG = "antmedia-exporter"
SERVER_THREADS = 4  # a few concurrent scrapes (/metrics and /probe from HA Prometheus pairs)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Prometheus-style flags."""
    parser = make_parser(PROG, "Prometheus exporter for Ant Media Server (collects on scrape).",
                         "exporter", DEFAULT_LISTEN_ADDRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the exporter; returns the process exit code (0 ok, 1 runtime failure, 2 bad flags or config)."""
    args = parse_args(argv)
    loaded = load(PROG, args, own=("ams",), listen=lambda config: config.exporter.listen_address)
    if isinstance(loaded, int):
        return loaded
    config, (host, port) = loaded
    if args.config_check:
        apps = sum(len(s.apps) for s in config.ams)
        print(f"{args.config_file}: OK ({len(config.ams)} AMS, {apps} apps)")
        return EXIT_OK
    configure_logging(args.log_level or config.exporter.log_level)
    return serve(config, host, port)


def serve(config: Config, host: str, port: int) -> int:
    """Serve until SIGTERM or SIGINT."""
    collector = AmsCollector(config.ams, detail=config.exporter.detail_metrics)
    try:
        server = create_server(create_app(collector), host=host, port=port, threads=SERVER_THREADS, ident=PROG)
    except OSError as exc:
        print(f"{PROG}: cannot listen on {host}:{port}: {exc}", file=sys.stderr)
        collector.close()
        return EXIT_FAILURE
    on_stop_signals(_leave_serve_loop)
    log.info("listening on %s:%s for %d AMS", server.effective_host, server.effective_port, len(config.ams))
    try:
        server.run()  # returns after SystemExit, having stopped its workers
    finally:
        server.close()
        collector.close()
    log.info("stopped")
    return EXIT_OK


def _leave_serve_loop(signum: int) -> None:
    """Stop serving: waitress's loop ends on SystemExit."""
    log.info("signal %d: stopping", signum)
    raise SystemExit(EXIT_OK)


if __name__ == "__main__":
    sys.exit(main())
