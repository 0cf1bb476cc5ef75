"""The `remediator:` section of the shared YAML file -> frozen RemediatorConfig."""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping
from urllib.parse import urlsplit

from service.config import AmsServer, ConfigError, load_config, split_listen_address

__all__ = [
    "Caps", "BlastRadius", "Filters", "RemediatorConfig", "Settings", "ConfigError",
    "load_settings", "parse_remediator", "read_token",
]

NON_ZOMBI_ACTIONS = ("finish", "delete")
DEFAULT_LISTEN = "0.0.0.0:15081"


@dataclass(frozen=True)
class Filters:
    """Names of apps, rooms and streams; an empty tuple means none listed."""

    apps: tuple[str, ...] = ()
    rooms: tuple[str, ...] = ()
    streams: tuple[str, ...] = ()


@dataclass(frozen=True)
class Caps:
    """At most this many evictions per sliding window (None: no cap)."""

    window_seconds: float = 600.0
    max_evictions: int | None = 50
    max_evictions_per_app: int | None = 20


@dataclass(frozen=True)
class BlastRadius:
    """Stop an app when more than max_share of its live streams is flagged in a window."""

    window_seconds: float = 300.0
    max_share: float = 0.25
    min_count: int = 5
    live_count_ttl_seconds: float = 15.0
    enabled: bool = True


@dataclass(frozen=True)
class RemediatorConfig:
    """Everything the remediator reads from its config section."""

    dry_run: bool = True
    token: str | None = field(default=None, repr=False)
    insecure_no_auth: bool = False
    listen_address: str = DEFAULT_LISTEN
    alertmanager_url: str | None = None
    alertmanager_timeout_seconds: float = 2.0
    audit_log: str = "-"
    max_body_bytes: int = 4 * 1024 * 1024
    non_zombi_action: str = "finish"
    kill_switch_file: str | None = None
    allow: Filters = Filters()
    deny: Filters = Filters()
    caps: Caps = Caps()
    blast_radius: BlastRadius = BlastRadius()
    dedup_max_entries: int = 10000
    concurrency: int = 4


@dataclass(frozen=True)
class Settings:
    """What the remediator needs from the shared file: the AMS servers and its own section."""

    ams: tuple[AmsServer, ...]
    remediator: RemediatorConfig
    path: str | None = None


def _want(value: Any, kind: type | tuple, path: str, what: str) -> Any:
    """Type check that names the key path."""
    if isinstance(value, bool) and kind in (int, float, (int, float)):
        raise ConfigError(f"{path}: expected {what}")
    if not isinstance(value, kind):
        raise ConfigError(f"{path}: expected {what}")
    return value


def _positive(value: Any, path: str, integer: bool = False) -> Any:
    """A number > 0 (an int when integer)."""
    kind = int if integer else (int, float)
    number = _want(value, kind, path, "a positive integer" if integer else "a positive number")
    if not math.isfinite(number) or number <= 0:
        raise ConfigError(f"{path}: expected a positive number")
    return number


def _check_keys(section: Mapping, allowed: set[str], path: str) -> None:
    """Unknown keys are errors so typos do not silently disable a guard."""
    for key in section:
        if key not in allowed:
            raise ConfigError(f"{path}.{key}: unknown key")


def _section(doc: Any, path: str) -> Mapping:
    """A mapping, or empty for an absent section."""
    if doc is None:
        return {}
    return _want(doc, dict, path, "a mapping")


def _names(value: Any, path: str) -> tuple[str, ...]:
    """A list of non-empty strings."""
    if value is None:
        return ()
    items = _want(value, list, path, "a list of names")
    for i, item in enumerate(items):
        if not isinstance(item, str) or not item:
            raise ConfigError(f"{path}[{i}]: expected a non-empty string")
    return tuple(items)


def _filters(doc: Any, path: str) -> Filters:
    """allow:/deny: -> Filters."""
    section = _section(doc, path)
    _check_keys(section, {"apps", "rooms", "streams"}, path)
    return Filters(**{k: _names(section.get(k), f"{path}.{k}") for k in ("apps", "rooms", "streams")})


def _optional_cap(section: Mapping, key: str, path: str, default: int | None) -> int | None:
    """An eviction cap; null turns that cap off."""
    if key not in section:
        return default
    if section[key] is None:
        return None
    return _positive(section[key], f"{path}.{key}", integer=True)


def _caps(doc: Any, path: str) -> Caps:
    """caps: -> Caps."""
    section = _section(doc, path)
    _check_keys(section, {"window_seconds", "max_evictions", "max_evictions_per_app"}, path)
    base = Caps()
    return Caps(
        window_seconds=_positive(section.get("window_seconds", base.window_seconds), f"{path}.window_seconds"),
        max_evictions=_optional_cap(section, "max_evictions", path, base.max_evictions),
        max_evictions_per_app=_optional_cap(section, "max_evictions_per_app", path, base.max_evictions_per_app),
    )


def _blast_radius(doc: Any, path: str) -> BlastRadius:
    """blast_radius: -> BlastRadius."""
    section = _section(doc, path)
    keys = {"enabled", "window_seconds", "max_share", "min_count", "live_count_ttl_seconds"}
    _check_keys(section, keys, path)
    base = BlastRadius()
    share = _want(section.get("max_share", base.max_share), (int, float), f"{path}.max_share", "a number")
    if not 0 < share <= 1:
        raise ConfigError(f"{path}.max_share: expected a share in (0, 1]")
    return BlastRadius(
        enabled=_want(section.get("enabled", True), bool, f"{path}.enabled", "true or false"),
        window_seconds=_positive(section.get("window_seconds", base.window_seconds), f"{path}.window_seconds"),
        max_share=float(share),
        min_count=_positive(section.get("min_count", base.min_count), f"{path}.min_count", integer=True),
        live_count_ttl_seconds=_positive(
            section.get("live_count_ttl_seconds", base.live_count_ttl_seconds), f"{path}.live_count_ttl_seconds"),
    )


def _secret_from_file(path_value: Any, key: str, base_dir: Path) -> str:
    """Read a secret file (relative to the config file); one trailing newline is not part of it."""
    file_path = base_dir / _want(path_value, str, key, "a file path")
    try:
        secret = file_path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{key}: cannot read {file_path}: {getattr(exc, 'strerror', None) or exc}") from None
    secret = secret[:-2] if secret.endswith("\r\n") else secret.removesuffix("\n")
    if not secret:
        raise ConfigError(f"{key}: {file_path} is empty")
    return secret


def read_token(section: Mapping, path: str, environ: Mapping[str, str], base_dir: Path) -> str | None:
    """The webhook bearer token from a file or an environment variable."""
    file_key, env_key = "webhook_token_file", "webhook_token_env"
    if file_key in section and env_key in section:
        raise ConfigError(f"{path}.{file_key}: give either {file_key} or {env_key}, not both")
    if file_key in section:
        return _secret_from_file(section[file_key], f"{path}.{file_key}", base_dir)
    if env_key in section:
        var = _want(section[env_key], str, f"{path}.{env_key}", "a variable name")
        value = environ.get(var, "")
        if not value:
            raise ConfigError(f"{path}.{env_key}: environment variable {var} is unset or empty")
        return value
    return None


def _url(value: Any, path: str) -> str | None:
    """An http(s) base URL, without a trailing slash."""
    if value is None:
        return None
    text = _want(value, str, path, "an http(s) URL")
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"{path}: expected an http(s) URL")
    return text.rstrip("/")


def _listen(value: Any, path: str) -> str:
    """host:port with a numeric port."""
    try:
        split_listen_address(value)
    except ValueError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return value


def _audit(value: Any, path: str) -> str:
    """A file path or "-" for stdout."""
    text = _want(value, str, path, 'a file path or "-"')
    if not text:
        raise ConfigError(f'{path}: expected a file path or "-"')
    return text


_SCALARS: dict[str, Callable[[Any, str], Any]] = {
    "dry_run": lambda v, p: _want(v, bool, p, "true or false"),
    "insecure_no_auth": lambda v, p: _want(v, bool, p, "true or false"),
    "listen_address": _listen,
    "alertmanager_url": _url,
    "alertmanager_timeout_seconds": _positive,
    "audit_log": _audit,
    "max_body_bytes": lambda v, p: _positive(v, p, integer=True),
    "kill_switch_file": lambda v, p: None if v is None else _want(v, str, p, "a file path"),
    "dedup_max_entries": lambda v, p: _positive(v, p, integer=True),
    "concurrency": lambda v, p: _positive(v, p, integer=True),
}
_NESTED: dict[str, Callable[[Any, str], Any]] = {
    "allow": _filters, "deny": _filters, "caps": _caps, "blast_radius": _blast_radius,
}
_SECRETS = {"webhook_token_file", "webhook_token_env"}


def _non_zombi(value: Any, path: str) -> str:
    """finish (keeps the record) or delete."""
    if value not in NON_ZOMBI_ACTIONS:
        raise ConfigError(f"{path}: expected one of {', '.join(NON_ZOMBI_ACTIONS)}")
    return value


def parse_remediator(doc: Any, path: str = "remediator", environ: Mapping[str, str] | None = None,
                     base_dir: str | os.PathLike | None = None) -> RemediatorConfig:
    """Validate the section; every error names the key path."""
    section = _section(doc, path)
    _check_keys(section, set(_SCALARS) | set(_NESTED) | _SECRETS | {"non_zombi_action"}, path)
    values: dict[str, Any] = {}
    for key, parse in _SCALARS.items():
        if key in section:
            values[key] = parse(section[key], f"{path}.{key}")
    for key, parse in _NESTED.items():
        values[key] = parse(section.get(key), f"{path}.{key}")
    if "non_zombi_action" in section:
        values["non_zombi_action"] = _non_zombi(section["non_zombi_action"], f"{path}.non_zombi_action")
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    values["token"] = read_token(section, path, os.environ if environ is None else environ, base)
    # Relative paths are relative to the config file, like the secret files.
    for key in ("audit_log", "kill_switch_file"):
        if values.get(key) not in (None, "-"):
            values[key] = str(base / values[key])
    config = RemediatorConfig(**values)
    if config.token is None and not config.insecure_no_auth:
        raise ConfigError(
            f"{path}.webhook_token_file: a webhook token is required "
            "(webhook_token_file or webhook_token_env), unless insecure_no_auth: true")
    return config


def load_settings(path: str | os.PathLike, environ: Mapping[str, str] | None = None) -> Settings:
    """Load the shared file: `ams:` through the exporter's parser, `remediator:` here."""
    config = load_config(path, env=environ)
    base_dir = Path(path).resolve().parent
    remediator = parse_remediator(config.remediator, environ=environ, base_dir=base_dir)
    return Settings(ams=config.ams, remediator=remediator, path=str(path))
