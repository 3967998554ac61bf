"""Real scenes: photographs of people in full (bodies, clothes, furniture, busy
backgrounds) and group scenes composed from them, with every face's box checked by eye.
For the detector's precision tests, `pcp-osc bench` and anyone measuring perception on
something closer to a show than faces on a plain canvas. Sources and licences:
PROVENANCE.md here; rebuilt by tools/prepare_scenes.py.

    scene_names()                  # ["biden", ..., "group_blue_room", ...]
    s = scene("group_blue_room")   # Scene: .image (BGR), .faces (n, 4) xyxy, .ignore (m, 4)
    s4k = s.scaled(2.0)            # the same scene from a 4K camera (3840x2160)
    tally = s.score(found_boxes)   # Tally: .found, .missed, .false, .false_boxes

Ground truth (scenes.json): per scene ``faces`` (every face a person would count) and
``ignore`` regions (a face cut by the picture's edge, half covered, or a blurred crowd):
a box there is neither a hit nor a false box. ``bus`` and ``zidane`` are read from the
installed ultralytics package (AGPL-3.0; not copied here) and are left out without it.

Nothing here reads a camera or writes a file.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

SCENES_DIR = Path(__file__).resolve().parent
MATCH_IOU = 0.3  # a found box is that face when they overlap this much (detectors frame faces differently)
IGNORE_INSIDE = 0.5  # a found box this much inside an ignore region is not counted


@dataclass(frozen=True)
class Tally:
    found: int
    missed: int
    false: int
    false_boxes: np.ndarray = field(repr=False)
    missed_boxes: np.ndarray = field(repr=False)


@dataclass(frozen=True)
class Scene:
    name: str
    kind: str  # "photo" (a photograph at its own size) or "group" (composed, 1920x1080)
    image: np.ndarray = field(repr=False)  # BGR uint8, read-only: copy before drawing on it
    faces: np.ndarray = field(repr=False)  # (n, 4) float32 xyxy px
    ignore: np.ndarray = field(repr=False)  # (m, 4) float32 xyxy px

    @property
    def size(self) -> tuple[int, int]:
        return self.image.shape[1], self.image.shape[0]

    def scaled(self, factor: float) -> "Scene":
        """The scene resized by ``factor`` (2.0: a 4K camera's view of a 1920x1080 scene)."""
        if not 0.05 <= factor <= 8:
            raise ValueError(f"scale factor {factor} is outside 0.05..8")
        w, h = self.size
        size = (max(1, round(w * factor)), max(1, round(h * factor)))
        interp = cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR
        image = cv2.resize(self.image, size, interpolation=interp)
        image.flags.writeable = False
        k = np.array([size[0] / w, size[1] / h] * 2, np.float32)
        return Scene(f"{self.name}@{factor:g}x", self.kind, image, self.faces * k, self.ignore * k)

    def score(self, boxes: np.ndarray) -> Tally:
        """Compare found boxes (k, 4 xyxy) with the faces: each face matched at most once
        (IoU >= MATCH_IOU, best first); a box that matches no face and is not inside an
        ignore region is a false box (a second box on one face is one too)."""
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        matched_face = np.zeros(len(self.faces), bool)
        is_hit = np.zeros(len(boxes), bool)
        if len(boxes) and len(self.faces):
            iou = _iou(boxes, self.faces)
            for bi, fi in sorted(zip(*np.nonzero(iou >= MATCH_IOU)), key=lambda p: -iou[p]):
                if not matched_face[fi] and not is_hit[bi]:
                    matched_face[fi] = is_hit[bi] = True
        unmatched = boxes[~is_hit]
        if len(unmatched) and len(self.ignore):
            inside = _intersection(unmatched, self.ignore) / np.maximum(_area(unmatched)[:, None], 1e-6)
            unmatched = unmatched[inside.max(axis=1) < IGNORE_INSIDE]
        return Tally(int(matched_face.sum()), int((~matched_face).sum()), len(unmatched), unmatched,
                     self.faces[~matched_face])


@lru_cache(maxsize=1)
def _index() -> dict:
    return json.loads((SCENES_DIR / "scenes.json").read_text())


def _external_path(spec: dict) -> Path | None:
    """A scene image read from an installed package, if it is installed and the same file."""
    found = importlib.util.find_spec(spec["package"])  # find, don't import: ultralytics writes settings on import
    if found is None or found.origin is None:
        return None
    path = Path(found.origin).parent.joinpath(*spec["member"].split("/")[1:])
    if not path.is_file() or hashlib.sha256(path.read_bytes()).hexdigest() != spec["sha256"]:
        return None
    return path


def scene_names(kind: str | None = None) -> list[str]:
    """Names of the scenes available here (``kind``: "photo", "group" or None for all)."""
    if kind not in (None, "photo", "group"):
        raise ValueError(f"scene kind {kind!r} is not one of: photo, group")
    return [n for n, s in _index().items()
            if (kind is None or s["kind"] == kind) and ("file" in s or _external_path(s) is not None)]


def scene_path(name: str) -> Path:
    """The image file of a scene (for `pcp-osc detect` and anything that reads files)."""
    spec = _index().get(name)
    if spec is None:
        raise ValueError(f"no scene {name!r}; scenes: {', '.join(scene_names())}")
    if "file" in spec:
        return SCENES_DIR / spec["file"]
    path = _external_path(spec)
    if path is None:
        raise ValueError(f"scene {name!r} is read from the installed {spec['package']} package ({spec['member']}), "
                         f"which is not installed here or holds another file")
    return path


@lru_cache(maxsize=None)
def scene(name: str) -> Scene:
    """One scene (cached; its arrays are read-only)."""
    path = scene_path(name)
    spec = _index()[name]
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"scene image {path} could not be read; rebuild with tools/prepare_scenes.py")
    image.flags.writeable = False
    faces = np.array(spec["faces"], np.float32).reshape(-1, 4)
    ignore = np.array(spec["ignore"], np.float32).reshape(-1, 4)
    return Scene(name, spec["kind"], image, faces, ignore)


def scenes(kind: str | None = None) -> list[Scene]:
    return [scene(n) for n in scene_names(kind)]


def _area(b: np.ndarray) -> np.ndarray:
    return np.maximum(0, b[:, 2] - b[:, 0]) * np.maximum(0, b[:, 3] - b[:, 1])


def _intersection(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    iw = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    ih = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    return iw * ih


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    inter = _intersection(a, b)
    return inter / np.maximum(_area(a)[:, None] + _area(b)[None] - inter, 1e-6)
