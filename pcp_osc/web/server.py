"""The web dashboard server: aiohttp on its own thread and its own event loop.

The daemon's threads only ever hand this part a reference (the latest live frame
and faces) or schedule a callback on its loop; encoding previews, JSON and
network writes all happen here, so a slow browser never touches the cue path.

Routes
  GET  /                  the dashboard page
  GET  /camera            the browser camera page (a phone in the hall as the audience camera)
  GET  /static/...        page assets (served locally: no CDN)
  GET  /emotions.js       the emotions' names in order, from pcp_osc/emotions.py
  GET  /api/status        daemon.status() plus the dashboard's own counters
  GET  /api/events        server-sent events: cue, live, status, control, background
  GET  /api/preview.jpg   the latest frame with face boxes (?blur=0 shows faces)
  GET  /api/background.jpg the latest background
  POST /api/control       {"address": "/pcp/intent" | "intent", "args": [...]}  -> daemon.control
  POST /api/frame         one JPEG from the camera page -> daemon.browser_source.push

Every /api/ route needs the token when one is required (bound beyond loopback,
or web.token set): header ``X-PCP-Token`` or query ``?token=``.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import logging
import secrets
import ssl
import threading
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from ..config import parse_hostport
from ..emotions import EMOTIONS
from ..types import plain
from .preview import decode_frame, render_background, render_preview

log = logging.getLogger("pcp_osc.web")

STATIC = Path(__file__).with_name("static")
LIVE_PUSH_HZ = 5.0
STATUS_PUSH_S = 1.0
CLIENT_QUEUE_EVENTS = 256  # a browser this far behind is dropped (it reconnects and gets a fresh state)
KEEPALIVE_S = 15.0
CONTROL_NAMES = ("intent", "override", "release", "generate", "marker", "window", "blend", "ping")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class WebDashboard:
    """A daemon part: ``start()`` binds and serves on its own thread, ``stop()`` ends it."""

    def __init__(self, daemon: Any, web_cfg: Any, *, bind: str | None = None) -> None:
        self.daemon = daemon
        self.cfg = web_cfg
        self.host, self.port = parse_hostport(bind or web_cfg.bind)
        self.token_required = bool(web_cfg.token) or not is_loopback(self.host)
        self.token = web_cfg.token or (secrets.token_urlsafe(12) if self.token_required else "")
        self.ssl_context = self._ssl_context()
        self.scheme = "https" if self.ssl_context else "http"
        self.counters = {"frames_received": 0, "frames_refused": 0, "controls": 0, "previews": 0, "clients": 0, "unauthorised": 0}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._clients: set[asyncio.Queue] = set()
        self._latest_live: tuple | None = None  # (mood, faces, frame), set by the daemon's perception thread
        self._latest_bg: Any = None
        self._preview_cache: tuple[Any, bytes] | None = None
        self._bg_cache: tuple[Any, bytes] | None = None
        self._subscribed = False
        palette = getattr(getattr(daemon, "config", None), "palette", None)
        self.colours = {e: getattr(palette, e) for e in EMOTIONS} if palette is not None else {}

    # ------------------------------------------------------------------ life cycle

    def _ssl_context(self) -> ssl.SSLContext | None:
        cert, key = self.cfg.tls_cert, self.cfg.tls_key
        if not cert and not key:
            return None
        if not (cert and key):
            raise ValueError("web.tls_cert and web.tls_key go together: give both PEM files, or neither for plain HTTP")
        for what, p in (("web.tls_cert", cert), ("web.tls_key", key)):
            if not Path(p).is_file():
                raise ValueError(f"{what} = {p!r} does not exist")
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            ctx.load_cert_chain(cert, key)
        except (ssl.SSLError, OSError) as e:
            raise ValueError(f"web.tls_cert/web.tls_key cannot be loaded ({cert}, {key}): {e}") from None
        return ctx

    @property
    def url(self) -> str:
        host = self.host if self.host not in ("0.0.0.0", "::") else "127.0.0.1"
        host = f"[{host}]" if ":" in host else host
        return f"{self.scheme}://{host}:{self.port}/"

    def url_with_token(self, path: str = "") -> str:
        return self.url + path + (f"?token={self.token}" if self.token_required else "")

    def start(self) -> None:
        if not self._subscribed:
            d = self.daemon
            d.subscribe("cue", self._on_cue)
            d.subscribe("live", self._on_live)
            d.subscribe("control", self._on_control)
            d.subscribe("background", self._on_background)
            self._subscribed = True
        self._thread = threading.Thread(target=self._serve, name="pcp-web", daemon=True)
        self._thread.start()
        self._ready.wait(15.0)
        if self._error is not None:
            raise OSError(f"the web dashboard cannot listen on {self.host}:{self.port}: {self._error}") from self._error
        msg = f"dashboard: {self.url_with_token()}   browser camera: {self.url_with_token('camera')}"
        if self.token_required:
            msg += f"   (control token: {self.token})"
        print(msg, flush=True)
        log.info(msg)
        if self.scheme == "http" and not is_loopback(self.host):
            log.warning("the dashboard is plain HTTP: a phone's browser will not open its camera on %s "
                        "(set web.tls_cert/web.tls_key or put an HTTPS proxy in front; see README)", self.url)

    def stop(self) -> None:
        loop = self._loop
        if loop is None or not loop.is_running():
            return
        fut = asyncio.run_coroutine_threadsafe(self._shutdown(), loop)
        try:
            fut.result(timeout=10.0)
        except Exception as e:  # the show is ending; a stuck browser must not hold it
            log.warning("web dashboard did not stop cleanly: %s", e)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread:
            self._thread.join(timeout=5.0)
        self._loop = None

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._startup())
        except BaseException as e:
            self._error = e
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.close()

    async def _startup(self) -> None:
        app = web.Application(client_max_size=self.cfg.max_frame_bytes, middlewares=[self._auth])
        app.router.add_get("/", self._page("index.html"))
        app.router.add_get("/camera", self._page("camera.html"))
        app.router.add_get("/emotions.js", self._emotions_js)
        app.router.add_static("/static/", STATIC, show_index=False)
        app.router.add_get("/api/status", self._status)
        app.router.add_get("/api/events", self._events)
        app.router.add_get("/api/preview.jpg", self._preview)
        app.router.add_get("/api/background.jpg", self._background)
        app.router.add_post("/api/control", self._control)
        app.router.add_post("/api/frame", self._frame)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, ssl_context=self.ssl_context)
        await site.start()
        sockets = getattr(site._server, "sockets", None) or []
        if sockets:
            self.port = sockets[0].getsockname()[1]  # port 0: the one the OS picked
        self._tasks = [asyncio.ensure_future(self._push_live()), asyncio.ensure_future(self._push_status())]

    async def _shutdown(self) -> None:
        for t in getattr(self, "_tasks", []):
            t.cancel()
        for q in list(self._clients):
            self._offer(q, None)
        if self._runner is not None:
            await self._runner.cleanup()

    # ------------------------------------------------------------------ daemon events (daemon threads: return at once)

    def _on_cue(self, cue: Any) -> None:
        sent_ms = time.time() * 1000.0
        self._call(self._publish_cue, cue, sent_ms)

    def _on_live(self, mood: Any, faces: Any, frame: Any) -> None:
        self._latest_live = (mood, faces, frame)  # one reference swap; encoding happens when a browser asks

    def _on_control(self, event: Any) -> None:
        self._call(self._broadcast, "control", {
            "address": event.address, "args": plain(list(event.args)), "sender": event.sender,
            "accepted": bool(event.accepted), "message": event.message, "wall_time": event.wall_time,
        })

    def _on_background(self, bg: Any) -> None:
        self._latest_bg = bg
        self._call(self._broadcast, "background", {
            "id": int(bg.id), "cue_id": int(bg.cue_id), "prompt": bg.prompt, "seed": int(bg.seed),
            "seconds": round(float(bg.seconds), 2), "generator": bg.generator, "note": getattr(bg, "note", ""),
        })

    def _call(self, fn, *args) -> None:
        loop = self._loop
        if loop is not None and loop.is_running():
            loop.call_soon_threadsafe(fn, *args)

    # ------------------------------------------------------------------ pushing to browsers (loop thread)

    def _offer(self, q: asyncio.Queue, item: Any) -> None:
        try:
            q.put_nowait(item)
        except asyncio.QueueFull:  # a stalled browser: drop it rather than grow without bound
            self._clients.discard(q)

    def _broadcast(self, event: str, data: dict) -> None:
        if not self._clients:
            return
        frame = f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()
        for q in list(self._clients):
            self._offer(q, frame)

    def _publish_cue(self, cue: Any, sent_ms: float) -> None:
        self._broadcast("cue", {**cue.to_json(), "sent_ms": sent_ms})

    async def _push_live(self) -> None:
        last = None
        while True:
            await asyncio.sleep(1.0 / LIVE_PUSH_HZ)
            latest = self._latest_live
            if latest is None or latest is last:
                continue
            last = latest
            mood, faces, frame = latest
            self._broadcast("live", {
                "faces": len(faces), "frame": int(frame.index), "emotion": EMOTIONS[int(mood.emotion)],
                "shares": {e: round(float(v), 4) for e, v in zip(EMOTIONS, mood.distribution)},
                "valence": round(float(mood.valence), 3), "arousal": round(float(mood.arousal), 3),
            })

    async def _push_status(self) -> None:
        while True:
            await asyncio.sleep(STATUS_PUSH_S)
            if self._clients:
                self._broadcast("status", self._status_json())

    def _status_json(self) -> dict:
        try:
            st = dict(self.daemon.status())
        except Exception as e:  # status must never take the dashboard down
            st = {"status": f"status unavailable: {e}"}
        st["web"] = dict(self.counters, blur_default=bool(self.cfg.blur_faces),
                         browser_camera=getattr(self.daemon, "browser_source", None) is not None,
                         token_required=self.token_required)
        st["colours"] = self.colours
        return st

    # ------------------------------------------------------------------ HTTP

    @web.middleware
    async def _auth(self, request: web.Request, handler):
        if self.token_required and request.path.startswith("/api/"):
            given = request.headers.get("X-PCP-Token") or request.query.get("token", "")
            if not hmac.compare_digest(given.encode(), self.token.encode()):
                self.counters["unauthorised"] += 1
                return web.json_response(
                    {"error": "this dashboard needs its control token: open the address printed when pcp-osc started "
                              "(it ends in ?token=...)"}, status=401)
        return await handler(request)

    def _page(self, name: str):
        async def handler(request: web.Request) -> web.StreamResponse:
            return web.FileResponse(STATIC / name, headers={"Cache-Control": "no-cache"})
        return handler

    async def _emotions_js(self, request: web.Request) -> web.Response:
        """The emotions' names and order for the pages, from pcp_osc/emotions.py (the one list)."""
        return web.Response(text=f"const EMOTIONS = {json.dumps(list(EMOTIONS))};\n", content_type="text/javascript",
                            headers={"Cache-Control": "no-cache"})

    async def _status(self, request: web.Request) -> web.Response:
        return web.json_response(self._status_json())

    async def _events(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                           "X-Accel-Buffering": "no"})
        await resp.prepare(request)
        q: asyncio.Queue = asyncio.Queue(maxsize=CLIENT_QUEUE_EVENTS)
        self._clients.add(q)
        self.counters["clients"] = len(self._clients)
        try:
            await resp.write(f"retry: 1000\nevent: status\ndata: {json.dumps(self._status_json())}\n\n".encode())
            while q in self._clients:
                try:
                    item = await asyncio.wait_for(q.get(), KEEPALIVE_S)
                except asyncio.TimeoutError:
                    item = b": keepalive\n\n"
                if item is None:
                    break
                await resp.write(item)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self._clients.discard(q)
            self.counters["clients"] = len(self._clients)
        return resp

    async def _preview(self, request: web.Request) -> web.Response:
        latest = self._latest_live
        if latest is None:
            return web.Response(status=204)
        blur = request.query.get("blur", "1" if self.cfg.blur_faces else "0") not in ("0", "false", "off")
        key = (latest[2].index, id(latest[1]), blur)
        cached = self._preview_cache
        if cached is not None and cached[0] == key:
            data = cached[1]
        else:
            _, faces, frame = latest
            loop = asyncio.get_running_loop()
            data = await loop.run_in_executor(None, render_preview, frame.image, faces, self.colours, blur)
            self._preview_cache = (key, data)
        self.counters["previews"] += 1
        return web.Response(body=data, content_type="image/jpeg", headers={"Cache-Control": "no-store"})

    async def _background(self, request: web.Request) -> web.Response:
        bg = self._latest_bg
        if bg is None:
            return web.Response(status=204)
        cached = self._bg_cache
        if cached is not None and cached[0] is bg:
            data = cached[1]
        else:
            data = await asyncio.get_running_loop().run_in_executor(None, render_background, bg.image)
            self._bg_cache = (bg, data)
        return web.Response(body=data, content_type="image/jpeg", headers={"Cache-Control": "no-store"})

    async def _control(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return web.json_response({"accepted": False, "message": 'send JSON like {"address": "/pcp/intent", "args": ["joy"]}'},
                                     status=400)
        if not isinstance(body, dict) or not isinstance(body.get("address"), str) or not isinstance(body.get("args", []), list):
            return web.json_response({"accepted": False, "message": 'send JSON like {"address": "/pcp/intent", "args": ["joy"]}: '
                                      "address a string, args a list"}, status=400)
        prefix = getattr(self.daemon, "prefix", "/pcp")
        address = body["address"]
        if not address.startswith("/"):
            address = f"{prefix}/{address}"
        sender = f"web:{request.remote or '?'}"
        loop = asyncio.get_running_loop()
        event = await loop.run_in_executor(None, self.daemon.control, address, list(body.get("args", [])), sender)
        self.counters["controls"] += 1
        return web.json_response({"accepted": bool(event.accepted), "message": event.message},
                                 status=200 if event.accepted else 422)

    async def _frame(self, request: web.Request) -> web.Response:
        source = getattr(self.daemon, "browser_source", None)
        if source is None:
            self.counters["frames_refused"] += 1
            return web.json_response(
                {"error": "this show's camera is not the browser: start pcp-osc with --source browser "
                          "(or capture.source = \"browser\") to use this page as the audience camera"}, status=409)
        try:
            data = await request.read()
        except web.HTTPRequestEntityTooLarge:
            self.counters["frames_refused"] += 1
            return web.json_response({"error": f"the frame is larger than web.max_frame_bytes = {self.cfg.max_frame_bytes}; "
                                               "lower the camera page's resolution"}, status=413)
        loop = asyncio.get_running_loop()
        try:
            image = await loop.run_in_executor(None, decode_frame, data)
        except ValueError as e:
            self.counters["frames_refused"] += 1
            return web.json_response({"error": str(e)}, status=400)
        ok = source.push(image)
        if not ok:
            self.counters["frames_refused"] += 1
            return web.json_response({"error": "the frame decoded but is not a colour image"}, status=400)
        self.counters["frames_received"] += 1
        return web.json_response({"ok": True, "frames": self.counters["frames_received"],
                                  "width": int(image.shape[1]), "height": int(image.shape[0])})
