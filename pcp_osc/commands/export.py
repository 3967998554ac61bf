"""`pcp-osc export WEIGHTS --format onnx`: a YOLO model for onnxruntime, checked against the original.

The exported file keeps ultralytics' metadata (class names, task, input size),
which is all the YOLO backend needs to run it without torch. After exporting,
both files are loaded as backends and run on the same images; the command
reports the largest difference in class scores and in box corners.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

FORMATS = ("onnx",)


class ExportError(ValueError):
    pass


def export_onnx(weights: str | Path, *, imgsz: int | None = None, out: str | Path | None = None,
                dynamic: bool = True, opset: int | None = None) -> Path:
    """Export an ultralytics .pt to ONNX (offline); returns the .onnx path."""
    from ..perception.yolo_offline import ultralytics_offline

    weights = Path(weights)
    if not weights.is_file():
        raise ExportError(f"weights {str(weights)!r} not found")
    if weights.suffix.lower() != ".pt":
        raise ExportError(f"weights {weights.name!r}: export takes an ultralytics .pt")
    ultralytics_offline()
    from ultralytics import YOLO

    model = YOLO(str(weights))
    kwargs = dict(format="onnx", dynamic=dynamic, simplify=False, device="cpu", batch=1)
    if imgsz:
        kwargs["imgsz"] = imgsz
    if opset:
        kwargs["opset"] = opset
    produced = Path(model.export(**kwargs))
    if out:
        target = Path(out)
        if target.suffix.lower() != ".onnx":
            target = target / (weights.stem + ".onnx")
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.resolve() != produced.resolve():
            shutil.move(str(produced), target)
        produced = target
    return produced


def probe_images(paths: Sequence[str | Path] = ()) -> list[np.ndarray]:
    """Images to compare on: the files/folders given, else the project's test photographs."""
    import cv2

    from ..datasets.aihub import IMAGE_SUFFIXES

    files: list[Path] = []
    for p in paths or [Path(__file__).resolve().parent.parent / "data"]:
        p = Path(p)
        files += sorted(q for q in p.iterdir() if q.suffix.lower() in IMAGE_SUFFIXES) if p.is_dir() else [p]
    images = []
    for f in files:
        im = cv2.imdecode(np.fromfile(str(f), dtype=np.uint8), cv2.IMREAD_COLOR)
        if im is None:
            raise ExportError(f"probe image {f} could not be read")
        images.append(im)
    if not images:
        raise ExportError("no probe images to compare the exported model on")
    return images


def agreement(a, b, images: Sequence[np.ndarray]) -> dict:
    """How far two YOLO backends (the .pt and its export) disagree on the same images.

    max_score_diff: largest difference of any class probability the networks emit
    (every anchor for a detector, every crop for a classifier). max_box_diff_px:
    largest corner difference between the faces both report (matched by order,
    which is by confidence). faces_a/faces_b: faces each found.
    """
    from ..perception.yolo import letterbox, to_tensor

    if a.mode != b.mode:
        raise ExportError(f"the two models are of different kinds ({a.mode} vs {b.mode})")
    if a.mode == "detector":
        batch = to_tensor([letterbox(im, a.imgsz)[0] for im in images])
        ra, rb = a.runner(batch), b.runner(batch)
        score_diff = float(np.abs(ra[:, 4:] - rb[:, 4:]).max())
    else:
        h, w = images[0].shape[:2]
        crops = [im[: min(h, w), : min(h, w)] for im in images]
        score_diff = float(np.abs(a.classify_crops(crops) - b.classify_crops(crops)).max())
        return {"mode": a.mode, "max_score_diff": score_diff, "max_box_diff_px": 0.0, "images": len(images)}
    fa, fb = a.detect_many(images), b.detect_many(images)
    box_diff, five_diff = 0.0, 0.0
    for x, y in zip(fa, fb):
        n = min(len(x), len(y))
        if n:
            box_diff = max(box_diff, float(np.abs(x.boxes[:n] - y.boxes[:n]).max()))
            five_diff = max(five_diff, float(np.abs(x.scores[:n] - y.scores[:n]).max()))
    return {
        "mode": a.mode,
        "max_score_diff": score_diff,
        "max_emotion_score_diff": five_diff,
        "max_box_diff_px": box_diff,
        "faces_a": sum(len(f) for f in fa),
        "faces_b": sum(len(f) for f in fb),
        "images": len(images),
    }


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export YOLO weights to ONNX and check the export agrees",
                       description="Export an ultralytics .pt to ONNX (runs without torch) and report the largest "
                       "score difference between the two on test images.")
    p.add_argument("weights", metavar="WEIGHTS", help="ultralytics .pt")
    p.add_argument("--format", choices=FORMATS, default="onnx", help="export format (onnx)")
    p.add_argument("--imgsz", type=int, help="input side in px (default: the size it was trained at)")
    p.add_argument("--out", metavar="PATH", help="output .onnx file or folder (default: beside the weights)")
    p.add_argument("--static", action="store_true", help="fixed batch of 1 (default: dynamic batch, for batched frames)")
    p.add_argument("--check", action="append", metavar="IMAGE_OR_DIR",
                   help="images to compare on (default: the project's test photographs)")
    p.add_argument("--conf", type=float, default=0.05, help="box threshold used for the comparison (default 0.05)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..config import PerceptionConfig
    from ..perception import PerceptionError
    from ..perception.yolo import YoloBackend

    try:
        onnx_path = export_onnx(args.weights, imgsz=args.imgsz, out=args.out, dynamic=not args.static)
        cfg = PerceptionConfig(backend="yolo", yolo_conf=args.conf)
        pt = YoloBackend(cfg, args.weights, "auto", face_detector=_NoFaces())
        ox = YoloBackend(cfg, onnx_path, "auto", face_detector=_NoFaces())
        result = agreement(pt, ox, probe_images(args.check or ()))
    except (ExportError, PerceptionError) as e:
        print(f"export: {e}", file=sys.stderr)
        return 2
    result["onnx"] = str(onnx_path)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"exported {onnx_path}")
        print(f"largest score difference .pt vs .onnx: {result['max_score_diff']:.2e} "
              f"(class probabilities over {result['images']} images)")
        if result["mode"] == "detector":
            print(f"largest box difference: {result['max_box_diff_px']:.3f} px; faces found: "
                  f"{result['faces_a']} (.pt) vs {result['faces_b']} (.onnx)")
    return 0


class _NoFaces:
    """Stands in for the face detector: the export check compares classifiers on whole probe crops."""

    def detect_many(self, images):
        from ..types import Faces

        return [Faces.empty() for _ in images]
