"""Live video for the default backend: follow the known faces in every picture, search
for new ones as the schedule says, and keep each face's identity.

Per picture (``LiveSearch.step``):
1. the tracks are moved to the picture's time (Kalman prediction);
2. each track is looked for in a window cut around its predicted box (all windows in
   one detector batch; the window widens with the track's uncertainty), so a face is
   found again in every picture where it is visible, whatever the search cadence;
3. the schedule (schedule.py) picks the search for new faces: the whole picture, or
   this picture's share of the small-face tiles and of the coarse whole-picture pass;
   while the camera pans, the strip along the edge where new faces come in as well;
4. the detections are matched to the tracks (tracking.py); only faces seen in this
   picture are reported, each with its track id; a face unseen for ``track_hold_s``
   ends its track.
Everything happens inside the audience region when one is set (region.py).
"""

from __future__ import annotations

import logging
import time

import numpy as np

from ..console import RateLimitedReport
from .region import AudienceRegion
from .schedule import COARSE_PARTS, Plan, SearchSchedule
from .search import flat_picture, thumbnail
from .tracking import FaceTracker

log = logging.getLogger(__name__)

# The camera counts as panning when the faces found in two pictures in a row moved, by
# their median, at least this fast (px/s; 1 px per frame at 30 fps is 30), with at least
# this many faces.
PAN_MIN_PX_S = 15.0
PAN_MIN_TRACKS = 2
# ... and when it has moved this far one way: a seated audience sways a few px to and
# fro (the bench's crowd: +-4 px), which is no pan and must not cost edge searches;
# small, so a pan that turns searches its new entering edge soon (on the bench's pan:
# 12 px 99.5% of visible face-frames found, 24 px 98.7%)
PAN_MIN_TRAVEL_PX = 12.0
# The entering edge's strip (frame px) and the part of it new picture may fill before
# the strip is searched again: faces up to EDGE_STRIP_PX - EDGE_SPARE_PX wide are
# searched whole in it (larger ones are found by the coarse whole-picture pass).
EDGE_STRIP_PX = 112
EDGE_SPARE_PX = 48
EDGE_MIN_PERIOD_S = 0.1

# The coarse pass's parts overlap by this (frame px): a face up to this size is whole in one.
COARSE_OVERLAP_PX = 320
MAX_READINGS_KEPT = 64  # readings of ended tracks kept before they are forgotten
# How often the picture's light is measured for the detector's view (search.view_lut):
# a lighting change reaches the detector within this; in between the table is reused.
VIEW_REFRESH_S = 0.5
VIEW_LIGHT_CHANGE = np.log(1.25)  # a channel's mean brighter or darker by 25%: the light changed
VIEW_LEVEL_STEP = 16  # every 16th pixel of every 16th row tells the light's level

# Time going back by more than this (s), or to the stream's first picture, is another video
# or the same one again; less is a picture stamped a little early (a jittery clock), taken
# as the next one.
NEW_STREAM_BACK_S = 1.0
SIZE_LINES_PER_INTERVAL = 3  # "picture size changed" lines per console.REPORT_INTERVAL_S

EMPTY_BOXES = np.zeros((0, 4), np.float32)
EMPTY_CONF = np.zeros((0,), np.float32)


class LiveSearch:
    """One video stream's live state, driving a DefaultBackend's detector."""

    def __init__(self, backend, cfg, region: AudienceRegion | None) -> None:
        self.backend = backend
        self.cfg = cfg
        self.region = region
        self.tracker = FaceTracker(hold_s=cfg.track_hold_s, confident=cfg.face_threshold)
        self.schedule = SearchSchedule(cfg.search_s, cfg.search_budget, cfg.cut_change)
        self.size: tuple[int, int] | None = None
        self.first_t: float | None = None  # the time of the stream's first picture
        self.tiles: list[tuple[int, int, int, int]] = []
        self.cursor = 0
        self.coarse_cursor = 0
        self.last_plan = None
        # camera motion, measured: the median displacement of the faces found in two
        # pictures in a row (px/s), and the faces' last centres it is measured from
        self.motion_px_s = np.zeros(2, np.float32)
        self._centres: dict[int, tuple[float, float, float]] = {}
        self._edge = [None, None]       # the entering strip searched last, per axis
        self._edge_credit = [0.0, 0.0]
        self._travel = np.zeros(2, np.float32)  # px moved one way so far, per axis (signed)
        self._motion_t: float | None = None
        self._read: dict[int, tuple[np.ndarray, int, float]] = {}  # track id -> (readings per version, next version, when read)
        self._read_t: float | None = None
        self._read_credit = 0.0
        self.pictures = 0
        # a folder of photographs of mixed sizes changes size every picture: a few lines per
        # interval, then one line that counts the rest
        self._size_report = RateLimitedReport(log, "picture size changes (each picture searched afresh)",
                                              per_key=SIZE_LINES_PER_INTERVAL, total=SIZE_LINES_PER_INTERVAL,
                                              level=logging.INFO)
        # the detector's view of the light (search.view_lut): its table, when and at what level measured
        self._view_lut, self._view_t, self._view_level = None, None, None
        self._region_changed = False  # set_region: the next picture takes the new region over
        self.blind = False  # the latest picture was black, white or flat: nothing could be seen

    def step(self, image: np.ndarray, t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(boxes, detection confidence, track ids) of the faces seen in this picture."""
        b = self.backend
        h, w = image.shape[:2]
        geo = self.region.geometry(w, h) if self.region is not None else None
        if self.size != (w, h):
            self._new_size(w, h, geo)
        elif self.schedule.last_t is not None and t < self.schedule.last_t and (
                t < self.schedule.last_t - NEW_STREAM_BACK_S or t <= self.first_t):
            # time went back, far or to the start: another video (or the same one again),
            # not the next picture
            self.size = None
            self._new_size(w, h, geo)
        elif self._region_changed:
            self._new_region(w, h, geo)
        if self.first_t is None:
            self.first_t = t
        if self.schedule.last_t is not None and t < self.schedule.last_t:
            # a picture stamped a little before the previous one (a jittery clock, a late
            # frame): the next picture all the same, at the latest time (it started afresh
            # each time: every track ended, the picture searched whole)
            t = self.schedule.last_t
        self.pictures += 1
        if geo is not None and geo.empty:
            return EMPTY_BOXES, EMPTY_CONF, np.zeros((0,), np.int64)
        small = thumbnail(image)  # one thumbnail for the flat test and the cut test
        self.blind = flat_picture(image, small)
        if self.blind:
            # a blackout, a strobe's dark or white flash, a capture card without signal:
            # nothing to see here, and nothing to compare the next picture with. Searched, it
            # was a cut on every flash (each person a new track a flash, a whole search each);
            # skipped, the tracks wait and the next lit picture continues them. The picture
            # is reported blind (Faces.data["blind"]): the mood holds, it saw no one leave
            return EMPTY_BOXES, EMPTY_CONF, np.zeros((0,), np.int64)
        previous_t = self.schedule.last_t
        dt, change = self.schedule.observe(t, image, small)
        if dt is not None and change >= self.schedule.cut_change:
            # a cut: whoever is in the picture now is someone new (a face at the same place
            # in the new shot must not continue an old track)
            self.tracker.end_all()
        # the detector sees the picture with a stage wash's level and colour cast taken out
        # (search.detector_view), measured every VIEW_REFRESH_S and on a cut; the
        # expression classifier gets the picture itself
        image = self._detector_view(image, t, dt is not None and change >= self.schedule.cut_change, geo)
        predicted = self.tracker.predict(t)
        small = float(self.cfg.small_face_scale)
        looking = len(predicted)
        if looking:
            rb, rc, rhint = b._recheck(image, predicted, small, self.tracker.uncertainty_px())
        else:
            rb, rc, rhint = EMPTY_BOXES, EMPTY_CONF, np.zeros((0,), np.int64)
        # faces seen in the previous picture and not found again in this one: many at once
        # means the picture moved or cut under them
        was_seen = self.tracker.last_seen >= (previous_t if previous_t is not None else np.inf)
        refound = np.zeros(looking, bool)
        refound[rhint] = True
        lost = int((was_seen & ~refound).sum())
        mode = self.cfg.small_faces  # sweep (live default), full (everything every picture), off
        plan = self.schedule.plan(dt, change, looking, lost, len(self.tiles) if mode == "sweep" else 0)
        if mode != "sweep" and not plan.full:
            plan = Plan(True, mode, False, 0)
        self.last_plan = plan
        parts = []
        if plan.full:
            t0 = time.perf_counter()
            parts.append(b._find_in_region(image, "off" if mode == "off" else "full", geo, filter_region=False, seen=True))
            self.schedule.record("full", time.perf_counter() - t0)
            if plan.reason not in ("first picture", "slow source", "time allows"):
                log.debug("whole picture searched: %s", plan.reason)
        else:
            if plan.coarse:
                t0 = time.perf_counter()
                parts.append(self._coarse_part(image, geo))
                self.schedule.record("coarse", time.perf_counter() - t0)
            todo = [("tile", self.tiles[(self.cursor + k) % len(self.tiles)]) for k in range(plan.tiles)]
            self.cursor += plan.tiles
            todo += [("edge", s) for s in self._edge_strips(dt or 0.0)] if mode == "sweep" else []
            for kind, region in todo:
                t0 = time.perf_counter()
                tb, tc = b._search_region(image, region, small)
                # upscaled search is where false faces come from: the doubtful ones are
                # verified as in the whole-picture search (search.py)
                parts.append(b._verified(image, tb, tc, small))
                self.schedule.record(kind, time.perf_counter() - t0)
        sb = np.concatenate([EMPTY_BOXES] + [p[0] for p in parts])
        sc = np.concatenate([EMPTY_CONF] + [p[1] for p in parts])
        if len(parts) > 1 and len(sb):
            from .default import TILE_MERGE_IOU, nms

            keep = nms(sb, sc, TILE_MERGE_IOU, containment=True)
            sb, sc = sb[keep], sc[keep]
        boxes = np.concatenate([rb, sb]).astype(np.float32)
        conf = np.concatenate([rc, sc]).astype(np.float32)
        hint = np.concatenate([rhint, np.full(len(sb), -1, np.int64)])
        if len(boxes):
            np.clip(boxes, 0, [w, h, w, h], out=boxes)
            keep = (boxes[:, 3] - boxes[:, 1]) >= self.cfg.min_face_px
            if geo is not None:
                keep &= geo.inside(boxes)
            boxes, conf, hint = boxes[keep], conf[keep], hint[keep]
        if len(boxes) > 1:
            # One box per face before matching: when the picture moves faster than the
            # tracks' motion models expect, several tracks' windows (and the search) find
            # the same face; unmerged, each continued or started a track of its own and
            # one face became many. A window's finding goes first: it carries its track.
            from .default import TILE_MERGE_IOU, nms

            keep = np.sort(nms(boxes, conf + (hint >= 0), TILE_MERGE_IOU, containment=True))
            boxes, conf, hint = boxes[keep], conf[keep], hint[keep]
        ids = self.tracker.update(t, boxes, conf, hint, end_unmatched=plan.reason in ("cut", "faces lost"))
        seen = ids >= 0
        self._measure_motion(t, boxes[seen], ids[seen], plan.full and plan.reason == "cut")
        return boxes[seen], conf[seen], ids[seen]

    def _detector_view(self, image: np.ndarray, t: float, cut: bool, geo=None) -> np.ndarray:
        """The picture as the detector sees it (search.detector_view), its table measured
        again every VIEW_REFRESH_S, on a cut, and at once when the light changes (a
        lighting cue: a channel's mean moves by VIEW_LIGHT_CHANGE or more). With an
        audience region the light is measured inside its box, as a still's search does:
        a bright stage or screen beside a dark, washed audience must not make the room
        look lit (under a blue wash live video lost 3 of 9 faces a still search found)."""
        from . import search as face_search

        x0, y0, x1, y1 = (0, 0, image.shape[1], image.shape[0]) if geo is None else geo.bbox
        audience = image[y0:y1, x0:x1]
        level = audience[::VIEW_LEVEL_STEP, ::VIEW_LEVEL_STEP].reshape(-1, 3).mean(axis=0) + 1.0
        changed = self._view_level is None or bool((np.abs(np.log(level / self._view_level)) >= VIEW_LIGHT_CHANGE).any())
        if cut or changed or self._view_t is None or not 0 <= t - self._view_t < VIEW_REFRESH_S:
            self._view_lut, self._view_t, self._view_level = face_search.view_lut(audience), t, level
        return face_search.apply_view(image, self._view_lut)

    def _coarse_part(self, image: np.ndarray, geo) -> tuple[np.ndarray, np.ndarray]:
        """The next of COARSE_PARTS overlapping parts of the picture (of the region's box)
        at detect_scale, across its longer side; the overlap holds any face the coarse
        pass is for (COARSE_OVERLAP_PX), so each is whole in one part. ``image``: the
        detector's view of the picture (search.detector_view), not viewed again."""
        h, w = image.shape[:2]
        x0, y0, x1, y1 = (0, 0, w, h) if geo is None else geo.bbox
        k = self.coarse_cursor % COARSE_PARTS
        self.coarse_cursor += 1
        across = (x1 - x0) >= (y1 - y0)
        lo, hi = (x0, x1) if across else (y0, y1)
        step = (hi - lo) / COARSE_PARTS
        a = int(max(lo, lo + k * step - COARSE_OVERLAP_PX / 2))
        z = int(min(hi, lo + (k + 1) * step + COARSE_OVERLAP_PX / 2))
        box = (a, y0, z, y1) if across else (x0, a, x1, z)
        boxes, conf = self.backend._find_faces(image[box[1]:box[3], box[0]:box[2]], "off", seen=True)
        return boxes + np.array([box[0], box[1], box[0], box[1]], np.float32), conf

    def set_region(self, region: AudienceRegion | None) -> None:
        """A new audience region (between two pictures, on the thread that calls step):
        the next picture is searched whole inside it (new tiles), so no one in a wider
        region waits for the sweep. The people inside keep their tracks (their ids and
        smoothed readings); those now outside are no longer reported and their tracks end."""
        self.region = region
        self._region_changed = True

    def _new_region(self, w: int, h: int, geo) -> None:
        self._region_changed = False
        self.schedule.reset()  # the next picture: searched whole (inside the region)
        self._edge, self._edge_credit = [None, None], [0.0, 0.0]
        self._view_t = None  # the light is measured inside the region's box
        self._place_tiles(w, h, geo)

    # ------------------------------------------------------------------ readings

    def to_read(self, ids: np.ndarray, t: float) -> np.ndarray:
        """(n,) bool: which faces to classify now. New faces at once; the others when
        their reading is ``reread_s`` old, oldest first, spread so that each picture reads
        about n x (time since the last picture) / reread_s of them."""
        every = float(getattr(self.cfg, "reread_s", 0.0))
        n = len(ids)
        if every <= 0 or not n:
            return np.ones(n, bool)
        age = np.array([t - self._read.get(int(i), (None, 0, -np.inf))[2] for i in ids])
        now = ~np.isfinite(age)
        # faces read at least half a period ago may be read now, oldest first, as many as
        # this picture's share; so readings spread over the pictures instead of bunching
        due = np.flatnonzero(np.isfinite(age) & (age >= every / 2))
        dt = max(0.0, t - self._read_t) if self._read_t is not None else every
        self._read_t = t
        share = n * dt / every
        self._read_credit = min(share + 1.0, self._read_credit + share)
        k = min(len(due), int(self._read_credit))
        now[due[np.argsort(-age[due], kind="stable")][:k]] = True
        self._read_credit -= k
        # a reading older than reread_s is read now whatever the spread says
        now[np.isfinite(age) & (age >= every)] = True
        return now

    def versions(self, ids: np.ndarray) -> np.ndarray:
        """Which version of each face's crop to read (classifier.scores' ``versions``): a
        new face gets a full reading (-1: every version at once); a followed face the next
        version in turn, one pass instead of n_versions (see :meth:`readings`)."""
        return np.array([self._read[int(i)][1] if int(i) in self._read else -1 for i in ids], np.int64)

    def readings(self, ids: np.ndarray, now: np.ndarray, versions: np.ndarray, fresh: np.ndarray, t: float,
                 n_versions: int = 1) -> np.ndarray:
        """(n, 5) scores: per face, the mean of its latest reading of each version (the
        fresh ones where read now). A full reading fills every version at once, so a new
        face reads as a still does; a followed face renews one version per reading, so its
        evidence is pooled over its last n_versions readings (a few tenths of a second at
        ``reread_s``): the mirror image and the noise floor cost one pass a reading."""
        width = fresh.shape[1] if fresh.ndim == 2 and fresh.shape[1] else 5
        n_versions = max(1, int(n_versions))
        out = np.zeros((len(ids), width), np.float32)
        for row, j, k in zip(fresh, np.flatnonzero(now), versions):
            key = int(ids[j])
            ring = self._read.get(key, (None, 0, 0.0))[0]
            if k < 0 or ring is None or ring.shape != (n_versions, width):
                ring, k = np.repeat(row[None].astype(np.float32), n_versions, axis=0), -1
            else:
                ring[k] = row
            self._read[key] = (ring, (k + 1) % n_versions, t)
        for j, i in enumerate(ids):
            out[j] = self._read[int(i)][0].mean(axis=0)
        if len(self._read) > 2 * len(self.tracker) + MAX_READINGS_KEPT:  # forget faces whose tracks ended
            alive = set(int(i) for i in self.tracker.ids)
            self._read = {i: r for i, r in self._read.items() if i in alive}
        return out

    def _measure_motion(self, t: float, boxes: np.ndarray, ids: np.ndarray, cut: bool) -> None:
        centres = (boxes[:, :2] + boxes[:, 2:]) / 2
        moves = []
        for (cx, cy), i in zip(centres, ids):
            prev = self._centres.get(int(i))
            if prev is not None and t > prev[2]:
                moves.append(((cx - prev[0]) / (t - prev[2]), (cy - prev[1]) / (t - prev[2])))
        dt = t - self._motion_t if self._motion_t is not None else 0.0
        if cut:
            self.motion_px_s[:] = 0
        elif len(moves) >= PAN_MIN_TRACKS:
            self.motion_px_s = np.median(np.array(moves, np.float32), axis=0)
        elif not moves:
            self.motion_px_s[:] = 0
        step = self.motion_px_s * dt
        same_way = (np.sign(step) == np.sign(self._travel)) & (np.abs(self.motion_px_s) >= PAN_MIN_PX_S)
        self._travel = np.where(same_way, self._travel + step, np.where(np.abs(self.motion_px_s) >= PAN_MIN_PX_S, step, 0))
        self._motion_t = t
        self._centres = {int(i): (float(c[0]), float(c[1]), t) for c, i in zip(centres, ids)}

    def _edge_strips(self, dt: float) -> list[tuple[int, int, int, int]]:
        """While the camera pans (the faces found move one way together, measured from
        picture to picture): per axis, the strip along the edge where new faces come in,
        searched at once when the pan starts or turns and then as often as the pan moves
        EDGE_SPARE_PX of new picture in (a pan: PAN_MIN_TRAVEL_PX one way at least), so a small face (up to EDGE_STRIP_PX -
        EDGE_SPARE_PX wide) is searched while whole inside the strip, soon after it
        entered."""
        if not self.tiles:
            return []
        x0, y0 = min(t[0] for t in self.tiles), min(t[1] for t in self.tiles)
        x1, y1 = max(t[2] for t in self.tiles), max(t[3] for t in self.tiles)
        todo = []
        for axis, (lo, hi, other_lo, other_hi) in enumerate(((x0, x1, y0, y1), (y0, y1, x0, x1))):
            speed = float(self.motion_px_s[axis])
            if abs(speed) < PAN_MIN_PX_S or abs(float(self._travel[axis])) < PAN_MIN_TRAVEL_PX:
                self._edge[axis], self._edge_credit[axis] = None, 0.0
                continue
            width = min(EDGE_STRIP_PX, hi - lo)
            # content moving toward lower coordinates (speed < 0) enters at the high edge
            a, b = (hi - width, hi) if speed < 0 else (lo, lo + width)
            strip = (a, other_lo, b, other_hi) if axis == 0 else (other_lo, a, other_hi, b)
            period = min(self.cfg.search_s / 2, max(EDGE_MIN_PERIOD_S, EDGE_SPARE_PX / abs(speed)))
            if strip != self._edge[axis]:
                self._edge[axis], self._edge_credit[axis] = strip, 1.0  # a pan starts or turns: now
            else:
                self._edge_credit[axis] += dt / period
            if self._edge_credit[axis] >= 1.0:
                self._edge_credit[axis] = min(self._edge_credit[axis] - 1.0, 1.0)
                todo.append(strip)
        return todo

    def _new_size(self, w: int, h: int, geo) -> None:
        if self.size is not None:
            self._size_report.warn("size", "picture size changed from %dx%d to %dx%d: faces are searched afresh",
                                   *self.size, w, h)
        self.motion_px_s = np.zeros(2, np.float32)
        self._centres, self._edge, self._edge_credit = {}, [None, None], [0.0, 0.0]
        self._travel, self._motion_t = np.zeros(2, np.float32), None
        self._read, self._read_t, self._read_credit = {}, None, 0.0
        self._view_t = None
        self.size = (w, h)
        self.first_t = None
        self.tracker.reset()
        self.schedule.reset()
        self._region_changed = False
        self._place_tiles(w, h, geo)

    def _place_tiles(self, w: int, h: int, geo) -> None:
        """The small-face tiles of a w x h picture that touch the region (geometry ``geo``)."""
        from .default import _sweep_tiles

        x0, y0, x1, y1 = (0, 0, w, h) if geo is None else geo.bbox
        tiles = [(tx0 + x0, ty0 + y0, tx1 + x0, ty1 + y0)
                 for tx0, ty0, tx1, ty1 in _sweep_tiles(max(1, x1 - x0), max(1, y1 - y0), float(self.cfg.small_face_scale))]
        self.tiles = [t for t in tiles if geo is None or geo.touches(t)] or [(0, 0, w, h)]
        self.cursor = 0
