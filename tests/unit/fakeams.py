"""In-memory AMS REST double served through httpx.MockTransport, seeded from recorded-shape fixtures."""

from __future__ import annotations

import copy
import json
import re
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path

import httpx
import jwt

def make_server(**overrides):
    """An AmsServer for tests (fake URL, the fixture app)."""
    from ams.server import AmsServer

    values = {"name": "main", "url": "http://ams.test:5080", "apps": ("WebRTCAppEE",)}
    values.update(overrides)
    return AmsServer(**values)


FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ams"
LIST_CAP = 250  # DataStore.MAX_ITEM_IN_ONE_LIST


def fixture(name: str) -> dict:
    """Load one recorded-shape fixture envelope (ams_version, request, status, headers, body)."""
    return json.loads((FIXTURES / name).read_text())


def _tuple(version: str) -> tuple[int, ...]:
    """'2.8.2' -> (2, 8, 2)."""
    return tuple(int(p) for p in version.split(".")[:3])


class FakeAms:
    """Answers the AMS REST paths the client uses, with version-dependent shapes and behaviours."""

    def __init__(self, version: str = "2.8.2", records=(), conference_rooms=(), now: float = 1709200305.0,
                 jwt_secret: str | None = None, app: str = "WebRTCAppEE", cap: int = LIST_CAP):
        self.version = version
        self.records = {r["streamId"]: r for r in copy.deepcopy(list(records))}
        self.conference_rooms = {r["roomId"]: r for r in copy.deepcopy(list(conference_rooms))}
        self.now = now
        self.jwt_secret = jwt_secret
        self.apps = {app}
        self.cap = cap
        self.requests: list[httpx.Request] = []
        self.faults: list[tuple[re.Pattern, object]] = []
        self.version_body: object = {"versionName": version, "versionType": "Enterprise Edition", "buildNumber": "1"}

    @classmethod
    def from_fixtures(cls, version: str, **kwargs) -> FakeAms:
        """The recorded scenario of one version (2.8.2 or 3.0.0)."""
        listing = fixture(f"v{version}_broadcasts_list.json")
        rooms = fixture("v2.8.2_conference_rooms_list.json")["body"] if version.startswith("2.8") else ()
        date = listing["headers"]["Date"]
        fake = cls(version, listing["body"], rooms, now=parsedate_to_datetime(date).timestamp(), **kwargs)
        fake.version_body = fixture(f"v{version}_version.json")["body"]
        return fake

    def transport(self) -> httpx.MockTransport:
        """An httpx transport backed by this fake."""
        return httpx.MockTransport(self.handle)

    def fail(self, path_regex: str, response) -> None:
        """Make matching requests answer `response` (an httpx.Response, bytes body, or an exception)."""
        self.faults.append((re.compile(path_regex), response))

    def paths(self, method: str = "GET") -> list[str]:
        """Paths requested with `method`, in order."""
        return [r.url.path for r in self.requests if r.method == method]

    def handle(self, request: httpx.Request) -> httpx.Response:
        """Route one request."""
        self.requests.append(request)
        for pattern, response in self.faults:
            if pattern.search(request.url.path):
                if isinstance(response, Exception):
                    raise response
                if isinstance(response, bytes):
                    return self._reply(200, content=response)
                return response
        if not self._authorized(request):
            return self._reply(403, content=b"<html><body>Invalid App JWT Token</body></html>")
        match = re.fullmatch(r"/([^/]+)/rest/v2/(.*)", request.url.path)
        if match is None or match.group(1) not in self.apps:
            return self._reply(404, content=b"<html>Not Found</html>")
        return self._route(request, match.group(2))

    def _v(self, *at_least: int) -> bool:
        return _tuple(self.version) >= at_least

    def _reply(self, status: int, body=None, content: bytes | None = None) -> httpx.Response:
        headers = {"Date": formatdate(self.now, usegmt=True)}
        if content is None and body is not None:
            content = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        return httpx.Response(status, headers=headers, content=content or b"")

    def _authorized(self, request: httpx.Request) -> bool:
        """JWT filter: raw token before 2.12, optional 'Bearer ' from 2.12; exp checked on AMS's clock."""
        if self.jwt_secret is None:
            return True
        value = request.headers.get("authorization", "")
        if self._v(2, 12) and value[:7].lower() == "bearer ":
            value = value[7:]
        try:
            claims = jwt.decode(value, self.jwt_secret, algorithms=["HS256"], options={"verify_exp": False})
        except jwt.PyJWTError:
            return False
        return "exp" not in claims or claims["exp"] > self.now

    def _route(self, request: httpx.Request, rest: str) -> httpx.Response:
        method = request.method
        if rest == "version" and method == "GET":
            return self._reply(200, self.version_body)
        if not rest.startswith("broadcasts"):
            return self._reply(404, content=b"")
        rest = rest[len("broadcasts"):].lstrip("/")
        parts = [httpx.URL("/" + p).path.lstrip("/") for p in rest.split("/")] if rest else []
        for handler in (self._read, self._rooms, self._write):
            response = handler(method, parts, request)
            if response is not None:
                return response
        return self._reply(404, content=b"")

    def _read(self, method, parts, request):
        if method != "GET":
            return None
        records = list(self.records.values())
        if parts == ["count"]:
            return self._reply(200, {"number": len(records)})
        if len(parts) == 3 and parts[0] == "list":
            offset, size = int(parts[1]), min(int(parts[2]), self.cap)
            return self._reply(200, records[max(offset, 0):max(offset, 0) + size])
        if len(parts) == 4 and parts[1] == "subtracks" and self._v(3):
            if parts[0] not in self.records:
                return self._reply(404, _result(False, f"Broadcast not found with id: {parts[0]}"))
            subs = [r for r in records if r.get("mainTrackStreamId") == parts[0]]
            return self._reply(200, subs[int(parts[2]):int(parts[2]) + int(parts[3])])
        if len(parts) == 1 and parts[0] in self.records:
            return self._reply(200, self.records[parts[0]])
        return None

    def _rooms(self, method, parts, request):
        if not parts or parts[0] != "conference-rooms" or self._v(3):
            return None
        if method == "GET" and len(parts) == 4 and parts[1] == "list":
            rooms = list(self.conference_rooms.values())
            offset, size = int(parts[2]), min(int(parts[3]), self.cap)
            return self._reply(200, rooms[offset:offset + size])
        if method == "GET" and len(parts) == 2:
            room = self.conference_rooms.get(parts[1])
            return self._reply(200, room) if room else self._reply(404, content=b"")
        if method == "DELETE" and len(parts) == 3:
            room = self.conference_rooms.get(parts[1])
            ok = room is not None and parts[2] in room["roomStreamList"]
            if ok:
                room["roomStreamList"].remove(parts[2])
            return self._reply(200, _result(ok))
        return None

    def _write(self, method, parts, request):
        if method == "POST" and len(parts) == 2 and parts[1] == "stop":
            record = self.records.get(parts[0])
            return self._reply(200, _result(bool(record) and record["status"] == "broadcasting"))
        if method == "DELETE" and len(parts) == 2 and parts[1] == "subtrack":
            return self._reply(200, self._remove_subtrack(parts[0], request.url.params.get("id")))
        if method == "DELETE" and len(parts) == 1:
            return self._reply(200, self._delete(parts[0], request.url.params.get("deleteSubtracks")))
        if method == "PUT" and len(parts) == 1:
            return self._reply(200, self._put(parts[0], json.loads(request.content)))
        return None

    def _remove_subtrack(self, main_id, sub_id):
        sub, main = self.records.get(sub_id), self.records.get(main_id)
        if sub is None or main is None:
            return _result(False, f"There is no stream with id:{sub_id}")
        if sub.get("mainTrackStreamId") == main_id:
            sub["mainTrackStreamId"] = ""
        if "subTrackStreamIds" in main and sub_id in main["subTrackStreamIds"]:
            main["subTrackStreamIds"].remove(sub_id)
        return _result(True)

    def _delete(self, stream_id, delete_subtracks):
        if stream_id not in self.records:
            return _result(False, None)
        if self._v(2, 13) and delete_subtracks != "false":
            for sub in [r for r in self.records.values() if r.get("mainTrackStreamId") == stream_id]:
                del self.records[sub["streamId"]]
        del self.records[stream_id]
        return _result(True, "broadcast is deleted and stopped successfully")

    def _put(self, stream_id, body):
        record = self.records.get(stream_id)
        if record is None:
            return _result(False)
        if self._v(2, 10, 1):
            record.update(body)
        else:  # v2.8.2 copies these from the request object, present or not
            for key in ("subTrackStreamIds", "receivedBytes", "bitrate", "userAgent", "updateTime", "metaData"):
                record[key] = body.get(key)
            record.update(body)
        return _result(True)


def _result(success: bool, message: str | None = None) -> dict:
    """AMS Result body."""
    return {"success": success, "message": message, "dataId": None, "errorId": 0}


def make_records(count: int, version: str = "2.8.2", rooms: int = 0, now_ms: int = 1709200305000,
                 status: str = "broadcasting") -> list[dict]:
    """count participant records spread over `rooms` rooms (plus the room main tracks), shaped like the fixture."""
    template = fixture(f"v{version}_broadcasts_list.json")["body"][1]
    records = []
    for i in range(rooms):
        main = copy.deepcopy(template)
        main.update(streamId=f"room{i}", name=f"room{i}", mainTrackStreamId=None, updateTime=now_ms - 600000)
        if "virtual" in main:
            main["virtual"] = True
        records.append(main)
    for i in range(count):
        r = copy.deepcopy(template)
        room = f"room{i % rooms}" if rooms else None
        r.update(streamId=f"s{i:06d}", name=f"P{i}", status=status, mainTrackStreamId=room,
                 updateTime=now_ms - 2000)
        records.append(r)
        if room and "subTrackStreamIds" in records[i % rooms]:
            records[i % rooms]["subTrackStreamIds"].append(r["streamId"])
    return records
