"""Several ComfyUI servers share the backgrounds; the newest cue wins; the show never waits.

The pool is a background worker (same face as :class:`~pcp_osc.backgrounds.BackgroundWorker`:
start, stop, submit, generate_now, status, wait_idle). Its own thread runs an asyncio loop
with one supervisor per server and at most one job per server:

* ``submit(cue)`` returns at once: the request goes into a one-value slot; a newer one
  replaces a waiting older one (skipped, counted as dropped).
* The first free server takes the waiting request. When none is free, the oldest job in
  flight is stale: it is cancelled on its server (deleted from the queue, or /interrupt when
  it runs) and that server takes the newest cue once the server has let it go.
* A finished background older than one already delivered is discarded; once a newer one is
  delivered, older jobs still in flight are cancelled.
* A server that is down, restarts or drops the WebSocket is retried with backoff
  (comfyui.retry_min_s .. retry_max_s); a running job follows /history meanwhile. One that
  cannot run the workflow (missing node types or models) is rechecked with the same backoff.
  When no server can take a cue, or a job fails, the procedural generator stands in for that
  cue at once and /pcp/status says why.
* Backgrounds go to ``on_background`` (sinks, show log, dashboard) on a delivery thread of
  their own, so neither the cue path nor the network waits on a sink.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import cv2
import numpy as np

from ...config import ComfyUIConfig, GeneratorConfig, PaletteConfig
from ...emotions import EMOTIONS
from ...parts import BasePart
from ...types import Background, Cue
from ..procedural import ProceduralGenerator, pick_seed, render
from ..prompts import build_prompt
from ..worker import WORKER_NICE
from .client import (
    ComfyClient,
    ComfyError,
    ExecutionFailed,
    JobCancelled,
    JobTimeout,
    ServerDown,
    WorkflowRefused,
    _reason,
    preflight,
)
from .workflow import Workflow, WorkflowError

log = logging.getLogger("pcp_osc.backgrounds.comfyui")

NO_SERVER = "no ComfyUI server can take the cue"
# The same stand-in reason is said once, then again at most this often with a count of the
# cues it stood in for meanwhile (a server down for a whole show is one line a minute, not
# one per cue); /pcp/status and the dashboard say it all along.
STAND_IN_REPEAT_S = 60.0


@dataclass
class _Request:
    seq: int
    cue: Cue
    seed: int | None
    reason: str  # "cue" | "generate"
    size: tuple[int, int] | None = None
    future: concurrent.futures.Future | None = None
    t_submit: float = field(default_factory=time.monotonic)


@dataclass
class _Job:
    request: _Request
    cancel: asyncio.Event
    task: asyncio.Task | None = None
    prompt_id: str = ""
    progress: tuple[int, int] | None = None

    def cancel_stale(self) -> None:
        self.cancel.set()


class _Server:
    def __init__(self, url: str, cfg: ComfyUIConfig) -> None:
        self.client = ComfyClient(url, connect_timeout_s=cfg.connect_timeout_s)
        self.url = self.client.url
        self.name = self.client.name
        self.state = "connecting"  # connecting | ready | down | refused | stopped
        self.error = ""
        self.version = ""
        self.job: _Job | None = None
        self.attempts = 0
        self.delay_s = cfg.retry_min_s
        self.retry_at = 0.0
        self.trouble: asyncio.Event | None = None
        # the per-server report
        self.jobs = 0
        self.done = 0
        self.failed = 0
        self.cancelled = 0
        self.stale = 0
        self.timeouts = 0
        self.reconnects = 0
        self.seconds_total = 0.0
        self.last_seconds: float | None = None
        self.last_timings: dict[str, float] = {}
        self.init_name = f"pcp-osc-init-{self.client.client_id[:8]}"  # + .jpg or .png

    def report(self) -> dict:
        job = self.job
        return {
            "url": self.url,
            "state": "busy" if (job is not None and self.state == "ready") else self.state,
            "error": self.error,
            "version": self.version,
            "jobs": self.jobs,
            "done": self.done,
            "failed": self.failed,
            "cancelled": self.cancelled,
            "stale": self.stale,
            "timeouts": self.timeouts,
            "reconnects": self.reconnects,
            "last_seconds": None if self.last_seconds is None else round(self.last_seconds, 3),
            "mean_seconds": round(self.seconds_total / self.done, 3) if self.done else None,
            "in_flight_cue": None if job is None else job.request.cue.id,
            "progress": None if job is None or job.progress is None else f"{job.progress[0]}/{job.progress[1]}",
            "last_timings_ms": dict(self.last_timings),
        }


class ComfyPool(BasePart):
    """Backgrounds from one or more ComfyUI servers (see the module text). A part of the show:
    each cue (``on_cue``) is submitted when ``every_cue``, else only remembered for /pcp/generate."""

    name = "comfyui"
    role = "generator"

    def __init__(
        self,
        comfy_cfg: ComfyUIConfig,
        gen_cfg: GeneratorConfig,
        palette_cfg: PaletteConfig,
        workflow: Workflow,
        *,
        on_background: Callable[[Background], None] | None = None,
        on_status: Callable[[str], None] | None = None,
        fallback=None,
        stand_in: bool = True,
        nice: int = WORKER_NICE,
        every_cue: bool = True,
    ) -> None:
        self.cfg = gen_cfg
        self.comfy = comfy_cfg
        self.palette = palette_cfg
        self.workflow = workflow
        self._hand_over = on_background  # the finished background goes here (show.assemble: to every part)
        self.every_cue = every_cue
        self.on_status = on_status
        self.progress: Callable[[str], None] | None = None
        self.fallback = fallback if fallback is not None else ProceduralGenerator(gen_cfg, palette_cfg)
        self.stand_in = stand_in
        self.nice = nice
        self.servers = [_Server(u, comfy_cfg) for u in comfy_cfg.servers]
        self.generator = self  # BackgroundWorker compatibility (status(), tests)
        self._lock = threading.Lock()
        self._seq = itertools.count(1)
        self._ids = itertools.count(1)
        self._latest_cue: Cue | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._stopping = False
        self._pending: _Request | None = None
        self._hold: asyncio.TimerHandle | None = None  # a request held while servers connect
        self._early: list[_Request] = []  # submitted before the loop runs
        self._delivered_seq = 0
        self._outstanding = 0  # requests taken but not yet delivered, failed or dropped
        self._cpu = concurrent.futures.ThreadPoolExecutor(2, "pcp-comfyui-cpu", initializer=self._renice)
        self._out = concurrent.futures.ThreadPoolExecutor(1, "pcp-comfyui-out", initializer=self._renice)
        self._status_text = "ok"
        self._last_failure = ""
        self._stand_in_said: tuple[str, float] = ("", 0.0)  # reason last said, and when
        self._stand_in_quiet = 0  # stand-ins for that reason since it was last said
        # counters (BackgroundWorker's names)
        self.submitted = 0
        self.dropped = 0
        self.generated = 0
        self.fallbacks = 0
        self.last_seconds: float | None = None
        self.last_error = ""
        self.last_background: Background | None = None

    # ------------------------------------------------------------------ control (any thread)

    def _renice(self) -> None:
        if self.nice and hasattr(os, "setpriority"):
            try:
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), self.nice)
            except OSError:
                pass

    def start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self._stopping = False
            self._thread = threading.Thread(target=self._run, name="pcp-comfyui", daemon=True)
            self._thread.start()
        self._started.wait(10.0)

    def stop(self, timeout_s: float = 5.0) -> None:
        """Cancel our jobs on the servers, close the connections, and log the per-server report."""
        with self._lock:
            thread, loop = self._thread, self._loop
            self._thread = None
            self._stopping = True
        if thread is None or loop is None:
            return
        try:
            fut = asyncio.run_coroutine_threadsafe(self._shutdown(), loop)
            fut.result(timeout_s)
        except Exception as e:  # noqa: BLE001 - stopping must not raise
            log.warning("ComfyUI connections did not close cleanly: %s", _reason(e))
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout_s)
        self._out.shutdown(wait=True)
        self._cpu.shutdown(wait=False)
        for line in self.report_lines():
            log.info("%s", line)

    def on_cue(self, cue: Cue) -> None:
        if self.every_cue:
            self.submit(cue)
        else:
            with self._lock:
                self._latest_cue = cue

    def submit(self, cue: Cue, seed: int | None = None) -> None:
        """A background for this cue; returns at once (the cue path calls this)."""
        with self._lock:
            self.submitted += 1
            self._latest_cue = cue
        self._put(_Request(next(self._seq), cue, seed, "cue"))

    def generate_now(self, seed: int | None = None) -> bool:
        """/pcp/generate: a new background for the latest cue. False when no cue has been seen yet."""
        with self._lock:
            cue = self._latest_cue
        if cue is None:
            return False
        self._put(_Request(next(self._seq), cue, seed, "generate"))
        return True

    def request(self, cue: Cue, seed: int | None = None, size: tuple[int, int] | None = None) -> concurrent.futures.Future:
        """One background as a future (command line, bench): its Background, or the error."""
        with self._lock:
            self.submitted += 1
            self._latest_cue = cue
        fut: concurrent.futures.Future = concurrent.futures.Future()
        self._put(_Request(next(self._seq), cue, seed, "generate", size=size, future=fut))
        return fut

    def _put(self, req: _Request) -> None:
        with self._lock:
            self._outstanding += 1
            loop = self._loop
            if loop is None:
                self._early.append(req)
                return
        loop.call_soon_threadsafe(self._on_request, req)

    def wait_ready(self, timeout_s: float) -> bool:
        """Until a server is ready, or every server has been tried once (True: one is ready)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if any(s.state == "ready" for s in self.servers):
                return True
            if all(s.attempts > 0 and s.state in ("down", "refused") for s in self.servers):
                return False
            time.sleep(0.02)
        return any(s.state == "ready" for s in self.servers)

    def wait_idle(self, timeout_s: float) -> bool:
        """Until nothing waits, runs or is being delivered (tests and the command line)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                idle = self._outstanding == 0
            if idle and all(s.job is None for s in self.servers):
                return True
            time.sleep(0.02)
        return False

    def status(self) -> dict:
        with self._lock:
            return {
                "generator": self.name,
                "busy": any(s.job is not None for s in self.servers),
                "waiting": self._pending is not None,
                "submitted": self.submitted,
                "generated": self.generated,
                "dropped": self.dropped,
                "fallbacks": self.fallbacks,
                "last_seconds": None if self.last_seconds is None else round(self.last_seconds, 3),
                "last_error": self.last_error,
                "last_id": self.last_background.id if self.last_background else None,
                "workflow": self.workflow.path,
                "servers": [s.report() for s in self.servers],
            }

    def report_lines(self) -> list[str]:
        """The per-server report, one line each (end of show, bench, command line)."""
        lines = []
        for s in self.servers:
            r = s.report()
            mean = f", mean {r['mean_seconds']:.2f} s" if r["mean_seconds"] is not None else ""
            lines.append(
                f"comfyui {s.name}: {r['done']} backgrounds of {r['jobs']} jobs{mean}; "
                f"{r['cancelled']} cancelled (a newer cue won), {r['stale']} discarded late, "
                f"{r['failed']} failed ({r['timeouts']} timed out), {r['reconnects']} reconnects; now {r['state']}"
                + (f" ({r['error']})" if r["error"] else "")
            )
        return lines

    # ------------------------------------------------------------------ the loop (its thread only)

    def _run(self) -> None:
        self._renice()
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        with self._lock:
            self._loop = loop
            early, self._early = self._early, []
        for s in self.servers:
            s.trouble = asyncio.Event()
            s.client.on_progress = self._progress_for(s)
            loop.create_task(self._supervise(s))
        for req in early:
            loop.call_soon(self._on_request, req)
        self._started.set()
        try:
            loop.run_forever()
        finally:
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for t in pending:
                t.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.close()

    def _progress_for(self, s: _Server) -> Callable[[str, int, int], None]:
        def on_progress(prompt_id: str, value: int, maximum: int) -> None:
            job = s.job
            if job is not None and job.prompt_id == prompt_id:
                job.progress = (value, maximum)
                if self.progress is not None:
                    self.progress(f"comfyui {s.name}: step {value}/{maximum}")

        return on_progress

    async def _shutdown(self) -> None:
        self._stopping = True
        jobs = [s.job for s in self.servers if s.job is not None]
        for job in jobs:
            job.cancel_stale()
        tasks = [j.task for j in jobs if j.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=3.0)
        for s in self.servers:
            s.state = "stopped"
            if s.trouble is not None:
                s.trouble.set()
            await s.client.close()
        if self._pending is not None:
            self._finish(self._pending, dropped=True)
            self._pending = None

    async def _supervise(self, s: _Server) -> None:
        """Keep one server connected: check it can run the workflow, open the WebSocket,
        and after any trouble wait (backoff) and try again."""
        while not self._stopping:
            wait = s.retry_at - time.monotonic()
            if wait > 0:
                await self._sleep(s, wait)
                if self._stopping:
                    return
            s.trouble.clear()
            s.attempts += 1
            was = s.state
            try:
                await s.client.system_stats()
                s.version = s.client.version()
                info = await s.client.fetch_object_info()
                problems = preflight(info, self.workflow)
                if problems:
                    raise WorkflowRefused("cannot run the workflow: " + "; ".join(problems))
                if not s.client.connected:
                    await s.client.connect_ws()
            except WorkflowRefused as e:
                self._trouble(s, "refused", str(e))
                continue
            except ComfyError as e:
                self._trouble(s, "down", str(e))
                continue
            except Exception as e:  # noqa: BLE001 - a bug here must not end the supervisor
                log.exception("ComfyUI server %s: unexpected error while connecting", s.name)
                self._trouble(s, "down", _reason(e))
                continue
            if self._stopping:
                return
            s.state, s.error = "ready", ""
            s.delay_s = self.comfy.retry_min_s
            if was in ("down", "refused") or s.attempts > 1:
                log.info("ComfyUI server %s is back (%s)", s.name, s.version)
            else:
                log.info("ComfyUI server %s ready: %s", s.name, s.version)
            self._update_status()
            self._dispatch()
            closed = asyncio.ensure_future(s.client.wait_closed())
            trouble = asyncio.ensure_future(s.trouble.wait())
            await asyncio.wait({closed, trouble}, return_when=asyncio.FIRST_COMPLETED)
            closed.cancel()
            trouble.cancel()
            if self._stopping:
                return
            if not s.trouble.is_set():  # the WebSocket dropped; a running job follows /history
                s.reconnects += 1
                s.state, s.error = "connecting", "the WebSocket dropped; reconnecting"
                log.warning("ComfyUI server %s: the WebSocket dropped; reconnecting", s.name)
                s.retry_at = time.monotonic() + min(self.comfy.retry_min_s, 0.2)

    async def _sleep(self, s: _Server, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stop_waiter(), seconds)
        except asyncio.TimeoutError:
            pass

    async def _stop_waiter(self) -> None:
        while not self._stopping:
            await asyncio.sleep(0.1)

    def _trouble(self, s: _Server, state: str, error: str) -> None:
        """A server that is down or refuses the workflow: no cues until it is checked again."""
        for prefix in (f"{s.name}: ", f"{s.name} "):  # the report names the server already
            if error.startswith(prefix):
                error = error[len(prefix):]
        first = s.state != state or s.error != error
        s.state, s.error = state, error
        s.retry_at = time.monotonic() + s.delay_s
        if first:
            log.warning("ComfyUI server %s %s: %s; trying again in %.1f s%s", s.name, state, error, s.delay_s,
                        " (the procedural generator stands in)" if self.stand_in else "")
        s.delay_s = min(s.delay_s * 2, self.comfy.retry_max_s)
        if s.trouble is not None:
            s.trouble.set()
        if state == "down" and s.client.ws is not None:
            asyncio.ensure_future(s.client.ws.close())
        self._update_status()
        self._dispatch()

    # ------------------------------------------------------------------ requests and jobs

    def _on_request(self, req: _Request) -> None:
        if self._stopping:
            self._finish(req, dropped=True)
            return
        old, self._pending = self._pending, req
        if old is not None:  # replaced before it started: skipped
            with self._lock:
                self.dropped += 1
            self._finish(old, dropped=True, error="a newer cue replaced it before a server was free")
        self._dispatch()

    def _dispatch(self) -> None:
        req = self._pending
        if req is None or self._stopping:
            return
        free = [s for s in self.servers if s.state == "ready" and s.job is None]
        if free:
            if self._hold is not None:
                self._hold.cancel()
                self._hold = None
            self._pending = None
            self._start_job(free[0], req)
            return
        busy = [s for s in self.servers if s.job is not None]
        if busy:
            if any(s.job.cancel.is_set() for s in busy):
                return  # a server is letting a stale job go; it takes this request then
            stale = [s for s in busy if s.job.request.seq < req.seq]
            if stale:
                oldest = min(stale, key=lambda s: s.job.request.seq)
                log.info("cue %d waits: cancelling cue %d's job on %s (the newest cue wins)",
                         req.cue.id, oldest.job.request.cue.id, oldest.name)
                oldest.job.cancel_stale()
            return
        if any(s.state == "connecting" for s in self.servers):
            # A server is (re)connecting (start of the show, a dropped WebSocket): hold the cue
            # a moment rather than show a stand-in; connect_timeout_s at most.
            if self._hold is None:
                self._hold = asyncio.get_running_loop().call_later(self.comfy.connect_timeout_s, self._hold_over, req.seq)
            return
        # No server can take it now: the procedural generator stands in for this cue.
        self._pending = None
        self._fail(req, NO_SERVER + " (" + "; ".join(f"{s.name} {s.state}: {s.error}" for s in self.servers) + ")")

    def _hold_over(self, seq: int) -> None:
        self._hold = None
        req = self._pending
        if req is None or self._stopping or any(s.state == "ready" and s.job is None for s in self.servers):
            self._dispatch()
            return
        if any(s.job is not None for s in self.servers):
            return  # a server is working; the request waits for it as usual
        self._pending = None
        self._fail(req, f"no ComfyUI server answered in {self.comfy.connect_timeout_s:g} s ("
                   + ", ".join(f"{s.name} {s.state}" for s in self.servers) + ")")

    def _start_job(self, s: _Server, req: _Request) -> None:
        job = _Job(req, asyncio.Event())
        s.job = job
        s.jobs += 1
        job.task = asyncio.ensure_future(self._run_job(s, job))

    async def _run_job(self, s: _Server, job: _Job) -> None:
        req = job.request
        loop = asyncio.get_running_loop()
        t0 = time.monotonic()
        timings: dict[str, float] = {}
        deadline = t0 + self.comfy.timeout_s
        try:
            values, init_png, size = await loop.run_in_executor(self._cpu, self._prepare, req)
            timings["prepare_ms"] = (time.monotonic() - t0) * 1000
            if job.cancel.is_set():
                raise JobCancelled("cancelled before it was queued")
            if init_png is not None:
                t = time.monotonic()
                values["init"] = await s.client.upload_image(
                    f"{s.init_name}.{self.comfy.init_format}", init_png,
                    "image/png" if self.comfy.init_format == "png" else "image/jpeg")
                timings["upload_ms"] = (time.monotonic() - t) * 1000
                if job.cancel.is_set():
                    raise JobCancelled("cancelled before it was queued")
            prompt = self.workflow.fill(values)
            t_post = time.monotonic()
            job.prompt_id = await s.client.queue_prompt(prompt, self.workflow)
            timings["queue_ms"] = (time.monotonic() - t_post) * 1000
            watch = s.client.watch(job.prompt_id)
            kind, text, entry = await s.client.wait_done(watch, deadline, job.cancel)
            t_done = time.monotonic()
            timings["server_ms"] = (t_done - t_post) * 1000
            if watch.started_at is not None:
                timings["comfyui_run_ms"] = (t_done - watch.started_at) * 1000
            if kind == "error":
                raise ExecutionFailed(f"{s.name}: {text}")
            if kind == "interrupted":
                raise ComfyError(f"{s.name}: the prompt was interrupted on the server (by another client?)")
            data = None
            if self.workflow.streams_output:
                streamed = [img for node, img in watch.images if node == self.workflow.output_node]
                data = streamed[-1] if streamed else None
            if data is None:
                output = "" if self.workflow.streams_output else self.workflow.output_node
                try:
                    data, _ = await s.client.fetch_output(job.prompt_id, entry, output)
                except ComfyError:
                    if self.workflow.streams_output:
                        raise ComfyError(f"{s.name}: the image streamed by SaveImageWebsocket did not arrive (WebSocket dropped?)") from None
                    raise
            timings["fetch_ms"] = (time.monotonic() - t_done) * 1000
            t = time.monotonic()
            image = await loop.run_in_executor(self._cpu, _decode_fit, data, size, s.name)
            timings["decode_ms"] = (time.monotonic() - t) * 1000
            seconds = time.monotonic() - t0
            timings["total_ms"] = seconds * 1000
            bg = Background(
                image=image, prompt=str(values.get("prompt", "")), seed=int(values["seed"]), seconds=seconds,
                generator=f"comfyui {s.name}", cue_id=req.cue.id,
                info={"server": s.url, "prompt_id": job.prompt_id, "timings_ms": {k: round(v, 2) for k, v in timings.items()}},
            )
            s.done += 1
            s.seconds_total += seconds
            s.last_seconds = seconds
            s.last_timings = {k: round(v, 2) for k, v in timings.items()}
            self._deliver(s, req, bg)
        except JobCancelled as e:
            s.cancelled += 1
            log.info("cue %d's background on %s cancelled (%s): a newer cue wins", req.cue.id, s.name, e)
            self._finish(req, dropped=True, error="cancelled: a newer cue won")
        except ServerDown as e:
            s.failed += 1
            self._trouble(s, "down", str(e))
            self._fail(req, str(e))
        except WorkflowRefused as e:
            s.failed += 1
            self._trouble(s, "refused", str(e))
            self._fail(req, str(e))
        except JobTimeout as e:
            s.failed += 1
            s.timeouts += 1
            self._fail(req, f"{e} ({self.comfy.timeout_s:g} s)")
        except (ComfyError, WorkflowError) as e:
            s.failed += 1
            self._fail(req, str(e))
        except asyncio.CancelledError:
            self._finish(req, dropped=True, error="the pool stopped")
            raise
        except Exception as e:  # noqa: BLE001 - a bug must not end the pool
            log.exception("background for cue %d on %s failed", req.cue.id, s.name)
            s.failed += 1
            self._fail(req, f"{s.name}: {_reason(e)}")
        finally:
            if job.prompt_id:
                s.client.unwatch(job.prompt_id)
            if s.job is job:
                s.job = None
            self._dispatch()

    def _prepare(self, req: _Request) -> tuple[dict[str, Any], bytes | None, tuple[int, int]]:
        """The cue's values for the workflow, and the init image (CPU work, off the loop)."""
        cue = req.cue
        seed = pick_seed(req.seed, self.cfg.seed)
        stage = req.size or (self.cfg.width, self.cfg.height)
        w = self.comfy.width or stage[0]
        h = self.comfy.height or stage[1]
        r, g, b = cue.colour.rgb255
        values: dict[str, Any] = {
            "prompt": build_prompt(cue, self.cfg, self.palette),
            "negative": self.cfg.negative_prompt,
            "seed": seed,
            "width": int(w),
            "height": int(h),
            "denoise": float(self.comfy.denoise),
            "colour": (r << 16) | (g << 8) | b,
            "colour_hex": cue.colour.hex,
            "red": r,
            "green": g,
            "blue": b,
            "emotion": EMOTIONS[cue.emotion],
            "intent": EMOTIONS[cue.intent],
            "confidence": round(float(cue.confidence), 4),
        }
        init_png = None
        if self.workflow.needs_init:
            img = cv2.cvtColor(render(cue.emotion, cue.colour, int(w), int(h), seed), cv2.COLOR_RGB2BGR)
            if self.comfy.init_format == "png":
                ok, buf = cv2.imencode(".png", img, [cv2.IMWRITE_PNG_COMPRESSION, 1])
            else:  # a start picture for img2img: JPEG's loss does not show, its speed does
                ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 95])
            if not ok:
                raise ComfyError("the init image could not be encoded")
            init_png = buf.tobytes()
        return values, init_png, (int(stage[0]), int(stage[1]))

    # ------------------------------------------------------------------ results

    def _deliver(self, s: _Server, req: _Request, bg: Background) -> None:
        if req.seq < self._delivered_seq and req.future is None:
            s.stale += 1
            log.info("cue %d's background from %s came after a newer one; discarded", req.cue.id, s.name)
            self._finish(req, dropped=True, error="a newer background was already out")
            return
        self._delivered_seq = max(self._delivered_seq, req.seq)
        for other in self.servers:  # older jobs still in flight cannot reach the stage any more
            if other.job is not None and other.job.request.seq < req.seq and other.job.request.future is None:
                other.job.cancel_stale()
        self._hand_out(req, bg, failure="")

    def _fail(self, req: _Request, error: str) -> None:
        """This request's background failed: the procedural one stands in (live), or the caller hears why."""
        if req.future is not None and not self.stand_in:
            self._finish(req, error=error)
            return
        said, said_t = self._stand_in_said
        now = time.monotonic()
        if error != said or now - said_t >= STAND_IN_REPEAT_S:
            more = f" (and for {self._stand_in_quiet} cues since it was last said)" if error == said and self._stand_in_quiet else ""
            log.warning("background for cue %d: %s; the procedural generator stands in%s", req.cue.id, error, more)
            self._stand_in_said, self._stand_in_quiet = (error, now), 0
        else:
            self._stand_in_quiet += 1
        newer = (self._pending is not None and self._pending.seq > req.seq) or req.seq < self._delivered_seq
        if newer:  # a newer cue's background is coming or already out: no stand-in for this one
            self._set_failure(error)
            self._finish(req, dropped=True, error=error)
            return
        self._delivered_seq = max(self._delivered_seq, req.seq)
        loop = asyncio.get_running_loop()

        def stand_in() -> None:
            try:
                bg = self.fallback.generate(req.cue, seed=req.seed, size=req.size)
                bg.note = f"fallback: {error}"
            except Exception as e:  # noqa: BLE001
                log.exception("the procedural stand-in failed too")
                text = f"{error}; fallback failed too: {_reason(e)}"
                loop.call_soon_threadsafe(lambda: self._finish(req, error=text))
                return
            loop.call_soon_threadsafe(self._hand_out, req, bg, error)

        self._cpu.submit(stand_in)

    def _set_failure(self, error: str) -> None:
        with self._lock:
            self.last_error = error
        self._last_failure = error
        self._update_status()

    def _hand_out(self, req: _Request, bg: Background, failure: str) -> None:
        with self._lock:
            bg.id = next(self._ids)
            self.generated += 1
            self.last_background = bg
            self.last_seconds = bg.seconds
            if failure:
                self.fallbacks += 1
                self.last_error = failure
        self._last_failure = failure
        self._update_status()
        if req.future is not None and not req.future.done():
            req.future.set_result(bg)
        if self._hand_over is not None:
            self._out.submit(self._call_on_background, req, bg)
        else:
            self._finish(req)

    def _call_on_background(self, req: _Request, bg: Background) -> None:
        try:
            self._hand_over(bg)
        except Exception:  # a sink's bug must not end the pool
            log.exception("background consumer failed")
        finally:
            self._finish(req)

    def _finish(self, req: _Request, dropped: bool = False, error: str = "") -> None:
        """A request is done with (delivered, failed or dropped): wait_idle counts on it."""
        if req.future is not None and not req.future.done():
            from .. import GeneratorError

            req.future.set_exception(GeneratorError(error or "the background was dropped"))
        with self._lock:
            self._outstanding = max(0, self._outstanding - 1)

    def _update_status(self) -> None:
        parts = [f"comfyui {s.name} {s.state}: {s.error}" for s in self.servers if s.state in ("down", "refused")]
        if self._last_failure and not (self._last_failure.startswith(NO_SERVER) and parts):
            parts.append(f"generator-failed: {self._last_failure}")  # (the servers' own lines say why none could)
        text = "; ".join(dict.fromkeys(parts)) or "ok"
        if text == self._status_text:
            return
        self._status_text = text
        if self.on_status is not None:
            on_status = self.on_status

            def tell() -> None:
                try:
                    on_status(text)
                except Exception:
                    log.exception("status consumer failed")

            self._out.submit(tell)


MAX_IMAGE_PIXELS = 8192 * 8192


def _decode_fit(data: bytes, size: tuple[int, int], server: str) -> np.ndarray:
    """The server's image as RGB uint8 at the stage size (its header is read first: a
    server's image is never decoded into more than MAX_IMAGE_PIXELS)."""
    import io

    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as head:
            w0, h0 = head.size
    except Image.DecompressionBombError:
        raise ComfyError(f"{server}: the image it sent claims more pixels than a stage picture; refused") from None
    except (UnidentifiedImageError, OSError):
        raise ComfyError(f"{server}: the image it sent is not a PNG or JPEG ({len(data)} bytes)") from None
    if w0 * h0 > MAX_IMAGE_PIXELS:
        raise ComfyError(f"{server}: the image it sent is {w0}x{h0}; at most {MAX_IMAGE_PIXELS} pixels are taken")
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if arr is None or arr.ndim != 3:
        raise ComfyError(f"{server}: the image it sent could not be decoded ({len(data)} bytes)")
    rgb = cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)
    w, h = size
    if rgb.shape[1] != w or rgb.shape[0] != h:
        shrink = rgb.shape[1] > w or rgb.shape[0] > h
        rgb = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return rgb
