"""The mood tracker: faces per frame in, a cue's mood per window and a smooth live mood out.

Window cue (every ``window_s``, default 15 s -- the original's capture interval):
  * the mood counts people, not detections: on live video every face is a track
    (``Faces.track_id``) and is reported in every frame where it is visible, so each
    visible person contributes one row per frame, however well or badly the detector
    sees them; that row is the person's scores smoothed over time (exponential, time
    constant ``face_smoothing_s``, per track), so one odd frame of a face does not
    swing it. Faces without a track (a backend without tracking) count as they come.
  * the window's distribution is the mean of those rows over all frames of the
    window (each visible person weighs the same in each frame). The dominant emotion
    is its argmax and the cue's confidence is that emotion's share -- "how strongly
    the room feels it" (1.0 = every face fully that emotion).
  * no faces in the whole window: the performance's intended emotion stands in
    (source ``intent``) at ``intent_confidence``, so a cue is always sent. (The
    original crashed on an empty window.)
  * an override from show control wins (source ``override``, confidence 1)
    until released or timed out.

Live mood (every frame): the mean of the frame's (per-person smoothed) rows, smoothed with an
exponential time constant ``smoothing_s``; with no faces it drifts toward the
intent. Valence and arousal follow from the shares with the mapping below
(Russell's circumplex, as used for FER-style categories):

    emotion   valence  arousal
    joy        +0.80    0.60
    anxiety    -0.50    0.80
    anger      -0.70    0.90
    sadness    -0.70    0.20
    neutral     0.00    0.30

valence = sum(share * valence_e) in -1..1, arousal = sum(share * arousal_e) in 0..1.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import numpy as np

from .config import MoodConfig
from .emotions import N_EMOTIONS, parse_emotion
from .types import Faces, Mood

VALENCE = np.array([0.80, -0.50, -0.70, -0.70, 0.00], dtype=np.float32)
AROUSAL = np.array([0.60, 0.80, 0.90, 0.20, 0.30], dtype=np.float32)

TRACKS_KEPT = 512      # per-person smoothed rows kept ...
TRACK_FORGET_S = 30.0  # ... and, beyond that many, those unseen this long are forgotten

WINDOW_MIN_S = 1.0
WINDOW_MAX_S = 300.0


def valence_arousal(distribution: np.ndarray) -> tuple[float, float]:
    d = np.asarray(distribution, dtype=np.float32)
    s = float(d.sum())
    if s <= 0:
        return 0.0, 0.0
    d = d / s
    return float(d @ VALENCE), float(d @ AROUSAL)


def one_hot(index: int) -> np.ndarray:
    v = np.zeros(N_EMOTIONS, dtype=np.float32)
    v[index] = 1.0
    return v


@dataclass
class Override:
    emotion: int
    until: float | None  # monotonic time, None = until release


class MoodTracker:
    """Thread-safe: the perception loop calls ``update``/``tick``, show control calls the setters."""

    def __init__(self, cfg: MoodConfig, now: float) -> None:
        self.cfg = cfg
        self.window_s = float(cfg.window_s)
        self.intent = parse_emotion(cfg.intent, "mood.intent")
        self.override: Override | None = None
        self._lock = threading.RLock()
        self._live = one_hot(self.intent)
        self._live_t: float | None = None
        self._last_faces = 0
        self._tracks: dict[int, tuple[np.ndarray, float]] = {}  # track id -> (smoothed row, last seen)
        # (sum, face rows, frames) of the window an operator's cue cut short, read until the
        # new window has its first frame: a release a moment after an override carries the
        # audience as it was, not the intent of a window that has not seen a picture yet
        self._carry: tuple[np.ndarray, int, int] | None = None
        self._start_window(now)

    # ------------------------------------------------------------------ window
    def _start_window(self, now: float) -> None:
        self.window_start = now
        self._sum = np.zeros(N_EMOTIONS, dtype=np.float64)
        self._face_rows = 0
        self._frames = 0

    def restart_window(self, now: float) -> None:
        """Start a fresh window now: an operator's cue (override, release) begins a window of its
        own, so no window cue with the same look follows a moment later. Until the new window's
        first frame, cues read the window it cut short (a window with no frames yet has seen
        nothing, which is not the same as seeing no faces)."""
        with self._lock:
            if self._frames:
                self._carry = (self._sum.copy(), self._face_rows, self._frames)
            self._start_window(now)

    def update(self, faces: Faces, now: float) -> Mood:
        """Add one processed frame; returns the smoothed live mood."""
        with self._lock:
            if faces.data.get("blind"):
                # a picture in which nothing could be seen (a blackout, a strobe's flash):
                # not "no audience" -- the live mood and the window hold until the next
                # picture that shows the room (else a strobe pulled the room to the intent)
                return self.live()
            scores = self._smoothed(faces, now)
            if len(faces) and self.cfg.min_face_confidence > 0:
                scores = scores[scores.max(axis=1) >= self.cfg.min_face_confidence]
            self._frames += 1
            self._carry = None
            self._last_faces = int(len(scores))
            if len(scores):
                self._sum += scores.sum(axis=0)
                self._face_rows += len(scores)
                target = scores.mean(axis=0)
            else:
                target = one_hot(self._current_intent_or_override())
            if self._live_t is None or self.cfg.smoothing_s <= 0:
                self._live = target.astype(np.float32)
            else:
                dt = max(0.0, now - self._live_t)
                a = 1.0 - math.exp(-dt / self.cfg.smoothing_s)
                self._live = ((1 - a) * self._live + a * target).astype(np.float32)
            self._live_t = now
            return self.live()

    def _smoothed(self, faces: Faces, now: float) -> np.ndarray:
        """Each face's row, smoothed over time per track (raw for untracked faces)."""
        tau = float(getattr(self.cfg, "face_smoothing_s", 0.0))
        if not len(faces) or tau <= 0:
            return faces.scores
        out = faces.scores.astype(np.float32).copy()
        for i, tid in enumerate(faces.track_id):
            if tid < 0:
                continue
            prev = self._tracks.get(int(tid))
            if prev is not None:
                a = 1.0 - math.exp(-max(0.0, now - prev[1]) / tau)
                out[i] = (1 - a) * prev[0] + a * out[i]
            self._tracks[int(tid)] = (out[i], now)
        if len(self._tracks) > TRACKS_KEPT:  # forget people long gone
            for tid in [k for k, (_, seen) in self._tracks.items() if now - seen > TRACK_FORGET_S] or list(self._tracks)[:len(self._tracks) // 2]:
                del self._tracks[tid]
        return out

    def live(self) -> Mood:
        with self._lock:
            d = self._live / max(1e-9, float(self._live.sum()))
            k = int(d.argmax())
            v, a = valence_arousal(d)
            source = "override" if self.override else ("audience" if self._last_faces else "intent")
            return Mood(k, float(d[k]), d.copy(), float(self._last_faces), source, v, a, 1)

    def due(self, now: float) -> bool:
        with self._lock:
            return now - self.window_start >= self.window_s

    def tick(self, now: float) -> Mood | None:
        """Close the window if its time is up: returns the window's mood, else None."""
        with self._lock:
            self._expire_override(now)
            if now - self.window_start < self.window_s:
                return None
            mood = self.window_mood(carry=False)  # a whole window without a picture: the source is gone
            self._carry = None
            self._start_window(now)
            return mood

    def window_mood(self, carry: bool = True) -> Mood:
        """The mood of the window so far (what a cue sent now would carry)."""
        with self._lock:
            if carry and self._frames == 0 and self._carry is not None:
                total, face_rows, frames = self._carry
            else:
                total, face_rows, frames = self._sum, self._face_rows, self._frames
            faces_per_frame = face_rows / frames if frames else 0.0
            if self.override is not None:
                d = one_hot(self.override.emotion)
                return self._mood(self.override.emotion, 1.0, d, faces_per_frame, "override")
            if face_rows == 0:
                d = one_hot(self.intent)
                return self._mood(self.intent, self.cfg.intent_confidence, d, 0.0, "intent")
            d = (total / face_rows).astype(np.float32)
            d /= max(1e-9, float(d.sum()))
            k = int(d.argmax())
            return self._mood(k, float(d[k]), d, faces_per_frame, "audience")

    def _mood(self, k: int, conf: float, d: np.ndarray, faces: float, source: str) -> Mood:
        v, a = valence_arousal(d)
        return Mood(k, float(conf), d, float(faces), source, v, a, self._frames)

    # ------------------------------------------------------------------ show control
    def set_intent(self, emotion: int) -> None:
        with self._lock:
            self.intent = int(emotion)

    def set_override(self, emotion: int, now: float, seconds: float | None = None) -> None:
        with self._lock:
            if seconds is None and self.cfg.override_timeout_s > 0:
                seconds = self.cfg.override_timeout_s
            self.override = Override(int(emotion), now + seconds if seconds else None)

    def release(self) -> bool:
        """End an override; returns whether one was active."""
        with self._lock:
            active = self.override is not None
            self.override = None
            return active

    def set_window(self, seconds: float, now: float) -> None:
        if not WINDOW_MIN_S <= seconds <= WINDOW_MAX_S:
            raise ValueError(f"window {seconds} s is out of range; allowed {WINDOW_MIN_S:g}..{WINDOW_MAX_S:g} s")
        with self._lock:
            self.window_s = float(seconds)

    def _expire_override(self, now: float) -> bool:
        if self.override is not None and self.override.until is not None and now >= self.override.until:
            self.override = None
            return True
        return False

    def expire_override(self, now: float) -> bool:
        """Drop a timed-out override; returns True when one just ended."""
        with self._lock:
            return self._expire_override(now)

    def _current_intent_or_override(self) -> int:
        return self.override.emotion if self.override else self.intent
