"""The shipped perception backend: RetinaFace (MobileNet-0.25) finds the faces, the
FER2013 mini-Xception reads each face's expression; both ONNX on onnxruntime's CPU
provider, weights in weights/ (see weights/PROVENANCE.md).

    backend = DefaultBackend(config.perception)
    faces = backend.detect(image_bgr)          # Faces: boxes, detection_confidence, scores (n, 5)

What a caller may rely on:
- boxes are xyxy in pixels of the image given, clipped to it;
- every face of a frame is classified in one batch; ``scores`` rows sum to 1 over the
  five emotions (FER2013's seven classes summed by :func:`pcp_osc.emotions.merge_matrix`);
- the detector is sure of faces of ~32 px; faces from 32 / ``cfg.small_face_scale``
  px (20 px) are found by a whole-picture search that is coarse to fine (search.py:
  candidates at 1x, the doubtful ones verified in small windows); live video's
  pieces use ``cfg.detect_scale`` (0.5: faces from ~64 px) and 1.6x tiles. ``detect`` treats consecutive calls
  as live video (``small_faces = "sweep"``, see live.py): known faces are followed in
  every picture and keep a track id (``Faces.track_id``); the search for new ones is
  planned by time and change (schedule.py). ``detect_still`` / ``detect_many`` search
  everything now (photographs). One backend per video stream: it keeps that state;
- with an audience region (``cfg.region`` / ``cfg.region_mask``, region.py) only its
  bounding box is searched and only faces centred inside it are reported;
- a searched image larger than ``cfg.detect_side`` (4K cameras) is cut into
  overlapping tiles whose faces are merged (``cfg.tile``), or shrunk to it.
"""

from __future__ import annotations

import logging
import math
import os
import time
from typing import Sequence

import cv2
import numpy as np

from ..types import Faces
from . import search as face_search
from .classifier import ExpressionClassifier, onnx_session
from .live import LiveSearch
from .region import AudienceRegion
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
# Small-face search on live video: tiles of this size (detector px) at small_face_scale
# (1280x720 at 1.6: 45 tiles), visited in turn so the whole frame is searched within
# cfg.search_s (schedule.py).
SWEEP_TILE_PX = 320
# Tiles overlap by this (detector px; 64 frame px at 1.6): every face up to 64 px is whole
# in some tile, and the coarse pass at detect_scale 0.5 finds those from 64 px up.
SWEEP_OVERLAP_PX = 102
# Re-check of a known face: a window this many face sizes wide (more while the face's
# position is uncertain), seen at RECHECK_PX (up to RECHECK_MAX_PX for wide windows, so
# the face stays large enough for the detector).
RECHECK_PER_FACE = 2.0
RECHECK_PX = 64
RECHECK_MAX_PX = 128
RECHECK_FACE_PX = 28  # a face this size in its window is found (98% at 32 px, see RELIABLE_FACE_PX)

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
        own_classifier = bool(getattr(getattr(cfg, "classifier", None), "model", ""))
        cls_path = None if own_classifier else weight_path(CLASSIFIER_FILE, weights_dir)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        # Worker threads that spin between runs burn a core the capture and OSC threads need.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._detector = onnx_session(ort, det_path, opts)
        self._run_options = ort.RunOptions()  # cancel() sets its terminate flag
        self.classifier = ExpressionClassifier.from_config(getattr(cfg, "classifier", None), cls_path, opts)
        self._priors: dict[tuple[int, int], np.ndarray] = {}
        self.region = AudienceRegion.from_config(cfg)
        self._live: LiveSearch | None = None

    # ------------------------------------------------------------------ public

    def detect(self, image_bgr: np.ndarray, timestamp_s: float | None = None) -> Faces:
        """The faces of one picture of a live stream (the pictures of one stream, in
        order): each with its track id. ``timestamp_s``: when the picture was taken
        (seconds, e.g. time.monotonic() or a video's frame time); default: now."""
        image = _check_image(image_bgr)
        if self._live is None:
            self._live = LiveSearch(self, self.cfg, self.region)
        t = time.monotonic() if timestamp_s is None else _timestamp(timestamp_s)
        boxes, conf, ids = self._live.step(image, t)
        # each followed face's expression is read again every cfg.reread_s (new faces at
        # once, every version of the crop); a followed face one version per reading, pooled
        # over its last readings (LiveSearch.readings); in between it keeps its reading
        now = self._live.to_read(ids, t)
        versions = self._live.versions(ids[now])
        fresh = self.classifier.classify(image, boxes[now], versions) if now.any() else np.zeros((0, 5), np.float32)
        scores = self._live.readings(ids, now, versions, fresh, t, self.classifier.n_versions)
        return Faces(boxes, conf, scores, track_id=ids, data={"blind": True} if self._live.blind else {})

    def cancel(self) -> None:
        """Stop: the search under way (a whole search of a huge picture takes seconds) and
        every later one raise at their next detector run, so the thread running them ends
        soon (stopped inside onnxruntime, the interpreter's exit aborted the process)."""
        self._run_options.terminate = True

    def set_region(self, region: AudienceRegion | None) -> None:
        """Search and count only inside ``region`` (None: the whole picture) from the next
        picture on. Call it between pictures, from the thread that calls detect."""
        self.region = region
        if self._live is not None:
            self._live.set_region(region)

    def detect_still(self, image_bgr: np.ndarray) -> Faces:
        """Like :meth:`detect`, but every part of the image is searched for small faces
        now (no sweep over frames): for photographs, slower."""
        image = _check_image(image_bgr)
        boxes, conf = self._find_in_region(image, "off" if self.cfg.small_faces == "off" else "full")
        return Faces(boxes, conf, self.classifier.classify(image, boxes))

    def detect_many(self, images_bgr: Sequence[np.ndarray]) -> list[Faces]:
        """One Faces per image, each searched fully (the images need not be a video); the
        faces of all images are classified in one batch."""
        images = [_check_image(im, f"image {i}") for i, im in enumerate(images_bgr)]
        mode = "off" if self.cfg.small_faces == "off" else "full"
        found = [self._find_in_region(im, mode) for im in images]
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

    def _find_in_region(self, image: np.ndarray, mode: str, geo=None, filter_region: bool = True,
                        seen: bool = False):
        """:meth:`_find_faces` inside the audience region: only its bounding box is
        searched, and (``filter_region``) only faces centred in the region are kept."""
        if self.region is None:
            return self._find_faces(image, mode, seen)
        h, w = image.shape[:2]
        geo = geo or self.region.geometry(w, h)
        if geo.empty:
            return np.zeros((0, 4), np.float32), np.zeros((0,), np.float32)
        x0, y0, x1, y1 = geo.bbox
        boxes, conf = self._find_faces(image[y0:y1, x0:x1], mode, seen)
        boxes = boxes + np.array([x0, y0, x0, y0], np.float32)
        if filter_region and len(boxes):
            keep = geo.inside(boxes)
            boxes, conf = boxes[keep], conf[keep]
        return boxes, conf

    def _find_faces(self, image: np.ndarray, mode: str, seen: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Boxes (frame px) and confidences of a whole-picture search.

        ``off``: the whole frame at detect_scale. ``full``: every face from the smallest
        small_face_scale is there for, coarse to fine, the doubtful ones verified
        (photographs, and live video's whole-picture searches; :meth:`_search_full`).
        The detector sees the picture as :func:`search.detector_view` makes it (stretched
        and smoothed under stage light); ``seen``: ``image`` is that view already."""
        h, w = image.shape[:2]
        if not seen:
            image = face_search.detector_view(image)
        small = float(self.cfg.small_face_scale)
        if mode == "off" or small <= self.cfg.detect_scale:
            parts = [self._search(image, float(self.cfg.detect_scale))]
        else:
            parts = [self._search_full(image)]
        boxes = np.concatenate([b for b, _ in parts])
        conf = np.concatenate([c for _, c in parts])
        if len(parts) > 1 and len(boxes):
            keep = nms(boxes, conf, TILE_MERGE_IOU, containment=True)
            boxes, conf = boxes[keep], conf[keep]
        if len(boxes):
            np.clip(boxes, 0, [w, h, w, h], out=boxes)
            keep = (boxes[:, 3] - boxes[:, 1]) >= self.cfg.min_face_px
            boxes, conf = boxes[keep], conf[keep]
        return boxes, conf

    def _search_full(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Every face of the picture (the detector's view of it) from RELIABLE_FACE_PX /
        small_face_scale px up, coarse to fine with each doubtful one verified (see
        perception/search.py)."""
        h, w = image.shape[:2]
        fine = self._effective_scale(w, h, face_search.fine_scale(self.cfg.small_face_scale))
        passes = [fine]
        if min(w, h) * fine > face_search.LARGEST_FINE_FACE_PX:
            passes.append(fine * face_search.LARGE_PASS_RATIO)
        boxes, conf, scales = [], [], []
        for i, scale in enumerate(passes):
            b, c = self._search(image, scale, face_search.CANDIDATE_SCORE)
            height_det = (b[:, 3] - b[:, 1]) * scale
            if i:  # the large pass: only the faces the fine pass cannot see whole
                keep = height_det >= face_search.RELIABLE_FACE_PX
                b, c = b[keep], c[keep]
            elif len(passes) > 1:
                # ... and the fine pass only those it can: a box larger than LARGEST_FINE_FACE_PX
                # there is a piece of a face too big for its tiles (an eye of a 1200 px face),
                # or magnified texture (a soft 4K picture: a 720p camera upscaled)
                keep = height_det <= face_search.LARGEST_FINE_FACE_PX
                b, c = b[keep], c[keep]
            boxes.append(b)
            conf.append(c)
            scales.append(np.full(len(b), scale, np.float32))
        boxes, conf, scales = np.concatenate(boxes), np.concatenate(conf), np.concatenate(scales)
        if len(passes) > 1 and len(boxes):
            keep = nms(boxes, conf, TILE_MERGE_IOU, containment=True)
            boxes, conf, scales = boxes[keep], conf[keep], scales[keep]
        return self._verified(image, boxes, conf, scales)

    def _verified(self, image: np.ndarray, boxes: np.ndarray, conf: np.ndarray,
                  scales: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        """The faces among boxes found at ``scales`` (per box, or one for all) with a low
        threshold: those in the detector's own regime taken, the doubtful ones verified in
        a small window each (one batch), the rest dropped (see perception/search.py).
        Any search at an upscaled or low-threshold setting can pass its boxes through this."""
        if not len(boxes):
            return boxes, conf
        taken, doubtful = face_search.split_candidates(boxes, conf, scales, float(self.cfg.min_face_px),
                                                       float(self.cfg.face_threshold))
        order = np.flatnonzero(doubtful)
        order = order[np.argsort(-conf[order], kind="stable")][:face_search.MAX_CANDIDATES]
        score = max(face_search.VERIFY_SCORE, float(self.cfg.face_threshold))
        vb, vc = face_search.verify(self._run_detector, image, boxes[order], score)
        boxes = np.concatenate([boxes[taken], vb])
        conf = np.concatenate([conf[taken], vc])
        if len(vb):
            keep = nms(boxes, conf, TILE_MERGE_IOU, containment=True)
            boxes, conf = boxes[keep], conf[keep]
        return boxes, conf

    def _effective_scale(self, w: int, h: int, scale: float) -> float:
        """``scale``, or less where the scaled image would exceed detect_side and tile = false."""
        side = int(self.cfg.detect_side)
        if max(w, h) * scale > side and not self.cfg.tile:
            return side / max(w, h)
        return scale

    def _search(self, image: np.ndarray, scale: float, threshold: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The whole image at ``scale``: in one piece up to detect_side, else tiled (or,
        with tile = false, shrunk to detect_side). ``threshold``: least face score kept
        (default cfg.face_threshold)."""
        h, w = image.shape[:2]
        side = int(self.cfg.detect_side)
        scale = self._effective_scale(w, h, scale)
        sw, sh = max(1, round(w * scale)), max(1, round(h * scale))
        # Bilinear down to half size is 5x cheaper than INTER_AREA and the detector does
        # not see the difference; below half, area averaging avoids aliasing.
        interp = cv2.INTER_AREA if scale < 0.5 else cv2.INTER_LINEAR
        scaled = image if (sw, sh) == (w, h) else cv2.resize(image, (sw, sh), interpolation=interp)
        if max(sw, sh) <= side:
            boxes, conf = self._detect_tile(scaled, threshold)
        else:
            boxes, conf = self._detect_tiled(scaled, side, threshold)
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

    def _recheck(self, image: np.ndarray, tracks: np.ndarray, scale: float,
                 uncertainty_px: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Find each known face again in a window around its predicted box (2 face sizes,
        widened by the prediction's uncertainty), windows of one size in one detector
        batch. Returns boxes, confidences and, per box, the index of its track."""
        n = len(tracks)
        empty = np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), np.zeros((0,), np.int64)
        if not n:
            return empty
        h, w = image.shape[:2]
        unc = np.zeros(n, np.float32) if uncertainty_px is None else np.asarray(uncertainty_px, np.float32)
        windows: dict[int, list] = {}
        for i, (x1, y1, x2, y2) in enumerate(tracks):
            face = max(x2 - x1, y2 - y1, 1.0)
            # widened by the uncertainty beyond a quarter face (a steady face's jitter fits the
            # window as it is), up to twice: wider, the face would be too small at RECHECK_MAX_PX
            extra = min(max(0.0, float(unc[i]) - 0.25 * face), face)
            side = max(RECHECK_PER_FACE * face, RECHECK_PX / scale) + 2 * extra
            # seen at RECHECK_PX, or more when the window is wide, so the face stays >= ~28 px
            px = int(min(RECHECK_MAX_PX, max(RECHECK_PX, 32 * math.ceil(RECHECK_FACE_PX * side / face / 32))))
            cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
            s = max(2, int(round(side)))
            wx0, wy0 = int(round(cx - s / 2)), int(round(cy - s / 2))
            cx0, cy0, cx1, cy1 = max(0, wx0), max(0, wy0), min(w, wx0 + s), min(h, wy0 + s)
            if cx1 <= cx0 or cy1 <= cy0:
                continue  # predicted off the picture
            patch = image[cy0:cy1, cx0:cx1]
            if (cx0, cy0, cx1, cy1) != (wx0, wy0, wx0 + s, wy0 + s):
                patch = cv2.copyMakeBorder(patch, cy0 - wy0, wy0 + s - cy1, cx0 - wx0, wx0 + s - cx1,
                                           cv2.BORDER_CONSTANT, value=(104, 117, 123))
            windows.setdefault(px, []).append((i, cv2.resize(patch, (px, px), interpolation=cv2.INTER_LINEAR),
                                               wx0, wy0, s / px, face))
        found_boxes, found_conf, found_track = [], [], []
        for px, items in windows.items():
            batch = np.stack([it[1] for it in items])
            for (b, c), (i, _, ox, oy, k, face) in zip(self._run_detector(batch), items):
                if not len(b):
                    continue
                fb = b * k + np.array([ox, oy, ox, oy], np.float32)
                size = np.maximum(fb[:, 2] - fb[:, 0], fb[:, 3] - fb[:, 1])
                centre = (fb[:, :2] + fb[:, 2:]) / 2
                d = np.hypot(*(centre - (tracks[i, :2] + tracks[i, 2:]) / 2).T)
                # the same face: about its size, and about where it was expected
                plausible = (size > 0.6 * face) & (size < 1.6 * face) & (d <= 0.6 * face + unc[i])
                if not plausible.any():
                    continue
                j = int(np.argmin(np.where(plausible, d, np.inf)))
                found_boxes.append(fb[j])
                found_conf.append(c[j])
                found_track.append(i)
        if not found_boxes:
            return empty
        return np.array(found_boxes, np.float32), np.array(found_conf, np.float32), np.array(found_track, np.int64)

    def _detect_tiled(self, scaled: np.ndarray, side: int, threshold: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        sh, sw = scaled.shape[:2]
        tile_w = min(sw, side)
        tile_h = min(sh, side)
        all_boxes, all_conf = [np.zeros((0, 4), np.float32)], [np.zeros((0,), np.float32)]
        for y0 in _tile_starts(sh, tile_h, TILE_OVERLAP_PX):
            for x0 in _tile_starts(sw, tile_w, TILE_OVERLAP_PX):
                b, c = self._detect_tile(scaled[y0:y0 + tile_h, x0:x0 + tile_w], threshold)
                all_boxes.append(b + np.array([x0, y0, x0, y0], np.float32))
                all_conf.append(c)
        boxes, conf = np.concatenate(all_boxes), np.concatenate(all_conf)
        keep = nms(boxes, conf, TILE_MERGE_IOU, containment=True)
        return boxes[keep], conf[keep]

    def _detect_tile(self, tile: np.ndarray, threshold: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Faces in one detector input; boxes in the tile's pixels."""
        th, tw = tile.shape[:2]
        boxes, conf = self._run_detector(np.ascontiguousarray(tile)[None], threshold)[0]
        np.clip(boxes, 0, [tw, th, tw, th], out=boxes)
        return boxes, conf

    def _run_detector(self, batch: np.ndarray, threshold: float | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
        """(N, H, W, 3) uint8 BGR -> per image (boxes, conf) after NMS, faces scored above
        ``threshold`` (default cfg.face_threshold). Any H, W: the priors use
        ceil(size / stride), which is what the network's padded stride-2 convolutions
        produce, so no padding to a stride multiple is needed."""
        n, ph, pw = batch.shape[:3]
        loc, score = self._detector.run(None, {"image_bgr": batch}, self._run_options)
        priors = self._priors_for(ph, pw)
        threshold = self.cfg.face_threshold if threshold is None else threshold
        out = []
        for i in range(n):
            idx = np.flatnonzero(score[i] > threshold)
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


def _timestamp(value: object) -> float:
    """A picture's time in seconds, or a ValueError that says what is wrong."""
    try:
        t = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"timestamp_s {value!r} is not a number of seconds") from None
    if not math.isfinite(t):
        raise ValueError(f"timestamp_s {value!r} is not a finite number of seconds (e.g. time.monotonic(), or a video frame's time)")
    return t


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


# Containment merges half a face (cut by a tile's edge) into the whole one; a box less
# than this fraction of the other's area is another, smaller face, not a half.
CONTAINED_AREA_MIN = 0.2


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float, containment: bool = False) -> np.ndarray:
    """Indices kept by greedy non-maximum suppression, best first. With ``containment``,
    a box mostly inside a better one of similar size is dropped too (half a face cut by
    a tile edge; a far smaller face inside a large box is kept)."""
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
            small, large = np.minimum(areas[i], areas[rest]), np.maximum(areas[i], areas[rest])
            inside = inter / np.maximum(small, 1e-6)
            overlap = np.where(small >= CONTAINED_AREA_MIN * large, np.maximum(overlap, inside), overlap)
        order = rest[overlap <= iou]
    return np.array(keep, dtype=np.int64)
