"""The WSGI application: faults, auth, routing, the write log and the HTTP Date from AMS's clock."""
import json
import re
import sys
import traceback
from email.utils import formatdate
from urllib.parse import parse_qs

from . import routes
from .lifecycle import WriteRecord
from .reply import Reply, empty, error_page, not_found_page, reason
from .request import BadBody, Request

WRITE_METHODS = ("POST", "PUT", "DELETE")
_APP_PATH = re.compile(r"^/([^/]+)/rest/v2(?:/(.*))?$")
_ROOT_PATH = re.compile(r"^/rest/v2/(.*)$")
_BROADCASTS = re.compile(r"^broadcasts(?:/(.*))?$")
_MAX_BODY = 16 * 1024 * 1024


class AmsApp:
    """Serves the AMS REST paths of a Simulator plus its /_sim/ control API."""

    def __init__(self, sim, control):
        self.sim = sim
        self.world = sim.world
        self.control = control
        self.broadcast_routes = routes.broadcast_routes(sim.version)
        self.root_routes = routes.management_routes()
        self.app_routes = routes.app_routes()

    def __call__(self, environ, start_response):
        """WSGI entry point: the load balancer picks a live node, which answers and dates the reply."""
        method = environ["REQUEST_METHOD"].upper()
        path = _path(environ)
        query_string = environ.get("QUERY_STRING", "")
        body = _body(environ)
        if path == "/_sim" or path.startswith("/_sim/"):
            payload = self.control.handle(method, path, _query(query_string), body)
            return self._send(payload, start_response, None, None)
        with self.world.lock:
            node = self.world.pick_node()
        if node is None:
            return self._send(error_page(503, "Service Unavailable", "no live node"), start_response, None, None)
        reply, data, target = self.serve(environ, method, path, query_string, body, node)
        if method in WRITE_METHODS:
            self._log(method, path, query_string, body, reply, target, node)
        return self._send(reply, start_response, data, node)

    def serve(self, environ, method, path, query_string, body, node):
        """Apply faults, then answer as `node` would; returns the reply, its encoded body and the write target."""
        malformed = db_failed = False
        for fault in self.sim.faults.take(path):
            if fault.kind == "latency":
                self.sim.stopping.wait(fault.seconds)
            elif fault.kind == "status":
                return *_encoded(error_page(fault.status, reason(fault.status))), None
            elif fault.kind == "timeout":
                self.sim.stopping.wait(fault.seconds)
                return *_encoded(empty(504)), None
            elif fault.kind == "db_error":
                db_failed = True
            else:
                malformed = True
        reply, target = self.dispatch(environ, method, path, _query(query_string), body, node, db_failed)
        reply, data = _encoded(reply)
        if malformed:
            data = _corrupt(data)
        return reply, data, target

    def dispatch(self, environ, method, path, query, body, node, db_failed=False):
        """Route to the management API or an app's REST API; returns (reply, write target)."""
        root = _ROOT_PATH.match(path)
        if root:
            denied = self.sim.server_auth.check(root.group(1), environ.get("HTTP_PROXYAUTHORIZATION"))
            if denied is not None:
                return denied, None
            return self._handle(self.root_routes, method, root.group(1), query, body, None, node, db_failed)
        found = _APP_PATH.match(path)
        if not found or found.group(1) not in self.world.apps:
            return not_found_page(), None
        denied = self.sim.auth.check(environ.get("REMOTE_ADDR", ""), environ.get("HTTP_AUTHORIZATION"))
        if denied is not None:
            return denied, None
        app, rest = self.world.apps[found.group(1)], found.group(2) or ""
        sub = _BROADCASTS.match(rest)
        if not sub:
            return self._handle(self.app_routes, method, rest, query, body, app, node, db_failed)
        return self._handle(self.broadcast_routes, method, (sub.group(1) or "").rstrip("/"), query, body, app, node,
                            db_failed)

    def _handle(self, table, method, sub_path, query, body, app, node, db_failed=False):
        """Run the matching handler under the world lock; 400 for an unreadable body."""
        handler, params = routes.match(table, method, sub_path)
        if handler is None:
            return (error_page(405, "Method Not Allowed") if params else not_found_page()), None
        with self.world.lock:
            now = self.sim.clock.now()
            self.world.settle(now)
            req = Request(self.world, now, query, body, app, node, db_failed)
            try:
                reply = handler(req, **params)
            except BadBody as exc:
                return error_page(400, "Bad Request", str(exc)), None
            except Exception:  # a bug here must not kill the server thread
                traceback.print_exc(file=sys.stderr)
                return error_page(500, "Internal Server Error"), None
            target = routes.write_target(params, query, reply) if method in WRITE_METHODS else None
            if target is not None and app is not None:
                _evict(node, app.name, target, params)
        return reply, target

    def _log(self, method, path, query_string, body, reply: Reply, target, node) -> None:
        """Append the write, its target stream and its serving node to the simulator's write log."""
        success = None
        if isinstance(reply.body, dict) and isinstance(reply.body.get("success"), bool):
            success = reply.body["success"]
        elif reply.status >= 400:
            success = False
        elif reply.has_json:
            success = True
        text = body.decode("utf-8", "replace")
        self.sim.writes.append(WriteRecord(self.sim.clock.now(), method, path, query_string, text,
                                           reply.status, success, target, node.address))

    def _send(self, reply, start_response, data: bytes | None, node):
        """Status line and headers; Date from the answering machine's clock (proxy, else node)."""
        if data is None:
            reply, data = _encoded(reply)
        headers = [("Content-Length", str(len(data))), ("Date", formatdate(self.sim.date_seconds(node), usegmt=True))]
        if reply.content_type:
            headers.insert(0, ("Content-Type", reply.content_type))
        start_response(f"{reply.status} {reason(reply.status)}", headers)
        return [data]


def _evict(node, app: str, target: str, params: dict) -> None:
    """A write through a node refreshes that node's cached copies only (MongoStore L296-320, L496-507 @ams-v3.0.3)."""
    for sid in {target, *(v for v in params.values() if isinstance(v, str))}:
        node.cache.pop((app, sid), None)


def _encoded(reply: Reply):
    """(reply, bytes): compact JSON like Jackson, or the raw body."""
    if reply.raw is not None:
        return reply, reply.raw
    return reply, json.dumps(reply.body, separators=(",", ":")).encode("utf-8")


def _corrupt(data: bytes) -> bytes:
    """Cut a JSON document in half: never valid JSON again (bodies are objects or arrays)."""
    return data[: len(data) // 2] if len(data) > 2 else b'{"'


def _path(environ) -> str:
    """PATH_INFO as text (WSGI hands it over latin-1 decoded)."""
    raw = environ.get("PATH_INFO", "") or "/"
    try:
        return raw.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return raw


def _query(query_string: str) -> dict:
    """First value of each query parameter."""
    return {k: v[0] for k, v in parse_qs(query_string, keep_blank_values=True).items()}


def _body(environ) -> bytes:
    """The request body (bounded)."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length <= 0:
        return b""
    return environ["wsgi.input"].read(min(length, _MAX_BODY))
