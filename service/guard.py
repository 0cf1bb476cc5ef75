"""The one guard of both services: body limit, then credentials (basic or bearer), before the app reads a byte.

Each service states its policy once as an `Access` (which paths are open, which take a bearer
token, the largest body); `guard()` wraps its WSGI app with it. The server (service/web.py) calls
the app as soon as the request head is in, so a refusal here happens with the body still unread
on the socket; the server then answers with `Connection: close` instead of draining it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import bcrypt

__all__ = ["Access", "BEARER_CHECKED", "Wsgi", "canonical_path", "guard"]

# Set in the environ to the path whose bearer token the guard checked: a view that writes can ask.
BEARER_CHECKED = "antmedia.bearer_checked"

Wsgi = Callable[[dict, Callable], Iterable[bytes]]
Refused = Callable[[str, int], None]  # (path, status) of each request the guard turns away


@dataclass(frozen=True)
class Access:
    """One service's policy."""

    users: Mapping[str, str] = field(default_factory=dict)  # basic auth: user -> bcrypt hash (--web.config.file)
    bearer: Mapping[str, str] = field(default_factory=dict)  # path -> token; these paths take it instead of basic auth
    open_paths: frozenset[str] = frozenset()  # no credentials (orchestrator probes)
    max_body_bytes: int = 65536
    realm: str = ""


def guard(app: Wsgi, access: Access, refused: Refused | None = None) -> Wsgi:
    """app behind access: 413 for a body over the limit, 401 without the path's credentials, in that order."""
    basic = _BasicAuth(access.users) if access.users else None
    limit = access.max_body_bytes

    def refuse(start_response: Callable, path: str, status: str, text: str, headers=()) -> list[bytes]:
        if refused is not None:
            refused(path, int(status[:3]))
        start_response(status, [("Content-Type", "text/plain; charset=utf-8"), *headers])
        return [text.encode()]

    def guarded(environ: dict, start_response: Callable) -> Iterable[bytes]:
        # The path the app will route, decided here once: Werkzeug merges repeated slashes, so "//alerts"
        # would otherwise reach the webhook without its token.
        path = environ["PATH_INFO"] = canonical_path(environ.get("PATH_INFO", ""))
        length = environ.get("CONTENT_LENGTH") or ""
        chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        if chunked and (path in access.open_paths or environ.get("REQUEST_METHOD") in ("GET", "HEAD")):
            # Nothing there takes a body: waiting for one would let any client hold a worker.
            return refuse(start_response, path, "400 Bad Request", "no body expected here\n")
        if length:
            if not length.isdigit():
                return refuse(start_response, path, "400 Bad Request", "bad Content-Length\n")
            if int(length) > limit:
                return refuse(start_response, path, "413 Content Too Large", f"body larger than {limit} bytes\n")
        token = access.bearer.get(path)
        header = environ.get("HTTP_AUTHORIZATION", "")
        if token is not None:
            if not _bearer_ok(header, token):
                return refuse(start_response, path, "401 Unauthorized", "missing or wrong bearer token\n",
                              [("WWW-Authenticate", f'Bearer realm="{access.realm}"')])
            environ[BEARER_CHECKED] = path
        elif basic is not None and path not in access.open_paths and not basic(header):
            return refuse(start_response, path, "401 Unauthorized", "unauthorized\n",
                          [("WWW-Authenticate", f'Basic realm="{access.realm}"')])
        if chunked and not length:  # no length announced: read at most one byte past the limit
            data = environ["wsgi.input"].read(limit + 1)
            if len(data) > limit:
                return refuse(start_response, path, "413 Content Too Large", f"body larger than {limit} bytes\n")
            environ["wsgi.input"], environ["CONTENT_LENGTH"] = io.BytesIO(data), str(len(data))
        return app(environ, start_response)

    return guarded


def canonical_path(path: str) -> str:
    """One leading slash, no repeated slashes: the path as the apps route it."""
    return "/" + re.sub(r"/{2,}", "/", path).lstrip("/")


def _bearer_ok(header: str, token: str) -> bool:
    """Bearer token check in constant time."""
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return False
    return hmac.compare_digest(given.strip().encode("utf-8"), token.encode("utf-8"))


class _BasicAuth:
    """bcrypt check of user:password, with successful checks remembered (bcrypt costs ~0.1 s each)."""

    CACHE = 256

    def __init__(self, users: Mapping[str, str]) -> None:
        self.users = {name: hashed.encode() for name, hashed in users.items()}
        # An unknown user costs what a known one does: a dummy hash at the highest configured cost.
        self.dummy = bcrypt.hashpw(b"unused", bcrypt.gensalt(rounds=max(map(_cost, self.users.values()), default=10)))
        self.ok: OrderedDict[bytes, None] = OrderedDict()
        self.lock = threading.Lock()

    def __call__(self, header: str) -> bool:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, sep, password = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        if not sep:
            return False
        key = hashlib.sha256(f"{user}\0{password}".encode()).digest()
        with self.lock:
            if key in self.ok and user in self.users:
                self.ok.move_to_end(key)
                return True
        hashed = self.users.get(user, self.dummy)
        try:
            ok = bcrypt.checkpw(password.encode(), hashed) and user in self.users
        except ValueError:  # a password beyond bcrypt's 72 bytes
            ok = False
        if ok:
            with self.lock:
                self.ok[key] = None
                if len(self.ok) > self.CACHE:
                    self.ok.popitem(last=False)
        return ok


def _cost(hashed: bytes) -> int:
    """The cost of a bcrypt hash ($2b$12$...), 10 when it cannot be read."""
    try:
        return min(max(int(hashed.split(b"$")[2]), 4), 16)
    except (IndexError, ValueError):
        return 10
