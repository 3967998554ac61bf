"""The built-in demo crowd: a moving audience made of the bundled, openly licensed face
photographs (pcp_osc/data, see its PROVENANCE.md), so `pcp-osc run` shows the whole
path -- faces, moods, cues, backgrounds -- on a machine with no camera.

Faces sway a little, and every ``ROTATE_S`` seconds the crowd's mix of photographs
shifts, so the dominant emotion changes from window to window as in a real show.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np

ROTATE_S = 20.0
FACE_PX_RANGE = (110, 300)  # photo crop heights; faces are about 1/2.2 of that


DATA_DIR = Path(__file__).resolve().parent / "data"


def _photos() -> list[tuple[np.ndarray, float]]:
    """(photo BGR, face height in px) for each bundled photograph (boxes in faces.json)."""
    try:
        boxes = json.loads((DATA_DIR / "faces.json").read_text())
    except (OSError, ValueError):
        return []
    out = []
    for name, entry in sorted(boxes.items()):
        img = cv2.imread(str(DATA_DIR / name))
        if img is not None:
            x1, y1, x2, y2 = entry["box"]
            out.append((img, float(y2 - y1)))
    return out


class DemoCrowd:
    def __init__(self, n_faces: int, size: tuple[int, int] = (1280, 720), seed: int = 7) -> None:
        self.w, self.h = size
        self.n = n_faces
        rng = np.random.default_rng(seed)
        self.photos = _photos()
        self.background = self._stage_background(rng)
        cols = max(1, math.ceil(math.sqrt(max(1, n_faces) * self.w / self.h)))
        rows = max(1, math.ceil(max(1, n_faces) / cols))
        self.slots = []
        for i in range(n_faces):
            r, c = divmod(i, cols)
            cx = (c + 0.5) * self.w / cols + rng.uniform(-0.15, 0.15) * self.w / cols
            cy = (r + 0.5) * self.h / rows + rng.uniform(-0.1, 0.1) * self.h / rows
            px = int(rng.uniform(*FACE_PX_RANGE) * min(1.0, 3.0 / rows))
            self.slots.append((cx, cy, max(24, px), rng.uniform(0, 2 * math.pi), int(rng.integers(0, 1 << 30))))
        self._cache: dict[tuple[int, int], np.ndarray] = {}

    def _stage_background(self, rng: np.random.Generator) -> np.ndarray:
        y = np.linspace(0, 1, self.h, dtype=np.float32)[:, None, None]
        base = (np.array([40, 22, 18], np.float32) * (1 - y) + np.array([12, 8, 6], np.float32) * y)
        img = np.broadcast_to(base, (self.h, self.w, 3)).copy()
        img += rng.normal(0, 3, img.shape).astype(np.float32)
        return np.clip(img, 0, 255).astype(np.uint8)

    def _face(self, photo_index: int, px: int) -> np.ndarray:
        key = (photo_index, px)
        if key not in self._cache:
            photo, face_h = self.photos[photo_index]
            h, w = photo.shape[:2]
            scale = px / face_h / 2.2  # the slot's size is the whole head-and-shoulders crop
            self._cache[key] = cv2.resize(photo, (max(8, int(w * scale)), px), interpolation=cv2.INTER_AREA)
        return self._cache[key]

    def frame(self, t_s: float) -> np.ndarray:
        img = self.background.copy()
        if not self.photos:
            return img
        phase = int(t_s // ROTATE_S)
        for i, (cx, cy, px, ph, salt) in enumerate(self.slots):
            k = (salt + phase * (1 + i % 3)) % len(self.photos)
            face = self._face(k, px)
            fh, fw = face.shape[:2]
            x = int(cx + 6 * math.sin(0.7 * t_s + ph) - fw / 2)
            y = int(cy + 4 * math.sin(1.1 * t_s + ph) - fh / 2)
            x0, y0 = max(0, x), max(0, y)
            x1, y1 = min(self.w, x + fw), min(self.h, y + fh)
            if x1 > x0 and y1 > y0:
                img[y0:y1, x0:x1] = face[y0 - y:y1 - y, x0 - x:x1 - x]
        return img
