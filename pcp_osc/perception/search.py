"""The full search of one picture for faces (photographs, and a video's first frame):
coarse to fine, every scale calibrated on its own, every doubtful face verified.

RetinaFace (MobileNet-0.25) scores a face of ~32 px in its input at >= 0.98; a 20 px one
still gets a clear *candidate* score (>= 0.02 for every such face in the real scenes),
but so does a lot of clothing, hair and furniture. Upscaling the whole picture to make
20 px faces 32 px (the old search: everything again at 1.6x) finds them, and with them
false faces of 200-280 px in clothes and sofas (the large anchors seeing magnified
texture). So, per picture:

1. fine pass: the whole picture at ``fine_scale`` (1.0 for the default small_face_scale
   1.6: the scale at which the smallest wanted face, 20 px, is 20 px), threshold
   CANDIDATE_SCORE; no upscaling of the whole picture, so no magnified texture;
2. large pass (when the picture could hold faces larger than the fine pass sees whole):
   the whole picture at a third of that, for faces from ~100 px up;
3. a face scored >= ACCEPT_SCORE at >= RELIABLE_FACE_PX in the detector's input is taken
   as it is (the detector's own regime, where real faces score >= 0.98);
4. every other candidate is *verified*: a window around it, VERIFY_FACE_FRACTION of which
   is the candidate, resized to VERIFY_PX (the face then 32 px: the detector's own
   regime), all windows in one batch; it is a face when the detector finds one there,
   centred and of the candidate's size, at >= VERIFY_SCORE. The verified box replaces
   the candidate's (it is better placed).

Under stage light (a dark or colour-washed picture) all of this runs on the detector's
view of the picture (:func:`detector_view`): each channel stretched to the full range
and smoothed as much as the stretch amplified the sensor's noise; boxes stay in the
picture's pixels. Live video applies the same view to its searches (live.py).

Figures (real scenes, pcp_osc/data/scenes; `pcp-osc bench --stills`): see the README.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import cv2
import numpy as np

# Measured on the real scenes (pcp_osc/data/scenes, stills 0..11, faces 20..110 px):
# at 1.0x, faces of 20-26 px score >= 0.02 (all of them) but only 46% reach 0.9.
CANDIDATE_SCORE = 0.02
CANDIDATE_FACE_PX = 20  # in the detector's input: the fine pass makes the smallest wanted face this large
ACCEPT_SCORE = 0.9
RELIABLE_FACE_PX = 32
LARGEST_FINE_FACE_PX = 320  # faces larger than this (detector px) are left to the large pass
LARGE_PASS_RATIO = 1 / 3
VERIFY_PX = 96
VERIFY_FACE_FRACTION = 0.5  # of the window's side: the candidate is seen at 48 px
# A real face scores >= 0.9 in its window in normal light and 0.7..0.93 under a dim
# colour wash (stage light, pcp_bench.stagelight); clothing and furniture candidates < 0.7.
VERIFY_SCORE = 0.7
VERIFY_CENTRE_TOLERANCE = 0.2  # of the window's side
VERIFY_SIZE_RATIO = (0.5, 2.0)
MAX_CANDIDATES = 256  # the most windows verified in one picture (best scores first)
PAD_BGR = (104, 117, 123)  # the detector's mean: padding it sees as nothing
# A picture whose dimmest channel's brightest 0.1% stays below this is dark or washed
# in colour (stage light): the detector sees it with each channel stretched to the full
# range. (The brightest 0.1%, not 1%: a few small bright faces over a dark room must not
# be burnt out.)
DIM_CHANNEL_TOP = 160
LOW_PERCENTILE = 1.0
TOP_PERCENTILE = 99.9
VIEW_SAMPLE_STEP = 4  # every 4th pixel of every 4th row is enough to measure the light
# The stretch multiplies the sensor's noise by its gain (x3 in a dim room, x10 and more in
# a channel a coloured wash all but removes), and amplified noise is what lost the small
# faces under blue and red washes: each stretched channel is smoothed with a Gaussian of
# this x sqrt(gain) px (0.6 px at x3, 1.2 px at x12), none below NOISE_BLUR_MIN_PX.
# Measured on the real scenes and the stills under the bench's lights (two noise seeds):
# 0.35 found 628..629 of 640 faces with 4..6 false boxes; 0.25: 626..629 / 5..6;
# 0.5: 616..618 / 7..8; unsmoothed 599..608 / 2..3 (pcp_bench.stagelight).
NOISE_BLUR_PER_SQRT_GAIN = 0.35
NOISE_BLUR_MIN_PX = 0.5
# A picture whose every channel spans fewer levels than this is black or flat (a blackout,
# a capture card with no signal): there is nothing to stretch but noise and compression
# blocks, where a stretch would make faces up. (The stage-light bench's washes span 70+.)
VIEW_MIN_RANGE = 24
# A picture whose 32x18 thumbnail (area averages: sensor noise and JPEG blocks mostly average
# out) varies by less than FLAT_MAX_STD levels (standard deviation, in every channel) shows
# nothing: a blackout, a strobe's flash, no signal (digital black 0; a black frame with sensor
# noise of sigma 2: 0.6). A room with people keeps more however dark: the real scenes at 2% of
# their light still vary by 0.84 and more. (Their percentile range would not do: under 24
# levels already at 6..8% of the light, where live video still finds half of the faces.)
FLAT_THUMB_PX = (32, 18)
FLAT_MAX_STD = 0.8
FLAT_CELL_SAMPLES = 4  # samples a thumbnail pixel averages, per side (sensor noise / 4)

Detections = tuple[np.ndarray, np.ndarray]  # (n, 4) float32 xyxy, (n,) float32


def fine_scale(small_face_scale: float) -> float:
    """The fine pass's scale: the smallest face small_face_scale is there for
    (RELIABLE_FACE_PX / small_face_scale frame px; 20 px at 1.6) becomes CANDIDATE_FACE_PX."""
    return float(small_face_scale) * CANDIDATE_FACE_PX / RELIABLE_FACE_PX


def light_levels(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per channel (B, G, R), the picture's LOW_PERCENTILE and TOP_PERCENTILE levels (0..255),
    measured on every VIEW_SAMPLE_STEP-th pixel (a histogram: ~0.2 ms for 1920x1080)."""
    sample = np.ascontiguousarray(image[::VIEW_SAMPLE_STEP, ::VIEW_SAMPLE_STEP])
    n = sample.shape[0] * sample.shape[1]
    lo, hi = np.zeros(3, np.float32), np.zeros(3, np.float32)
    for c in range(3):
        cdf = np.cumsum(cv2.calcHist([sample], [c], None, [256], [0, 256]).ravel())
        lo[c] = np.searchsorted(cdf, n * LOW_PERCENTILE / 100)
        hi[c] = np.searchsorted(cdf, n * TOP_PERCENTILE / 100)
    return lo, hi


def detector_view(image: np.ndarray) -> np.ndarray:
    """The picture as the detector should see it: itself in normal light (the same
    object: no cost but measuring the light); in a dark or colour-washed picture, each
    channel stretched from its 1st to its 99.9th percentile to the full range (the wash's
    colour cast and level taken out) and smoothed as much as the stretch amplified its
    noise (NOISE_BLUR_PER_SQRT_GAIN). Found boxes stay in the picture's own pixels; the
    expression classifier still sees the picture itself."""
    return apply_view(image, view_lut(image))


class View(NamedTuple):
    """How :func:`apply_view` turns a picture into the detector's view."""

    lut: np.ndarray      # (256, 3) uint8: per channel (B, G, R), the stretch
    blur_px: np.ndarray  # (3,) float: per channel, the Gaussian's sigma after it (0: none)


def view_lut(image: np.ndarray) -> View | None:
    """The tables that :func:`detector_view` applies to this picture (the stretch and the
    smoothing), or None in normal light. Live video measures them every few tenths of a
    second (the light changes slowly) and applies them to every picture (:func:`apply_view`)."""
    lo, hi = light_levels(image)
    if hi.min() >= DIM_CHANNEL_TOP or (hi - lo).max() < VIEW_MIN_RANGE:
        return None
    gain = 255.0 / np.maximum(hi - lo, 8.0)
    ramp = np.arange(256, dtype=np.float32)[:, None]
    lut = np.clip((ramp - lo) * gain, 0, 255).astype(np.uint8)
    sigma = NOISE_BLUR_PER_SQRT_GAIN * np.sqrt(gain)
    return View(lut, np.where(sigma > NOISE_BLUR_MIN_PX, sigma, 0.0))


def thumbnail(image: np.ndarray) -> np.ndarray:
    """The picture's FLAT_THUMB_PX thumbnail (area averages of a sample, uint8, its channels):
    what :func:`flat_picture` and the search schedule's cut test (schedule.observe) look at,
    made once per picture (about 0.1 ms at 1280x720, 0.4 ms at 4K)."""
    tw, th = FLAT_THUMB_PX
    step = max(1, min(image.shape[0] // th, image.shape[1] // tw) // FLAT_CELL_SAMPLES)
    return cv2.resize(np.ascontiguousarray(image[::step, ::step]), FLAT_THUMB_PX, interpolation=cv2.INTER_AREA)


def flat_picture(image: np.ndarray, thumb: np.ndarray | None = None) -> bool:
    """Black, white or one flat colour (a blackout, a strobe's flash, a capture card without
    signal): its thumbnail's (``thumb``, made from ``image`` when not given) every channel
    varies by less than FLAT_MAX_STD levels. Nothing can be seen there."""
    thumb = thumbnail(image) if thumb is None else thumb
    return bool(thumb.reshape(-1, thumb.shape[-1] if thumb.ndim == 3 else 1).std(axis=0).max() < FLAT_MAX_STD)


def apply_view(image: np.ndarray, view: View | None) -> np.ndarray:
    """``image`` as the detector sees it under ``view`` (:func:`view_lut`); itself for None."""
    if view is None:
        return image
    out = cv2.LUT(np.ascontiguousarray(image), np.ascontiguousarray(view.lut.reshape(1, 256, 3)))
    if view.blur_px.any():
        channels = list(cv2.split(out))
        for c in np.flatnonzero(view.blur_px):
            channels[c] = cv2.GaussianBlur(channels[c], (0, 0), float(view.blur_px[c]))
        out = cv2.merge(channels)
    return out


def windows_around(image: np.ndarray, boxes: np.ndarray, side_px: int,
                   face_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """(n, side_px, side_px, 3) uint8 windows, each centred on a box and ``1 / face_fraction``
    times its longer side (padded with the detector's mean where it leaves the picture),
    and (n, 3) origins (x0, y0, frame px per window px) to map boxes found in them back."""
    h, w = image.shape[:2]
    out = np.empty((len(boxes), side_px, side_px, 3), np.uint8)
    origins = np.empty((len(boxes), 3), np.float32)
    for i, (x1, y1, x2, y2) in enumerate(boxes):
        side = max(2.0, max(x2 - x1, y2 - y1) / face_fraction)
        s = max(2, int(round(side)))
        wx0, wy0 = int(round((x1 + x2) / 2 - s / 2)), int(round((y1 + y2) / 2 - s / 2))
        cx0, cy0, cx1, cy1 = max(0, wx0), max(0, wy0), min(w, wx0 + s), min(h, wy0 + s)
        if cx1 <= cx0 or cy1 <= cy0:
            out[i] = PAD_BGR
        else:
            patch = image[cy0:cy1, cx0:cx1]
            if (cx0, cy0, cx1, cy1) != (wx0, wy0, wx0 + s, wy0 + s):
                patch = cv2.copyMakeBorder(patch, cy0 - wy0, wy0 + s - cy1, cx0 - wx0, wx0 + s - cx1,
                                           cv2.BORDER_CONSTANT, value=PAD_BGR)
            interp = cv2.INTER_AREA if s > side_px else cv2.INTER_LINEAR
            out[i] = cv2.resize(patch, (side_px, side_px), interpolation=interp)
        origins[i] = (wx0, wy0, s / side_px)
    return out, origins


def verify(run_detector: Callable[[np.ndarray, float], list[Detections]], image: np.ndarray,
           boxes: np.ndarray, score: float = VERIFY_SCORE) -> Detections:
    """The candidates that are faces: for each box, the detector's best face in a window
    around it (seen at VERIFY_PX, the candidate VERIFY_FACE_FRACTION of it), if centred,
    of the candidate's size and scored >= ``score``; returns those faces' boxes (frame px)
    and scores, in no particular order."""
    if not len(boxes):
        return np.zeros((0, 4), np.float32), np.zeros((0,), np.float32)
    windows, origins = windows_around(image, boxes, VERIFY_PX, VERIFY_FACE_FRACTION)
    expected = VERIFY_PX * VERIFY_FACE_FRACTION
    lo, hi = VERIFY_SIZE_RATIO
    found_b, found_c = [], []
    for (b, c), (ox, oy, k) in zip(run_detector(windows, score), origins):
        if not len(b):
            continue
        centre = (b[:, :2] + b[:, 2:]) / 2
        size = np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1])
        ok = (np.all(np.abs(centre - VERIFY_PX / 2) < VERIFY_PX * VERIFY_CENTRE_TOLERANCE, axis=1)
              & (size >= lo * expected) & (size <= hi * expected) & (c >= score))
        if ok.any():
            j = int(np.argmax(np.where(ok, c, -1)))
            found_b.append(b[j] * k + np.array([ox, oy, ox, oy], np.float32))
            found_c.append(c[j])
    if not found_b:
        return np.zeros((0, 4), np.float32), np.zeros((0,), np.float32)
    return np.array(found_b, np.float32), np.array(found_c, np.float32)


def split_candidates(boxes: np.ndarray, conf: np.ndarray, scale: np.ndarray | float, min_face_px: float,
                     threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Masks (taken, to_verify) for boxes found at ``scale`` (per box or one for all).
    In the detector's own regime (>= RELIABLE_FACE_PX of its input) a real face scores
    >= 0.98: taken from ACCEPT_SCORE, verified from ``threshold`` (cfg.face_threshold: a
    dim or blurred face), else dropped. Smaller, every candidate is verified. Boxes
    below min_face_px are dropped."""
    height_det = (boxes[:, 3] - boxes[:, 1]) * scale
    native = height_det >= RELIABLE_FACE_PX
    taken = native & (conf >= ACCEPT_SCORE)
    big_enough = (boxes[:, 3] - boxes[:, 1]) >= min_face_px * 0.8
    doubtful = big_enough & ~taken & (~native | (conf >= threshold))
    return taken, doubtful
