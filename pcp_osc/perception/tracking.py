"""Face tracks for live video: a constant-velocity Kalman filter per face and ByteTrack's
association (Zhang et al. 2022), on the clock of the pictures rather than frame counts.

    tracker = FaceTracker(hold_s=0.5)
    predicted = tracker.predict(t)                 # (n, 4) where each track should be now
    ids = tracker.update(t, boxes, conf, hint)     # a track id per detection (-1: none)

What a caller may rely on:
- ``predict(t)`` moves every track to time ``t`` (seconds, any clock that only goes
  forward) and returns the boxes to look in; ``uncertainty_px`` says how far off each
  may be (it grows while a face goes unseen and with its speed);
- ``update`` matches this picture's detections to the tracks: a detection that came from
  looking in a track's own window (``hint``) continues that track; the others are
  matched by overlap with the predicted boxes, the confident ones first, then the
  weak ones (ByteTrack: a weak detection may continue a face but never start one);
  a confident detection matching no track starts one at once;
- a track seen in this picture has its id on its detection; a track not seen is not
  reported, and ends when it has gone unseen for ``hold_s`` and MIN_MISSES pictures
  (lost tracks end honestly: nothing is reported from a prediction alone);
- ids are unique for the tracker's life and never reused.

Why not a library: supervision's ByteTrack moved (0.27+) into Roboflow's ``trackers``,
which declares opencv-python (the GUI build, which replaces our headless cv2), supervision,
PyAV and rich, and counts frames; live search also needs each track's prediction before
the detector runs (the re-check windows are cut there) and a clock in seconds, since
pictures come at 30 fps from a camera and every few seconds from a folder or a phone.
The assignment itself is ``lap.lapjv``, the solver the ByteTrack reference uses.
"""

from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger(__name__)

# ByteTrack's noise model (as in its reference Kalman filter), per 1/30 s: position
# noise 1/20 of the face height, velocity noise 1/160 of it.
REFERENCE_FPS = 30.0
STD_POSITION = 1.0 / 20
STD_VELOCITY = 1.0 / 160
# Association: a detection continues a track when their boxes overlap at least this much.
MATCH_IOU = 0.3
# A detection overlapping an already matched face this much is that face again (a search
# tile found what the re-check found).
DUPLICATE_IOU = 0.3
MAX_TRACKS = 256  # faces followed at once (each costs a re-check window per picture)
# ... and a track ends only once it has also been missed in this many pictures (a slow
# machine or source: two pictures can be further apart than hold_s).
MIN_MISSES = 3
# The motion model is trusted this far ahead (s): a source that stalls, or a clock that
# jumps (a caller switching from time.monotonic() to time.time(): 1.7e9 s), must not carry
# a face's velocity off to boxes too large to cut out (a later picture failed on every
# frame: "integer won't fit into a C int"); beyond it a face is looked for where it was last.
MAX_PREDICT_S = 2.0


class FaceTracker:
    """Kalman state per track: centre x, y, width, height and their velocities (px per
    1/30 s), with the covariance; all tracks in parallel arrays."""

    def __init__(self, hold_s: float = 0.5, confident: float = 0.5, max_tracks: int = MAX_TRACKS) -> None:
        self.hold_s = float(hold_s)
        self.confident = float(confident)
        self.max_tracks = int(max_tracks)
        self.ids = np.zeros((0,), np.int64)
        self.mean = np.zeros((0, 8), np.float64)
        self.cov = np.zeros((0, 8, 8), np.float64)
        self.last_seen = np.zeros((0,), np.float64)
        self.first_seen = np.zeros((0,), np.float64)
        self.misses = np.zeros((0,), np.int64)  # pictures in a row the track was not found in
        self.t: float | None = None
        self._next_id = 1
        self.ended = 0  # tracks ended so far (lost for hold_s)
        self.full_warned = False

    def __len__(self) -> int:
        return len(self.ids)

    def reset(self) -> None:
        """Forget every track (a new video, a new frame size); ids keep counting up."""
        self.end_all()
        self.t = None

    def end_all(self) -> None:
        """End every track now (a camera cut); ids keep counting up."""
        self.ended += len(self.ids)
        self._keep(np.zeros(len(self.ids), bool))

    # ------------------------------------------------------------------ motion

    def predict(self, t: float) -> np.ndarray:
        """Move every track to time ``t``; (n, 4) xyxy boxes where the faces should be."""
        if self.t is not None and len(self.ids):
            dt = min(max(0.0, t - self.t), MAX_PREDICT_S) * REFERENCE_FPS
            if dt > 0:
                f = np.eye(8)
                f[:4, 4:] = dt * np.eye(4)
                h = np.maximum(self.mean[:, 3], 1.0)
                q_pos = (STD_POSITION * h) ** 2 * dt
                q_vel = (STD_VELOCITY * h) ** 2 * dt
                q = np.zeros((len(h), 8, 8))
                idx = np.arange(4)
                q[:, idx, idx] = q_pos[:, None]
                q[:, idx + 4, idx + 4] = q_vel[:, None]
                self.mean = self.mean @ f.T
                self.cov = f @ self.cov @ f.T + q
        self.t = t if self.t is None else max(self.t, t)
        return self.boxes()

    def boxes(self) -> np.ndarray:
        """(n, 4) xyxy boxes of the tracks' current state."""
        m = self.mean
        half = np.maximum(m[:, 2:4], 1.0) / 2
        return np.concatenate([m[:, :2] - half, m[:, :2] + half], axis=1).astype(np.float32)

    def uncertainty_px(self) -> np.ndarray:
        """(n,) about two standard deviations of each track's centre, in px."""
        if not len(self.ids):
            return np.zeros((0,), np.float32)
        var = self.cov[:, 0, 0] + self.cov[:, 1, 1]
        return (2.0 * np.sqrt(var)).astype(np.float32)

    def speed_px_s(self) -> np.ndarray:
        """(n, 2) each track's velocity, px per second."""
        return (self.mean[:, 4:6] * REFERENCE_FPS).astype(np.float32)

    # ------------------------------------------------------------------ association

    def update(self, t: float, boxes: np.ndarray, conf: np.ndarray, hint: np.ndarray | None = None,
               end_unmatched: bool = False) -> np.ndarray:
        """Match this picture's detections to the tracks (after ``predict(t)``).

        boxes (m, 4) xyxy, conf (m,), hint (m,) the track index (into this tracker's
        arrays, as ordered at ``predict``) whose window found the detection, -1 for the
        others. Returns (m,) track ids, -1 for a detection that neither continues a
        track nor is confident enough to start one (or a duplicate of a face matched).
        ``end_unmatched``: the picture changed as a whole (a cut) and was searched
        whole: a track not found in it ends now rather than after hold_s."""
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        conf = np.asarray(conf, np.float32).reshape(-1)
        m, n = len(boxes), len(self.ids)
        hint = np.full(m, -1, np.int64) if hint is None else np.asarray(hint, np.int64).reshape(-1)
        if self.t is None:
            self.t = t
        det_track = np.full(m, -1, np.int64)   # index into tracks
        track_taken = np.zeros(n, bool)
        predicted = self.boxes()
        # 1. a detection found in a track's own window continues it (when the two agree).
        order = np.argsort(-conf, kind="stable")
        for j in order:
            i = hint[j]
            if 0 <= i < n and not track_taken[i] and _iou(predicted[i:i + 1], boxes[j:j + 1])[0, 0] > 0.05:
                det_track[j], track_taken[i] = i, True
        # 2. the rest: duplicates of a matched face are dropped; then ByteTrack's two
        #    rounds by overlap with the predicted boxes, confident detections first.
        free = det_track < 0
        if free.any() and (det_track >= 0).any():
            dup = _overlap(boxes[free], boxes[det_track >= 0]).max(axis=1) > DUPLICATE_IOU
            idx = np.flatnonzero(free)
            det_track[idx[dup]] = -2  # a duplicate: not reported, not a new face
        for strong in (True, False):
            cand = np.flatnonzero((det_track == -1) & ((conf >= self.confident) == strong))
            tracks = np.flatnonzero(~track_taken)
            if not len(cand) or not len(tracks):
                continue
            cost = 1.0 - _iou(boxes[cand], predicted[tracks])
            for a, b in _assign(cost, 1.0 - MATCH_IOU):
                det_track[cand[a]], track_taken[tracks[b]] = tracks[b], True
        # 3. correct the matched tracks with their detections.
        matched = np.flatnonzero(det_track >= 0)
        if len(matched):
            self._correct(det_track[matched], boxes[matched])
            self.last_seen[det_track[matched]] = t
        self.misses += 1
        self.misses[det_track[matched]] = 0
        ids = np.full(m, -1, np.int64)
        ids[matched] = self.ids[det_track[matched]]
        if end_unmatched and not track_taken.all():
            keep = track_taken.copy()
            self.ended += int((~keep).sum())
            self._keep(keep)
            n = len(self.ids)
        # 4. confident detections that match nothing are new faces.
        new = np.flatnonzero((det_track == -1) & (conf >= self.confident))
        room = max(0, self.max_tracks - n)
        if len(new) > room and not self.full_warned:
            self.full_warned = True
            log.warning("%d faces are followed already, the most this tracker follows; more faces are not "
                        "reported (set perception.region to the audience, or use a lower resolution)", self.max_tracks)
        new = new[np.argsort(-conf[new], kind="stable")][:room]
        if len(new):
            ids[new] = self._start(t, boxes[new])
        # 5. tracks unseen for hold_s (and MIN_MISSES pictures) end.
        alive = ((t - self.last_seen) <= self.hold_s) | (self.misses < MIN_MISSES)
        if not alive.all():
            self.ended += int((~alive).sum())
            self._keep(alive)
        return ids

    def _correct(self, rows: np.ndarray, boxes: np.ndarray) -> None:
        z = np.concatenate([(boxes[:, :2] + boxes[:, 2:]) / 2, boxes[:, 2:] - boxes[:, :2]], axis=1).astype(np.float64)
        mean, cov = self.mean[rows], self.cov[rows]
        h = np.maximum(mean[:, 3], 1.0)
        r = np.zeros((len(rows), 4, 4))
        idx = np.arange(4)
        r[:, idx, idx] = ((STD_POSITION * h) ** 2)[:, None]
        s = cov[:, :4, :4] + r
        gain = cov[:, :, :4] @ np.linalg.inv(s)
        self.mean[rows] = mean + (gain @ (z - mean[:, :4])[:, :, None])[:, :, 0]
        self.cov[rows] = cov - gain @ cov[:, :4, :]

    def _start(self, t: float, boxes: np.ndarray) -> np.ndarray:
        k = len(boxes)
        ids = np.arange(self._next_id, self._next_id + k, dtype=np.int64)
        self._next_id += k
        mean = np.zeros((k, 8))
        mean[:, :2] = (boxes[:, :2] + boxes[:, 2:]) / 2
        mean[:, 2:4] = boxes[:, 2:] - boxes[:, :2]
        h = np.maximum(mean[:, 3], 1.0)
        cov = np.zeros((k, 8, 8))
        idx = np.arange(4)
        cov[:, idx, idx] = ((2 * STD_POSITION * h) ** 2)[:, None]
        cov[:, idx + 4, idx + 4] = ((10 * STD_VELOCITY * h) ** 2)[:, None]
        self.ids = np.concatenate([self.ids, ids])
        self.mean = np.concatenate([self.mean, mean])
        self.cov = np.concatenate([self.cov, cov])
        self.last_seen = np.concatenate([self.last_seen, np.full(k, t)])
        self.first_seen = np.concatenate([self.first_seen, np.full(k, t)])
        self.misses = np.concatenate([self.misses, np.zeros(k, np.int64)])
        return ids

    def _keep(self, keep: np.ndarray) -> None:
        self.ids, self.mean, self.cov = self.ids[keep], self.mean[keep], self.cov[keep]
        self.last_seen, self.first_seen, self.misses = self.last_seen[keep], self.first_seen[keep], self.misses[keep]


def _assign(cost: np.ndarray, limit: float) -> list[tuple[int, int]]:
    """Minimum-cost one-to-one pairs (row, column) with cost below ``limit``."""
    import lap

    _, x, _ = lap.lapjv(cost.astype(np.float64), extend_cost=True, cost_limit=limit)
    return [(i, int(j)) for i, j in enumerate(x) if j >= 0]


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    iw = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    ih = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = iw * ih
    area = lambda z: (z[:, 2] - z[:, 0]) * (z[:, 3] - z[:, 1])  # noqa: E731
    return inter / np.maximum(area(a)[:, None] + area(b)[None] - inter, 1e-6)


def _overlap(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU, or the share of the smaller box inside the other when larger (half a face
    cut by a tile edge is the same face)."""
    iw = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    ih = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = iw * ih
    area = lambda z: np.maximum((z[:, 2] - z[:, 0]) * (z[:, 3] - z[:, 1]), 1e-6)  # noqa: E731
    union = area(a)[:, None] + area(b)[None] - inter
    return np.maximum(inter / union, inter / np.minimum(area(a)[:, None], area(b)[None]))
