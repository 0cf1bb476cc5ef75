"""The one config file of both services: YAML (ams, exporter, remediator) parsed into frozen records."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from ams.server import DEFAULT_RECONNECT_GRACE_SECONDS, DEFAULT_STALE_HEARTBEATS, MAX_PAGE_SIZE, AmsServer

TOP_LEVEL_KEYS = frozenset({"ams", "exporter", "remediator"})
DEFAULT_LISTEN_ADDRESS = "0.0.0.0:15080"

_NAME_RE = re.compile(r"[A-Za-z0-9_-]+")
_APP_RE = re.compile(r"[A-Za-z0-9_.-]+")
_SECRET_KEYS = ("jwt_secret_file", "jwt_secret_env", "jwt_token_file", "jwt_token_env")
_AMS_KEYS = frozenset(
    {
        "name", "url", "apps", *_SECRET_KEYS, "jwt_ttl_seconds", "heartbeat_seconds",
        "stale_heartbeats", "reconnect_grace_seconds", "timeout_seconds", "page_size", "max_concurrency",
        "ca_file", "tls_insecure_skip_verify",
    }
)
_EXPORTER_KEYS = frozenset({"listen_address", "log_level"})
_LOG_LEVELS = ("debug", "info", "warning", "error")


class ConfigError(ValueError):
    """A configuration problem; the message starts with the offending key path."""


@dataclass(frozen=True)
class ExporterSettings:
    """The `exporter:` section."""

    listen_address: str = DEFAULT_LISTEN_ADDRESS
    log_level: str = "info"


@dataclass(frozen=True)
class Config:
    """The whole document as the exporter sees it (the remediator section stays raw here)."""

    ams: tuple[AmsServer, ...]
    exporter: ExporterSettings = ExporterSettings()
    remediator: Mapping[str, Any] | None = None
    path: str | None = None

    def server(self, name: str) -> AmsServer | None:
        """Return the configured AMS called `name`, or None."""
        return next((s for s in self.ams if s.name == name), None)


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate mapping keys (YAML would silently keep the last)."""


def _construct_unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False):
    """Build a mapping, raising on a key that appears twice."""
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise ConfigError(f"duplicate key {key!r} (line {key_node.start_mark.line + 1})")
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping)


def load_document(path: str | os.PathLike) -> dict:
    """Read the YAML file and check its top-level keys; sections are parsed by their owners."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"config file {path}: {exc.strerror or exc}") from exc
    try:
        doc = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path}: invalid YAML: {exc}") from exc
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise ConfigError("(top level): expected a mapping with keys ams, exporter, remediator")
    _reject_unknown(doc, TOP_LEVEL_KEYS, "")
    return doc


def load_config(path: str | os.PathLike, env: Mapping[str, str] | None = None) -> Config:
    """Load and validate the exporter's view of the config file."""
    doc = load_document(path)
    base_dir = Path(path).resolve().parent
    if "ams" not in doc:
        raise ConfigError("ams: required (a list of AMS servers)")
    servers = parse_ams(doc["ams"], base_dir=base_dir, env=env)
    exporter = parse_exporter(doc.get("exporter"))
    remediator = doc.get("remediator")
    return Config(ams=servers, exporter=exporter, remediator=remediator, path=str(path))


def parse_ams(
    value: Any, base_dir: str | os.PathLike | None = None, env: Mapping[str, str] | None = None
) -> tuple[AmsServer, ...]:
    """Parse the `ams:` list; relative secret paths resolve against base_dir."""
    if not isinstance(value, list) or not value:
        raise ConfigError("ams: expected a non-empty list of AMS servers")
    env = os.environ if env is None else env
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    servers = tuple(_parse_server(item, f"ams[{i}]", base, env) for i, item in enumerate(value))
    seen: set[str] = set()
    for i, server in enumerate(servers):
        if server.name in seen:
            raise ConfigError(f"ams[{i}].name: duplicate name {server.name!r}")
        seen.add(server.name)
    return servers


def parse_exporter(value: Any) -> ExporterSettings:
    """Parse the optional `exporter:` section."""
    if value is None:
        return ExporterSettings()
    if not isinstance(value, dict):
        raise ConfigError("exporter: expected a mapping")
    _reject_unknown(value, _EXPORTER_KEYS, "exporter")
    listen = value.get("listen_address", DEFAULT_LISTEN_ADDRESS)
    try:
        split_listen_address(listen)
    except ValueError as exc:
        raise ConfigError(f"exporter.listen_address: {exc}") from exc
    level = value.get("log_level", "info")
    if level not in _LOG_LEVELS:
        raise ConfigError(f"exporter.log_level: expected one of {', '.join(_LOG_LEVELS)}")
    return ExporterSettings(listen_address=listen, log_level=level)


def split_listen_address(value: Any) -> tuple[str, int]:
    """Split HOST:PORT (':PORT' means all interfaces) into (host, port)."""
    if not isinstance(value, str) or ":" not in value:
        raise ValueError("expected HOST:PORT")
    host, _, port_text = value.rpartition(":")
    host = host.strip("[]") or "0.0.0.0"
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"invalid port in {value!r}")
    return host, int(port_text)


def _parse_server(item: Any, where: str, base: Path, env: Mapping[str, str]) -> AmsServer:
    """Parse one `ams[i]` mapping."""
    if not isinstance(item, dict):
        raise ConfigError(f"{where}: expected a mapping")
    for inline in ("jwt_secret", "jwt_token"):
        if inline in item:
            raise ConfigError(f"{where}.{inline}: secrets are not accepted inline; use {inline}_file or {inline}_env")
    _reject_unknown(item, _AMS_KEYS, where)
    secret, token = _parse_secrets(item, where, base, env)
    return AmsServer(
        name=_name(item, where),
        url=_url(item, where),
        apps=_apps(item, where),
        jwt_secret=secret,
        jwt_token=token,
        jwt_ttl_seconds=_number(item, where, "jwt_ttl_seconds", 60.0, low=5.0, high=86400.0),
        heartbeat_seconds=_number(item, where, "heartbeat_seconds", None, low=0.01, high=3600.0),
        stale_heartbeats=_integer(item, where, "stale_heartbeats", DEFAULT_STALE_HEARTBEATS, low=1, high=1000),
        reconnect_grace_seconds=_number(item, where, "reconnect_grace_seconds", DEFAULT_RECONNECT_GRACE_SECONDS,
                                        low=0.0, high=3600.0),
        timeout_seconds=_number(item, where, "timeout_seconds", 5.0, low=0.05, high=300.0),
        page_size=_integer(item, where, "page_size", MAX_PAGE_SIZE, low=1, high=MAX_PAGE_SIZE),
        max_concurrency=_integer(item, where, "max_concurrency", 4, low=1, high=64),
        ca_file=_ca_file(item, where, base),
        tls_insecure_skip_verify=_boolean(item, where, "tls_insecure_skip_verify", False),
    )


def _reject_unknown(mapping: dict, allowed: frozenset, where: str) -> None:
    """Raise on the first key that is not allowed, naming its full path."""
    for key in mapping:
        if key not in allowed:
            path = f"{where}.{key}" if where else str(key)
            raise ConfigError(f"{path}: unknown key (allowed: {', '.join(sorted(allowed))})")


def _name(item: dict, where: str) -> str:
    """The `ams` label value."""
    name = item.get("name")
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise ConfigError(f"{where}.name: required, letters, digits, '_' or '-'")
    return name


def _url(item: dict, where: str) -> str:
    """Base URL of the AMS (scheme, host, optional port and path prefix), without a trailing slash."""
    url = item.get("url")
    if not isinstance(url, str):
        raise ConfigError(f"{where}.url: required, e.g. http://127.0.0.1:5080")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise ConfigError(f"{where}.url: expected http(s)://HOST[:PORT][/PREFIX], got {url!r}")
    try:
        parts.port  # noqa: B018 - raises on an invalid port
    except ValueError as exc:
        raise ConfigError(f"{where}.url: {exc}") from exc
    return url.rstrip("/")


def _apps(item: dict, where: str) -> tuple[str, ...]:
    """The AMS application names to watch."""
    apps = item.get("apps")
    if not isinstance(apps, list) or not apps:
        raise ConfigError(f"{where}.apps: required, a non-empty list of application names")
    for i, app in enumerate(apps):
        if not isinstance(app, str) or not _APP_RE.fullmatch(app) or app in (".", ".."):
            raise ConfigError(f"{where}.apps[{i}]: expected an application name such as WebRTCAppEE")
    if len(set(apps)) != len(apps):
        raise ConfigError(f"{where}.apps: duplicate application name")
    return tuple(apps)


def _parse_secrets(item: dict, where: str, base: Path, env: Mapping[str, str]) -> tuple[str | None, str | None]:
    """Read the JWT secret or static token from a file or an environment variable (at most one source)."""
    given = [key for key in _SECRET_KEYS if key in item]
    if len(given) > 1:
        raise ConfigError(f"{where}.{given[1]}: only one of {', '.join(_SECRET_KEYS)} may be set")
    if not given:
        return None, None
    key = given[0]
    value = _read_secret(item[key], f"{where}.{key}", base, env, from_env=key.endswith("_env"))
    return (value, None) if key.startswith("jwt_secret") else (None, value)


def _read_secret(ref: Any, where: str, base: Path, env: Mapping[str, str], from_env: bool) -> str:
    """Resolve one secret reference; a single trailing newline is not part of the secret."""
    if not isinstance(ref, str) or not ref:
        raise ConfigError(f"{where}: expected a {'variable name' if from_env else 'file path'}")
    if from_env:
        if ref not in env:
            raise ConfigError(f"{where}: environment variable {ref} is not set")
        value = env[ref]
    else:
        path = base / ref
        try:
            value = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{where}: cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from exc
    value = _strip_one_newline(value)
    if not value:
        raise ConfigError(f"{where}: the secret is empty")
    return value


def _strip_one_newline(value: str) -> str:
    """Drop exactly one trailing line ending, as editors add it."""
    if value.endswith("\r\n"):
        return value[:-2]
    return value[:-1] if value.endswith("\n") else value


def _ca_file(item: dict, where: str, base: Path) -> str | None:
    """Optional CA bundle for https AMS URLs; must exist."""
    ref = item.get("ca_file")
    if ref is None:
        return None
    path = base / ref if isinstance(ref, str) else None
    if path is None or not path.is_file():
        raise ConfigError(f"{where}.ca_file: not a readable file: {ref!r}")
    return str(path)


def _number(item: dict, where: str, key: str, default, low: float, high: float):
    """A finite number within [low, high]; YAML booleans are not numbers."""
    value = item.get(key, default)
    if value is None and default is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{where}.{key}: expected a number, got {value!r}")
    if not low <= value <= high:
        raise ConfigError(f"{where}.{key}: must be between {low:g} and {high:g}, got {value!r}")
    return float(value)


def _integer(item: dict, where: str, key: str, default: int, low: int, high: int) -> int:
    """An integer within [low, high]."""
    value = item.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{where}.{key}: expected an integer, got {value!r}")
    if not low <= value <= high:
        raise ConfigError(f"{where}.{key}: must be between {low} and {high}, got {value!r}")
    return value


def _boolean(item: dict, where: str, key: str, default: bool) -> bool:
    """A YAML boolean."""
    value = item.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(f"{where}.{key}: expected true or false, got {value!r}")
    return value
