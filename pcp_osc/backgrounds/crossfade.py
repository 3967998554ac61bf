"""Crossfades between backgrounds, for sinks that show a stream (NDI, Syphon, Spout).

A streaming sink calls ``set(image, now)`` when a background arrives and
``frame(now)`` for every frame it sends; the fade runs on the sink's clock.
"""

from __future__ import annotations

import threading

import cv2
import numpy as np


class Crossfader:
    """Blends the previous background into the newest over ``crossfade_s`` seconds.

    ``frame(now)`` returns the current image (RGB uint8). A ``set`` during a fade
    starts the next fade from what is on screen at that moment, so nothing jumps.
    Images of another size than the newest are resized to it. Thread-safe.
    """

    def __init__(self, crossfade_s: float) -> None:
        if crossfade_s < 0:
            raise ValueError(f"crossfade_s = {crossfade_s} must be >= 0 seconds")
        self.crossfade_s = float(crossfade_s)
        self._lock = threading.Lock()
        self._old: np.ndarray | None = None
        self._new: np.ndarray | None = None
        self._start = 0.0

    def set(self, image: np.ndarray, now: float) -> None:
        image = np.asarray(image)
        with self._lock:
            if self._new is not None and self.crossfade_s > 0:
                old = self._frame_locked(now)
                if old.shape != image.shape:
                    old = cv2.resize(old, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_AREA)
                self._old = old
            else:
                self._old = None
            self._new = image
            self._start = now

    def progress(self, now: float) -> float:
        """0 at the start of a fade, 1 when the newest image is fully shown."""
        with self._lock:
            return self._progress_locked(now)

    def fading(self, now: float) -> bool:
        return self.progress(now) < 1.0

    def frame(self, now: float) -> np.ndarray | None:
        """The image to show at ``now`` (None before the first ``set``)."""
        with self._lock:
            if self._new is None:
                return None
            return self._frame_locked(now)

    def _progress_locked(self, now: float) -> float:
        if self._old is None or self.crossfade_s <= 0:
            return 1.0
        return min(1.0, max(0.0, (now - self._start) / self.crossfade_s))

    def _frame_locked(self, now: float) -> np.ndarray:
        t = self._progress_locked(now)
        if t >= 1.0:
            self._old = None  # fade done: drop the old image, later frames are free
            return self._new
        w = t * t * (3.0 - 2.0 * t)  # smoothstep: no visible start or stop
        return cv2.addWeighted(self._old, 1.0 - w, self._new, w, 0.0)
