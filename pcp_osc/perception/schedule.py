"""When to search a live picture for new faces: by time and by change, not by frame counts.

Known faces are followed every picture (their tracks' windows, cheap). Searching the
picture for new faces is the expensive part, so it is planned per picture from the
clock of the source and the measured cost of each kind of search:

- the whole picture (both scales, the same search a photograph gets) when
  * it is the first picture (or the picture size changed);
  * the picture's content changed as a whole since the last one (a camera cut: the
    change of a small gray thumbnail, brightness and contrast taken out, >= ``cut_change``;
    a lighting cue is not a cut);
  * many tracked faces were lost at once (at least 2 and at least half of them);
  * it fits the time the source leaves: its measured cost <= ``budget`` x the time
    since the previous picture (a folder or a phone that sends a picture every few
    seconds gets a whole search on every picture);
  * the previous picture is ``search_s`` or more ago;
- otherwise, pieces of it, paced so that every part is searched within ``search_s``
  whatever the frame rate: small-face tiles at ``small_face_scale`` (n tiles x time
  since the last picture / search_s, the fraction carried over), and the whole picture
  at ``detect_scale`` (larger faces) every search_s / 4;
(live.py adds a strip along the edge where new faces come in while the camera pans.)

    schedule = SearchSchedule(search_s=2.0, budget=0.5, cut_change=0.35)
    dt, change = schedule.observe(t, image)
    plan = schedule.plan(dt, change, tracks=8, lost=0, tiles=40)
    ... schedule.record("full", seconds)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

THUMB_W, THUMB_H = 32, 18
THUMB_MIN_STD = 4.0  # gray levels: a nearly flat picture (black) is not amplified into noise
COST_EMA = 0.3  # weight of the newest measurement of a search's cost
INTERVAL_EMA = 0.1  # weight of the newest interval between pictures
FULL_REMEASURE_S = 10.0
COARSE_PER_SWEEP = 4  # the whole picture at detect_scale this many times per search_s
COARSE_PARTS = 2      # ... in this many parts, one per picture (a shorter longest picture)
AFTER_FULL_OWN_TIME = 3.0  # a gap under this many whole-search costs after one is mostly the search's own


@dataclass(frozen=True)
class Plan:
    full: bool
    reason: str   # why the whole picture is searched ("" when it is not)
    coarse: bool  # a part of the whole picture at detect_scale (COARSE_PARTS make the whole)
    tiles: int    # small-face tiles to search now


class SearchSchedule:
    def __init__(self, search_s: float = 2.0, budget: float = 0.5, cut_change: float = 0.35) -> None:
        self.search_s = float(search_s)
        self.budget = float(budget)
        self.cut_change = float(cut_change)
        self.cost_s: dict[str, float] = {}
        self.counts: dict[str, int] = {}
        self.full_measured_t: float | None = None
        self.reset()

    def reset(self) -> None:
        self.last_t: float | None = None
        self.thumb: np.ndarray | None = None
        self.tile_credit = 0.0
        self.coarse_credit = 0.0
        self.interval_s: float | None = None
        self.after_full = False  # the previous picture was searched whole

    # ------------------------------------------------------------------ inputs

    def observe(self, t: float, image: np.ndarray, small: np.ndarray | None = None) -> tuple[float | None, float]:
        """Seconds since the previous picture (None for the first) and how much the
        picture's content changed as a whole (0..1, see ``cut_change``). ``small``: the
        picture's search.thumbnail when the caller has made it already."""
        if small is None:
            step = max(1, min(image.shape[0] // THUMB_H, image.shape[1] // THUMB_W) // 2)
            small = cv2.resize(image[::step, ::step], (THUMB_W, THUMB_H), interpolation=cv2.INTER_AREA)
        thumb = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY).astype(np.float32)
        # content, not light: brightness and contrast are taken out (a lighting cue or a
        # strobe is not a cut), then half the mean absolute difference, capped at 1
        # (measured: a 3 px/frame pan 0.10 at most, cuts between real scenes 0.48..0.54; with
        # search.thumbnail, the bench's pan 0.06 at most and its cut 0.53)
        thumb = (thumb - thumb.mean()) / max(float(thumb.std()), THUMB_MIN_STD)
        change = 1.0 if self.thumb is None else min(1.0, float(np.abs(thumb - self.thumb).mean()) / 2)
        dt = None if self.last_t is None else max(0.0, t - self.last_t)
        self.thumb, self.last_t = thumb, t if self.last_t is None else max(self.last_t, t)
        return dt, change

    def record(self, kind: str, seconds: float) -> None:
        """The measured cost of one search of ``kind`` ("full", "coarse", "tile")."""
        old = self.cost_s.get(kind)
        # whole searches are rare: the latest is the best estimate (the first one of a
        # stream also warms the detector up and costs more); the pieces are averaged
        self.cost_s[kind] = seconds if old is None or kind == "full" else (1 - COST_EMA) * old + COST_EMA * seconds
        self.counts[kind] = self.counts.get(kind, 0) + 1
        if kind == "full":
            self.full_measured_t = self.last_t

    # ------------------------------------------------------------------ decision

    def plan(self, dt: float | None, change: float, tracks: int, lost: int, tiles: int) -> Plan:
        """``tiles``: how many small-face tiles cover the picture."""
        reason = self._full_reason(dt, change, tracks, lost)
        if reason:
            self.tile_credit = self.coarse_credit = 0.0
            self.after_full = True
            return Plan(True, reason, False, 0)
        dt = dt or 0.0
        # the source's usual interval (a moving average): one slow picture (a hiccup) must
        # not make the next one search several tiles at once (frame-to-OSC latency). The
        # gap after a whole search is mostly that search's own (100..300 ms at 720p): as
        # the interval it made the next second's pictures search 2..6 tiles each; it is
        # not counted as the source's interval.
        if not self.after_full:
            self.interval_s = dt if self.interval_s is None else (1 - INTERVAL_EMA) * self.interval_s + INTERVAL_EMA * dt
        self.after_full = False
        self.tile_credit = min(float(tiles), self.tile_credit + tiles * dt / self.search_s)
        self.coarse_credit = min(1.0, self.coarse_credit + dt * COARSE_PER_SWEEP * COARSE_PARTS / self.search_s)
        coarse = self.coarse_credit >= 1.0
        if coarse:
            self.coarse_credit -= 1.0
        interval = self.interval_s if self.interval_s is not None else 0.0
        per_picture = max(1, math.ceil(tiles * interval / self.search_s))
        # searching may take budget x the time between pictures: on a machine too slow to
        # search every part within search_s, the sweep takes longer rather than each
        # picture taking longer (which would widen the gap and ask for more tiles still)
        tile_cost = self.cost_s.get("tile")
        if tile_cost:
            per_picture = max(1, min(per_picture, int(self.budget * interval / tile_cost)))
        if coarse:  # the coarse pass costs about two tiles: no tile besides it unless behind
            per_picture -= 1
        n = min(tiles, per_picture, int(math.floor(self.tile_credit)))
        self.tile_credit -= n
        return Plan(False, "", coarse, n)

    def _full_reason(self, dt: float | None, change: float, tracks: int, lost: int) -> str:
        if dt is None:
            return "first picture"
        if change >= self.cut_change:
            return "cut"
        if lost >= 2 and 2 * lost >= tracks:
            return "faces lost"
        if dt >= self.search_s:
            return "slow source"
        cost = self.cost_s.get("full")
        # right after a whole search, the time since the previous picture is mostly that
        # search's own (a live camera's pictures in between were dropped): it shows how
        # slow the search was, not that the source leaves time for another one
        ours = self.after_full and cost is not None and dt < AFTER_FULL_OWN_TIME * cost
        if cost is not None and cost <= self.budget * dt and not ours:
            return "time allows"
        # an estimate can go stale (measured once, on a busy moment): when it is nearly
        # in budget and FULL_REMEASURE_S old, search whole once more to measure again
        stale = self.full_measured_t is None or self.last_t - self.full_measured_t >= FULL_REMEASURE_S
        if cost is not None and stale and cost <= 2 * self.budget * dt:
            return "time allows"
        return ""
