"""antmedia-exporter: flags -> config -> collector -> WSGI server."""

from __future__ import annotations

import argparse
import logging
import signal
import sys

from waitress.server import create_server

from exporter.collector import AmsCollector
from service.config import Config, ConfigError, load_config, split_listen_address
from exporter.web import create_app

log = logging.getLogger("exporter")
SERVER_THREADS = 4  # a few concurrent scrapes (/metrics and /probe from HA Prometheus pairs)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Prometheus-style flags."""
    parser = argparse.ArgumentParser(
        prog="antmedia-exporter", description="Prometheus exporter for Ant Media Server (collects on scrape)."
    )
    parser.add_argument("--config.file", dest="config_file", required=True, help="YAML config file")
    parser.add_argument("--web.listen-address", dest="listen_address", default=None,
                        help="HOST:PORT to serve on (default: exporter.listen_address, else 0.0.0.0:15080)")
    parser.add_argument("--config.check", dest="config_check", action="store_true",
                        help="validate the config file and exit")
    parser.add_argument("--log.level", dest="log_level", default=None,
                        choices=("debug", "info", "warning", "error"), help="log level (default: from config)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the exporter; returns the process exit code."""
    args = parse_args(argv)
    try:
        config = load_config(args.config_file)
        host, port = split_listen_address(args.listen_address or config.exporter.listen_address)
    except (ConfigError, ValueError) as exc:
        print(f"antmedia-exporter: configuration error: {exc}", file=sys.stderr)
        return 1
    if args.config_check:
        apps = sum(len(s.apps) for s in config.ams)
        print(f"{args.config_file}: OK ({len(config.ams)} AMS, {apps} apps)")
        return 0
    logging.basicConfig(level=(args.log_level or config.exporter.log_level).upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return serve(config, host, port)


def serve(config: Config, host: str, port: int) -> int:
    """Serve until SIGTERM/SIGINT."""
    collector = AmsCollector(config.ams)
    try:
        server = create_server(create_app(collector), host=host, port=port, threads=SERVER_THREADS,
                               ident="antmedia-exporter")
    except OSError as exc:
        print(f"antmedia-exporter: cannot listen on {host}:{port}: {exc}", file=sys.stderr)
        collector.close()
        return 1
    signal.signal(signal.SIGTERM, _exit_on_signal)
    log.info("listening on %s:%s for %d AMS", server.effective_host, server.effective_port, len(config.ams))
    try:
        server.run()  # returns after SystemExit/KeyboardInterrupt, having stopped its workers
    finally:
        server.close()
        collector.close()
    log.info("stopped")
    return 0


def _exit_on_signal(signum: int, frame) -> None:
    """SIGTERM: leave the serve loop like Ctrl-C does."""
    raise SystemExit(0)


if __name__ == "__main__":
    sys.exit(main())
