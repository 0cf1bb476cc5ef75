"""antmedia-remediator: flags -> config -> dependencies -> Flask app on the shared HTTP(S) server."""
from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
from collections.abc import Callable

from prometheus_client import disable_created_metrics

from service.cli import (
    EXIT_FAILURE,
    EXIT_OK,
    configure_logging,
    load,
    make_parser,
    on_stop_signals,
)
from service.config import (
    DEFAULT_REMEDIATOR_LISTEN_ADDRESS,
    Config,
    require_remediator,
)
from service.reload import Reloader, on_reload_signal, reloadable_changes
from service.web import Server, serve_until
from service.webconfig import WebConfig

__all__ = ["main", "make_server", "parse_args"]

log = logging.getLogger("remediator")
PROG = "antmedia-remediator"
SERVER_THREADS = 8  # notifications from an HA Alertmanager pair, scrapes and probes at once
OWN = ("ams", "remediator")  # the config sections whose secrets this process reads
# What a reload changes in place (remediator.allow.* and remediator.deny.* included).
RELOADABLE = ("remediator.dry_run", "remediator.kill_switch_file", "remediator.allow", "remediator.deny",
              "remediator.non_zombi_action")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Prometheus-style flags."""
    parser = make_parser(
        PROG, "Alertmanager webhook receiver that revalidates and removes ghost streams on Ant Media Server.",
        "remediator", DEFAULT_REMEDIATOR_LISTEN_ADDRESS)
    return parser.parse_args(argv)


def _summary(settings: Config, web: WebConfig | None = None) -> str:
    """One line describing what would run."""
    config = require_remediator(settings)
    servers = ", ".join(f"{s.name}({'/'.join(s.apps)})" for s in settings.ams)
    mode = "dry-run" if config.dry_run else "ENFORCING"
    web = web or WebConfig()
    if config.token is not None:
        auth = "bearer token"
    elif web.basic_auth_users:
        auth = "basic auth (web config)"
    else:
        auth = "no auth (insecure_no_auth)"
    return (f"{mode}; ams: {servers}; webhook auth: {auth}; {web.summary}; "
            f"alertmanager: {config.alertmanager_url or 'not checked'}")


def make_server(settings: Config, host: str, port: int, web: WebConfig | None = None, lifecycle: bool = False):
    """The HTTP(S) server for the app (bound, not yet serving), the deps to close afterwards, and the reloader
    (SIGHUP; POST /-/reload too with lifecycle)."""
    from remediator.app import build_deps, close_deps, create_app

    config = require_remediator(settings)
    deps = build_deps(settings)
    reloader = Reloader(settings.path, OWN, settings, reload_into(deps)) if settings.path else None
    # Credentials and body limit: remediator.app.access (bearer token on the webhook, basic auth elsewhere).
    try:
        server = Server(create_app(deps, web, reloader if lifecycle else None), host, port, config.limits, web,
                        threads=SERVER_THREADS, ident=PROG, guarded=True)
    except OSError:
        close_deps(deps)
        raise
    deps.remediator.countdowns.start()
    return server, deps, reloader


def reload_into(deps) -> Callable[[Config, Config], None]:
    """apply(new, old) for the Reloader: the remediator's policy changes in place (dry-run or enforcing, the
    kill-switch file, allow and deny lists, what happens to records created by REST); every guard's memory
    (holds, caps, blast radius, countdowns, settled alerts) stays. Anything else needs a restart."""
    def apply(new: Config, old: Config) -> None:
        changed = reloadable_changes(new, old, OWN, RELOADABLE)
        policy = require_remediator(new)
        deps.remediator.config = policy
        deps.metrics.dry_run.set(1 if policy.dry_run else 0)
        if "remediator.dry_run" in changed:
            log.warning("reloaded: now %s", "in dry-run" if policy.dry_run else "ENFORCING")
    return apply


class _Shutdown:
    """First SIGTERM/SIGINT: drain (new notifications and /-/ready get 503), then stop serving within the bound."""

    def __init__(self, deps, timeout: float, stop: threading.Event) -> None:
        self.deps, self.timeout, self.stop = deps, timeout, stop

    def on_signal(self, signum: int) -> None:
        """Runs in the main thread; a second signal stops at once."""
        if self.deps.drain.draining:
            log.info("signal %d: stopping now", signum)
            self.stop.set()
            return
        log.info("signal %d: taking no more notifications, %gs for those in flight", signum, self.timeout)
        self.deps.drain.start()
        threading.Thread(target=self._finish, name="remediator-shutdown", daemon=True).start()

    def _finish(self) -> None:
        """Stop serving once nothing is in flight; past the bound, abandon what is left and exit now."""
        from remediator.app import abandon_in_flight

        if self.deps.drain.wait(self.timeout):
            self.stop.set()
            return
        # In-flight AMS calls cannot be interrupted; each alert still undecided gets its audit line instead.
        count = abandon_in_flight(self.deps)
        log.warning("shutdown timeout: abandoned %d undecided alerts; Alertmanager sends them again", count)
        logging.shutdown()
        sys.stdout.flush()
        os._exit(EXIT_OK)


def serve(settings: Config, host: str, port: int, web: WebConfig | None = None, lifecycle: bool = False) -> int:
    """Serve until SIGTERM or SIGINT, drain, then close clients and the audit log; SIGHUP reloads."""
    from remediator.app import close_deps

    try:
        server, deps, reloader = make_server(settings, host, port, web, lifecycle)
    except OSError as exc:
        print(f"{PROG}: cannot listen on {host}:{port}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    stop = threading.Event()
    on_stop_signals(_Shutdown(deps, require_remediator(settings).shutdown_timeout_seconds, stop).on_signal)
    if reloader is not None:
        on_reload_signal(reloader)
    try:
        log.info("listening on %s:%s, %s", server.host, server.port, _summary(settings, web))
        serve_until(server, stop)
    finally:
        close_deps(deps)
    log.info("stopped")
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script (0 ok, 1 runtime failure, 2 bad flags or config)."""
    args = parse_args(argv)
    # This process serves only the remediator's registry; *_created samples add no information here.
    disable_created_metrics()
    loaded = load(PROG, args, own=OWN,
                  listen=lambda config: require_remediator(config).listen_address)
    if isinstance(loaded, int):
        return loaded
    settings, (host, port), web = loaded
    if args.config_check:
        print(f"config OK: {_summary(settings, web)}")
        return EXIT_OK
    configure_logging(args.log_level or require_remediator(settings).log_level, args.log_format)
    return serve(settings, host, port, web, lifecycle=args.enable_lifecycle)


if __name__ == "__main__":
    sys.exit(main())
