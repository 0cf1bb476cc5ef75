"""The WSGI application: faults, auth, routing, the write log and the HTTP Date from AMS's clock."""
import json
import re
import sys
import traceback
from dataclasses import dataclass
from email.utils import formatdate
from urllib.parse import parse_qs

from . import routes
from .fields import LIVE_STATUSES
from .lifecycle import WriteRecord
from .reply import Reply, empty, error_page, not_found_page, reason
from .request import BadBody, Request

WRITE_METHODS = ("POST", "PUT", "DELETE")
_APP_PATH = re.compile(r"^/([^/]+)/rest/v2(?:/(.*))?$")
_ROOT_PATH = re.compile(r"^/rest/v2/(.*)$")
_BROADCASTS = re.compile(r"^broadcasts(?:/(.*))?$")
_MAX_BODY = 16 * 1024 * 1024


@dataclass
class Outcome:
    """What serving one request produced: the reply, its write target, the node that ran it (after RestProxyFilter
    forwarding) and whether the target had a live session when the request arrived."""

    reply: Reply
    target: str | None = None
    ran_on: object = None
    live_target: bool = False
    data: bytes | None = None


class AmsApp:
    """Serves the AMS REST paths of a Simulator plus its /_sim/ control API.

    Without `node_address` it is the load balancer (round robin over routable nodes); with one it is that node's
    own listener."""

    def __init__(self, sim, control, node_address: str | None = None):
        self.sim = sim
        self.world = sim.world
        self.control = control
        self.node_address = node_address
        self.broadcast_routes = routes.broadcast_routes(sim.version)
        self.root_routes = routes.management_routes()
        self.app_routes = routes.app_routes()

    def __call__(self, environ, start_response):
        """WSGI entry point: the receiving node (balancer's pick or this listener's node) answers, dates the reply."""
        method = environ["REQUEST_METHOD"].upper()
        path = _path(environ)
        query_string = environ.get("QUERY_STRING", "")
        body = _body(environ)
        if path == "/_sim" or path.startswith("/_sim/"):
            payload = self.control.handle(method, path, _query(query_string), body)
            return self._send(payload, start_response, None, None)
        with self.world.lock:
            node = self._receiver()
        if node is None:
            return self._send(error_page(503, "Service Unavailable", "no live node"), start_response, None, None)
        outcome = self.serve(environ, method, path, query_string, body, node)
        if method in WRITE_METHODS:
            self._log(method, path, query_string, body, outcome, node)
        return self._send(outcome.reply, start_response, outcome.data, node)

    def _receiver(self):
        """The node that receives the request: the balancer's pick, or this listener's node while it is up."""
        if self.node_address is None:
            return self.world.pick_node()
        node = self.world.nodes.get(self.node_address)
        return node if node is not None and node.alive else None  # a request racing kill_node

    def serve(self, environ, method, path, query_string, body, node) -> Outcome:
        """Apply faults, then answer as `node` would (or the origin it forwards to)."""
        malformed = db_failed = False
        for fault in self.sim.faults.take(path):
            if fault.kind == "latency":
                self.sim.stopping.wait(fault.seconds)
            elif fault.kind == "status":
                return _done(Outcome(error_page(fault.status, reason(fault.status)), ran_on=node))
            elif fault.kind == "timeout":
                self.sim.stopping.wait(fault.seconds)
                return _done(Outcome(empty(504), ran_on=node))
            elif fault.kind == "db_error":
                db_failed = True
            else:
                malformed = True
        outcome = _done(self.dispatch(environ, method, path, _query(query_string), body, node, db_failed))
        if malformed:
            outcome.data = _corrupt(outcome.data)
        return outcome

    def dispatch(self, environ, method, path, query, body, node, db_failed=False) -> Outcome:
        """Route to the management API or an app's REST API."""
        root = _ROOT_PATH.match(path)
        if root:
            denied = self.sim.server_auth.check(root.group(1), environ.get("HTTP_PROXYAUTHORIZATION"))
            if denied is not None:
                return Outcome(denied, ran_on=node)
            return self._handle(self.root_routes, method, root.group(1), query, body, None, node, db_failed)
        found = _APP_PATH.match(path)
        if not found or found.group(1) not in self.world.apps:
            return Outcome(not_found_page(), ran_on=node)
        denied = self.sim.auth.check(environ.get("REMOTE_ADDR", ""), environ.get("HTTP_AUTHORIZATION"))
        if denied is not None:
            return Outcome(denied, ran_on=node)
        app, rest = self.world.apps[found.group(1)], found.group(2) or ""
        sub = _BROADCASTS.match(rest)
        if not sub:
            return self._handle(self.app_routes, method, rest, query, body, app, node, db_failed)
        return self._handle(self.broadcast_routes, method, (sub.group(1) or "").rstrip("/"), query, body, app, node,
                            db_failed, forwardable=True)

    def _handle(self, table, method, sub_path, query, body, app, node, db_failed=False, forwardable=False) -> Outcome:
        """Run the matching handler under the world lock on the node that runs it; 400 for an unreadable body."""
        handler, params = routes.match(table, method, sub_path)
        if handler is None:
            return Outcome(error_page(405, "Method Not Allowed") if params else not_found_page(), ran_on=node)
        with self.world.lock:
            now = self.sim.clock.now()
            self.world.settle(now)
            target = routes.write_target(params, query) if method in WRITE_METHODS else None
            live = app is not None and target is not None and self.world.has_live_session(app.records.get(target))
            if not node.db and routes.needs_database(handler):
                return Outcome(_no_database(), target, node, live)
            ran_on = node
            if forwardable and method in WRITE_METHODS:
                ran_on = forward_target(self.world, app, sub_path.split("/")[0], node, now) or node
                if not ran_on.db:  # the origin's own store calls time out
                    return Outcome(_no_database(), target, ran_on, live)
            req = Request(self.world, now, query, body, app, ran_on, db_failed)
            try:
                reply = handler(req, **params)
            except BadBody as exc:
                return Outcome(error_page(400, "Bad Request", str(exc)), ran_on=ran_on, live_target=live)
            except Exception:  # a bug here must not kill the server thread
                traceback.print_exc(file=sys.stderr)
                return Outcome(error_page(500, "Internal Server Error"), ran_on=ran_on, live_target=live)
            target = routes.write_target(params, query, reply) if method in WRITE_METHODS else None
            if target is not None and app is not None:
                _evict(ran_on, app.name, target, params)
        return Outcome(reply, target, ran_on, live)

    def _log(self, method, path, query_string, body, outcome: Outcome, node) -> None:
        """Append the write, its target stream, the node that received it and the node that ran it to the write log."""
        reply = outcome.reply
        success = None
        if isinstance(reply.body, dict) and isinstance(reply.body.get("success"), bool):
            success = reply.body["success"]
        elif reply.status >= 400:
            success = False
        elif reply.has_json:
            success = True
        text = body.decode("utf-8", "replace")
        ran_on = outcome.ran_on or node
        self.sim.writes.append(WriteRecord(self.sim.clock.now(), method, path, query_string, text,
                                           reply.status, success, outcome.target, ran_on.address,
                                           received_by=node.address, forwarded=ran_on is not node,
                                           live_target=outcome.live_target))

    def _send(self, reply, start_response, data: bytes | None, node):
        """Status line and headers; Date from the answering machine's clock (proxy, else node)."""
        if data is None:
            reply, data = _encoded(reply)
        headers = [("Content-Length", str(len(data))), ("Date", formatdate(self.sim.date_seconds(node), usegmt=True))]
        if reply.content_type:
            headers.insert(0, ("Content-Type", reply.content_type))
        start_response(f"{reply.status} {reason(reply.status)}", headers)
        return [data]


def forward_target(w, app, stream_id: str, node, now: float):
    """The origin node RestProxyFilter forwards a POST/PUT/DELETE about `stream_id` to, or None to serve it here.

    Forwarded only while the record, as this node reads it, counts as streaming: stored status broadcasting or
    preparing and updateTime less than 2 periods old on this node's clock (10 s @ams-v2.8.2: RestProxyFilter
    L101-104, AMAA.isStreaming L960-964), or the computed status broadcasting/preparing (RestProxyFilter L100-102,
    Broadcast.getStatus L573-593 @ams-v3.0.3); the origin must not be this node and must accept a TCP connection
    (isHostRunning: the node is up, with or without its database). The stream id is the first path segment after
    broadcasts/ (getStreamId), so create, conference-rooms and main tracks (no origin) stay here. GETs never get here
    (RestProxyFilter L53 @ams-v2.8.2, L52 @ams-v3.0.3)."""
    if not w.cluster or not stream_id or app is None:
        return None
    stored = w.read_one(app, stream_id, now, node)  # the filter's getBroadcast: the per-node cache on 2.14+
    if stored is None or stored["status"] not in LIVE_STATUSES:
        return None
    if w.version.forward_needs_fresh_update:
        if (now + node.offset) * 1000 - stored["updateTime"] >= w.stale_after * 1000:
            return None
    origin = w.nodes.get(stored.get("originAdress"))
    if origin is None or origin is node or not origin.alive:
        return None
    return origin


def _no_database():
    """A node cut off from MongoDB: the driver's timeout escapes the resource and Jersey/Tomcat answer 500."""
    return error_page(500, "Internal Server Error",
                      "com.mongodb.MongoTimeoutException: Timed out while waiting for a server")


def _done(outcome: Outcome) -> Outcome:
    """Fill in the encoded body."""
    outcome.reply, outcome.data = _encoded(outcome.reply)
    return outcome


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
