"""One ComfyUI server, spoken to the way ComfyUI's own front end does (aiohttp, asyncio).

    GET  /system_stats          reachable? which ComfyUI (version where the server reports one), which device
    GET  /object_info           node types installed, and the choices of each list input (models, images)
    GET  /ws?clientId=ID        progress and results of the prompts queued with that client id:
                                executing / progress / executed / execution_error / execution_interrupted,
                                and binary frames (4-byte event 1, 4-byte format 1 JPEG | 2 PNG, image)
                                that a SaveImageWebsocket node streams
    POST /upload/image          the init image (multipart; overwrite)
    POST /prompt                {prompt, client_id} -> prompt_id, or the validation errors by node
    GET  /history/{id}          what the server ran (inputs and outputs) once a prompt is done
    GET  /view?filename=...     a saved image
    GET  /queue, POST /queue {delete}, POST /interrupt   cancel a prompt that is no longer wanted
                                (/interrupt only when the running prompt is ours: the server may be shared)

Every call has a timeout; every failure is one of the errors below, whose message
says what happened in the show's words.
"""

from __future__ import annotations

import asyncio
import json
import logging
import struct
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import urlsplit

import aiohttp

from .workflow import Workflow

log = logging.getLogger("pcp_osc.backgrounds.comfyui")

WS_EVENT_PREVIEW_IMAGE = 1
WS_IMAGE_FORMATS = {1: "jpeg", 2: "png"}
POLL_PERIOD_S = 0.25  # /history polling while the WebSocket is down
CANCEL_GRACE_S = 10.0  # longest wait for an interrupted prompt to leave the server
MAX_WATCHES = 32
MAX_BODY_BYTES = 256 << 20  # the largest answer taken from a server (a 4K PNG is ~30 MB)


class ComfyError(RuntimeError):
    """A background could not be made on a server; the message says why."""


class ServerDown(ComfyError):
    """The server cannot be reached (down, restarting, refused the connection, timed out)."""


class WorkflowRefused(ComfyError):
    """The server cannot run this workflow: missing node types or models, invalid inputs."""


class ExecutionFailed(ComfyError):
    """A node raised while the server ran the prompt (e.g. out of memory)."""


class JobTimeout(ComfyError):
    """The prompt took longer than comfyui.timeout_s."""


class JobCancelled(ComfyError):
    """The job was cancelled because a newer cue wins."""


def server_name(url: str) -> str:
    u = urlsplit(url)
    return f"{u.hostname}:{u.port or (443 if u.scheme == 'https' else 80)}"


def _reason(e: BaseException) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return text or type(e).__name__


def describe_validation(body: Any, workflow: Workflow | None = None) -> str:
    """ComfyUI's /prompt refusal, by name: the node, its type, the input and the value."""
    parts: list[str] = []
    if isinstance(body, dict):
        node_errors = body.get("node_errors") or {}
        if isinstance(node_errors, dict):
            for node_id, info in node_errors.items():
                if not isinstance(info, dict):
                    continue
                where = f"node {node_id} ({info.get('class_type', '?')}"
                if workflow is not None and node_id in workflow.nodes and workflow.title(node_id):
                    where += f", {workflow.title(node_id)!r}"
                where += ")"
                for err in info.get("errors") or []:
                    if not isinstance(err, dict):
                        continue
                    detail = err.get("details") or ""
                    parts.append(f"{where}: {err.get('message', 'invalid')}{': ' + detail if detail else ''}")
        err = body.get("error")
        if not parts and isinstance(err, dict):
            msg = err.get("message", "")
            detail = err.get("details", "")
            parts.append(f"{msg}{': ' + detail if detail else ''}".strip() or str(err.get("type", "invalid prompt")))
        elif not parts and isinstance(err, str):
            parts.append(err)
    return "; ".join(parts) or f"the server refused the prompt: {str(body)[:200]}"


def preflight(object_info: dict, workflow: Workflow) -> list[str]:
    """What the server lacks for this workflow, by name: node types, and values of list inputs
    (checkpoints, LoRAs, images on the server) that are not among its choices. Inputs that
    pcp-osc sets (bindings) are not checked."""
    problems: list[str] = []
    missing = [t for t in workflow.class_types() if t not in object_info]
    if missing:
        problems.append(f"missing node types {', '.join(missing)} (install the custom nodes that provide them)")
    bound = {(t.node, t.input) for ts in workflow.bindings.values() for t in ts}
    for node_id, node in workflow.nodes.items():
        info = object_info.get(node["class_type"])
        if not isinstance(info, dict):
            continue
        spec_all = {}
        for section in ("required", "optional"):
            spec_all.update((info.get("input") or {}).get(section) or {})
        for name, value in node["inputs"].items():
            if (node_id, name) in bound or isinstance(value, list):
                continue
            spec = spec_all.get(name)
            if isinstance(spec, list) and spec and isinstance(spec[0], list):
                choices = spec[0]
                if value not in choices:
                    shown = ", ".join(map(str, choices[:8])) + (" ..." if len(choices) > 8 else "") if choices else "none"
                    problems.append(f"{workflow.describe(node_id)}: {name} {value!r} is not on the server (it has: {shown})")
    return problems


@dataclass
class JobResult:
    image_bytes: bytes
    image_format: str  # "png" | "jpeg"
    prompt_id: str
    timings_ms: dict[str, float] = field(default_factory=dict)


@dataclass
class _Watch:
    """What the WebSocket has told about one prompt."""

    prompt_id: str
    done: asyncio.Future
    node: str | None = None
    images: list[tuple[str, bytes]] = field(default_factory=list)
    started_at: float | None = None
    progress: tuple[int, int] | None = None


class ComfyClient:
    """HTTP + WebSocket to one server. Lives on one asyncio loop."""

    def __init__(self, url: str, *, connect_timeout_s: float = 3.0, client_id: str | None = None) -> None:
        self.url = url.strip().rstrip("/")
        self.name = server_name(self.url)
        self.client_id = client_id or uuid.uuid4().hex
        self.connect_timeout_s = connect_timeout_s
        self.session: aiohttp.ClientSession | None = None
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task | None = None
        self._watches: dict[str, _Watch] = {}
        self.ws_dropped = 0
        self.on_progress: Callable[[str, int, int], None] | None = None
        self.system: dict = {}
        self.object_info: dict = {}

    # ------------------------------------------------------------------ plumbing

    def _session(self) -> aiohttp.ClientSession:
        if self.session is None or self.session.closed:
            # Loopback and show-network servers: no proxies from the environment.
            self.session = aiohttp.ClientSession(trust_env=False)
        return self.session

    def _timeout(self, total: float | None = None) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(total=total or self.connect_timeout_s * 4, connect=self.connect_timeout_s)

    async def _request(self, method: str, path: str, *, timeout_s: float | None = None, **kw) -> tuple[int, bytes]:
        try:
            async with self._session().request(method, self.url + path, timeout=self._timeout(timeout_s), **kw) as resp:
                body = bytearray()
                async for chunk in resp.content.iter_chunked(1 << 20):
                    body += chunk
                    if len(body) > MAX_BODY_BYTES:
                        raise ComfyError(f"{self.name} sent more than {MAX_BODY_BYTES >> 20} MB for {path.split('?')[0]}; refused")
                return resp.status, bytes(body)
        except asyncio.TimeoutError:
            raise ServerDown(f"{self.name} did not answer {method} {path.split('?')[0]} in time") from None
        except aiohttp.ClientConnectorError as e:
            raise ServerDown(f"{self.name} cannot be reached ({_reason(e.os_error) if e.os_error else _reason(e)})") from None
        except (aiohttp.ClientError, OSError) as e:
            raise ServerDown(f"{self.name}: connection lost ({_reason(e)})") from None

    async def _json(self, method: str, path: str, **kw) -> Any:
        status, body = await self._request(method, path, **kw)
        if status != 200:
            raise ComfyError(f"{self.name} answered {method} {path.split('?')[0]} with HTTP {status}: {body[:200]!r}")
        try:
            return json.loads(body)
        except ValueError:
            raise ComfyError(f"{self.name} answered {path.split('?')[0]} with something that is not JSON; is this a ComfyUI server?") from None

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
        if self.ws is not None:
            await self.ws.close()
        if self.session is not None:
            await self.session.close()
        self.ws = None

    # ------------------------------------------------------------------ connection

    async def system_stats(self) -> dict:
        data = await self._json("GET", "/system_stats")
        if not isinstance(data, dict) or "system" not in data:
            raise ComfyError(f"{self.name}/system_stats is not ComfyUI's; is this a ComfyUI server?")
        self.system = data
        return data

    def version(self) -> str:
        system = self.system.get("system", {}) if self.system else {}
        version = system.get("comfyui_version")
        devices = self.system.get("devices") or [{}]
        device = devices[0].get("name", "?") if devices else "?"
        python = str(system.get("python_version", "?")).split()[0]
        return f"ComfyUI {version or '(version not reported: older than 0.2)'}, {device}, Python {python}"

    async def fetch_object_info(self) -> dict:
        data = await self._json("GET", "/object_info", timeout_s=max(30.0, self.connect_timeout_s * 4))
        if not isinstance(data, dict):
            raise ComfyError(f"{self.name}/object_info is not a table of node types")
        self.object_info = data
        return data

    @property
    def connected(self) -> bool:
        return self.ws is not None and not self.ws.closed

    async def connect_ws(self) -> None:
        try:
            self.ws = await asyncio.wait_for(
                self._session().ws_connect(f"{self.url}/ws?clientId={self.client_id}", heartbeat=10.0, max_msg_size=MAX_BODY_BYTES),
                self.connect_timeout_s,
            )
        except asyncio.TimeoutError:
            raise ServerDown(f"{self.name}: the WebSocket did not open in time") from None
        except (aiohttp.ClientError, OSError) as e:
            raise ServerDown(f"{self.name}: the WebSocket did not open ({_reason(e)})") from None
        self._reader = asyncio.ensure_future(self._read(self.ws))

    async def wait_closed(self) -> None:
        if self._reader is not None:
            await asyncio.shield(self._reader)

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        current: str | None = None  # the prompt the server is running for us
        try:
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    try:
                        data = json.loads(msg.data)
                    except ValueError:
                        continue
                    current = self._on_message(data, current)
                elif msg.type == aiohttp.WSMsgType.BINARY:
                    self._on_binary(msg.data, current)
                elif msg.type in (aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSE):
                    break
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError):
            pass
        finally:
            if self.ws is ws:
                self.ws = None
                self.ws_dropped += 1

    def _on_message(self, msg: dict, current: str | None) -> str | None:
        kind, data = msg.get("type"), msg.get("data") or {}
        if not isinstance(data, dict):
            return current
        pid = data.get("prompt_id")
        # Messages only come on this socket for prompts queued with our client id; one may
        # arrive before queue_prompt has returned its id, so the record is made on first sight.
        watch = self.watch(str(pid)) if pid else None
        if kind == "execution_start" and watch is not None:
            watch.started_at = time.monotonic()
            return pid
        if kind == "executing":
            if watch is None:
                return current if pid is None else None
            node = data.get("node")
            if node is None:
                if not watch.done.done():
                    watch.done.set_result(("done", ""))
                return None
            watch.node = str(node)
            return pid
        if kind == "progress" and watch is not None:
            watch.progress = (int(data.get("value", 0)), int(data.get("max", 0)))
            if self.on_progress is not None:
                self.on_progress(pid, *watch.progress)
            return current
        if kind == "execution_error" and watch is not None:
            text = (
                f"{data.get('node_type', '?')} (node {data.get('node_id', '?')}) failed: "
                f"{data.get('exception_type', '')}{': ' if data.get('exception_type') else ''}{str(data.get('exception_message', '')).strip()[:300]}"
            )
            if not watch.done.done():
                watch.done.set_result(("error", text))
            return None
        if kind == "execution_interrupted" and watch is not None:
            if not watch.done.done():
                watch.done.set_result(("interrupted", ""))
            return None
        return current

    def _on_binary(self, data: bytes, current: str | None) -> None:
        watch = self._watches.get(current) if current else None
        if watch is None or len(data) < 8:
            return
        event, fmt = struct.unpack(">II", data[:8])
        if event == WS_EVENT_PREVIEW_IMAGE and fmt in WS_IMAGE_FORMATS:
            watch.images.append((watch.node or "", bytes(data[8:])))

    # ------------------------------------------------------------------ one job

    async def upload_image(self, name: str, data: bytes, content_type: str = "image/png") -> str:
        form = aiohttp.FormData()
        form.add_field("image", data, filename=name, content_type=content_type)
        form.add_field("overwrite", "true")
        form.add_field("type", "input")
        status, body = await self._request("POST", "/upload/image", data=form, timeout_s=max(30.0, self.connect_timeout_s * 4))
        if status != 200:
            raise ComfyError(f"{self.name} refused the init image upload (HTTP {status}: {body[:160]!r})")
        try:
            info = json.loads(body)
            return str(info["name"]) if not info.get("subfolder") else f"{info['subfolder']}/{info['name']}"
        except (ValueError, KeyError, TypeError):
            raise ComfyError(f"{self.name}: the upload answer is not ComfyUI's ({body[:120]!r})") from None

    async def queue_prompt(self, prompt: dict, workflow: Workflow | None = None) -> str:
        """POST /prompt; the prompt id, or WorkflowRefused naming what the server did not accept."""
        status, body = await self._request("POST", "/prompt", json={"prompt": prompt, "client_id": self.client_id})
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        if status == 200 and isinstance(data, dict) and data.get("prompt_id"):
            if data.get("node_errors"):
                # Another output of the workflow was valid, so the server queued the rest.
                await self.cancel(str(data["prompt_id"]), wait=False)
                raise WorkflowRefused(f"{self.name} refused the workflow: {describe_validation(data, workflow)}")
            return str(data["prompt_id"])
        if status == 400 and isinstance(data, dict):
            raise WorkflowRefused(f"{self.name} refused the workflow: {describe_validation(data, workflow)}")
        if status >= 500 and workflow is not None and self.object_info:
            missing = [t for t in workflow.class_types() if t not in self.object_info]
            if missing:
                raise WorkflowRefused(f"{self.name} lacks node types {', '.join(missing)}")
        raise ComfyError(f"{self.name} could not queue the prompt (HTTP {status}: {body[:200]!r})")

    def watch(self, prompt_id: str) -> _Watch:
        """The record of what the WebSocket said about this prompt (made on first use)."""
        w = self._watches.get(prompt_id)
        if w is None:
            w = _Watch(prompt_id, asyncio.get_running_loop().create_future())
            self._watches[prompt_id] = w
            while len(self._watches) > MAX_WATCHES:  # prompts nobody asked about (e.g. cancelled)
                self._watches.pop(next(iter(self._watches)))
        return w

    def unwatch(self, prompt_id: str) -> None:
        self._watches.pop(prompt_id, None)

    async def history(self, prompt_id: str) -> dict | None:
        data = await self._json("GET", f"/history/{prompt_id}")
        entry = data.get(prompt_id) if isinstance(data, dict) else None
        return entry if isinstance(entry, dict) else None

    async def queue_state(self) -> tuple[list[str], list[str]]:
        data = await self._json("GET", "/queue")

        def ids(items) -> list[str]:
            return [str(item[1]) for item in items or [] if isinstance(item, list) and len(item) > 1]

        return ids(data.get("queue_running")), ids(data.get("queue_pending"))

    async def cancel(self, prompt_id: str, wait: bool = True) -> str:
        """Take our prompt off the server: delete it from the queue when it waits there,
        /interrupt when it runs (only then: the server may be running someone else's).
        Returns "deleted", "interrupted" or "gone"."""
        running, pending = await self.queue_state()
        if prompt_id in pending:
            await self._request("POST", "/queue", json={"delete": [prompt_id]})
            running, pending = await self.queue_state()
            if prompt_id not in running:
                return "deleted"
        if prompt_id in running:
            await self._request("POST", "/interrupt")
            return "interrupted"
        return "gone"

    async def wait_done(self, watch: _Watch, deadline: float, cancel: asyncio.Event) -> tuple[str, str, dict | None]:
        """Wait for the prompt to end: ("done"|"error"|"interrupted", text, history entry or None).
        Follows the WebSocket; while it is down, polls /history (and /queue, to see a server that
        restarted and lost the prompt). When ``cancel`` is set (JobCancelled) or the deadline
        passes (JobTimeout), the prompt is taken off the server first, and a running one is
        waited for until the server has let it go (CANCEL_GRACE_S at most): one job of ours at a
        time on the server, also then."""
        ending: ComfyError | None = None  # raised once the server has let the prompt go
        ending_at = 0.0
        while True:
            now = time.monotonic()
            if ending is None and (cancel.is_set() or now > deadline):
                if cancel.is_set():
                    ending = JobCancelled(f"{self.name}: prompt interrupted")
                else:
                    ending = JobTimeout(f"{self.name}: no background after the time allowed (comfyui.timeout_s)")
                ending_at = now
                try:
                    how = await self.cancel(watch.prompt_id)
                except ComfyError:
                    how = "gone"  # the server is not answering: nothing more to wait for
                if how in ("deleted", "gone"):
                    raise ending
            if ending is not None and now - ending_at > CANCEL_GRACE_S:
                log.warning("%s: the cancelled prompt still runs after %.0f s; going on", self.name, CANCEL_GRACE_S)
                raise ending
            if watch.done.done():
                kind, text = watch.done.result()
                if ending is not None:
                    raise ending
                return kind, text, None
            if not self.connected:
                entry = await self.history(watch.prompt_id)
                if entry is not None and (entry.get("status") or {}).get("completed") is not None:
                    if ending is not None:
                        raise ending
                    st = entry.get("status") or {}
                    if st.get("status_str") == "error" or not st.get("completed", True):
                        return "error", _history_error(entry), entry
                    return "done", "", entry
                if entry is None:
                    running, pending = await self.queue_state()
                    again = await self.history(watch.prompt_id)  # it may have finished in between
                    if again is not None:
                        continue
                    if watch.prompt_id not in running and watch.prompt_id not in pending:
                        if ending is not None:
                            raise ending
                        raise ServerDown(f"{self.name} lost the prompt (the server restarted?)")
            try:
                await asyncio.wait_for(asyncio.shield(watch.done), POLL_PERIOD_S)
            except asyncio.TimeoutError:
                pass

    async def fetch_output(self, prompt_id: str, entry: dict | None, output_node: str) -> tuple[bytes, str]:
        """The background image from /history + /view (the output node's first image)."""
        if entry is None:
            entry = await self.history(prompt_id)
        if entry is None:
            raise ComfyError(f"{self.name} has no history for prompt {prompt_id}")
        outputs = entry.get("outputs") or {}
        images = []
        if output_node:
            images = (outputs.get(output_node) or {}).get("images") or []
        else:
            for node_out in outputs.values():
                images = (node_out or {}).get("images") or []
                if images:
                    break
        if not images:
            where = f"node {output_node}" if output_node else "any node"
            raise ComfyError(f"{self.name}: the prompt finished but {where} saved no image")
        img = images[0]
        query = {"filename": img.get("filename", ""), "subfolder": img.get("subfolder", ""), "type": img.get("type", "output")}
        status, body = await self._request("GET", "/view", params=query, timeout_s=max(30.0, self.connect_timeout_s * 4))
        if status != 200:
            raise ComfyError(f"{self.name}/view {query['filename']!r} answered HTTP {status}")
        fmt = "jpeg" if body[:3] == b"\xff\xd8\xff" else "png"
        return body, fmt


def _history_error(entry: dict) -> str:
    for kind, data in (entry.get("status") or {}).get("messages") or []:
        if kind == "execution_error" and isinstance(data, dict):
            return f"{data.get('node_type', '?')} (node {data.get('node_id', '?')}) failed: {str(data.get('exception_message', '')).strip()[:300]}"
        if kind == "execution_interrupted":
            return "interrupted"
    return "the prompt failed on the server"
