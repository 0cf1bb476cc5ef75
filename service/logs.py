"""Logging of both services: logfmt (default, as Prometheus's own servers) or JSON, one line per record, on stderr.

Every line is safe to ship: URL credentials and authorization values are redacted, and text
that came from outside (an alert's groupKey, a label, a client's bytes) cannot forge a line
(control characters are escaped) or flood the log (each argument is cut at MAX_ARG_CHARS, each
message at MAX_MESSAGE_CHARS). At the default level the services log state changes (a failure
starting, changing, ending; starting and stopping), never one line per request: the HTTP
client's per-request lines appear only at debug.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import datetime, timezone
from typing import Any

__all__ = ["FORMATS", "MAX_ARG_CHARS", "MAX_MESSAGE_CHARS", "clip", "configure_logging", "redact"]

FORMATS = ("logfmt", "json")
MAX_ARG_CHARS = 256  # a groupKey or label is a few dozen characters; longer is noise or an attack
MAX_MESSAGE_CHARS = 4096
_QUIET = {"httpx": logging.WARNING, "httpcore": logging.WARNING}  # their INFO is one line per request

_URL_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@:]*:[^/\s@]*@")
# Header dumps (Authorization: Bearer X, 'ProxyAuthorization': 'X') and credentials in query strings.
_AUTH_VALUE = re.compile(r"(?i)\b((?:proxy-?)?authorization[\"']?\s*[:=]\s*[\"']?(?:(?:bearer|basic)\s+)?"
                         r"|[?&](?:token|access_token|password|secret)=)[^\s\"',;&]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")


def redact(text: str) -> str:
    """Hide user:password@ in URLs, authorization header values and credentials in query strings."""
    text = _URL_CREDENTIALS.sub(r"\1***@", text)
    return _AUTH_VALUE.sub(lambda m: f"{m.group(1)}***", text)


def clip(text: str, limit: int = MAX_ARG_CHARS) -> str:
    """Escape control characters (a newline cannot start a forged line) and cut to limit characters."""
    text = _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)
    if len(text) > limit:
        return f"{text[:limit]}...({len(text) - limit} more chars)"
    return text


class _Sanitize(logging.Filter):
    """Clip and escape each argument; redact and bound the rendered message."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            args = record.args if isinstance(record.args, tuple) else (record.args,)
            record.args = tuple(clip(a) if isinstance(a, str) else
                                clip(str(a)) if isinstance(a, (bytes, bytearray)) else a for a in args)
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            message = f"{record.msg!s} {record.args!r}"
        record.msg, record.args = clip(redact(message), MAX_MESSAGE_CHARS), None
        return True


def _time(record: logging.LogRecord) -> str:
    return datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


def _fields(record: logging.LogRecord, formatter: logging.Formatter) -> dict[str, Any]:
    fields: dict[str, Any] = {"ts": _time(record), "level": record.levelname.lower(),
                              "logger": record.name, "msg": record.getMessage()}
    if record.exc_info:
        fields["error"] = clip(redact(formatter.formatException(record.exc_info)), MAX_MESSAGE_CHARS * 4)
    return fields


class LogfmtFormatter(logging.Formatter):
    """ts=... level=info logger=exporter msg="listening on ..." (go-kit's logfmt, as Prometheus logs)."""

    def format(self, record: logging.LogRecord) -> str:
        return " ".join(f"{key}={_logfmt_value(str(value))}" for key, value in _fields(record, self).items())


class JsonFormatter(logging.Formatter):
    """One JSON object per line with the same keys as logfmt."""

    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(_fields(record, self), ensure_ascii=False, separators=(",", ":"))


def _logfmt_value(value: str) -> str:
    """Bare when safe, else quoted with backslash escapes (never a raw newline)."""
    if value and not any(c in value for c in ' ="\\') and not _CONTROL.search(value):
        return value
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), escaped) + '"'


def configure_logging(level: str, fmt: str = "logfmt", stream=None) -> logging.Handler:
    """Replace the root logger's handlers with one on stderr in the chosen format."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else LogfmtFormatter())
    handler.addFilter(_Sanitize())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    debug = level.lower() == "debug"
    for name, quiet in _QUIET.items():
        # At debug, httpx's request lines show (redacted); httpcore's wire trace never does.
        logging.getLogger(name).setLevel(logging.DEBUG if debug and name == "httpx" else quiet)
    return handler
