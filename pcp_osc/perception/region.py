"""The audience region: the part of the picture where the audience sits.

The operator gives it as a polygon (``perception.region``, points as fractions of the
picture's width and height, so it holds at any camera resolution) or as a mask image
(``perception.region_mask``: white where the audience is, black elsewhere; any size,
stretched to the picture). Outside it nothing is searched or counted: the search
covers only the region's bounding box (the rest of the picture costs nothing), and a
face counts only when its centre lies inside the region (the stage, performers, screens
and lights never become the audience).

    region = AudienceRegion.from_config(cfg)     # None when the whole picture is audience
    g = region.geometry(1280, 720)               # mask, bbox, polygon in px, for this size
    keep = g.inside(boxes)                       # faces whose centre is in the region
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from . import PerceptionError

MASK_THRESHOLD = 128  # mask image pixels at or above this (gray) are audience
MAX_REGION_POINTS = 64  # corners of one region polygon: an outline drawn by hand needs far fewer


def polygon_problem(points: object) -> str | None:
    """Why ``points`` is not a usable region polygon, or None. The one rule for the config
    check, OSC show control and the dashboard."""
    if not isinstance(points, list):
        return "must be a list of [x, y] points"
    if not points:
        return None  # no region: the whole picture
    if len(points) < 3:
        return f"has {len(points)} point(s); a region needs at least 3 [x, y] points (fractions 0..1 of width and height)"
    if len(points) > MAX_REGION_POINTS:
        return f"has {len(points)} points; a region has 3..{MAX_REGION_POINTS} [x, y] points"
    for i, p in enumerate(points):
        if not (isinstance(p, list) and len(p) == 2 and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in p)):
            return f"point {i + 1} = {p!r} is not [x, y] with two numbers"
        if not all(0.0 <= float(v) <= 1.0 for v in p):
            return (f"point {i + 1} = {p!r} is outside 0..1: points are fractions of the picture "
                    f"(x 0 = left edge, 1 = right edge; y 0 = top, 1 = bottom), e.g. [0.5, 0.5] is the centre")
    pts = np.array(points, np.float64)
    crossing = _crossing_edges(pts)
    if crossing:
        (a, b), (c, d) = crossing
        return (f"crosses itself: the edge from point {a + 1} to point {b + 1} crosses the edge from point {c + 1} "
                f"to point {d + 1}; give the corners in order around the audience (clockwise or anticlockwise)")
    area = 0.5 * abs(np.dot(pts[:, 0], np.roll(pts[:, 1], 1)) - np.dot(pts[:, 1], np.roll(pts[:, 0], 1)))
    if area < 1e-4:
        return f"encloses no area ({area:.6f} of the picture); give the corners of the audience in order around it"
    return None


def _crossing_edges(pts: np.ndarray) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """The first two edges of the closed polygon that cross each other (not at a shared
    corner), as ((i, i+1), (j, j+1)) point indices; None when it does not cross itself."""
    n = len(pts)
    edges = [(i, (i + 1) % n) for i in range(n)]

    def side(p, q, r) -> float:  # > 0: r left of p->q; < 0: right; 0: on the line
        return float((q[0] - p[0]) * (r[1] - p[1]) - (q[1] - p[1]) * (r[0] - p[0]))

    for i in range(n):
        a, b = pts[edges[i][0]], pts[edges[i][1]]
        for j in range(i + 2, n):
            if i == 0 and j == n - 1:
                continue  # the closing edge shares point 1 with the first edge
            c, d = pts[edges[j][0]], pts[edges[j][1]]
            d1, d2, d3, d4 = side(a, b, c), side(a, b, d), side(c, d, a), side(c, d, b)
            if d1 * d2 < 0 and d3 * d4 < 0:
                return edges[i], edges[j]
    return None


@dataclass
class RegionGeometry:
    """The region at one picture size."""

    mask: np.ndarray            # (h, w) uint8, 255 inside
    bbox: tuple[int, int, int, int]  # x0, y0, x1, y1 (px, exclusive end); empty when x1 <= x0
    polygon_px: np.ndarray | None    # (k, 2) int32, the polygon as drawn (None for a mask image)
    share: float                # of the picture's area inside

    @property
    def empty(self) -> bool:
        return self.bbox[2] <= self.bbox[0] or self.bbox[3] <= self.bbox[1]

    def inside(self, boxes: np.ndarray) -> np.ndarray:
        """(n,) bool: the box's centre lies in the region."""
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        if not len(boxes):
            return np.zeros((0,), bool)
        h, w = self.mask.shape
        cx = np.clip(((boxes[:, 0] + boxes[:, 2]) / 2).astype(int), 0, w - 1)
        cy = np.clip(((boxes[:, 1] + boxes[:, 3]) / 2).astype(int), 0, h - 1)
        return self.mask[cy, cx] > 0

    def touches(self, rect: tuple[int, int, int, int]) -> bool:
        """Any region pixel in the rectangle (x0, y0, x1, y1)?"""
        x0, y0, x1, y1 = rect
        return bool(self.mask[max(0, y0):max(0, y1), max(0, x0):max(0, x1)].any())


class AudienceRegion:
    """A polygon (fractions of the picture) or a mask image; geometry cached per size."""

    def __init__(self, polygon: list | None = None, mask_image: np.ndarray | None = None, label: str = "") -> None:
        if (polygon is None) == (mask_image is None):
            raise ValueError("an audience region is a polygon or a mask image, exactly one of them")
        self.polygon = None if polygon is None else np.array(polygon, np.float64).reshape(-1, 2)
        self.mask_image = mask_image
        self.label = label
        self._cache: dict[tuple[int, int], RegionGeometry] = {}

    @classmethod
    def from_config(cls, cfg) -> "AudienceRegion | None":
        points = list(getattr(cfg, "region", []) or [])
        mask_path = str(getattr(cfg, "region_mask", "") or "")
        if points and mask_path:
            raise PerceptionError("perception.region and perception.region_mask are both set; give one of them")
        if points:
            problem = polygon_problem(points)
            if problem:
                raise PerceptionError(f"perception.region {problem}")
            return cls(polygon=points, label=f"polygon of {len(points)} points")
        if mask_path:
            return cls(mask_image=read_mask(mask_path), label=f"mask {Path(mask_path).name}")
        return None

    def geometry(self, w: int, h: int) -> RegionGeometry:
        key = (w, h)
        g = self._cache.get(key)
        if g is None:
            g = self._make(w, h)
            if len(self._cache) > 8:
                self._cache.pop(next(iter(self._cache)))
            self._cache[key] = g
        return g

    def polygon_fractions(self) -> list[list[float]] | None:
        return None if self.polygon is None else [[float(x), float(y)] for x, y in self.polygon]

    def _make(self, w: int, h: int) -> RegionGeometry:
        mask = np.zeros((h, w), np.uint8)
        poly_px = None
        if self.polygon is not None:
            poly_px = np.round(self.polygon * [w, h]).astype(np.int32)
            cv2.fillPoly(mask, [poly_px], 255)
        else:
            m = cv2.resize(self.mask_image, (w, h), interpolation=cv2.INTER_NEAREST)
            mask[m >= MASK_THRESHOLD] = 255
        ys, xs = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
        bbox = (int(xs[0]), int(ys[0]), int(xs[-1]) + 1, int(ys[-1]) + 1) if len(xs) else (0, 0, 0, 0)
        return RegionGeometry(mask, bbox, poly_px, float((mask > 0).mean()))


def read_mask(path: str) -> np.ndarray:
    """A mask image as (h, w) uint8 gray, or a PerceptionError saying what is wrong."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise PerceptionError(f"perception.region_mask {path!r} does not exist (a PNG or JPEG: white where the audience is, black elsewhere)")
    data = np.fromfile(str(p), np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE) if data.size else None
    if image is None:
        raise PerceptionError(f"perception.region_mask {path!r} is not an image that can be read (PNG or JPEG: white where the audience is, black elsewhere)")
    if not (image >= MASK_THRESHOLD).any():
        raise PerceptionError(f"perception.region_mask {path!r} has no white pixels: nothing would be audience (white = audience, black = not)")
    return image
