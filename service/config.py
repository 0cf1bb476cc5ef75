"""The one config file of both services: YAML -> typed, frozen records; every error names its key path."""

from __future__ import annotations

import os
import re
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple, TypeVar
from urllib.parse import urlsplit

import msgspec
import yaml

from ams.server import AmsServer

__all__ = [
    "AmsServer", "BlastRadius", "Caps", "Config", "ConfigError", "ExporterSettings", "Filters",
    "RemediatorConfig", "ServerLimits", "check_url", "convert", "load_config", "load_document", "parse_document",
    "parse_remediator", "read_secret", "require_remediator", "split_listen_address",
]

DEFAULT_LISTEN_ADDRESS = "0.0.0.0:15080"
DEFAULT_REMEDIATOR_LISTEN_ADDRESS = "0.0.0.0:15081"
SECTIONS = ("ams", "exporter", "remediator")

Positive = Annotated[float, msgspec.Meta(gt=0, le=1e9)]
PositiveInt = Annotated[int, msgspec.Meta(gt=0)]
NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]
LogLevel = Literal["debug", "info", "warning", "error"]


class ConfigError(ValueError):
    """A configuration problem; the message starts with the offending key path."""


class _Record(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Base of every section: immutable, and a key it does not know is an error."""


class ServerLimits(_Record):
    """What one client may hold of the HTTP server (`exporter.limits`, `remediator.limits`)."""

    # Open sockets; past it the least recently active one still waiting for its request (or idle
    # between requests) is closed, so silent clients cannot lock others out. Each costs a file
    # descriptor and at most max_header_bytes of memory.
    max_connections: Annotated[int, msgspec.Meta(ge=8, le=100000)] = 512
    # From accept (or a kept-alive request's first byte) to a complete request head, TLS handshake
    # included; and again for the body once a worker reads it. Prometheus and Alertmanager send
    # a request at once: seconds are for slow links, not for slow clients.
    request_timeout_seconds: Annotated[float, msgspec.Meta(gt=0, le=300)] = 10.0
    # A kept-alive connection between requests; above the usual 1 m scrape interval, so a scraper
    # reuses its connection (and TLS session) from one scrape to the next.
    idle_timeout_seconds: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 120.0
    # Request line plus headers (Go's servers allow 1 MiB; Prometheus sends well under 1 KiB).
    max_header_bytes: Annotated[int, msgspec.Meta(ge=1024, le=1048576)] = 16384


class ExporterSettings(_Record):
    """The `exporter:` section."""

    listen_address: str = DEFAULT_LISTEN_ADDRESS
    log_level: LogLevel = "info"
    detail_metrics: bool = False
    limits: ServerLimits = ServerLimits()


class Filters(_Record):
    """Names of apps, rooms and streams; an empty tuple means none listed."""

    apps: tuple[NonEmpty, ...] = ()
    rooms: tuple[NonEmpty, ...] = ()
    streams: tuple[NonEmpty, ...] = ()


class Caps(_Record):
    """At most this many evictions per sliding window (None: no cap)."""

    window_seconds: Positive = 600.0
    max_evictions: PositiveInt | None = 50
    max_evictions_per_app: PositiveInt | None = 20


class BlastRadius(_Record):
    """Stop an app when more than max_share of its live streams is flagged in a window."""

    window_seconds: Positive = 300.0
    max_share: Annotated[float, msgspec.Meta(gt=0, le=1)] = 0.25
    min_count: PositiveInt = 5
    live_count_ttl_seconds: Positive = 15.0
    enabled: bool = True


class DeadNodeBudget(_Record):
    """Evictions of ghosts whose origin node AMS confirms dead, per AMS and sliding window, apart from caps.

    Large enough for one node's worth of participants; the blast radius does not apply to them.
    """

    window_seconds: Positive = 600.0
    max_evictions: PositiveInt = 1000


class CountdownConfig(_Record):
    """The early path (remediator/countdown.py): countdowns armed by AntMediaGhostCandidate alerts.

    AMS reads: one GET of the record per armed stream, and one of each armed room's listing, per read
    interval: at most max_armed / read_interval_seconds record reads a second.
    """

    enabled: bool = True
    # The Alertmanager receiver whose candidates are read back (the route's receiver, as in
    # rules/alertmanager.example.yml): with that route removed, nothing is armed.
    receiver: NonEmpty = "antmedia-remediator"
    max_armed: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 200
    read_interval_seconds: Annotated[float, msgspec.Meta(ge=0.2, le=10)] = 1.0
    rebuild_interval_seconds: Annotated[float, msgspec.Meta(ge=1, le=300)] = 5.0


class RemediatorConfig(_Record):
    """Everything the remediator reads from its section (token: read from a file or the environment)."""

    dry_run: bool = True
    token: str | None = None
    insecure_no_auth: bool = False
    listen_address: str = DEFAULT_REMEDIATOR_LISTEN_ADDRESS
    log_level: LogLevel = "info"
    alertmanager_url: str | None = None
    alertmanager_timeout_seconds: Positive = 2.0
    audit_log: NonEmpty = "-"
    max_body_bytes: PositiveInt = 4 * 1024 * 1024
    limits: ServerLimits = ServerLimits()
    non_zombi_action: Literal["finish", "delete"] = "finish"
    kill_switch_file: NonEmpty | None = None
    allow: Filters = Filters()
    deny: Filters = Filters()
    caps: Caps = Caps()
    blast_radius: BlastRadius = BlastRadius()
    dead_node: DeadNodeBudget = DeadNodeBudget()
    countdown: CountdownConfig = CountdownConfig()
    dedup_max_entries: PositiveInt = 10000
    concurrency: PositiveInt = 4
    # Time to answer one notification: what is not decided by then is deferred (503, Alertmanager sends
    # it again). Below Alertmanager's shortest wait for a webhook (10 s, or the group_interval if longer).
    notification_timeout_seconds: Annotated[float, msgspec.Meta(ge=0.5, le=3600)] = 8.0
    # Notifications worked on at once; more wait up to a second, then get 503. Below the HTTP server's
    # threads, so health checks, metrics and other notifications always find one free.
    max_concurrent_notifications: Annotated[int, msgspec.Meta(ge=1, le=64)] = 4
    # SIGTERM: in-flight notifications get this long to finish their AMS calls, then are abandoned.
    shutdown_timeout_seconds: Annotated[float, msgspec.Meta(ge=0, le=3600)] = 10.0

    def __repr__(self) -> str:
        """Like the default, with the token masked."""
        return _masked(self, ("token",))


class Config(msgspec.Struct, frozen=True, kw_only=True):
    """The whole document; `remediator` is None when the file has no such section."""

    ams: tuple[AmsServer, ...]
    exporter: ExporterSettings = ExporterSettings()
    remediator: RemediatorConfig | None = None
    path: str | None = None

    def server(self, name: str) -> AmsServer | None:
        """Return the configured AMS called `name`, or None."""
        return next((s for s in self.ams if s.name == name), None)


# The YAML names secret references; the records above hold the secrets read through them.
class _AmsEntry(AmsServer, kw_only=True, forbid_unknown_fields=True):
    """One `ams:` item as written."""

    jwt_secret_file: str | None = None
    jwt_secret_env: str | None = None
    jwt_token_file: str | None = None
    jwt_token_env: str | None = None
    server_jwt_secret_file: str | None = None
    server_jwt_secret_env: str | None = None


class _RemediatorSection(RemediatorConfig, kw_only=True, forbid_unknown_fields=True):
    """The `remediator:` section as written."""

    webhook_token_file: str | None = None
    webhook_token_env: str | None = None


class _Document(msgspec.Struct, forbid_unknown_fields=True):
    """The file as written."""

    ams: Annotated[tuple[_AmsEntry, ...], msgspec.Meta(min_length=1)]
    exporter: ExporterSettings = ExporterSettings()
    remediator: _RemediatorSection | None = None


class _Secret(NamedTuple):
    """A secret field and the two keys that may name its source."""

    field: str
    file_key: str
    env_key: str


# Each inner tuple is one choice: at most one of its keys may be given.
_AMS_SECRETS = (
    (_Secret("jwt_secret", "jwt_secret_file", "jwt_secret_env"), _Secret("jwt_token", "jwt_token_file", "jwt_token_env")),
    (_Secret("server_jwt_secret", "server_jwt_secret_file", "server_jwt_secret_env"),),
)
_REMEDIATOR_SECRETS = ((_Secret("token", "webhook_token_file", "webhook_token_env"),),)


class _Source(NamedTuple):
    """Where relative paths and environment variables are resolved."""

    base: Path
    env: Mapping[str, str]
    read: Collection[str]  # the sections whose secrets are read, not only checked


# --- loading ---------------------------------------------------------------------------


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


def load_document(path: str | os.PathLike) -> Any:
    """Read the YAML file as plain data (an empty file is an empty mapping)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path}: {getattr(exc, 'strerror', None) or exc}") from exc
    try:
        doc = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path}: invalid YAML: {exc}") from exc
    return {} if doc is None else doc


def load_config(path: str | os.PathLike, env: Mapping[str, str] | None = None,
                read_secrets: Collection[str] = SECTIONS) -> Config:
    """Load and validate the whole file; secrets are read for the sections in read_secrets."""
    config = parse_document(load_document(path), Path(path).resolve().parent, env, read_secrets)
    return msgspec.structs.replace(config, path=str(path))


def parse_document(doc: Any, base_dir: str | os.PathLike | None = None, env: Mapping[str, str] | None = None,
                   read_secrets: Collection[str] = SECTIONS) -> Config:
    """Validate a parsed document; the first error raises ConfigError naming its key path."""
    source = _Source(Path(base_dir or Path.cwd()), os.environ if env is None else env, read_secrets)
    written = convert(doc, _Document, "")
    servers = tuple(_server(entry, f"ams[{i}]", source) for i, entry in enumerate(written.ams))
    _unique((s.name for s in servers), "ams[{}].name", "duplicate name")
    exporter = written.exporter
    _listen(exporter.listen_address, "exporter.listen_address")
    remediator = None if written.remediator is None else _remediator(written.remediator, "remediator", source)
    return Config(ams=servers, exporter=exporter, remediator=remediator)


def parse_remediator(section: Any, environ: Mapping[str, str] | None = None,
                     base_dir: str | os.PathLike | None = None) -> RemediatorConfig:
    """Validate a `remediator:` section alone (tests and benchmarks build one without a file)."""
    source = _Source(Path(base_dir or Path.cwd()), os.environ if environ is None else environ, SECTIONS)
    written = convert({} if section is None else section, _RemediatorSection, "remediator")
    return _remediator(written, "remediator", source)


def require_remediator(config: Config) -> RemediatorConfig:
    """The remediator section; the remediator cannot run without one (its webhook token)."""
    if config.remediator is None:
        raise ConfigError("remediator.webhook_token_file: a webhook token is required "
                          "(webhook_token_file or webhook_token_env), unless insecure_no_auth: true")
    return config.remediator


# --- sections --------------------------------------------------------------------------


def _server(entry: _AmsEntry, where: str, source: _Source) -> AmsServer:
    """One `ams:` item -> AmsServer, with its URL checked and its secrets read."""
    _unique(entry.apps, where + ".apps", "duplicate application name", index=False)
    secrets = _secrets(entry, where, _AMS_SECRETS, source, "ams")
    ca_file = None if entry.ca_file is None else _existing_file(entry.ca_file, f"{where}.ca_file", source.base)
    node_url = check_node_url(entry.node_url, f"{where}.node_url")
    return _narrow(entry, AmsServer, url=check_url(entry.url, f"{where}.url"), ca_file=ca_file, node_url=node_url,
                   **secrets)


def _remediator(section: _RemediatorSection, where: str, source: _Source) -> RemediatorConfig:
    """The `remediator:` section -> RemediatorConfig, with paths resolved and the token read."""
    _listen(section.listen_address, f"{where}.listen_address")
    url = None if section.alertmanager_url is None else check_url(section.alertmanager_url, f"{where}.alertmanager_url")
    token = _secrets(section, where, _REMEDIATOR_SECRETS, source, "remediator")
    if "token" not in token and not section.insecure_no_auth:
        raise ConfigError(f"{where}.webhook_token_file: a webhook token is required "
                          "(webhook_token_file or webhook_token_env), unless insecure_no_auth: true")
    # Relative paths are relative to the config file, like the secret files.
    paths = {key: _relative(getattr(section, key), source.base) for key in ("audit_log", "kill_switch_file")}
    return _narrow(section, RemediatorConfig, alertmanager_url=url, **paths, **token)


_R = TypeVar("_R", bound=msgspec.Struct)


def _narrow(written: msgspec.Struct, record: type[_R], **changes: Any) -> _R:
    """The record's fields taken from the written section, with the given changes."""
    values = {name: getattr(written, name) for name in record.__struct_fields__}
    return record(**{**values, **changes})


def _relative(value: str | None, base: Path) -> str | None:
    """A path relative to the config file's folder; '-' (stdout) and None stay."""
    return value if value in (None, "-") else str(base / value)


def _existing_file(ref: str, where: str, base: Path) -> str:
    """A file that must exist, relative to the config file's folder."""
    path = base / ref
    if not path.is_file():
        raise ConfigError(f"{where}: not a readable file: {ref!r}")
    return str(path)


def _unique(values, where: str, what: str, index: bool = True) -> None:
    """Raise on the first repeated value."""
    seen: set = set()
    for i, value in enumerate(values):
        if value in seen:
            raise ConfigError(f"{where.format(i) if index else where}: {what} {value!r}")
        seen.add(value)


# --- secrets ---------------------------------------------------------------------------


def _refs(section: msgspec.Struct, secret: _Secret) -> list[str]:
    """The keys of this secret that the section sets."""
    return [key for key in (secret.file_key, secret.env_key) if getattr(section, key) is not None]


def _secrets(section: msgspec.Struct, where: str, groups, source: _Source, name: str) -> dict[str, str | None]:
    """Check each secret's references (never inline, at most one source) and read them when asked."""
    values: dict[str, str | None] = {}
    for group in groups:
        for secret in group:
            if getattr(section, secret.field) is not None:
                raise ConfigError(f"{where}.{secret.field}: secrets are not accepted inline; "
                                  f"use {secret.file_key} or {secret.env_key}")
        given = [(secret, key) for secret in group for key in _refs(section, secret)]
        if len(given) > 1:
            keys = ", ".join(k for s in group for k in (s.file_key, s.env_key))
            raise ConfigError(f"{where}.{given[1][1]}: only one of {keys} may be set")
        for secret, key in given:
            ref = getattr(section, key)
            values[secret.field] = (read_secret(ref, f"{where}.{key}", source.base, source.env, key == secret.env_key)
                                    if name in source.read else None)
    return values


def read_secret(ref: str, where: str, base: Path, env: Mapping[str, str], from_env: bool) -> str:
    """Read one secret from a file or an environment variable; one trailing line ending is not part of it."""
    if not ref:
        raise ConfigError(f"{where}: expected a {'variable name' if from_env else 'file path'}")
    if from_env:
        if ref not in env:
            raise ConfigError(f"{where}: environment variable {ref} is not set")
        value = env[ref]
    else:
        try:
            value = (base / ref).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{where}: cannot read {base / ref}: {getattr(exc, 'strerror', None) or exc}") from None
    value = _strip_one_line_ending(value)
    if not value:
        raise ConfigError(f"{where}: the secret is empty")
    return value


def _strip_one_line_ending(value: str) -> str:
    """Drop exactly one trailing "\\r\\n" or "\\n", as editors add it; nothing else."""
    if value.endswith("\r\n"):
        return value[:-2]
    return value[:-1] if value.endswith("\n") else value


# --- values ----------------------------------------------------------------------------


def check_url(value: str, where: str) -> str:
    """A base URL http(s)://HOST[:PORT][/PREFIX] (no credentials, query or fragment), without a trailing slash."""
    parts = urlsplit(value)
    if (parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment
            or "?" in value or "#" in value or "@" in parts.netloc):
        raise ConfigError(f"{where}: expected http(s)://HOST[:PORT][/PREFIX], got {value!r}")
    try:
        parts.port  # noqa: B018 - raises on an invalid port
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return value.rstrip("/")


def check_node_url(value: str, where: str) -> str:
    """A base URL template with `{ip}` as its host (the registry address of one cluster node)."""
    if value.count("{ip}") != 1 or "{" in value.replace("{ip}", "") or "}" in value.replace("{ip}", ""):
        raise ConfigError(f"{where}: expected a URL with {{ip}} as its host, e.g. http://{{ip}}:5080, got {value!r}")
    if urlsplit(value.replace("{ip}", "node")).hostname != "node":
        raise ConfigError(f"{where}: {{ip}} must be the whole host, got {value!r}")
    check_url(value.replace("{ip}", "node"), where)
    return value.rstrip("/")


def split_listen_address(value: Any) -> tuple[str, int]:
    """Split HOST:PORT (':PORT' means all interfaces) into (host, port)."""
    if not isinstance(value, str) or ":" not in value:
        raise ValueError("expected HOST:PORT")
    host, _, port_text = value.rpartition(":")
    host = host.strip("[]") or "0.0.0.0"
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"invalid port in {value!r}")
    return host, int(port_text)


def _listen(value: str, where: str) -> None:
    """HOST:PORT, reported under its key path."""
    try:
        split_listen_address(value)
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None


# --- msgspec errors -> key paths -------------------------------------------------------

_FIELD_ERROR = re.compile(r"^Object (contains unknown|missing required) field `([^`]*)`$")
_T = TypeVar("_T")


def convert(value: Any, schema: type[_T], prefix: str) -> _T:
    """msgspec.convert, with its error turned into a ConfigError naming the key path."""
    try:
        return msgspec.convert(value, schema)
    except msgspec.ValidationError as exc:
        raise ConfigError(_message(str(exc), prefix)) from None


def _message(text: str, prefix: str) -> str:
    """'Expected `int`, got `str` - at `$.ams[0].page_size`' -> 'ams[0].page_size: expected int, got str'."""
    message, _, at = text.partition(" - at `")
    key_error, _, container = at.partition("` in `")
    path = _join(prefix, (container or key_error).rstrip("`").removeprefix("$").removeprefix("."))
    field = _FIELD_ERROR.match(message)
    if field:
        return f"{_join(path, field.group(2))}: {'unknown key' if field.group(1) == 'contains unknown' else 'required'}"
    message = message.replace("`", "")
    message = message[:1].lower() + message[1:] + (" (as a mapping key)" if container else "")
    return f"{path or '(top level)'}: {message}"


def _join(path: str, key: str) -> str:
    """Append a key (or an [index]) to a dotted path."""
    if not path or not key or key.startswith("["):
        return path + key
    return f"{path}.{key}"


def _masked(record: msgspec.Struct, secrets: tuple[str, ...]) -> str:
    """Struct repr with secret fields shown as ***."""
    shown = (f"{k}={'***' if k in secrets and v else v!r}" for k, v in msgspec.structs.asdict(record).items())
    return f"{type(record).__name__}({', '.join(shown)})"
