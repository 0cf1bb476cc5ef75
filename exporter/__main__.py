"""antmedia-exporter: flags -> config -> collector -> HTTP(S) server."""

from __future__ import annotations

import argparse
import logging
import sys
import threading
from collections.abc import Callable

from exporter.collector import AmsCollector
from exporter.web import create_app
from service.cli import EXIT_FAILURE, EXIT_OK, configure_logging, load, make_parser, on_stop_signals
from service.config import DEFAULT_LISTEN_ADDRESS, Config
from service.reload import Reloader, on_reload_signal, reloadable_changes
from service.web import Server, serve_until
from service.webconfig import WebConfig

log = logging.getLogger("exporter")
PROG = "antmedia-exporter"
SERVER_THREADS = 16  # concurrent scrapes share one AMS collection (single flight): threads cost little here
MAX_BODY_BYTES = 65536  # no endpoint takes a body; anything larger is refused before it is read
EXEMPT = ("/-/healthy", "/-/ready")  # orchestrator probes need no credentials; they reveal nothing
# What a reload can change in place: which AMS to collect, and how much. Serving settings need a restart.
RELOADABLE = ("ams", "exporter.detail_metrics")
# A collector replaced by a reload is closed once scrapes that started with it are over.
RETIRE_AFTER_SECONDS = 60.0


class Current:
    """The collector in service. A reload puts a new one in place between scrapes; a scrape that began with
    the old one ends with it, and the old one is closed after RETIRE_AFTER_SECONDS."""

    def __init__(self, collector: AmsCollector) -> None:
        self.collector = collector

    def __getattr__(self, name: str):
        return getattr(self.collector, name)

    def replace(self, collector: AmsCollector) -> None:
        old, self.collector = self.collector, collector
        timer = threading.Timer(RETIRE_AFTER_SECONDS, old.close)
        timer.daemon = True
        timer.start()

    def close(self) -> None:
        self.collector.close()


def reload_into(current: Current) -> Callable[[Config, Config], None]:
    """apply(new, old) for the Reloader: a new collector for the new `ams` list; anything else refused."""
    def apply(new: Config, old: Config) -> None:
        if reloadable_changes(new, old, ("ams", "exporter"), RELOADABLE):
            current.replace(AmsCollector(new.ams, detail=new.exporter.detail_metrics))
    return apply


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
    config, (host, port), web = loaded
    if args.config_check:
        apps = sum(len(s.apps) for s in config.ams)
        print(f"{args.config_file}: OK ({len(config.ams)} AMS, {apps} apps); serving {web.summary}")
        return EXIT_OK
    configure_logging(args.log_level or config.exporter.log_level, args.log_format)
    return serve(config, host, port, web, lifecycle=args.enable_lifecycle)


def serve(config: Config, host: str, port: int, web: WebConfig | None = None, lifecycle: bool = False) -> int:
    """Serve until SIGTERM or SIGINT; /-/ready turns 503 as soon as one arrives. SIGHUP (and POST /-/reload
    with lifecycle) reads the config file again."""
    collector = Current(AmsCollector(config.ams, detail=config.exporter.detail_metrics))
    reloader = Reloader(config.path, ("ams",), config, reload_into(collector)) if config.path else None
    stop = threading.Event()
    try:
        app = create_app(collector, ready=lambda: not stop.is_set(), reloader=reloader if lifecycle else None)
        server = Server(app, host, port,
                        config.exporter.limits,
                        web, threads=SERVER_THREADS, ident=PROG, exempt=EXEMPT, max_body_bytes=MAX_BODY_BYTES)
    except OSError as exc:
        print(f"{PROG}: cannot listen on {host}:{port}: {exc}", file=sys.stderr)
        collector.close()
        return EXIT_FAILURE

    def on_signal(signum: int) -> None:
        log.info("signal %d: stopping", signum)
        stop.set()

    on_stop_signals(on_signal)
    if reloader is not None:
        on_reload_signal(reloader)
    log.info("listening on %s:%s (%s) for %d AMS", server.host, server.port, (web or WebConfig()).summary,
             len(config.ams))
    try:
        serve_until(server, stop)
    finally:
        collector.close()
    log.info("stopped")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
