"""A small fake AMS for a real browser: it serves a conference page (the real WebRTCAdaptor and the
client kit) and plays AMS's side of a room over the adaptor's WebSocket messages, with one aiortc
audio track per participant. Each participant talks, stays muted (silence is still packets), or
drops without closing (its packets stop, nothing is signalled) and may come back.

Everything listens on and talks to 127.0.0.1 only: aiortc offers only a loopback candidate, and
the browser's candidates on other addresses are not used.
"""

from __future__ import annotations

import asyncio
import json
import math
import mimetypes
import os
import shutil
import struct
import tempfile
import threading
import time
from fractions import Fraction
from pathlib import Path

import aioice.ice
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack
from aiortc.sdp import candidate_from_sdp
from av import AudioFrame
from websockets.asyncio.server import serve
from websockets.datastructures import Headers
from websockets.http11 import Response

ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "client"
PAGE = Path(__file__).resolve().parent / "page.html"
ADAPTOR = CLIENT / "node_modules" / "webrtc-adaptor-2-16" / "dist" / "es"
CHROMIUM = os.environ.get("CHROMIUM_BIN") or shutil.which("chromium") or "/usr/bin/chromium"

# Host candidates on loopback only (aioice skips 127.0.0.1 by default): nothing leaves the machine.
aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"] if use_ipv4 else []

SAMPLE_RATE = 48000
FRAME = 960  # 20 ms, Opus's usual frame
TONE = struct.pack(
    f"<{FRAME}h", *(int(8000 * math.sin(2 * math.pi * 440 * i / SAMPLE_RATE)) for i in range(FRAME))
)
SILENCE = bytes(2 * FRAME)


def missing() -> str | None:
    """Why the browser test cannot run here, or None."""
    if not Path(CHROMIUM).exists():
        return f"no Chromium at {CHROMIUM} (apt-get install chromium, or `make client-deps`)"
    if not (ADAPTOR / "webrtc_adaptor.js").exists():
        return "client/node_modules is missing (npm ci in client/, or `make client-deps`)"
    return None


class Voice(MediaStreamTrack):
    """A participant's microphone: a tone when talking, silence when muted, nothing when dropped.
    "dtx" is a muted browser with Opus DTX: one silence packet every 400 ms."""

    kind = "audio"

    def __init__(self, mode: str = "talking"):
        super().__init__()
        self.muted = mode in ("muted", "dtx")
        self.step = 20 if mode == "dtx" else 1  # frames per packet sent
        self.live = asyncio.Event()
        self.live.set()
        self._start: float | None = None
        self._pts = 0

    async def recv(self) -> AudioFrame:
        if not self.live.is_set():
            await self.live.wait()
            self._start = None  # pace again from now on
        if self._start is None:
            self._start = time.monotonic() - self._pts / SAMPLE_RATE
        delay = self._start + self._pts / SAMPLE_RATE - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        frame = AudioFrame(format="s16", layout="mono", samples=FRAME)
        frame.planes[0].update(SILENCE if self.muted else TONE)
        frame.sample_rate = SAMPLE_RATE
        frame.pts = self._pts
        frame.time_base = Fraction(1, SAMPLE_RATE)
        self._pts += FRAME * self.step
        return frame


class FakeAms:
    """Serves the page and one room on 127.0.0.1 from a thread of its own."""

    def __init__(self, room: str, participants: dict[str, str]):
        """`participants`: id -> "talking", "muted" or "dtx" (see Voice)."""
        self.room = room
        self.voices = {pid: Voice(mode) for pid, mode in participants.items()}
        self.loop = asyncio.new_event_loop()
        self.pcs: set[RTCPeerConnection] = set()
        self.port = 0
        self._ready = threading.Event()
        self._stop: asyncio.Future | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    # --- control, from the test's thread ---

    def start(self) -> "FakeAms":
        self._thread.start()
        if not self._ready.wait(20):
            raise RuntimeError("fake AMS did not start")
        return self

    def stop(self) -> None:
        if self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set_result, None)
        self._thread.join(20)

    def drop(self, pid: str) -> float:
        """Stop the participant's packets (network gone, nothing closed); returns the wall time, ms."""
        return self._call(self.voices[pid].live.clear)

    def restore(self, pid: str) -> float:
        return self._call(self.voices[pid].live.set)

    def _call(self, fn) -> float:
        done = threading.Event()
        stamp = []

        def run():
            fn()
            stamp.append(time.time() * 1000)
            done.set()

        self.loop.call_soon_threadsafe(run)
        if not done.wait(5):
            raise RuntimeError("fake AMS loop is stuck")
        return stamp[0]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    # --- the server ---

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._main())
        self.loop.close()

    async def _main(self) -> None:
        self._stop = self.loop.create_future()
        async with serve(self._signalling, "127.0.0.1", 0, process_request=self._http) as server:
            self.port = server.sockets[0].getsockname()[1]
            self._ready.set()
            await self._stop
        for pc in list(self.pcs):
            await pc.close()

    def _http(self, connection, request):
        """Anything but the WebSocket is a file: the page, the kit, the adaptor."""
        path = request.path.split("?", 1)[0]
        if path == "/websocket":
            return None
        if path == "/":
            file = PAGE
        elif path.startswith("/client/"):
            file = CLIENT / path.removeprefix("/client/")
        elif path.startswith("/adaptor/"):
            file = ADAPTOR / path.removeprefix("/adaptor/")
        else:
            file = None
        if file is None or ".." in path or not file.is_file():
            return connection.respond(404, "not found\n")
        kind = "text/javascript" if file.suffix == ".js" else (mimetypes.guess_type(file.name)[0] or "text/plain")
        body = file.read_bytes()
        headers = Headers([("Content-Type", kind), ("Content-Length", str(len(body))), ("Cache-Control", "no-store")])
        return Response(200, "OK", headers, body)

    async def _signalling(self, ws) -> None:
        pcs: dict[str, RTCPeerConnection] = {}

        async def send(obj):
            await ws.send(json.dumps(obj))

        try:
            async for text in ws:
                msg = json.loads(text)
                command = msg.get("command")
                stream_id = msg.get("streamId")
                if command == "ping":
                    await send({"command": "pong"})
                elif command == "play" and stream_id == self.room:
                    if stream_id in pcs:
                        await self._close(pcs.pop(stream_id))
                    pcs[stream_id] = await self._offer(stream_id, send)
                elif command == "takeConfiguration" and stream_id in pcs and msg.get("type") == "answer":
                    await pcs[stream_id].setRemoteDescription(RTCSessionDescription(msg["sdp"], "answer"))
                elif command == "takeCandidate" and stream_id in pcs:
                    await self._candidate(pcs[stream_id], msg)
                elif command == "stop" and stream_id in pcs:
                    await self._close(pcs.pop(stream_id))
                elif command == "play":
                    await send({"command": "error", "definition": "no_stream_exist", "streamId": stream_id})
        finally:
            for pc in pcs.values():
                await self._close(pc)

    async def _offer(self, stream_id: str, send) -> RTCPeerConnection:
        # No STUN server: aiortc would otherwise ask a public one.
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.pcs.add(pc)
        for voice in self.voices.values():
            pc.addTransceiver(voice, direction="sendonly")
        pc.createDataChannel(stream_id)  # AMS opens the play connection's data channel
        await pc.setLocalDescription(await pc.createOffer())
        # AMS maps each m-line to its participant as "ARDAMSa<streamId>" (the adaptor's trackId).
        ids = list(self.voices)
        mapping = {t.mid: f"ARDAMSa{ids[i]}" for i, t in enumerate(pc.getTransceivers())}
        await send({
            "command": "takeConfiguration", "streamId": stream_id, "type": "offer",
            "sdp": pc.localDescription.sdp, "idMapping": mapping,
        })
        return pc

    async def _candidate(self, pc: RTCPeerConnection, msg: dict) -> None:
        text = (msg.get("candidate") or "").removeprefix("candidate:")
        if not text:
            return
        candidate = candidate_from_sdp(text)
        if candidate.ip != "127.0.0.1":
            return  # loopback only
        candidate.sdpMid = msg.get("id")
        candidate.sdpMLineIndex = msg.get("label")
        await pc.addIceCandidate(candidate)

    async def _close(self, pc: RTCPeerConnection) -> None:
        self.pcs.discard(pc)
        await pc.close()


class Browser:
    """Headless Chromium on a fresh profile, driven through Playwright; loopback only."""

    ARGS = [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--autoplay-policy=no-user-gesture-required",
        # Gather a loopback ICE candidate, under its real address (not an mDNS name).
        "--allow-loopback-in-peer-connection",
        "--disable-features=WebRtcHideLocalIpsWithMdns",
    ]

    def __enter__(self) -> "Browser":
        from playwright.sync_api import sync_playwright

        self._profile = tempfile.mkdtemp(prefix="chromium-profile-")
        self._pw = sync_playwright().start()
        self.context = self._pw.chromium.launch_persistent_context(
            self._profile, executable_path=CHROMIUM, headless=True, args=self.ARGS, timeout=60000,
        )
        self.page = self.context.new_page()
        self.page.set_default_timeout(20000)
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.context.close()
        finally:
            self._pw.stop()
            shutil.rmtree(self._profile, ignore_errors=True)

    def events(self) -> list[dict]:
        return self.page.evaluate("window.kitEvents.slice()")

    def wait_for(self, predicate, timeout: float, step: float = 0.05) -> list[dict]:
        """Poll the page's event log until `predicate(events)` holds; bounded by `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            events = self.events()
            if predicate(events) or time.monotonic() > deadline:
                return events
            time.sleep(step)
