"""antmedia-remediator: flags -> config -> dependencies -> Flask app served by waitress."""
from __future__ import annotations

import _thread
import argparse
import logging
import os
import signal
import sys
import threading

from prometheus_client import disable_created_metrics

from service.cli import EXIT_FAILURE, EXIT_OK, configure_logging, load, make_parser, on_stop_signals
from service.config import DEFAULT_REMEDIATOR_LISTEN_ADDRESS, Config, require_remediator

__all__ = ["main", "make_server", "parse_args"]

log = logging.getLogger("remediator")
PROG = "antmedia-remediator"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Prometheus-style flags."""
    parser = make_parser(
        PROG, "Alertmanager webhook receiver that revalidates and removes ghost streams on Ant Media Server.",
        "remediator", DEFAULT_REMEDIATOR_LISTEN_ADDRESS)
    return parser.parse_args(argv)


def _summary(settings: Config) -> str:
    """One line describing what would run."""
    config = require_remediator(settings)
    servers = ", ".join(f"{s.name}({'/'.join(s.apps)})" for s in settings.ams)
    mode = "dry-run" if config.dry_run else "ENFORCING"
    auth = "no auth (insecure_no_auth)" if config.token is None else "bearer token"
    return f"{mode}; ams: {servers}; webhook auth: {auth}; alertmanager: {config.alertmanager_url or 'not checked'}"


def make_server(settings: Config, host: str, port: int):
    """A waitress server for the app (not yet serving) and the deps to close afterwards."""
    import waitress.server

    from remediator.app import create_app
    from remediator.wiring import build_deps, close_deps

    deps = build_deps(settings)
    try:
        server = waitress.server.create_server(create_app(deps), host=host, port=port, threads=8, ident=PROG)
    except OSError:
        close_deps(deps)
        raise
    return server, deps


class _Shutdown:
    """First SIGTERM/SIGINT: drain (new notifications get 503), then stop serving within the bound."""

    def __init__(self, deps, timeout: float) -> None:
        self.deps, self.timeout = deps, timeout
        self.drained = False

    def on_signal(self, signum: int) -> None:
        """Runs in the main thread, which is inside waitress's loop."""
        if self.drained:
            raise SystemExit(EXIT_OK)  # waitress's loop ends on SystemExit
        if self.deps.drain.draining:
            log.info("signal %d: already stopping", signum)
            return
        log.info("signal %d: taking no more notifications, %gs for those in flight", signum, self.timeout)
        self.deps.drain.start()
        threading.Thread(target=self._finish, name="remediator-shutdown", daemon=True).start()

    def _finish(self) -> None:
        """Stop serving once nothing is in flight; past the bound, abandon what is left and exit now."""
        from remediator.wiring import abandon_in_flight

        if self.deps.drain.wait(self.timeout):
            self.drained = True
            _thread.interrupt_main(signal.SIGTERM)  # back to on_signal, in the main thread
            return
        # In-flight AMS calls cannot be interrupted; each alert still undecided gets its audit line instead.
        count = abandon_in_flight(self.deps)
        log.warning("shutdown timeout: abandoned %d undecided alerts; Alertmanager sends them again", count)
        logging.shutdown()
        sys.stdout.flush()
        os._exit(EXIT_OK)


def serve(settings: Config, host: str, port: int) -> int:
    """Serve until SIGTERM or SIGINT, drain, then close clients and the audit log."""
    from remediator.wiring import close_deps

    try:
        server, deps = make_server(settings, host, port)
    except OSError as exc:
        print(f"{PROG}: cannot listen on {host}:{port}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    on_stop_signals(_Shutdown(deps, require_remediator(settings).shutdown_timeout_seconds).on_signal)
    try:
        log.info("listening on %s:%s, %s", server.effective_host, server.effective_port, _summary(settings))
        server.run()
    finally:
        server.close()
        close_deps(deps)
    log.info("stopped")
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script (0 ok, 1 runtime failure, 2 bad flags or config)."""
    args = parse_args(argv)
    # This process serves only the remediator's registry; *_created samples add no information here.
    disable_created_metrics()
    loaded = load(PROG, args, own=("ams", "remediator"),
                  listen=lambda config: require_remediator(config).listen_address)
    if isinstance(loaded, int):
        return loaded
    settings, (host, port) = loaded
    if args.config_check:
        print(f"config OK: {_summary(settings)}")
        return EXIT_OK
    configure_logging(args.log_level or require_remediator(settings).log_level)
    return serve(settings, host, port)


if __name__ == "__main__":
    sys.exit(main())
