"""The /_sim/ control API: the Simulator's library methods over HTTP (JSON in, JSON out)."""
import dataclasses
import json
import re

from .clock import ManualClock
from .reply import Reply, ok

_LIFECYCLE = re.compile(r"^/_sim/(lifecycle|broadcast|session|can_publish)/([^/]+)/([^/]+)$")


class ControlError(ValueError):
    """A bad control request (400)."""


class Control:
    """Dispatches /_sim/ requests to a Simulator."""

    def __init__(self, sim):
        self.sim = sim
        self.posts = {"rooms": self.rooms, "join": self.join, "leave": self.simple("leave"),
                      "drop": self.simple("drop"), "resume": self.simple("resume"),
                      "reconnect": self.reconnect, "publish": self.publish,
                      "records": self.records, "populate": self.populate, "clock": self.set_clock,
                      "faults": self.inject, "blink": self.blink, "sources": self.sources,
                      "stick": self.simple("stick_source"), "proxy": self.proxy,
                      "nodes/kill": self.node_action("kill_node"), "nodes/revive": self.node_action("revive_node"),
                      "nodes/clock": self.node_clock, "during_list": self.during_list,
                      "nodes/step_clock": self.step_clock,
                      "nodes/lose_database": self.node_action("lose_database"),
                      "nodes/restore_database": self.node_action("restore_database")}

    def handle(self, method: str, path: str, query: dict, body: bytes) -> Reply:
        """Answer one control request; 400 with {"error"} on bad input, 404 for unknown paths."""
        try:
            data = json.loads(body) if body.strip() else {}
            if not isinstance(data, dict):
                raise ControlError("body must be a JSON object")
            return self._route(method, path, data, query)
        except (ValueError, TypeError, KeyError) as exc:
            message = f"missing field {exc}" if isinstance(exc, KeyError) else str(exc)
            return Reply(400, {"error": message})

    def _route(self, method: str, path: str, data: dict, query: dict | None = None) -> Reply:
        """Pick the handler by method and path."""
        query = query or {}
        name = path[len("/_sim/"):] if path.startswith("/_sim/") else ""
        found = _LIFECYCLE.match(path)
        if method == "GET" and found:
            return self.lifecycle(*found.groups(), node=query.get("node"))
        if method == "POST" and name in self.posts:
            return ok(self.posts[name](data))
        gets = {"writes": self.writes, "faults": self.faults_list, "clock": self.clock, "state": self.state,
                "nodes": lambda: self.sim.nodes}
        if method == "GET" and name in gets:
            return ok(gets[name]())
        if method == "DELETE" and name in ("writes", "faults"):
            (self.sim.writes.clear if name == "writes" else self.sim.faults.clear)()
            return ok({"ok": True})
        return Reply(404, {"error": f"no control endpoint {method} {path}"})

    def _app(self, data: dict) -> str:
        """The app named in the body, default the first one."""
        return data.get("app") or self.sim.apps[0]

    def rooms(self, data: dict) -> dict:
        """POST /_sim/rooms {app, room_id, mode}."""
        self.sim.create_room(self._app(data), data["room_id"], data.get("mode", "legacy"))
        return {"ok": True}

    def join(self, data: dict) -> dict:
        """POST /_sim/join {app, room_id, stream_id, name, node, zombi}."""
        return {"ok": self.sim.join(self._app(data), data["room_id"], data["stream_id"], data.get("name"),
                                    data.get("node"), bool(data.get("zombi", True)))}

    def reconnect(self, data: dict) -> dict:
        """POST /_sim/reconnect {app, stream_id, node}."""
        return {"ok": self.sim.reconnect(self._app(data), data["stream_id"], data.get("node"))}

    def blink(self, data: dict) -> dict:
        """POST /_sim/blink {app, stream_id, seconds}: drop now, resume after `seconds` if within the grace."""
        return {"ok": self.sim.blink(self._app(data), data["stream_id"], float(data["seconds"]))}

    def sources(self, data: dict) -> dict:
        """POST /_sim/sources {app, stream_id, type, name, node}: a running pulled source."""
        self.sim.add_source(self._app(data), data["stream_id"], data.get("type", "ipCamera"), data.get("name"),
                            data.get("node"))
        return {"ok": True}

    def proxy(self, data: dict) -> dict:
        """POST /_sim/proxy {clock_offset_seconds}: a reverse proxy dating replies with its own clock (null: none)."""
        offset = data["clock_offset_seconds"]
        self.sim.proxy_clock_offset_seconds = None if offset is None else float(offset)
        return {"clock_offset_seconds": self.sim.proxy_clock_offset_seconds}

    def node_action(self, method: str):
        """POST /_sim/nodes/{kill,revive} {address}."""
        def act(data: dict) -> list:
            getattr(self.sim, method)(data["address"])
            return self.sim.nodes
        return act

    def node_clock(self, data: dict) -> list:
        """POST /_sim/nodes/clock {address, offset_seconds}."""
        self.sim.set_node_clock(data["address"], float(data["offset_seconds"]))
        return self.sim.nodes

    def step_clock(self, data: dict) -> list:
        """POST /_sim/nodes/step_clock {address, seconds}: the node's clock jumps now (negative: back)."""
        self.sim.step_node_clock(data["address"], float(data["seconds"]))
        return self.sim.nodes

    def simple(self, method: str):
        """POST /_sim/{leave,drop,resume,reconnect} {app, stream_id}."""
        return lambda data: {"ok": getattr(self.sim, method)(self._app(data), data["stream_id"])}

    def publish(self, data: dict) -> dict:
        """POST /_sim/publish {app, stream_id, name, publish_type, node, zombi}."""
        return {"ok": self.sim.publish(self._app(data), data["stream_id"], data.get("name"),
                                       data.get("publish_type", "WebRTC"), data.get("node"),
                                       bool(data.get("zombi", True)))}

    def during_list(self, data: dict) -> dict:
        """POST /_sim/during_list {app, publish, remove, after_offset, room}: one-shot churn during a scrape."""
        publish, remove = data.get("publish", []), data.get("remove", [])
        if not isinstance(publish, list) or not isinstance(remove, list):
            raise ControlError("publish and remove must be lists of stream ids")
        self.sim.during_list(self._app(data), publish, remove, int(data.get("after_offset", 0)), data.get("room"))
        return {"ok": True}

    def records(self, data: dict) -> dict:
        """POST /_sim/records {app, count, status, type, prefix}."""
        ids = self.sim.add_records(self._app(data), int(data["count"]), data.get("status", "finished"),
                                   data.get("type", "liveStream"), data.get("prefix", "rec"))
        return {"count": len(ids), "first": ids[0] if ids else None, "last": ids[-1] if ids else None}

    def populate(self, data: dict) -> dict:
        """POST /_sim/populate {app, live, rooms, prefix}."""
        ids = self.sim.populate(self._app(data), int(data.get("live", 10000)), int(data.get("rooms", 500)),
                                data.get("prefix", "pop"))
        return {"count": len(ids)}

    def clock(self) -> dict:
        """GET /_sim/clock."""
        return {"now": self.sim.clock.now(), "offset_seconds": self.sim.clock.offset_seconds,
                "manual": isinstance(self.sim.clock, ManualClock)}

    def set_clock(self, data: dict) -> dict:
        """POST /_sim/clock {offset_seconds} and/or {advance_seconds} (manual clocks only)."""
        if "offset_seconds" in data:
            self.sim.clock.offset_seconds = float(data["offset_seconds"])
        if "advance_seconds" in data:
            if not isinstance(self.sim.clock, ManualClock):
                raise ControlError("advance_seconds needs a manual clock; use offset_seconds")
            self.sim.clock.advance(float(data["advance_seconds"]))
        return self.clock()

    def inject(self, data: dict) -> dict:
        """POST /_sim/faults {kind, path_regex, seconds, status, count}."""
        fault = self.sim.faults.inject(data["kind"], data.get("path_regex", ".*"), data.get("seconds"),
                                       int(data.get("status", 503)), data.get("count"))
        return fault.describe()

    def faults_list(self) -> list:
        """GET /_sim/faults."""
        return self.sim.faults.active()

    def writes(self) -> list:
        """GET /_sim/writes: each with its target stream_id and serving node."""
        return [dataclasses.asdict(w) for w in list(self.sim.writes)]

    def lifecycle(self, kind: str, app: str, stream_id: str, node: str | None = None) -> Reply:
        """GET /_sim/{lifecycle,broadcast,session,can_publish}/{app}/{id} (can_publish takes ?node=)."""
        if kind == "session":
            return ok({"session": self.sim.live_session(app, stream_id)})
        if kind == "can_publish":
            return ok({"can_publish": self.sim.can_publish(app, stream_id, node)})
        if kind == "broadcast":
            record = self.sim.broadcast(app, stream_id)
            return ok(record) if record is not None else Reply(404, {"error": "no such broadcast"})
        return ok(dataclasses.asdict(self.sim.lifecycle(app, stream_id)))

    def state(self) -> dict:
        """GET /_sim/state: version, store, apps, timing, clock, nodes, proxy."""
        return {"ams_version": self.sim.version.name, "store": self.sim.store, "apps": list(self.sim.apps),
                "heartbeat_seconds": self.sim.heartbeat_seconds,
                "reconnect_grace_seconds": self.sim.reconnect_grace_seconds, "clock": self.clock(),
                "cluster": self.sim.cluster, "nodes": self.sim.nodes,
                "proxy_clock_offset_seconds": self.sim.proxy_clock_offset_seconds}
