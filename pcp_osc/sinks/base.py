"""The one interface every texture sink has, and the thread that keeps it off the cue path.

A sink gets backgrounds through :meth:`Sink.send`, which only drops the background
into a latest-value slot and wakes the sink's own thread: it never waits on a
library, a GPU, the disk or the network. A slow sink skips backgrounds that were
replaced before it got to them (a show wants the newest picture, not a backlog).

Two kinds of sink:
  * :class:`Sink` publishes each background once (the file sink).
  * :class:`StreamingSink` keeps re-sending the picture at a steady frame rate and
    crossfades from the old background to the new one (NDI, Syphon, Spout): video
    receivers expect a stream, and a hard cut on stage looks like a glitch.

Library imports and platform checks happen in ``check()``, before a sink is made,
so a machine without the library says so once at start-up and the other sinks go on.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable

import cv2
import numpy as np

from ..backgrounds.crossfade import Crossfader
from ..latest import Latest
from ..osc import OscStream
from ..types import Background

log = logging.getLogger("pcp_osc.sinks")

OPEN_TIMEOUT_S = 10.0  # how long start() waits for a library to open its sender
STOP_TIMEOUT_S = 5.0



class SinkUnavailable(RuntimeError):
    """This machine cannot run the sink (wrong platform or library missing); the message says which."""


def to_rgba(image_rgb: np.ndarray, size_wh: tuple[int, int] | None = None) -> np.ndarray:
    """RGB (or RGBA, or grey) uint8 -> contiguous RGBA uint8, resized to ``size_wh`` when given."""
    img = np.asarray(image_rgb)
    if img.dtype != np.uint8:
        raise ValueError(f"background image must be uint8, got {img.dtype}")
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2RGBA)
    elif img.ndim == 3 and img.shape[2] == 3:
        img = cv2.cvtColor(img, cv2.COLOR_RGB2RGBA)
    elif not (img.ndim == 3 and img.shape[2] == 4):
        raise ValueError(f"background image must be (H, W, 3) RGB, got shape {img.shape}")
    if size_wh is not None and (img.shape[1], img.shape[0]) != tuple(size_wh):
        img = cv2.resize(img, tuple(size_wh), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(img)


class Sink:
    """Publishes backgrounds somewhere; one thread per sink, fed by a latest-value slot.

    Subclasses set ``kind`` and implement ``check()`` (classmethod: raise
    SinkUnavailable with a clear sentence), ``_open()``, ``_publish(bg)`` and ``_close()``;
    all three run on the sink's own thread (OpenGL contexts belong to one thread).
    """

    kind = "sink"

    def __init__(self, name: str, *, stream: OscStream | None = None) -> None:
        self.name = name
        self.stream = stream  # announces the sender and backgrounds (/pcp/background/...)
        self.published = 0  # backgrounds this sink has put out
        self.skipped = 0  # backgrounds replaced before the sink got to them
        self.errors = 0
        self.failed: str | None = None  # why the sink stopped, if it did
        self.last_published_id: int | None = None
        self.on_published: Callable[["Sink", Background], None] | None = None
        self._slot: Latest[Background] = Latest()
        self._stop = threading.Event()
        self._opened = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ interface

    @classmethod
    def check(cls) -> None:
        """Raise SinkUnavailable if this machine cannot run the sink."""

    def describe(self) -> str:
        state = f"failed: {self.failed}" if self.failed else ("running" if self.running else "stopped")
        return f"{self.kind} sink {self.name!r} ({state}, {self.published} published)"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self.failed

    def start(self) -> None:
        """Start the sink's thread and wait (bounded) until its library has opened.

        An open error does not raise: it is logged in the show's words and the sink
        stays off, so the daemon goes on with its other sinks."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._slot.open()
        self._thread = threading.Thread(target=self._run, name=f"sink-{self.kind}", daemon=True)
        self._thread.start()
        if not self._opened.wait(OPEN_TIMEOUT_S):
            log.warning("%s sink %r is still opening after %.0f s; backgrounds wait in its slot", self.kind, self.name, OPEN_TIMEOUT_S)

    def send(self, background: Background) -> None:
        """Hand a background over. Never blocks: the newest replaces any not yet published."""
        if self._slot.put(background):
            self.skipped += 1

    def stop(self) -> None:
        self._stop.set()
        self._slot.close()
        if self._thread is not None:
            self._thread.join(STOP_TIMEOUT_S)
            if self._thread.is_alive():
                log.warning("%s sink %r did not stop within %.0f s", self.kind, self.name, STOP_TIMEOUT_S)
        self._thread = None

    # ------------------------------------------------------------------ thread

    def _take(self, timeout_s: float | None) -> Background | None:
        return self._slot.take(timeout_s)

    def _run(self) -> None:
        try:
            self._open()
        except Exception as e:  # a library that fails to open must not take the show down
            self.failed = f"{type(e).__name__}: {e}"
            log.error("%s sink %r could not open (%s); the other sinks go on", self.kind, self.name, self.failed)
            self._opened.set()
            return
        self._opened.set()
        try:
            self._loop()
        finally:
            try:
                self._close()
            except Exception as e:
                log.warning("%s sink %r did not close cleanly: %s", self.kind, self.name, e)

    def _loop(self) -> None:
        while not self._stop.is_set():
            bg = self._take(0.5)
            if bg is None:
                continue
            try:
                self._publish(bg)
            except Exception as e:
                self.errors += 1
                log.warning("%s sink %r could not publish background %d: %s", self.kind, self.name, bg.id, e)
                continue
            self._published(bg)

    def _published(self, bg: Background) -> None:
        self.published += 1
        self.last_published_id = bg.id
        if self.on_published is not None:
            try:
                self.on_published(self, bg)
            except Exception as e:
                log.warning("background listener failed: %s", e)

    def _osc(self, what: str, send: Callable[[OscStream], None]) -> None:
        if self.stream is None:
            return
        try:
            send(self.stream)
        except Exception as e:  # OSC is best effort: the picture is already out
            log.warning("%s sink %r could not announce its %s: %s", self.kind, self.name, what, e)

    # ------------------------------------------------------------------ for subclasses

    def _open(self) -> None:
        pass

    def _publish(self, bg: Background) -> None:
        raise NotImplementedError

    def _close(self) -> None:
        pass


class StreamingSink(Sink):
    """A video sender: re-sends the current picture at ``fps`` and crossfades to each new one.

    The output size is fixed by the first background (receivers dislike size
    changes mid-show); later backgrounds of another size are scaled to it.
    Subclasses implement ``_open_stream(width_px, height_px)``, ``_send_frame(rgba)``
    and ``_close()``. The fade is the backgrounds package's :class:`Crossfader`
    (smoothstep, starts the next fade from what is showing), the one the rest of the
    show uses; pass another object with ``set(image, now)`` / ``frame(now)`` to change it.
    """

    def __init__(
        self,
        name: str,
        *,
        stream: OscStream | None = None,
        fps: float = 30.0,
        crossfade_s: float = 2.0,
        crossfader: Any = None,
    ) -> None:
        super().__init__(name, stream=stream)
        if not fps > 0:
            raise ValueError(f"{self.kind} sink frame rate must be > 0, got {fps}")
        self.fps = float(fps)
        self.crossfade_s = max(0.0, float(crossfade_s))
        self.crossfader = crossfader if crossfader is not None else Crossfader(self.crossfade_s)
        self.frames_sent = 0
        self.size_wh: tuple[int, int] | None = None
        self._current: np.ndarray | None = None  # what is on the stream now

    def _open(self) -> None:
        pass  # the stream opens with the first background, when its size is known

    def _loop(self) -> None:
        period_s = 1.0 / self.fps
        next_t = time.monotonic()
        while not self._stop.is_set():
            # Wait for the next frame time, or at once for a new background.
            bg = self._take(max(0.0, next_t - time.monotonic()) if self._current is not None else 0.5)
            if self._stop.is_set():
                break
            now = time.monotonic()
            if bg is not None:
                try:
                    self._begin(bg, now)
                except Exception as e:
                    self.errors += 1
                    log.warning("%s sink %r could not take background %d: %s", self.kind, self.name, bg.id, e)
                    if self._current is None:
                        continue
            elif now < next_t or self._current is None:
                continue
            frame = self._frame_at(now)
            try:
                self._send_frame(frame)
                self.frames_sent += 1
            except Exception as e:
                self.errors += 1
                if self.errors in (1, 10, 100) or self.errors % 1000 == 0:
                    log.warning("%s sink %r could not send a frame (%d errors so far): %s", self.kind, self.name, self.errors, e)
            next_t = max(next_t + period_s, now) if bg is None else now + period_s

    def _begin(self, bg: Background, now: float) -> None:
        if self.size_wh is None:
            h, w = bg.image.shape[:2]
            self._open_stream(int(w), int(h))
            self.size_wh = (int(w), int(h))
            log.info("%s sink %r is sending %dx%d at %.0f frames/s", self.kind, self.name, w, h, self.fps)
        # Every picture at the stream's size and RGBA before it reaches the crossfader,
        # so a fade never resizes and the stream never changes size.
        self.crossfader.set(to_rgba(bg.image, self.size_wh), now)
        self._current = self.crossfader.frame(now)
        self._announce(bg)  # it is on the stream from this frame on

    def _frame_at(self, now: float) -> np.ndarray:
        self._current = self.crossfader.frame(now)
        assert self._current is not None
        return self._current

    def _announce(self, bg: Background) -> None:
        self._osc("sender name", lambda s: s.background_sender(self.sender_name))
        self._published(bg)

    @property
    def sender_name(self) -> str:
        """The name receivers list (TouchDesigner's Syphon Spout In / NDI In menus)."""
        return self.name

    def _publish(self, bg: Background) -> None:  # pragma: no cover - streaming sinks use _loop
        raise NotImplementedError

    def _open_stream(self, width_px: int, height_px: int) -> None:
        raise NotImplementedError

    def _send_frame(self, rgba: np.ndarray) -> None:
        raise NotImplementedError
