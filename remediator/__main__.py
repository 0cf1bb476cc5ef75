"""antmedia-remediator: flags -> Settings -> dependencies -> Flask app served by waitress."""
from __future__ import annotations

import argparse
import logging
import sys

from prometheus_client import disable_created_metrics

from service.config import split_listen_address
from remediator.config import ConfigError, Settings, load_settings

__all__ = ["main", "parse_args"]

log = logging.getLogger("remediator")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Prometheus-style flags."""
    parser = argparse.ArgumentParser(
        prog="antmedia-remediator",
        description="Alertmanager webhook receiver that revalidates and removes ghost streams on Ant Media Server.")
    parser.add_argument("--config.file", dest="config_file", required=True, help="shared YAML config file")
    parser.add_argument("--web.listen-address", dest="listen_address", default=None,
                        help="HOST:PORT to listen on (default: remediator.listen_address, else 0.0.0.0:15081)")
    parser.add_argument("--config.check", dest="config_check", action="store_true",
                        help="validate the config file and exit")
    parser.add_argument("--log.level", dest="log_level", default="info",
                        choices=("debug", "info", "warning", "error"))
    return parser.parse_args(argv)


def _summary(settings: Settings) -> str:
    """One line describing what would run."""
    config = settings.remediator
    servers = ", ".join(f"{s.name}({'/'.join(s.apps)})" for s in settings.ams)
    mode = "dry-run" if config.dry_run else "ENFORCING"
    auth = "no auth (insecure_no_auth)" if config.token is None else "bearer token"
    return f"{mode}; ams: {servers}; webhook auth: {auth}; alertmanager: {config.alertmanager_url or 'not checked'}"


def make_server(settings: Settings, listen: str):
    """A waitress server for the app (not yet serving) and the deps to close afterwards."""
    import waitress.server

    from remediator.app import create_app
    from remediator.wiring import build_deps

    host, port = split_listen_address(listen)
    deps = build_deps(settings)
    server = waitress.server.create_server(create_app(deps), host=host, port=port, threads=8,
                                           ident="antmedia-remediator")
    return server, deps


def serve(settings: Settings, listen: str) -> None:
    """Serve until interrupted, then close clients and the audit log."""
    from remediator.wiring import close_deps

    server, deps = make_server(settings, listen)
    try:
        log.info("listening on %s, %s", listen, _summary(settings))
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
        close_deps(deps)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script."""
    args = parse_args(argv)
    # This process serves only the remediator's registry; *_created samples add no information here.
    disable_created_metrics()
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        settings = load_settings(args.config_file)
        listen = args.listen_address or settings.remediator.listen_address
        split_listen_address(listen)
    except (ConfigError, ValueError) as exc:
        print(f"antmedia-remediator: config error: {exc}", file=sys.stderr)
        return 2
    if args.config_check:
        print(f"config OK: {_summary(settings)}")
        return 0
    serve(settings, listen)
    return 0


if __name__ == "__main__":
    sys.exit(main())
