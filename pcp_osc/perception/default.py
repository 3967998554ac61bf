"""The shipped perception backend: RetinaFace (MobileNet-0.25) finds the faces, the
FER2013 mini-Xception reads each face's expression; both ONNX on onnxruntime's CPU
provider, weights in weights/ (see weights/PROVENANCE.md).

    backend = DefaultBackend(config.perception)
    faces = backend.detect(image_bgr)          # Faces: boxes, detection_confidence, scores (n, 5)

What a caller may rely on:
- boxes are xyxy in pixels of the image given, clipped to it;
- every face of a frame is classified in one batch; ``scores`` rows sum to 1 over the
  five emotions (FER2013's seven classes summed by :func:`pcp_osc.emotions.merge_matrix`);
- the detector needs faces of ~32 px, so the whole frame is searched at
  ``cfg.detect_scale`` (0.5: faces from ~64 px) and small faces at
  ``cfg.small_face_scale`` (1.6: faces from 20 px). ``detect`` treats consecutive calls
  as live video (``small_faces = "sweep"``): the first frame of a size is searched fully,
  later ones re-check the faces already found, sweep one small-face tile every second
  frame and search the whole frame every third frame. ``detect_still`` / ``detect_many`` search
  everything now (photographs). One backend per video stream: it keeps that state;
- a searched image larger than ``cfg.detect_side`` (4K cameras) is cut into
  overlapping tiles whose faces are merged (``cfg.tile``), or shrunk to it.
"""

from __future__ import annotations

import logging
import math
import os
from typing import Sequence

import cv2
import numpy as np

from ..types import Faces
from .classifier import ExpressionClassifier, onnx_session
from .weights import CLASSIFIER_FILE, DETECTOR_FILE, weight_path

log = logging.getLogger(__name__)

# RetinaFace MobileNet-0.25 as trained (biubug6/Pytorch_Retinaface cfg_mnet).
ANCHOR_MIN_SIZES_PX = ((16, 32), (64, 128), (256, 512))
ANCHOR_STEPS_PX = (8, 16, 32)
VARIANCES = (0.1, 0.2)
NMS_IOU = 0.4
# Faces that straddle two tiles are found twice; merging at a looser IoU joins the halves.
TILE_MERGE_IOU = 0.3
TILE_OVERLAP_PX = 96  # at detector scale: a bit more than the largest face a tile must see whole
# RetinaFace MobileNet-0.25 finds faces from about this height (its input px) reliably;
# measured on the shipped photos: 32 px 98% at threshold 0.5, 24 px 27%, 20 px 2%.
RELIABLE_FACE_PX = 32
# Small-face sweep: tiles of this size (detector px) at small_face_scale, one every
# cfg.sweep_every frames (default 4; 1280x720 at 1.6: 40 tiles, the whole frame in
# ~5.3 s at 30 fps -- a third of a cue window). Measured at 8 faces: every 2nd frame
# and a full search every 3rd cost 21 ms/frame; every 4th and 6th, 16 ms.
SWEEP_EVERY = 4
SWEEP_TILE_PX = 320
SWEEP_OVERLAP_PX = 64
# Re-check of a known small face: a window this many face sizes wide, seen at this size.
RECHECK_PER_FACE = 2.0
RECHECK_PX = 64
MAX_TRACKS = 64
# Sweep mode: the whole frame at detect_scale every this many frames (new faces that
# are not small are found within full_search_every frames; known faces are re-checked every frame).
BASE_EVERY = 6  # the default of cfg.full_search_every
# A face not found again is still looked for this many frames (not reported meanwhile).
MAX_MISSES = 3

class DefaultBackend:
    """RetinaFace + mini-Xception on onnxruntime (CPU)."""

    name = "default"

    def __init__(self, cfg) -> None:
        import onnxruntime as ort

        ort.disable_telemetry_events()  # and ORT_DISABLE_TELEMETRY, set in pcp_osc/__init__.py before the import

        self.cfg = cfg
        self.threads = int(cfg.threads) if cfg.threads else min(4, os.cpu_count() or 1)
        weights_dir = getattr(cfg, "weights_dir", "") or None
        det_path = weight_path(DETECTOR_FILE, weights_dir)
        cls_path = weight_path(CLASSIFIER_FILE, weights_dir)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        # Worker threads that spin between runs burn a core the capture and OSC threads need.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._detector = onnx_session(ort, det_path, opts)
        self.classifier = ExpressionClassifier.shipped(cls_path, opts)
        self._priors: dict[tuple[int, int], np.ndarray] = {}
        self._sweep: _Sweep | None = None

    # ------------------------------------------------------------------ public

    def detect(self, image_bgr: np.ndarray) -> Faces:
        image = _check_image(image_bgr)
        boxes, conf = self._find_faces(image, self.cfg.small_faces)
        scores = self.classifier.classify(image, boxes)
        return Faces(boxes, conf, scores)

    def detect_still(self, image_bgr: np.ndarray) -> Faces:
        """Like :meth:`detect`, but every part of the image is searched for small faces
        now (no sweep over frames): for photographs, slower."""
        image = _check_image(image_bgr)
        boxes, conf = self._find_faces(image, "off" if self.cfg.small_faces == "off" else "full")
        return Faces(boxes, conf, self.classifier.classify(image, boxes))

    def detect_many(self, images_bgr: Sequence[np.ndarray]) -> list[Faces]:
        """One Faces per image, each searched fully (the images need not be a video); the
        faces of all images are classified in one batch."""
        images = [_check_image(im, f"image {i}") for i, im in enumerate(images_bgr)]
        mode = "off" if self.cfg.small_faces == "off" else "full"
        found = [self._find_faces(im, mode) for im in images]
        crops = [self.classifier.crops(im, b) for im, (b, _) in zip(images, found)]
        scores = self.classifier.scores(np.concatenate(crops)) if crops else np.zeros((0, 5), np.float32)
        out, start = [], 0
        for (boxes, conf) in found:
            out.append(Faces(boxes, conf, scores[start:start + len(boxes)]))
            start += len(boxes)
        return out

    def classify_boxes(self, image_bgr: np.ndarray, boxes_xyxy: np.ndarray) -> np.ndarray:
        """(n, 5) emotion scores for faces at known boxes (one batch)."""
        return self.classifier.classify(_check_image(image_bgr), np.asarray(boxes_xyxy, np.float32).reshape(-1, 4))

    # ------------------------------------------------------------------ detection

    def _find_faces(self, image: np.ndarray, mode: str) -> tuple[np.ndarray, np.ndarray]:
        """Boxes (frame px) and confidences.

        ``off``: the whole frame at detect_scale. ``full``: that, and the whole frame again
        at small_face_scale (photographs). ``sweep`` (live video): the first frame of a
        new size is searched as in ``full``; after that, each frame re-checks every face
        of the previous frame in a window around it (one small batch), searches one tile
        at small_face_scale for new small faces, and every cfg.full_search_every-th frame the whole
        frame at detect_scale for new larger ones. An audience mostly stays put, so this
        finds the same faces for a fraction of the work."""
        h, w = image.shape[:2]
        small = float(self.cfg.small_face_scale)
        sweep = self._sweep
        if mode == "off" or small <= self.cfg.detect_scale:
            parts = [self._search(image, float(self.cfg.detect_scale))]
        elif mode == "full" or sweep is None or sweep.size != (w, h):
            parts = [self._search(image, float(self.cfg.detect_scale)), self._search(image, small)]
            if mode == "sweep":
                self._sweep = sweep = _Sweep((w, h), _sweep_tiles(w, h, small))
        else:
            sweep.frame += 1
            parts = [self._recheck(image, sweep.tracks, small)]
            if sweep.frame % getattr(self.cfg, "sweep_every", SWEEP_EVERY) == 0:
                parts.append(self._search_region(image, sweep.next_tile(), small))
            if sweep.frame % getattr(self.cfg, "full_search_every", BASE_EVERY) == 0 or not len(sweep.tracks):
                parts.append(self._search(image, float(self.cfg.detect_scale)))
        boxes = np.concatenate([b for b, _ in parts])
        conf = np.concatenate([c for _, c in parts])
        if len(parts) > 1 and len(boxes):
            keep = nms(boxes, conf, TILE_MERGE_IOU, containment=True)
            boxes, conf = boxes[keep], conf[keep]
        if len(boxes):
            np.clip(boxes, 0, [w, h, w, h], out=boxes)
            keep = (boxes[:, 3] - boxes[:, 1]) >= self.cfg.min_face_px
            boxes, conf = boxes[keep], conf[keep]
        if mode == "sweep" and sweep is not None:
            sweep.follow(boxes)
        return boxes, conf

    def _search(self, image: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
        """The whole image at ``scale``: in one piece up to detect_side, else tiled (or,
        with tile = false, shrunk to detect_side)."""
        h, w = image.shape[:2]
        side = int(self.cfg.detect_side)
        if max(w, h) * scale > side and not self.cfg.tile:
            scale = side / max(w, h)
        sw, sh = max(1, round(w * scale)), max(1, round(h * scale))
        # Bilinear down to half size is 5x cheaper than INTER_AREA and the detector does
        # not see the difference; below half, area averaging avoids aliasing.
        interp = cv2.INTER_AREA if scale < 0.5 else cv2.INTER_LINEAR
        scaled = image if (sw, sh) == (w, h) else cv2.resize(image, (sw, sh), interpolation=interp)
        if max(sw, sh) <= side:
            boxes, conf = self._detect_tile(scaled)
        else:
            boxes, conf = self._detect_tiled(scaled, side)
        boxes /= np.array([sw / w, sh / h, sw / w, sh / h], np.float32)
        return boxes, conf

    def _search_region(self, image: np.ndarray, region: tuple[int, int, int, int], scale: float):
        """One frame region (x0, y0, x1, y1) at ``scale``."""
        x0, y0, x1, y1 = region
        crop = image[y0:y1, x0:x1]
        tw, th = max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale))
        boxes, conf = self._detect_tile(cv2.resize(crop, (tw, th), interpolation=cv2.INTER_LINEAR))
        boxes = boxes / np.array([tw / (x1 - x0), th / (y1 - y0)] * 2, np.float32) + np.array([x0, y0, x0, y0], np.float32)
        return boxes, conf

    def _recheck(self, image: np.ndarray, tracks: np.ndarray, scale: float):
        """Find each known small face again in a window around it, all windows in one
        detector batch (fixed size, so a moving face is followed frame to frame)."""
        if not len(tracks):
            return np.zeros((0, 4), np.float32), np.zeros((0,), np.float32)
        h, w = image.shape[:2]
        windows = np.empty((len(tracks), RECHECK_PX, RECHECK_PX, 3), np.uint8)
        origins = []
        for i, (x1, y1, x2, y2) in enumerate(tracks):
            side = max(RECHECK_PER_FACE * max(x2 - x1, y2 - y1), RECHECK_PX / scale)
            cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
            wx0, wy0 = int(round(cx - side / 2)), int(round(cy - side / 2))
            s = max(2, int(round(side)))
            cx0, cy0, cx1, cy1 = max(0, wx0), max(0, wy0), min(w, wx0 + s), min(h, wy0 + s)
            patch = image[cy0:cy1, cx0:cx1]
            if (cx0, cy0, cx1, cy1) != (wx0, wy0, wx0 + s, wy0 + s):
                patch = cv2.copyMakeBorder(patch, cy0 - wy0, wy0 + s - cy1, cx0 - wx0, wx0 + s - cx1,
                                           cv2.BORDER_CONSTANT, value=(104, 117, 123))
            windows[i] = cv2.resize(patch, (RECHECK_PX, RECHECK_PX), interpolation=cv2.INTER_LINEAR)
            origins.append((wx0, wy0, s / RECHECK_PX))
        found_boxes, found_conf = [], []
        for (b, c), (ox, oy, k) in zip(self._run_detector(windows), origins):
            if not len(b):
                continue
            centre = (b[:, :2] + b[:, 2:]) / 2
            near = np.all(np.abs(centre - RECHECK_PX / 2) < RECHECK_PX / 4, axis=1)
            if near.any():
                j = int(np.argmax(np.where(near, c, -1)))
                found_boxes.append(b[j] * k + np.array([ox, oy, ox, oy], np.float32))
                found_conf.append(c[j])
        if not found_boxes:
            return np.zeros((0, 4), np.float32), np.zeros((0,), np.float32)
        return np.array(found_boxes, np.float32), np.array(found_conf, np.float32)

    def _detect_tiled(self, scaled: np.ndarray, side: int) -> tuple[np.ndarray, np.ndarray]:
        sh, sw = scaled.shape[:2]
        tile_w = min(sw, side)
        tile_h = min(sh, side)
        all_boxes, all_conf = [np.zeros((0, 4), np.float32)], [np.zeros((0,), np.float32)]
        for y0 in _tile_starts(sh, tile_h, TILE_OVERLAP_PX):
            for x0 in _tile_starts(sw, tile_w, TILE_OVERLAP_PX):
                b, c = self._detect_tile(scaled[y0:y0 + tile_h, x0:x0 + tile_w])
                all_boxes.append(b + np.array([x0, y0, x0, y0], np.float32))
                all_conf.append(c)
        boxes, conf = np.concatenate(all_boxes), np.concatenate(all_conf)
        keep = nms(boxes, conf, TILE_MERGE_IOU, containment=True)
        return boxes[keep], conf[keep]

    def _detect_tile(self, tile: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Faces in one detector input; boxes in the tile's pixels."""
        th, tw = tile.shape[:2]
        boxes, conf = self._run_detector(np.ascontiguousarray(tile)[None])[0]
        np.clip(boxes, 0, [tw, th, tw, th], out=boxes)
        return boxes, conf

    def _run_detector(self, batch: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """(N, H, W, 3) uint8 BGR -> per image (boxes, conf) after NMS. Any H, W: the
        priors use ceil(size / stride), which is what the network's padded stride-2
        convolutions produce, so no padding to a stride multiple is needed."""
        n, ph, pw = batch.shape[:3]
        loc, score = self._detector.run(None, {"image_bgr": batch})
        priors = self._priors_for(ph, pw)
        out = []
        for i in range(n):
            idx = np.flatnonzero(score[i] > self.cfg.face_threshold)
            if not len(idx):
                out.append((np.zeros((0, 4), np.float32), np.zeros((0,), np.float32)))
                continue
            pri, d = priors[idx], loc[i, idx]
            centre = pri[:, :2] + d[:, :2] * VARIANCES[0] * pri[:, 2:]
            size = pri[:, 2:] * np.exp(d[:, 2:] * VARIANCES[1])
            boxes = np.concatenate([centre - size / 2, centre + size / 2], axis=1).astype(np.float32)
            conf = score[i, idx].astype(np.float32)
            keep = nms(boxes, conf, NMS_IOU)
            out.append((boxes[keep], conf[keep]))
        return out

    def _priors_for(self, h: int, w: int) -> np.ndarray:
        """(P, 4) anchors cx, cy, w, h in input pixels, cached per input size."""
        key = (h, w)
        if key not in self._priors:
            rows = []
            for sizes, step in zip(ANCHOR_MIN_SIZES_PX, ANCHOR_STEPS_PX):
                fh, fw = math.ceil(h / step), math.ceil(w / step)
                cy, cx = np.meshgrid((np.arange(fh) + 0.5) * step, (np.arange(fw) + 0.5) * step, indexing="ij")
                per = [np.stack([cx, cy, np.full_like(cx, s), np.full_like(cx, s)], axis=-1) for s in sizes]
                rows.append(np.stack(per, axis=2).reshape(-1, 4))  # order: y, x, anchor (as trained)
            self._priors[key] = np.concatenate(rows).astype(np.float32)
            if len(self._priors) > 16:  # a camera changing size now and then; don't grow forever
                self._priors.pop(next(iter(self._priors)))
        return self._priors[key]


# ---------------------------------------------------------------------- helpers


def _check_image(image: object, what: str = "image") -> np.ndarray:
    """A BGR uint8 (H, W, 3) view of the input, or a ValueError that says what is wrong."""
    if image is None:
        raise ValueError(f"{what} is None (no frame: a camera that returned nothing, or a file that could not be read)")
    if not isinstance(image, np.ndarray):
        raise ValueError(f"{what} is a {type(image).__name__}, expected a numpy array (H, W, 3) BGR uint8")
    if image.size == 0 or image.ndim not in (2, 3) or min(image.shape[:2]) < 1:
        raise ValueError(f"{what} has shape {image.shape}, expected (H, W, 3) BGR uint8 with H, W >= 1")
    if image.dtype != np.uint8:
        raise ValueError(f"{what} has dtype {image.dtype}, expected uint8 (0..255) BGR")
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    channels = image.shape[2]
    if channels == 3:
        return image
    if channels == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if channels == 1:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    raise ValueError(f"{what} has {channels} channels, expected 3 (BGR), 4 (BGRA) or 1 (gray)")


class _Sweep:
    """The sweep's state for one frame size: the tiles (frame px) it visits in turn, the
    frame count, and the faces of the last frame (re-checked on the next)."""

    def __init__(self, size: tuple[int, int], tiles: list[tuple[int, int, int, int]]) -> None:
        self.size = size
        self.tiles = tiles
        self.cursor = 0
        self.frame = 0
        self.tracks = np.zeros((0, 4), np.float32)
        self.misses = np.zeros((0,), np.int32)

    def follow(self, found: np.ndarray) -> None:
        """The faces to re-check next frame: those found now, and for a few frames those
        that were not (a blink, a turned head, motion blur) so they are not lost until
        the sweep comes round again."""
        old, misses = self.tracks, self.misses + 1
        if len(old) and len(found):
            seen = _iou(old, found).max(axis=1) > TILE_MERGE_IOU
            old, misses = old[~seen], misses[~seen]
        keep = misses <= MAX_MISSES
        self.tracks = np.concatenate([found, old[keep]])[:MAX_TRACKS].astype(np.float32)
        self.misses = np.concatenate([np.zeros(len(found), np.int32), misses[keep]])[:MAX_TRACKS]

    def next_tile(self) -> tuple[int, int, int, int]:
        tile = self.tiles[self.cursor % len(self.tiles)]
        self.cursor += 1
        return tile


def _sweep_tiles(w: int, h: int, scale: float) -> list[tuple[int, int, int, int]]:
    """Frame regions that, seen at ``scale``, are SWEEP_TILE_PX squares overlapping by SWEEP_OVERLAP_PX."""
    side = max(8, int(SWEEP_TILE_PX / scale))
    overlap = int(SWEEP_OVERLAP_PX / scale)
    tw, th = min(w, side), min(h, side)
    return [(x0, y0, x0 + tw, y0 + th) for y0 in _tile_starts(h, th, overlap) for x0 in _tile_starts(w, tw, overlap)]


def _tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    if length <= tile:
        return [0]
    n = math.ceil((length - overlap) / (tile - overlap))
    step = (length - tile) / (n - 1)
    return [int(round(i * step)) for i in range(n)]


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    iw = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    ih = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = iw * ih
    area = lambda z: (z[:, 2] - z[:, 0]) * (z[:, 3] - z[:, 1])  # noqa: E731
    return inter / np.maximum(area(a)[:, None] + area(b)[None] - inter, 1e-6)


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float, containment: bool = False) -> np.ndarray:
    """Indices kept by greedy non-maximum suppression, best first. With ``containment``,
    a box mostly inside a better one is dropped too (half a face cut by a tile edge)."""
    order = np.argsort(-scores, kind="stable")
    x1, y1, x2, y2 = boxes.T
    areas = np.maximum(0, x2 - x1) * np.maximum(0, y2 - y1)
    keep = []
    while len(order):
        i = order[0]
        keep.append(i)
        rest = order[1:]
        iw = np.maximum(0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]))
        ih = np.maximum(0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]))
        inter = iw * ih
        overlap = inter / np.maximum(areas[i] + areas[rest] - inter, 1e-6)
        if containment:
            overlap = np.maximum(overlap, inter / np.maximum(np.minimum(areas[i], areas[rest]), 1e-6))
        order = rest[overlap <= iou]
    return np.array(keep, dtype=np.int64)
