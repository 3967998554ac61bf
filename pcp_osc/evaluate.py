"""Score any perception backend on labelled faces: how a venue picks which backend to run.

Two kinds of labelled set:

- **YOLO detection layout** (``pcp-osc dataset aihub`` writes it): ``data.yaml``
  with ``images/<split>`` and ``labels/<split>`` (``class cx cy w h``, normalised),
  class names in the yaml mapped onto the five emotions. The backend runs on the
  full image; its faces are matched to the labelled faces greedily, most
  confident first, at IoU >= 0.5.
- **Face crops per emotion**: ``DIR/<emotion>/*.jpg`` (any accepted emotion name
  as folder name, e.g. ``joy`` or ``기쁨``), or that under ``DIR/<split>/``. A
  classifier backend scores the crop; a backend with ``classify_boxes`` (the
  shipped default) classifies the face framed in the crop's middle; otherwise
  the backend's most confident face in the crop is taken, none = "missed".

Metrics: a confusion matrix whose rows are the true emotion plus "background"
(a face found where none is labelled) and whose columns are the predicted
emotion plus "missed" (a labelled face no face was found for); per-emotion
precision, recall and F1 from it (missed faces count against recall, background
faces against precision); accuracy = correctly labelled faces / labelled faces.
For the detection layout also AP at IoU 0.5 per emotion and their mean (mAP50):
each found face is one prediction of its strongest emotion, ranked by
``detection_confidence * score``; all-point interpolated precision envelope.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from .emotions import EMOTIONS, N_EMOTIONS, UnknownEmotion, merge_matrix, parse_emotion
from .types import Faces

IOU_MATCH = 0.5
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
ROWS = (*EMOTIONS, "background")
COLS = (*EMOTIONS, "missed")


class EvalError(ValueError):
    """A labelled set that cannot be read; the message names the file and what was expected."""


@dataclass
class LabelledImage:
    path: Path
    boxes: np.ndarray  # (n, 4) xyxy px
    labels: np.ndarray  # (n,) 0..4


@dataclass
class EvalResult:
    kind: str  # "detection" | "crops"
    backend: str
    images: int
    faces: int
    confusion: np.ndarray  # (6, 6) ROWS x COLS
    seconds: float
    ap50: dict[str, float] = field(default_factory=dict)

    @property
    def per_class(self) -> dict[str, dict[str, float]]:
        c = self.confusion
        out = {}
        for k, e in enumerate(EMOTIONS):
            tp = c[k, k]
            found_as_k = c[:, k].sum()  # every face predicted k (true emotion, or background)
            truly_k = c[k, :].sum()  # every face labelled k (predicted anything, or missed)
            p = tp / found_as_k if found_as_k else 0.0
            r = tp / truly_k if truly_k else 0.0
            f1 = 2 * p * r / (p + r) if p + r else 0.0
            out[e] = {"precision": float(p), "recall": float(r), "f1": float(f1), "support": int(truly_k)}
        return out

    @property
    def accuracy(self) -> float:
        labelled = self.confusion[:N_EMOTIONS, :].sum()
        return float(np.trace(self.confusion[:N_EMOTIONS, :N_EMOTIONS]) / labelled) if labelled else 0.0

    @property
    def map50(self) -> float | None:
        if not self.ap50:
            return None
        return float(np.mean(list(self.ap50.values())))

    def to_json(self) -> dict:
        return {
            "kind": self.kind,
            "backend": self.backend,
            "images": self.images,
            "faces": self.faces,
            "accuracy": round(self.accuracy, 4),
            "per_class": {e: {k: round(v, 4) if isinstance(v, float) else v for k, v in m.items()} for e, m in self.per_class.items()},
            "map50": None if self.map50 is None else round(self.map50, 4),
            "ap50": {e: round(v, 4) for e, v in self.ap50.items()},
            "confusion": {"rows": list(ROWS), "cols": list(COLS), "counts": self.confusion.astype(int).tolist()},
            "seconds": round(self.seconds, 2),
        }

    def table(self) -> str:
        lines = [f"{self.backend} on {self.images} images, {self.faces} labelled faces ({self.kind})",
                 f"{'emotion':<10}{'precision':>10}{'recall':>8}{'F1':>7}{'faces':>7}" + (f"{'AP50':>7}" if self.ap50 else "")]
        for e, m in self.per_class.items():
            ap = f"{self.ap50[e]:>7.3f}" if self.ap50 else ""
            lines.append(f"{e:<10}{m['precision']:>10.3f}{m['recall']:>8.3f}{m['f1']:>7.3f}{m['support']:>7}{ap}")
        lines.append(f"accuracy {self.accuracy:.3f}" + (f"   mAP50 {self.map50:.3f}" if self.map50 is not None else ""))
        lines.append("confusion (rows: labelled, columns: predicted):")
        lines.append(" " * 11 + "".join(f"{c[:8]:>9}" for c in COLS))
        for name, row in zip(ROWS, self.confusion.astype(int)):
            lines.append(f"{name:<11}" + "".join(f"{v:>9}" for v in row))
        return "\n".join(lines)


# --------------------------------------------------------------------------- loading


def _read(path: Path) -> np.ndarray:
    image = cv2.imdecode(np.fromfile(str(path), dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise EvalError(f"image {path} could not be read")
    return image


def load_yolo_set(data: str | Path, split: str = "test") -> list[LabelledImage]:
    """Labelled images of one split of a YOLO detection data set (data.yaml or its folder)."""
    import yaml

    path = Path(data)
    yaml_path = path / "data.yaml" if path.is_dir() else path
    if not yaml_path.is_file():
        raise EvalError(f"{data}: no data.yaml")
    spec = yaml.safe_load(yaml_path.read_text(encoding="utf-8")) or {}
    names = spec.get("names")
    names = [names[k] for k in sorted(names, key=int)] if isinstance(names, dict) else list(names or [])
    try:
        to_five = merge_matrix([str(n) for n in names], where=f"{yaml_path} names").argmax(axis=1)
    except UnknownEmotion as e:
        raise EvalError(str(e)) from e
    root = Path(spec.get("path") or yaml_path.parent)
    if not root.is_absolute():
        root = (yaml_path.parent / root).resolve()
    if split not in spec:
        raise EvalError(f"{yaml_path} has no {split!r} split; it has: {', '.join(k for k in ('train', 'val', 'test') if k in spec)}")
    images_dir = root / str(spec[split])
    if not images_dir.is_dir():
        raise EvalError(f"{yaml_path}: split {split!r} folder {images_dir} not found")
    out = []
    for img in sorted(p for p in images_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
        label = _label_path(img)
        rows = np.loadtxt(label, ndmin=2) if label.is_file() and label.stat().st_size else np.zeros((0, 5))
        h, w = _size(img)
        boxes = np.stack([(rows[:, 1] - rows[:, 3] / 2) * w, (rows[:, 2] - rows[:, 4] / 2) * h,
                          (rows[:, 1] + rows[:, 3] / 2) * w, (rows[:, 2] + rows[:, 4] / 2) * h], axis=1) if len(rows) else np.zeros((0, 4))
        out.append(LabelledImage(img, boxes.astype(np.float32), to_five[rows[:, 0].astype(int)] if len(rows) else np.zeros(0, int)))
    return out


def _label_path(image: Path) -> Path:
    """ultralytics' rule: the label of .../images/<split>/x.jpg is .../labels/<split>/x.txt."""
    parts = list(image.parts)
    k = len(parts) - 1 - parts[::-1].index("images")
    parts[k] = "labels"
    return Path(*parts).with_suffix(".txt")


def _size(path: Path) -> tuple[int, int]:
    from .datasets.aihub import image_size

    w, h = image_size(path)
    return h, w


def load_crop_set(folder: str | Path, split: str = "test") -> list[tuple[Path, int]]:
    """(crop, emotion) for DIR/<emotion>/* or DIR/<split>/<emotion>/*."""
    root = Path(folder)
    if not root.is_dir():
        raise EvalError(f"{folder}: not a folder of face crops per emotion")
    if (root / split).is_dir():
        root = root / split
    out = []
    for sub in sorted(d for d in root.iterdir() if d.is_dir()):
        try:
            k = parse_emotion(sub.name, where=f"crop folder {sub}")
        except UnknownEmotion as e:
            raise EvalError(str(e)) from e
        out += [(p, k) for p in sorted(sub.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]
    if not out:
        raise EvalError(f"{folder}: no face crops found (expected <emotion>/*.jpg)")
    return out


def is_detection_set(data: str | Path) -> bool:
    p = Path(data)
    return p.is_file() or ((p / "data.yaml").is_file() and (p / "images").is_dir())


# --------------------------------------------------------------------------- scoring


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if not len(a) or not len(b):
        return np.zeros((len(a), len(b)), np.float32)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def match_faces(pred_boxes: np.ndarray, pred_conf: np.ndarray, gt_boxes: np.ndarray, iou: float = IOU_MATCH) -> np.ndarray:
    """For each predicted face, the index of the labelled face it matches, or -1 (greedy, most confident first)."""
    match = np.full(len(pred_boxes), -1, dtype=np.int64)
    if not len(pred_boxes) or not len(gt_boxes):
        return match
    ious = iou_matrix(pred_boxes, gt_boxes)
    taken = np.zeros(len(gt_boxes), bool)
    for i in np.argsort(-pred_conf, kind="stable"):
        cand = np.where(~taken & (ious[i] >= iou))[0]
        if len(cand):
            j = cand[np.argmax(ious[i, cand])]
            match[i], taken[j] = j, True
    return match


def average_precision(conf: np.ndarray, correct: np.ndarray, n_labelled: int) -> float:
    """All-point interpolated AP of predictions (conf, correct) against n_labelled faces."""
    if n_labelled == 0:
        return float("nan")
    if not len(conf):
        return 0.0
    order = np.argsort(-conf, kind="stable")
    tp = np.cumsum(correct[order])
    fp = np.cumsum(~correct[order])
    recall = tp / n_labelled
    precision = tp / np.maximum(tp + fp, 1e-9)
    r = np.concatenate([[0.0], recall, [1.0]])
    p = np.concatenate([[1.0], precision, [0.0]])
    p = np.flip(np.maximum.accumulate(np.flip(p)))
    steps = np.where(r[1:] != r[:-1])[0]
    return float(np.sum((r[steps + 1] - r[steps]) * p[steps + 1]))


def _progress(done: int, total: int, start: float) -> None:
    sys.stderr.write(f"\rscoring: {done}/{total} images ({time.monotonic() - start:.0f} s)")
    if done == total:
        sys.stderr.write("\n")
    sys.stderr.flush()


def evaluate_detection(backend, samples: Sequence[LabelledImage], *, batch: int = 4, progress: bool = True) -> EvalResult:
    """Run ``backend.detect_many`` on every image and score its faces against the labels."""
    confusion = np.zeros((len(ROWS), len(COLS)), np.int64)
    per_class_pred: dict[int, list[tuple[float, bool]]] = {k: [] for k in range(N_EMOTIONS)}
    n_labelled = np.zeros(N_EMOTIONS, np.int64)
    start = time.monotonic()
    for i in range(0, len(samples), batch):
        chunk = samples[i : i + batch]
        found: list[Faces] = backend.detect_many([_read(s.path) for s in chunk])
        for s, faces in zip(chunk, found):
            pred = faces.emotion_index
            conf = faces.detection_confidence * (faces.scores[np.arange(len(faces)), pred] if len(faces) else 0)
            match = match_faces(faces.boxes, faces.detection_confidence, s.boxes)
            for k in s.labels:
                n_labelled[k] += 1
            matched_gt = set()
            for f, j in enumerate(match):
                if j < 0:
                    confusion[N_EMOTIONS, pred[f]] += 1
                else:
                    confusion[s.labels[j], pred[f]] += 1
                    matched_gt.add(int(j))
            for j, k in enumerate(s.labels):
                if j not in matched_gt:
                    confusion[k, N_EMOTIONS] += 1
            # AP: a prediction of class k is correct if it overlaps an unmatched labelled k face at IoU >= 0.5
            for k in range(N_EMOTIONS):
                sel = np.where(pred == k)[0]
                gt_k = s.boxes[s.labels == k]
                m = match_faces(faces.boxes[sel], conf[sel], gt_k)
                per_class_pred[k] += [(float(c), bool(ok >= 0)) for c, ok in zip(conf[sel], m)]
        if progress:
            _progress(min(i + batch, len(samples)), len(samples), start)
    ap50 = {}
    for k, e in enumerate(EMOTIONS):
        if n_labelled[k]:
            preds = per_class_pred[k]
            ap50[e] = average_precision(np.array([c for c, _ in preds]), np.array([ok for _, ok in preds], bool), int(n_labelled[k]))
    return EvalResult("detection", getattr(backend, "name", "?"), len(samples), int(n_labelled.sum()), confusion,
                      time.monotonic() - start, ap50)


def classify_crop_scores(backend, crops: Sequence[np.ndarray]) -> list[np.ndarray | None]:
    """(5,) scores per face crop, or None where the backend found no face in it."""
    if getattr(backend, "mode", None) == "classifier" and hasattr(backend, "classify_crops"):
        return list(backend.classify_crops(crops))
    if hasattr(backend, "classify_boxes"):
        from .perception.yolo import FACE_CROP_MARGIN

        out = []
        for crop in crops:
            h, w = crop.shape[:2]
            side = min(h, w) / (1 + 2 * FACE_CROP_MARGIN)  # the face box the crop was framed around
            box = np.array([[w / 2 - side / 2, h / 2 - side / 2, w / 2 + side / 2, h / 2 + side / 2]], np.float32)
            out.append(backend.classify_boxes(crop, box)[0])
        return out
    out = []
    for faces in backend.detect_many(list(crops)):
        out.append(faces.scores[int(np.argmax(faces.detection_confidence))] if len(faces) else None)
    return out


def evaluate_crops(backend, items: Sequence[tuple[Path, int]], *, batch: int = 32, progress: bool = True) -> EvalResult:
    confusion = np.zeros((len(ROWS), len(COLS)), np.int64)
    start = time.monotonic()
    for i in range(0, len(items), batch):
        chunk = items[i : i + batch]
        scores = classify_crop_scores(backend, [_read(p) for p, _ in chunk])
        for (_, k), s in zip(chunk, scores):
            confusion[k, N_EMOTIONS if s is None else int(np.argmax(s))] += 1
        if progress:
            _progress(min(i + batch, len(items)), len(items), start)
    return EvalResult("crops", getattr(backend, "name", "?"), len(items), len(items), confusion, time.monotonic() - start)


def evaluate(backend, data: str | Path, split: str = "test", progress: bool = True) -> EvalResult:
    """Score ``backend`` on a YOLO detection set or a folder of crops per emotion."""
    if is_detection_set(data):
        samples = load_yolo_set(data, split)
        if not samples:
            raise EvalError(f"{data}: split {split!r} has no images")
        return evaluate_detection(backend, samples, progress=progress)
    return evaluate_crops(backend, load_crop_set(data, split), progress=progress)


def confusion_png(result: EvalResult, path: str | Path) -> Path:
    """The confusion matrix as a PNG (rows normalised to shares, counts written in the cells)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    c = result.confusion.astype(float)
    rows = c.sum(axis=1, keepdims=True)
    share = np.divide(c, rows, out=np.zeros_like(c), where=rows > 0)
    fig, ax = plt.subplots(figsize=(6.4, 5.4), dpi=110)
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(COLS)), COLS, rotation=35, ha="right")
    ax.set_yticks(range(len(ROWS)), ROWS)
    ax.set_xlabel("predicted")
    ax.set_ylabel("labelled")
    for (r, k), v in np.ndenumerate(c):
        if v:
            ax.text(k, r, int(v), ha="center", va="center", color="white" if share[r, k] > 0.5 else "black", fontsize=9)
    title = f"{result.backend}: accuracy {result.accuracy:.2f}"
    if result.map50 is not None:
        title += f", mAP50 {result.map50:.2f}"
    ax.set_title(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def write_json(result: EvalResult, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result.to_json(), indent=2), encoding="utf-8")
    return path
