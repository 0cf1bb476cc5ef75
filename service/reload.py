"""Configuration reload, as the Prometheus servers do it: on SIGHUP, and on POST /-/reload when
--web.enable-lifecycle is given. A file that does not load, or that changes what the running process
cannot change in place, keeps the running configuration; the answer and the log say why."""
from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Collection
from typing import Any

import msgspec

from service.config import Config, ConfigError, load_config

__all__ = ["Reloader", "changed_keys", "on_reload_signal", "reload_endpoint", "reloadable_changes"]

log = logging.getLogger("service.reload")


class Reloader:
    """Reads the config file again and hands it to apply(new, old), which raises ConfigError to refuse it."""

    def __init__(self, path: str, own: Collection[str], current: Config,
                 apply: Callable[[Config, Config], None]) -> None:
        self.path, self.own, self.current, self.apply = path, tuple(own), current, apply
        self._lock = threading.Lock()

    def reload(self) -> str | None:
        """None when the new file is in force; else why the running configuration stays."""
        with self._lock:
            try:
                new = load_config(self.path, read_secrets=self.own)
                self.apply(new, self.current)
            except ConfigError as exc:
                log.error("configuration reload failed, the running configuration stays: %s", exc)
                return str(exc)
            self.current = new
        log.info("configuration reloaded from %s", self.path)
        return None


def on_reload_signal(reloader: Reloader) -> None:
    """SIGHUP reloads (on a thread of its own: a signal handler must not wait on the reload's lock)."""
    signal.signal(signal.SIGHUP, lambda number, frame: threading.Thread(
        target=reloader.reload, name="reload", daemon=True).start())


def reload_endpoint(reloader: Reloader | None, method: str) -> tuple[int, str]:
    """(HTTP status, text) for a request to /-/reload: POST or PUT with lifecycle enabled, as in Prometheus."""
    if method not in ("POST", "PUT"):
        return 405, "only POST or PUT\n"
    if reloader is None:
        return 403, "Lifecycle API is not enabled.\n"
    error = reloader.reload()
    return (200, "OK\n") if error is None else (500, f"failed to reload config: {error}\n")


def changed_keys(new: Any, old: Any, prefix: str = "") -> list[str]:
    """Dotted paths of the fields of two config records that differ (a list or a scalar as a whole)."""
    if not (isinstance(new, msgspec.Struct) and type(new) is type(old)):
        return [prefix.rstrip(".")] if new != old else []
    keys = []
    for name in new.__struct_fields__:
        keys += changed_keys(getattr(new, name), getattr(old, name), f"{prefix}{name}.")
    return keys


def reloadable_changes(new: Config, old: Config, own: tuple[str, ...], reloadable: tuple[str, ...]) -> list[str]:
    """The changed keys of this service's own sections; ConfigError naming those it cannot change in place."""
    changed = [key for key in changed_keys(new, old) if key.startswith(own)]
    fixed = [key for key in changed if not key.startswith(reloadable)]
    if fixed:
        raise ConfigError(f"{', '.join(fixed)}: cannot change while running; restart to apply")
    return changed
