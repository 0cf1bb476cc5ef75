"""What both commands share: Prometheus-style flags, exit codes, --version, config loading, logging, stop signals."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Callable, Collection
from typing import NamedTuple

from service.build import version_text
from service.config import SECTIONS, Config, ConfigError, load_config, split_listen_address
from service.logs import FORMATS, configure_logging
from service.webconfig import WebConfig, load_web_config

__all__ = [
    "EXIT_FAILURE", "EXIT_OK", "EXIT_USAGE", "Loaded", "configure_logging", "load", "make_parser",
    "on_stop_signals", "version_text",
]

# As argparse does: 2 for bad flags, and a bad config file is a bad argument too.
EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
LOG_LEVELS = ("debug", "info", "warning", "error")
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Loaded(NamedTuple):
    """What a command starts from: the config, where to listen, and TLS and auth."""

    config: Config
    address: tuple[str, int]
    web: WebConfig


def make_parser(prog: str, description: str, section: str, default_listen: str) -> argparse.ArgumentParser:
    """The flags both commands take; `section` names the config section that holds their defaults."""
    # Raw: --version prints two lines, as the Prometheus servers do.
    parser = argparse.ArgumentParser(prog=prog, description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config.file", dest="config_file", required=True,
                        help="the YAML config file shared by the exporter and the remediator")
    parser.add_argument("--web.listen-address", dest="listen_address", default=None,
                        help=f"HOST:PORT to serve on (default: {section}.listen_address, else {default_listen})")
    parser.add_argument("--config.check", dest="config_check", action="store_true",
                        help="validate the whole config file, secrets included, and exit")
    parser.add_argument("--web.config.file", dest="web_config_file", default=None,
                        help="TLS and basic auth, in the Prometheus exporter-toolkit format (default: plain HTTP)")
    parser.add_argument("--log.level", dest="log_level", default=None, choices=LOG_LEVELS,
                        help=f"log level (default: {section}.log_level, else info)")
    parser.add_argument("--log.format", dest="log_format", default="logfmt", choices=FORMATS,
                        help="log line format (default: logfmt); the remediator's audit log is JSON lines either way")
    parser.add_argument("--web.enable-lifecycle", dest="enable_lifecycle", action="store_true",
                        help="allow POST /-/reload (SIGHUP reloads either way), as in Prometheus")
    parser.add_argument("--version", action="version", version=version_text(prog))
    return parser


def load(prog: str, args: argparse.Namespace, own: Collection[str], listen: Callable[[Config], str]) -> Loaded | int:
    """Config, (host, port) and web config, or EXIT_USAGE after printing the error; --config.check reads every secret."""
    try:
        config = load_config(args.config_file, read_secrets=SECTIONS if args.config_check else own)
        address = args.listen_address or listen(config)
        try:
            host_port = split_listen_address(address)
        except ValueError as exc:
            raise ConfigError(f"--web.listen-address: {exc}" if args.listen_address else str(exc)) from None
    except ConfigError as exc:
        print(f"{prog}: configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        web = load_web_config(args.web_config_file)
    except ConfigError as exc:
        print(f"{prog}: web configuration error: {args.web_config_file}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return Loaded(config, host_port, web)


def on_stop_signals(handler: Callable[[int], None]) -> None:
    """Call handler(signum) on SIGTERM and SIGINT (in the main thread, as Python runs signal handlers)."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, lambda number, frame: handler(number))
