"""Real scenes: photographs of people in full (bodies, clothes, furniture, busy
backgrounds) and group scenes composed from them, with every face's box checked by eye.
For the detector's precision tests, `pcp-osc bench` and anyone measuring perception on
something closer to a show than faces on a plain canvas. Sources and licences:
PROVENANCE.md here; rebuilt by tools/prepare_scenes.py.

    scene_names()                  # ["biden", ..., "group_blue_room", ...]
    s = scene("group_blue_room")   # Scene: .image (BGR), .faces (n, 4) xyxy, .ignore (m, 4)
    s4k = s.scaled(2.0)            # the same scene from a 4K camera (3840x2160)
    tally = s.score(found_boxes)   # Tally: .found, .missed, .false, .false_boxes
    still(3)                       # a 1280x720 Scene: a group scene's crop with people from
                                   # the photographs pasted in, faces 20-110 px (photograph benches)

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
    kind: str  # "photo" (a photograph at its own size), "group" (composed, 1920x1080) or "still" (see still())
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


STILL_SIZE = (1280, 720)
STILL_FACE_PX = (20.0, 110.0)
STILL_PEOPLE = 6
STILL_COVERED_KEEP = 0.15  # a face this little covered by a later paste still counts
STILL_COVERED_GONE = 0.85  # ... this much: gone; in between: 'ignore'


def still(seed: int, size: tuple[int, int] = STILL_SIZE, people: int = STILL_PEOPLE,
          face_px: tuple[float, float] = STILL_FACE_PX) -> Scene:
    """A photograph-like still of ``size`` (deterministic in ``seed``): a crop of a group
    scene (so its people, rooms and furniture) with ``people`` more people from the stored
    photographs pasted in with soft edges, their face heights drawn log-uniformly from
    ``face_px``. The group scene's own faces outside ``face_px`` are 'ignore' regions."""
    width, height = int(size[0]), int(size[1])
    lo, hi = float(face_px[0]), float(face_px[1])
    if width < 64 or height < 64:
        raise ValueError(f"still size {size} is too small; need at least 64x64 pixels")
    if not 8 <= lo <= hi:
        raise ValueError(f"face_px {face_px} must be (low, high) with 8 <= low <= high")
    rng = np.random.default_rng(seed)
    groups = [n for n in scene_names("group")]
    base = scene(groups[int(rng.integers(len(groups)))])
    bw, bh = base.size
    k = max(width / bw, height / bh) * float(rng.uniform(1.0, 1.15))
    big = cv2.resize(base.image, (round(bw * k), round(bh * k)), interpolation=cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR)
    x0 = int(rng.integers(0, big.shape[1] - width + 1))
    y0 = int(rng.integers(0, big.shape[0] - height + 1))
    canvas = np.ascontiguousarray(big[y0:y0 + height, x0:x0 + width])
    shift = np.array([x0, y0, x0, y0], np.float32)
    faces = [b for b in base.faces * k - shift]
    ignore = [b for b in base.ignore * k - shift]
    kept = []
    for b in faces:
        inside = _clip_box(b, width, height)
        if _box_area(inside) >= 0.85 * _box_area(b) and lo <= b[3] - b[1] <= hi * 1.6:
            kept.append(b)
        elif _box_area(inside) > 0:
            ignore.append(inside)
    faces = kept
    photos = [n for n in scene_names("photo") if "file" in _index()[n]]
    for _ in range(people):
        src = scene(photos[int(rng.integers(len(photos)))])
        fb = src.faces[0]
        target = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
        f = target / float(fb[3] - fb[1])
        image = src.image[:, ::-1] if rng.random() < 0.5 else src.image
        src_faces, src_ignore = src.faces, src.ignore
        if image is not src.image:
            w0 = src.image.shape[1]
            flip = lambda z: np.stack([w0 - z[:, 2], z[:, 1], w0 - z[:, 0], z[:, 3]], axis=1) if len(z) else z  # noqa: E731
            src_faces, src_ignore = flip(src.faces), flip(src.ignore)
            fb = src_faces[0]
        pw, ph = max(1, round(image.shape[1] * f)), max(1, round(image.shape[0] * f))
        person = cv2.resize(np.ascontiguousarray(image), (pw, ph), interpolation=cv2.INTER_AREA)
        # the face lands anywhere in the frame, the body wherever that puts it
        cx = float(rng.uniform(0.5 * target, width - 0.5 * target))
        cy = float(rng.uniform(0.5 * target, height - 1.0 * target))
        px0 = round(cx - (fb[0] + fb[2]) / 2 * f)
        py0 = round(cy - (fb[1] + fb[3]) / 2 * f)
        rect = feathered_paste(canvas, person, px0, py0)
        rest = []
        for b in faces:
            covered = _box_area(_intersect_box(b, rect)) / max(_box_area(b), 1e-6)
            if covered < STILL_COVERED_KEEP:
                rest.append(b)
            elif covered < STILL_COVERED_GONE:
                ignore.append(b)
        offset = np.array([px0, py0, px0, py0], np.float32)
        new = [b * f + offset for b in src_faces]
        ignore += [b * f + offset for b in src_ignore]
        for b in new:
            inside = _clip_box(b, width, height)
            if _box_area(inside) >= 0.85 * _box_area(b):
                rest.append(b)
            elif _box_area(inside) > 0:
                ignore.append(inside)
        faces = rest
    canvas.flags.writeable = False
    return Scene(f"still{seed}", "still", canvas, np.array(faces, np.float32).reshape(-1, 4),
                 np.array([_clip_box(b, width, height) for b in ignore], np.float32).reshape(-1, 4))


def feathered_paste(canvas: np.ndarray, image: np.ndarray, x0: int, y0: int) -> tuple[int, int, int, int]:
    """Paste ``image`` with its edges faded into ``canvas`` (top-left x0, y0; clipped);
    returns the covered rectangle."""
    h, w = image.shape[:2]
    H, W = canvas.shape[:2]
    feather = max(2, int(0.06 * min(w, h)))
    ramp_x = np.clip(np.minimum(np.arange(w) + 1, w - np.arange(w)) / feather, 0, 1)
    ramp_y = np.clip(np.minimum(np.arange(h) + 1, h - np.arange(h)) / feather, 0, 1)
    alpha = (ramp_y[:, None] * ramp_x[None, :])[..., None].astype(np.float32)
    cx0, cy0, cx1, cy1 = max(0, x0), max(0, y0), min(W, x0 + w), min(H, y0 + h)
    if cx1 <= cx0 or cy1 <= cy0:
        return (0, 0, 0, 0)
    src = image[cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0].astype(np.float32)
    a = alpha[cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0]
    dst = canvas[cy0:cy1, cx0:cx1].astype(np.float32)
    canvas[cy0:cy1, cx0:cx1] = np.clip(src * a + dst * (1 - a), 0, 255).astype(np.uint8)
    # what it hides: where it is at least half opaque
    half = feather // 2
    cx0, cy0, cx1, cy1 = max(0, x0 + half), max(0, y0 + half), min(W, x0 + w - half), min(H, y0 + h - half)
    return (cx0, cy0, cx1, cy1) if cx1 > cx0 and cy1 > cy0 else (0, 0, 0, 0)


def _clip_box(b, w: int, h: int) -> np.ndarray:
    return np.array([min(max(b[0], 0), w), min(max(b[1], 0), h), min(max(b[2], 0), w), min(max(b[3], 0), h)], np.float32)


def _intersect_box(a, b) -> np.ndarray:
    return np.array([max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])], np.float32)


def _box_area(b) -> float:
    return float(max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1]))


def _area(b: np.ndarray) -> np.ndarray:
    return np.maximum(0, b[:, 2] - b[:, 0]) * np.maximum(0, b[:, 3] - b[:, 1])


def _intersection(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    iw = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    ih = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    return iw * ih


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    inter = _intersection(a, b)
    return inter / np.maximum(_area(a)[:, None] + _area(b)[None] - inter, 1e-6)
