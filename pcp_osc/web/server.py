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
                          (the audience region drawn on the preview: "region", x y pairs)
  POST /api/frame         one JPEG from the camera page -> daemon.browser_source.push

The dashboard is the operator's alone (see docs/OPERATOR.md, "Who can use the dashboard"):
  - every /api/ call needs the token (header ``X-PCP-Token`` or query ``?token=``), on
    loopback too, unless ``web.require_token = false`` (allowed on loopback only; then
    ``osc.allowed_senders`` applies to /api/control);
  - every request's ``Host`` must be this dashboard's own address, localhost, a loopback
    address or a name in ``web.hosts`` (DNS rebinding: a page on evil.example whose name
    now points at 127.0.0.1 still says ``Host: evil.example``);
  - a request with an ``Origin`` must come from this dashboard's own origin, and an API
    request a browser marks as cross-site (``Sec-Fetch-Site``) is refused;
  - /api/control takes only ``application/json`` (a cross-site form or ``text/plain``
    fetch cannot send it without a CORS preflight, which this server never grants),
    /api/frame only ``image/jpeg`` or ``image/png``;
  - the preview blurs faces when ``web.blur_faces`` is on, whatever the page asks,
    unless ``web.allow_unblurred``;
  - a posted frame's size is read from its header and refused above
    ``web.max_frame_pixels`` before it is decoded; at most ``web.max_decodes`` frames
    are read and decoded at once; bodies are bounded; a malformed body is a 4xx naming
    what was wrong.
"""

from __future__ import annotations

import asyncio
import collections
import errno
import hmac
import ipaddress
import json
import logging
import math
import secrets
import socket
import ssl
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ..capture import image_problem
from ..config import parse_hostport
from ..emotions import EMOTIONS
from ..console import shown
from ..control import AllowList
from ..parts import BasePart
from ..perception.region import MAX_REGION_POINTS
from ..types import Background, ControlEvent, Cue, LiveSample
from .preview import FrameTooLarge, decode_frame, render_background, render_preview

if TYPE_CHECKING:
    from ..daemon import Daemon

log = logging.getLogger("pcp_osc.web")

STATIC = Path(__file__).with_name("static")
LIVE_PUSH_HZ = 5.0
STATUS_PUSH_S = 1.0
CLIENT_QUEUE_EVENTS = 256  # a browser this far behind is dropped (it reconnects and gets a fresh state)
RECENT_CONTROLS = 50  # show-control events a newly opened (or reloaded) dashboard gets in its log
KEEPALIVE_S = 15.0
MAX_CONTROL_BYTES = 16_384  # a control is a few dozen bytes of JSON
MAX_CONTROL_ARGS = 16
MAX_CONTROL_TEXT = 1_000  # characters in one string argument (a marker's name)
MAX_ADDRESS_CHARS = 200
CONTROL_EXAMPLE = 'send JSON like {"address": "/pcp/intent", "args": ["joy"]}'
REGION_EXAMPLE = 'send JSON like {"address": "region", "args": [0, 0.4, 1, 0.4, 1, 1, 0, 1]} (x y pairs; no args: the whole picture)'
FRAME_TYPES = ("image/jpeg", "image/png")
SECURITY_HEADERS = {
    # no other site may frame the dashboard (a framed page can trick the operator into clicks)
    "Content-Security-Policy": "frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    # the token travels in the page's own URLs: never in a Referer
    "Referrer-Policy": "no-referrer",
}


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def lan_addresses() -> list[str]:
    """This machine's IPv4 addresses a phone on the show network could use (not loopback, not
    link-local), from the interfaces (nothing is sent)."""
    try:
        import psutil

        found = {a.address for addrs in psutil.net_if_addrs().values() for a in addrs
                 if a.family == socket.AF_INET}
    except Exception:
        return []
    out = []
    for a in sorted(found):
        try:
            ip = ipaddress.ip_address(a)
        except ValueError:
            continue
        if not (ip.is_loopback or ip.is_link_local or ip.is_unspecified):
            out.append(a)
    return out

def _sse(event: str, data: dict) -> bytes:
    """One server-sent event."""
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()

class WebDashboard(BasePart):
    """A part of the show: ``start()`` binds and serves on its own thread, ``stop()`` ends it;
    the hooks hand cues, live samples, control events and backgrounds to the browsers."""

    role = "web"

    def __init__(self, daemon: Daemon, web_cfg: Any, *, bind: str | None = None) -> None:
        self.daemon = daemon
        self.cfg = web_cfg
        self.host, self.port = parse_hostport(bind or web_cfg.bind)
        require = bool(getattr(web_cfg, "require_token", True))
        if not require and not is_loopback(self.host):
            raise ValueError(f"web.require_token = false is allowed only on loopback, not on {self.host}: "
                             "anyone on the show network could drive the show")
        self.token_required = require or bool(web_cfg.token)
        self.token = web_cfg.token or (secrets.token_urlsafe(16) if self.token_required else "")
        self.names = {"localhost", self.host.lower()} | {h.strip().lower().rstrip(".") for h in getattr(web_cfg, "hosts", [])}
        self.any_address = self.host in ("0.0.0.0", "::", "")
        self.allow_list = self._allow_list()
        self.blur_enforced = bool(web_cfg.blur_faces) and not bool(getattr(web_cfg, "allow_unblurred", False))
        self._frames_busy = 0
        # the camera page whose frames the show takes: (its id, monotonic time of its last
        # frame, its address, when it started); another page waits until it is quiet
        self._camera: tuple[str, float, str, float] | None = None
        self.ssl_context = self._ssl_context()
        self.scheme = "https" if self.ssl_context else "http"
        self.counters = {"frames_received": 0, "frames_refused": 0, "controls": 0, "previews": 0, "clients": 0, "unauthorised": 0,
                         "requests_refused": 0}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._clients: set[asyncio.Queue] = set()
        self._latest_live: tuple | None = None  # (mood, faces, frame), set by the daemon's perception thread
        self._latest_bg: Any = None
        # the latest show-control events, so a dashboard opened mid-show (a reload, a second
        # machine) shows the log so far, not only what happens after it opened
        self._recent_controls: collections.deque[bytes] = collections.deque(maxlen=RECENT_CONTROLS)
        self._preview_cache: tuple[Any, bytes] | None = None
        self._bg_cache: tuple[Any, bytes] | None = None
        palette = daemon.config.palette
        self.colours = {e: getattr(palette, e) for e in EMOTIONS}

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
        self._thread = threading.Thread(target=self._serve, name="pcp-web", daemon=True)
        self._thread.start()
        self._ready.wait(15.0)
        if self._error is not None:
            e = self._error
            why = ("the port is taken; is another pcp-osc or program serving it? choose another with --web PORT or web.bind"
                   if isinstance(e, OSError) and e.errno == errno.EADDRINUSE else str(e))
            raise OSError(f"the web dashboard cannot listen on {self.host}:{self.port}: {why}") from e
        msg = f"dashboard: {self.url_with_token()}   browser camera: {self.url_with_token('camera')}"
        if self.token_required:
            msg += f"   (control token: {self.token})"
        if self.any_address:
            # bound to every interface: 127.0.0.1 is no use to a phone; name this machine's addresses
            for addr in lan_addresses():
                lan = self.url_with_token("camera").replace(self.url, f"{self.scheme}://{addr}:{self.port}/", 1)
                msg += f"\n  on the show network: {lan}"
        print(msg, flush=True)  # the address with its token: once, on standard output (not into log files)
        log.info("dashboard on %s (the address with its token is printed on standard output)", self.url)
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
        app = web.Application(client_max_size=self.cfg.max_frame_bytes, middlewares=[self._guard])
        app.on_response_prepare.append(self._security_headers)
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

    # ------------------------------------------------------------------ the part's hooks (daemon threads: return at once)

    def on_cue(self, cue: Cue) -> None:
        sent_ms = time.time() * 1000.0
        self._call(self._publish_cue, cue, sent_ms)

    def on_live(self, sample: LiveSample) -> None:
        # one reference swap; encoding happens when a browser asks
        self._latest_live = (sample.mood, sample.faces, sample.frame)

    def on_control(self, event: ControlEvent) -> None:
        self._call(self._remember_control, event.to_json())

    def _remember_control(self, data: dict) -> None:
        self._recent_controls.append(_sse("control", data))
        self._broadcast("control", data)

    def on_background(self, bg: Background) -> None:
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
        frame = _sse(event, data)
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
        st["web"] = dict(self.counters, blur_default=bool(self.cfg.blur_faces), blur_enforced=self.blur_enforced,
                         browser_camera=self.daemon.browser_source is not None,
                         token_required=self.token_required)
        st["colours"] = self.colours
        st["max_region_points"] = MAX_REGION_POINTS
        return st

    # ------------------------------------------------------------------ HTTP

    @web.middleware
    async def _guard(self, request: web.Request, handler):
        problem = self._foreign(request)
        if problem:
            self.counters["requests_refused"] += 1
            self._note_refused(request, problem)
            return web.json_response({"error": problem}, status=403)
        if self.token_required and request.path.startswith("/api/"):
            given = request.headers.get("X-PCP-Token") or request.query.get("token", "")
            if not hmac.compare_digest(given.encode(), self.token.encode()):
                self.counters["unauthorised"] += 1
                return web.json_response(
                    {"error": "this dashboard needs its control token: open the address printed when pcp-osc started "
                              "(it ends in ?token=...)"}, status=401)
        return await handler(request)

    async def _security_headers(self, request: web.Request, response: web.StreamResponse) -> None:
        for k, v in SECURITY_HEADERS.items():
            response.headers.setdefault(k, v)

    def _foreign(self, request: web.Request) -> str | None:
        """Why a request does not come from this dashboard's own page (or a tool on this
        machine), or None when it may go on."""
        host_header = request.headers.get("Host", "")
        host, port = _split_authority(host_header)
        if not host_header or not self._host_allowed(host):
            return (f"this dashboard answers to its own address ({self.url}), localhost and web.hosts, "
                    f"not to Host {host_header!r}; add the name to web.hosts if it is yours")
        origin = request.headers.get("Origin")
        if origin is not None:
            o_scheme, _, o_authority = origin.partition("://")
            o_host, o_port = _split_authority(o_authority)
            default = 443 if o_scheme == "https" else 80
            if origin == "null" or not o_authority or (o_host, o_port or default) != (host, port or default):
                return (f"a page from {origin} may not use this dashboard; only the dashboard's own page "
                        f"({o_scheme or self.scheme}://{host_header}) may")
        site = request.headers.get("Sec-Fetch-Site")
        if site is not None and request.path.startswith("/api/") and site not in ("same-origin", "none"):
            return f"a {site} request may not use this dashboard's API; only the dashboard's own page may"
        return None

    def _host_allowed(self, host: str) -> bool:
        if host in self.names:
            return True
        try:
            ip = ipaddress.ip_address(host.partition("%")[0])
        except ValueError:
            return False  # a name that is not ours: DNS rebinding or a misdirected request
        if ip.is_loopback:
            return True
        if self.any_address:
            # bound to every interface: any address of this machine reaches us. An address
            # literal cannot be a rebinding attack (the browser's origin is the address itself).
            return True
        try:
            return ip == ipaddress.ip_address(self.host)
        except ValueError:
            return False

    def _note_refused(self, request: web.Request, problem: str) -> None:
        now = time.monotonic()
        if now - getattr(self, "_last_refused_log", -1e9) >= 10.0:  # a hostile page may retry fast: one line per 10 s
            self._last_refused_log = now
            log.warning("dashboard refused %s %s from %s: %s", request.method, shown(request.path),
                        request.remote, shown(problem, backslashes=False))

    def _allow_list(self) -> AllowList:
        """osc.allowed_senders, for the page's controls when there is no token: the
        daemon's own list (resolved once at its start), so OSC and the page agree."""
        return self.daemon.allow_list

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
        recent = list(self._recent_controls)  # taken with the queue: an event comes once, here or through q
        self.counters["clients"] = len(self._clients)
        try:
            await resp.write(f"retry: 1000\nevent: status\ndata: {json.dumps(self._status_json())}\n\n".encode())
            for frame in recent:  # the log so far, oldest first (the page puts the newest on top)
                await resp.write(frame)
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
        asked = request.query.get("blur", "1" if self.cfg.blur_faces else "0") not in ("0", "false", "off")
        blur = asked or self.blur_enforced  # the page may ask for more privacy, never for less
        region = self.daemon.region  # the newest, as show control set it: outside it is dimmed
        key = (latest[2].index, id(latest[1]), blur, id(region))
        cached = self._preview_cache
        if cached is not None and cached[0] == key:
            data = cached[1]
        else:
            _, faces, frame = latest
            loop = asyncio.get_running_loop()
            data = await loop.run_in_executor(None, render_preview, frame.image, faces, self.colours, blur, region)
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
        def refuse(message: str, status: int = 400) -> web.Response:
            self.counters["requests_refused"] += 1
            return web.json_response({"accepted": False, "message": message}, status=status)

        ctype = request.content_type.lower()
        if ctype != "application/json":
            return refuse(f"/api/control takes Content-Type application/json, not {shown(ctype) or 'none'}; "
                          f"{CONTROL_EXAMPLE}", 415)
        if not self.token_required and not self.allow_list.allows(request.remote):
            return refuse(f"sender {request.remote} is not in osc.allowed_senders ({self.allow_list}); use the "
                          "dashboard's token (web.require_token) or add the address", 403)
        raw = await _read_body(request, MAX_CONTROL_BYTES)
        if raw is None:
            return refuse(f"a control is at most {MAX_CONTROL_BYTES} bytes of JSON; {CONTROL_EXAMPLE}", 413)
        try:
            body = json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant)
        except RecursionError:
            return refuse(f"the JSON is nested too deeply; {CONTROL_EXAMPLE}")
        except UnicodeDecodeError:
            return refuse(f"the body is not UTF-8 text; {CONTROL_EXAMPLE}")
        except ValueError as e:  # JSONDecodeError, an integer of thousands of digits, NaN/Infinity
            return refuse(f"the body is not JSON a control can use ({shown(str(e))[:160]}); {CONTROL_EXAMPLE}")
        if not isinstance(body, dict) or not isinstance(body.get("address"), str) or not isinstance(body.get("args", []), list):
            return refuse(f"{CONTROL_EXAMPLE}: address a string, args a list")
        address, args = body["address"], list(body.get("args", []))
        if not address.startswith("/") and 0 < len(address) <= MAX_ADDRESS_CHARS:
            address = self.daemon.stream.control_address(address)
        region = address == self.daemon.stream.control_address("region")
        problem = _control_problem(address, args, 2 * MAX_REGION_POINTS if region else MAX_CONTROL_ARGS)
        if problem:
            if region and len(args) > 2 * MAX_REGION_POINTS:
                problem = (f"the region has {len(args) // 2} points; a region has 3..{MAX_REGION_POINTS} points "
                           f"(x y pairs, {2 * MAX_REGION_POINTS} numbers at most)")
            return refuse(f"{problem}; " + (REGION_EXAMPLE if region else CONTROL_EXAMPLE))
        sender = f"web:{request.remote or '?'}"
        loop = asyncio.get_running_loop()
        event = await loop.run_in_executor(None, self.daemon.control, address, args, sender)
        self.counters["controls"] += 1
        return web.json_response({"accepted": bool(event.accepted), "message": event.message},
                                 status=200 if event.accepted else 422)

    async def _frame(self, request: web.Request) -> web.Response:
        def refuse(message: str, status: int) -> web.Response:
            self.counters["frames_refused"] += 1
            return web.json_response({"error": message}, status=status)

        source = self.daemon.browser_source
        if source is None:
            return refuse("this show's camera is not the browser: start pcp-osc with --source browser "
                          "(or capture.source = \"browser\") to use this page as the audience camera", 409)
        camera = request.headers.get("X-PCP-Camera", "").strip()[:64] or f"address {request.remote or '?'}"
        holder, now = self._camera, time.monotonic()
        if holder is not None and holder[0] != camera and now - holder[1] < CAMERA_HOLD_S:
            # two camera pages at once (a second phone, a page left open) would each be a
            # camera cut against the other: every face a new person on every picture
            self.counters["frames_refused"] += 1
            since = time.strftime("%H:%M:%S", time.localtime(time.time() - (now - holder[3])))
            return web.json_response({"error": f"another camera page (from {shown(holder[2])}, since {since}) is the "
                                               f"audience camera; stop it there, or this page takes over "
                                               f"{CAMERA_HOLD_S:g} s after its last frame",
                                      "held_by": shown(holder[2])}, status=409)
        ctype = request.content_type.lower()
        if ctype not in FRAME_TYPES:
            return refuse(f"/api/frame takes Content-Type image/jpeg or image/png, not {shown(ctype) or 'none'}", 415)
        limit = self.cfg.max_frame_bytes
        if request.content_length is not None and request.content_length > limit:
            return refuse(f"the frame is larger than web.max_frame_bytes = {limit}; lower the camera page's resolution", 413)
        if self._frames_busy >= self.cfg.max_decodes:
            # the body is not even read: a flood of frames holds neither bytes nor pixels
            return web.json_response(
                {"error": f"the daemon is still decoding {self._frames_busy} frames (web.max_decodes = "
                          f"{self.cfg.max_decodes}); send the next one when the last is answered"},
                status=503, headers={"Retry-After": "1"})
        self._frames_busy += 1
        try:
            data = await _read_body(request, limit)
            if data is None:
                return refuse(f"the frame is larger than web.max_frame_bytes = {limit}; lower the camera page's resolution", 413)
            loop = asyncio.get_running_loop()
            try:
                image = await loop.run_in_executor(None, decode_frame, data, self.cfg.max_frame_pixels)
            except FrameTooLarge as e:
                return refuse(str(e), 413)
            except ValueError as e:
                return refuse(str(e), 400)
        finally:
            self._frames_busy -= 1
        ok = source.push(image)
        if not ok:
            return refuse(f"the frame decoded but cannot be used: {image_problem(image)}", 400)
        self.counters["frames_received"] += 1
        if self._camera is None or self._camera[0] != camera:
            if self._camera is not None:
                log.info("the camera page from %s took over as the audience camera", shown(request.remote or "?"))
            self._camera = (camera, time.monotonic(), request.remote or "?", time.monotonic())
        else:
            self._camera = (camera, time.monotonic(), self._camera[2], self._camera[3])
        return web.json_response({"ok": True, "frames": self.counters["frames_received"],
                                  "width": int(image.shape[1]), "height": int(image.shape[0])})


# Another camera page may take over this long after the last frame of the one in use.
CAMERA_HOLD_S = 5.0

async def _read_body(request: web.Request, limit: int) -> bytes | None:
    """The request body, or None once it passes ``limit`` bytes (never held whole)."""
    if request.content_length is not None and request.content_length > limit:
        return None
    buf = bytearray()
    while True:
        chunk = await request.content.read(65536)
        if not chunk:
            return bytes(buf)
        buf += chunk
        if len(buf) > limit:
            return None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number a control can use")


def _control_problem(address: str, args: list, max_args: int = MAX_CONTROL_ARGS) -> str | None:
    """What is wrong with a control's address or arguments, or None."""
    if not address or len(address) > MAX_ADDRESS_CHARS:
        return f"address must be 1..{MAX_ADDRESS_CHARS} characters, got {len(address)}"
    if len(args) > max_args:
        return f"a control takes at most {max_args} args, got {len(args)}"
    for i, a in enumerate(args):
        if isinstance(a, bool):
            continue
        if isinstance(a, int):
            if not -2**63 <= a < 2**63:
                return f"args[{i}] is an integer of {len(str(abs(a)))} digits; numbers must fit 64 bits"
        elif isinstance(a, float):
            if not math.isfinite(a):
                return f"args[{i}] = {a} is not a finite number"
        elif isinstance(a, str):
            if len(a) > MAX_CONTROL_TEXT:
                return f"args[{i}] is {len(a)} characters long; at most {MAX_CONTROL_TEXT}"
        else:
            kind = {list: "a list", dict: "an object", type(None): "null"}.get(type(a), type(a).__name__)
            return f"args[{i}] is {kind}; allowed: strings, numbers, true/false"
    return None


def _split_authority(authority: str) -> tuple[str, int | None]:
    """"host:port" / "[v6]:port" / "host" -> (lower-case host, port or None)."""
    a = authority.strip()
    if a.startswith("["):
        host, _, rest = a[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    else:
        host, sep, port = a.rpartition(":")
        if not sep or ":" in host:  # no port, or a bare IPv6 address
            host, port = a, ""
    return host.lower().rstrip("."), (int(port) if port.isdigit() and len(port) <= 5 else None)
