"""The background worker: newest cue in, one generation at a time, never in the cues' way.

The cue path calls :meth:`BackgroundWorker.submit` and returns at once: the
request goes into a one-value slot (a newer cue replaces an older one that has
not started; that one is counted as dropped). The worker's own thread takes the
slot, generates, and hands the background to ``on_background``. When the
generator fails, the fallback (procedural) makes that cue's background instead,
and ``on_status`` hears why ("generator-failed: ...") so the daemon can send it
as /pcp/status.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Callable

from ..latest import Latest
from ..parts import BasePart
from ..types import Background, Cue

log = logging.getLogger("pcp_osc.backgrounds")

# The worker's thread is niced so a CPU-bound generation yields to capture,
# perception and OSC on a machine with few cores (Linux: per-thread niceness).
WORKER_NICE = 10


@dataclass
class _Request:
    cue: Cue
    seed: int | None
    reason: str  # "cue" | "generate"


class BackgroundWorker(BasePart):
    """Runs one generator on its own thread; ``submit`` never blocks. A part of the show:
    each cue (``on_cue``) is submitted when ``every_cue``, else only remembered for
    /pcp/generate (``generate_now``).

    on_background(bg): called on the worker thread with each finished background.
    on_status(text): called on the worker thread with "generator-failed: <why>"
    when a generation fails (the fallback made that background) and "ok" at the
    first success after a failure. Both must not block for long.
    """

    role = "generator"

    def __init__(
        self,
        generator,
        on_background: Callable[[Background], None] | None = None,
        fallback=None,
        on_status: Callable[[str], None] | None = None,
        nice: int = WORKER_NICE,
        every_cue: bool = True,
    ) -> None:
        from .procedural import ProceduralGenerator

        self.generator = generator
        self.fallback = fallback if fallback is not None else ProceduralGenerator(getattr(generator, "cfg", None))
        self._deliver = on_background  # the finished background goes here (show.assemble: to every part)
        self.on_status = on_status
        self.nice = nice
        self.every_cue = every_cue
        self._cond = threading.Condition()  # the request slot's lock, also over the counters below
        self._requests: Latest[_Request] = Latest(self._cond)
        self._latest_cue: Cue | None = None
        self._thread: threading.Thread | None = None
        self._busy = False
        self._next_id = 1
        self._failing = False
        # counters (read under the lock)
        self.submitted = 0
        self.dropped = 0
        self.generated = 0
        self.fallbacks = 0
        self.last_seconds: float | None = None
        self.last_error = ""
        self.last_background: Background | None = None

    # ------------------------------------------------------------------ control

    def start(self) -> None:
        with self._cond:
            if self._thread is not None:
                return
            self._requests.open()
            self._thread = threading.Thread(target=self._run, name="pcp-backgrounds", daemon=True)
            self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop after the generation in progress (a diffusion step cannot be interrupted)."""
        with self._cond:
            self._requests.clear()
            self._requests.close()
            thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout_s)
            if thread.is_alive():
                log.warning("background generation still running after %.0f s; leaving it to finish", timeout_s)

    def on_cue(self, cue: Cue) -> None:
        if self.every_cue:
            self.submit(cue)
        else:
            with self._cond:
                self._latest_cue = cue

    def submit(self, cue: Cue, seed: int | None = None) -> None:
        """Ask for a background for this cue. Returns at once; replaces a waiting older request."""
        with self._cond:
            self.submitted += 1
            self._latest_cue = cue
            if self._requests.put(_Request(cue, seed, "cue")):
                self.dropped += 1

    def generate_now(self, seed: int | None = None) -> bool:
        """/pcp/generate: a new background (new seed unless given) for the latest cue.
        False when no cue has been seen yet."""
        with self._cond:
            cue = self._latest_cue
            if cue is None:
                return False
            if self._requests.put(_Request(cue, seed, "generate")):
                self.dropped += 1
            return True

    def status(self) -> dict:
        with self._cond:
            return {
                "generator": getattr(self.generator, "name", type(self.generator).__name__),
                "busy": self._busy,
                "waiting": self._requests.pending,
                "submitted": self.submitted,
                "generated": self.generated,
                "dropped": self.dropped,
                "fallbacks": self.fallbacks,
                "last_seconds": None if self.last_seconds is None else round(self.last_seconds, 3),
                "last_error": self.last_error,
                "last_id": self.last_background.id if self.last_background else None,
            }

    def wait_idle(self, timeout_s: float) -> bool:
        """Block until nothing is waiting or running (for tests and the command line)."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self._requests.pending or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.05))
            return True

    # ------------------------------------------------------------------ thread

    def _run(self) -> None:
        if self.nice and hasattr(os, "setpriority"):
            try:
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), self.nice)
            except OSError:
                pass
        while True:
            with self._cond:
                request = self._requests.take()  # None: stopped
                if request is None:
                    return
                self._busy = True
            try:
                bg = self._generate(request)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()
            if bg is not None and self._deliver is not None:
                try:
                    self._deliver(bg)
                except Exception:  # a sink's bug must not end the worker
                    log.exception("background consumer failed")

    def _generate(self, request: _Request) -> Background | None:
        cue = request.cue
        try:
            bg = self.generator.generate(cue, seed=request.seed)
            error = ""
        except Exception as e:  # any failure: the procedural generator stands in for this cue
            error = _reason(e)
            log.warning("background for cue %d: %s; the procedural generator stands in", cue.id, error)
            try:
                bg = self.fallback.generate(cue, seed=request.seed)
            except Exception as e2:
                log.exception("fallback background failed too")
                bg, error = None, f"{error}; fallback failed too: {_reason(e2)}"
            if bg is not None:
                bg.note = f"fallback: {error}"
        with self._cond:
            if bg is not None:
                bg.id = self._next_id
                self._next_id += 1
                self.last_background = bg
                self.last_seconds = bg.seconds
                self.generated += 1
            if error:
                self.fallbacks += 1
                self.last_error = error
            was_failing, self._failing = self._failing, bool(error)
        if self.on_status is not None:
            try:
                if error:
                    self.on_status(f"generator-failed: {error}")
                elif was_failing:
                    self.on_status("ok")
            except Exception:
                log.exception("status consumer failed")
        return bg


def _reason(e: BaseException) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return text or type(e).__name__
