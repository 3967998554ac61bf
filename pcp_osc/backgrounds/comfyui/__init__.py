"""Backgrounds from ComfyUI: the artist's own workflow, on GPU machines anywhere on the show network.

    [generator]
    kind = "comfyui"
    [comfyui]
    servers = ["http://10.0.0.21:8188", "http://10.0.0.22:8188"]
    workflow = "stage-look.json"          # exported from ComfyUI with "Save (API)"

Files:
  workflow.py  the API-format workflow and the bindings (node titles pcp:prompt, pcp:seed, ...,
               or comfyui.bind = {value = "NODE_ID.INPUT"}), checked at start-up
  client.py    one server: HTTP + WebSocket, validation errors by name, cancelling our prompts
  pool.py      the live worker: several servers, newest cue wins, backoff, procedural stand-in

:class:`ComfyUIGenerator` is the one-background-at-a-time face (``pcp-osc generate``, the
bench); the daemon runs a :class:`ComfyPool` (``make_worker``).
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any, Callable

from ...config import ComfyUIConfig, GeneratorConfig, PaletteConfig
from ...types import Background, Cue
from .workflow import TITLES, VALUES, Workflow, WorkflowError, load_workflow

__all__ = [
    "ComfyUIGenerator", "Workflow", "WorkflowError", "load_workflow", "make_worker", "check_servers", "TITLES", "VALUES",
]


def _generator_error(text: str):
    from .. import GeneratorError

    return GeneratorError(text)


def _need_aiohttp() -> None:
    try:
        import aiohttp  # noqa: F401
    except ImportError:
        raise _generator_error("generator.kind = \"comfyui\" needs aiohttp: pip install 'pcp-osc[comfyui]'") from None


def open_workflow(comfy_cfg: ComfyUIConfig) -> Workflow:
    try:
        return load_workflow(comfy_cfg.workflow, comfy_cfg.bind, comfy_cfg.output)
    except WorkflowError as e:
        raise _generator_error(str(e)) from None


def make_worker(comfy_cfg: ComfyUIConfig, gen_cfg: GeneratorConfig, palette_cfg: PaletteConfig, **kw):
    """The daemon's background worker for generator.kind = "comfyui" (GeneratorError when the
    workflow or its bindings are wrong: the message names what is missing)."""
    _need_aiohttp()
    from .pool import ComfyPool

    workflow = open_workflow(comfy_cfg)
    return ComfyPool(comfy_cfg, gen_cfg, palette_cfg, workflow, **kw)


class ComfyUIGenerator:
    """One background at a time through the pool, errors raised (no stand-in): for the command line."""

    name = "comfyui"

    def __init__(self, gen_cfg: GeneratorConfig, palette_cfg: PaletteConfig, comfy_cfg: ComfyUIConfig | None = None) -> None:
        _need_aiohttp()
        self.cfg = gen_cfg
        self.palette = palette_cfg
        self.comfy = comfy_cfg or ComfyUIConfig()
        self.workflow = open_workflow(self.comfy)
        self.progress: Callable[[str], None] | None = None
        self.pool = None

    def load(self) -> None:
        """Connect to the servers and check they can run the workflow."""
        if self.pool is not None:
            return
        from .pool import ComfyPool

        for w in self.workflow.warnings:
            self._say(f"workflow: {w}")
        pool = ComfyPool(self.comfy, self.cfg, self.palette, self.workflow, stand_in=False, nice=0)
        pool.progress = self.progress
        pool.start()
        if not pool.wait_ready(self.comfy.connect_timeout_s * 4 + 30.0):
            problems = "; ".join(f"{s.url}: {s.state}: {s.error or 'no answer'}" for s in pool.servers)
            pool.stop(timeout_s=2.0)
            raise _generator_error(f"no ComfyUI server can make backgrounds: {problems}")
        for s in pool.servers:
            if s.state == "ready":
                self._say(f"comfyui {s.name}: {s.version}")
        self.pool = pool

    def generate(self, cue: Cue, *, seed: int | None = None, size: tuple[int, int] | None = None) -> Background:
        self.load()
        fut = self.pool.request(cue, seed, size)
        try:
            return fut.result(self.comfy.timeout_s + 30.0)
        except TimeoutError:
            raise _generator_error(f"no background from ComfyUI after {self.comfy.timeout_s + 30:.0f} s") from None

    def close(self) -> None:
        if self.pool is not None:
            self.pool.stop()
            self.pool = None

    def _say(self, text: str) -> None:
        if self.progress is not None:
            self.progress(text)


def check_servers(comfy_cfg: ComfyUIConfig, workflow: Workflow | None) -> list[dict[str, Any]]:
    """pcp-osc doctor: each server reachable? its version; the node types (and models) the
    workflow needs present? One dict per server: url, ok, version, problems."""
    _need_aiohttp()
    from .client import ComfyClient, ComfyError, preflight

    async def one(url: str) -> dict[str, Any]:
        client = ComfyClient(url, connect_timeout_s=comfy_cfg.connect_timeout_s)
        out: dict[str, Any] = {"url": client.url, "ok": False, "version": "", "problems": []}
        try:
            await client.system_stats()
            out["version"] = client.version()
            info = await client.fetch_object_info()
            out["node_types"] = len(info)
            if workflow is not None:
                out["problems"] = preflight(info, workflow)
            out["ok"] = not out["problems"]
        except ComfyError as e:
            out["problems"] = [str(e)]
        finally:
            await client.close()
        return out

    async def all_servers() -> list[dict[str, Any]]:
        return list(await asyncio.gather(*(one(u) for u in comfy_cfg.servers)))

    return asyncio.run(all_servers())


def print_progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)
