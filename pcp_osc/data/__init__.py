"""Openly licensed face photographs shipped with pcp-osc (see PROVENANCE.md here), and
crowd frames made from them for tests, `pcp-osc bench` and the built-in demo.

    photo_names()                 # ["astronaut_collins.jpg", ...]
    photo("astronaut_collins.jpg") # BGR uint8 head-and-shoulders photo
    face_box("astronaut_collins.jpg")  # its face, xyxy px
    face_photos()                 # head crops (face in the middle, ~62% of the height), BGR
    crowd_frame(8)                # (1280x720 BGR frame, (8, 4) face boxes) -- fast enough per frame

Nothing here reads a camera or writes a file.
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

DATA_DIR = Path(__file__).resolve().parent
HEAD_CROP_PER_FACE = 1.6  # head crop side, in face heights
PLACE_TRIES = 60


@lru_cache(maxsize=1)
def _faces_json() -> dict[str, dict]:
    return json.loads((DATA_DIR / "faces.json").read_text())


def photo_names() -> list[str]:
    return list(_faces_json())


@lru_cache(maxsize=None)
def _photo_cached(name: str) -> np.ndarray:
    if name not in _faces_json():
        raise ValueError(f"no shipped photo {name!r}; shipped: {', '.join(photo_names())}")
    image = cv2.imread(str(DATA_DIR / name), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"shipped photo {DATA_DIR / name} could not be read; rebuild with tools/prepare_test_photos.py")
    image.flags.writeable = False
    return image


def photo(name: str) -> np.ndarray:
    """A shipped photograph, BGR uint8 (a fresh copy: yours to change)."""
    return _photo_cached(name).copy()


def photo_path(name: str) -> Path:
    photo(name)  # validates the name
    return DATA_DIR / name


def face_box(name: str) -> np.ndarray:
    """The face in :func:`photo` (name), xyxy float32 px."""
    photo_names()
    if name not in _faces_json():
        raise ValueError(f"no shipped photo {name!r}; shipped: {', '.join(photo_names())}")
    return np.array(_faces_json()[name]["box"], np.float32)


@lru_cache(maxsize=1)
def _head_crops() -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """(head crop BGR, face box inside it) per photo."""
    out = []
    for name in photo_names():
        image = _photo_cached(name)
        x1, y1, x2, y2 = face_box(name)
        side = int(round(HEAD_CROP_PER_FACE * (y2 - y1)))
        x0 = int(round((x1 + x2) / 2 - side / 2))
        y0 = int(round((y1 + y2) / 2 - side / 2))
        h, w = image.shape[:2]
        pad = max(0, -x0, -y0, x0 + side - w, y0 + side - h)
        src = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE) if pad else image
        crop = np.ascontiguousarray(src[y0 + pad:y0 + pad + side, x0 + pad:x0 + pad + side])
        crop.flags.writeable = False
        out.append((crop, np.array([x1 - x0, y1 - y0, x2 - x0, y2 - y0], np.float32)))
    return tuple(out)


def face_photos() -> list[np.ndarray]:
    """One head crop per shipped photo (BGR uint8, square, the face centred and about
    1/1.6 of the height)."""
    return [c.copy() for c, _ in _head_crops()]


@lru_cache(maxsize=512)
def _scaled_head(index: int, face_px: int) -> tuple[np.ndarray, np.ndarray]:
    crop, box = _head_crops()[index]
    k = face_px / float(box[3] - box[1])
    side = max(4, int(round(crop.shape[0] * k)))
    interp = cv2.INTER_AREA if side < crop.shape[0] else cv2.INTER_LINEAR
    scaled = cv2.resize(crop, (side, side), interpolation=interp)
    return scaled, box * (side / crop.shape[0])


@lru_cache(maxsize=8)
def _stage_background(width: int, height: int) -> np.ndarray:
    """A dark stage: a vertical gradient with a little grain (fixed, so frames are comparable)."""
    rng = np.random.default_rng(12345)
    y = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    img = np.array([46, 26, 20], np.float32) * (1 - y) + np.array([10, 8, 6], np.float32) * y
    img = np.broadcast_to(img, (height, width, 3)) + rng.normal(0, 4, (height, width, 3)).astype(np.float32)
    out = np.clip(img, 0, 255).astype(np.uint8)
    out.flags.writeable = False
    return out


def crowd_frame(
    n_faces: int,
    size: tuple[int, int] = (1280, 720),
    face_px_range: tuple[float, float] = (20, 160),
    seed: int = 0,
    photos: list[int] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """A frame (BGR uint8, ``size`` = (width, height)) with up to ``n_faces`` faces from the
    shipped photos, face heights drawn log-uniformly from ``face_px_range``, heads not
    overlapping. Returns (image, boxes): boxes (k, 4) float32 xyxy of the faces placed
    (k == n_faces unless the frame is too small to hold them all). Deterministic in ``seed``."""
    width, height = int(size[0]), int(size[1])
    if width < 8 or height < 8:
        raise ValueError(f"crowd frame size {size} is too small; need at least 8x8 pixels")
    lo, hi = float(face_px_range[0]), float(face_px_range[1])
    if not 4 <= lo <= hi:
        raise ValueError(f"face_px_range {face_px_range} must be (low, high) with 4 <= low <= high")
    if n_faces < 0:
        raise ValueError(f"n_faces {n_faces} must be >= 0")
    rng = np.random.default_rng(seed)
    image = _stage_background(width, height).copy()
    n_photos = len(_head_crops())
    choices = photos if photos is not None else list(range(n_photos))
    sizes = np.sort(np.exp(rng.uniform(math.log(lo), math.log(hi), n_faces)))[::-1]
    taken: list[tuple[int, int, int, int]] = []
    boxes = []
    for i, face_px in enumerate(sizes):
        index = choices[int(rng.integers(0, len(choices)))] if choices else 0
        px = float(face_px)
        placed = False
        while not placed and px >= lo * 0.999:
            head, box = _scaled_head(index, int(round(px)))
            side = head.shape[0]
            if side <= width and side <= height:
                for _ in range(PLACE_TRIES):
                    x = int(rng.integers(0, width - side + 1))
                    y = int(rng.integers(0, height - side + 1))
                    if all(x + side <= a or a + s <= x or y + side <= b or b + s <= y for a, b, s, _ in taken):
                        image[y:y + side, x:x + side] = head
                        taken.append((x, y, side, i))
                        boxes.append(box + np.array([x, y, x, y], np.float32))
                        placed = True
                        break
            px *= 0.85
    return image, np.array(boxes, np.float32).reshape(-1, 4)
