"""Figures for the YOLO path: training seconds per epoch for a data-set size, and frames per second at
1280x720 for the YOLO backend (.pt and .onnx) beside the shipped default. Prints a table; offline.

    .venv/bin/python tools/yolo_figures.py [--persons 16] [--imgsz 640] [--epochs 2] [--frames 20]

Timings share the machine with whatever else runs: compare the rows of one run, not runs.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--persons", type=int, default=16)
    ap.add_argument("--imgsz", type=int, default=640)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--frames", type=int, default=20)
    ap.add_argument("--faces", type=int, default=8, help="faces in the 1280x720 crowd frame")
    args = ap.parse_args()

    from aihub_fixture import build_aihub
    from pcp_osc import data as shipped
    from pcp_osc.commands.export import export_onnx
    from pcp_osc.commands.train import train
    from pcp_osc.config import PerceptionConfig
    from pcp_osc.datasets.aihub import convert
    from pcp_osc.perception import make_backend

    root = Path(tempfile.mkdtemp(prefix="pcp-yolo-figures-"))
    build_aihub(root / "src", persons=args.persons, photos_per_person=8)
    report = convert(root / "src", root / "det", fractions=(0.6, 0.2, 0.2), progress=False)
    result = train(root / "det" / "data.yaml", epochs=args.epochs, imgsz=args.imgsz, batch=16, out=root / "run",
                   workers=2, verbose=False, extra={"val": False})
    per_epoch = result.epoch_seconds
    print(f"training yolo11n from yolo11n.yaml, imgsz {args.imgsz}, batch 16, CPU: {result.train_images} training images, "
          f"{', '.join(f'{s:.1f}' for s in per_epoch)} s per epoch "
          f"({sum(per_epoch) / len(per_epoch) / max(result.train_images, 1) * 1000:.0f} ms per image)")
    onnx_path = export_onnx(result.weights, out=root / "model.onnx")

    frame, _ = shipped.crowd_frame(args.faces)
    rows = []
    cfg = PerceptionConfig()
    for label, kind, weights in (("default (RetinaFace + mini-Xception)", "default", None),
                                 (f"yolo .pt (imgsz {args.imgsz})", "yolo", result.weights),
                                 (f"yolo .onnx (imgsz {args.imgsz})", "yolo", onnx_path)):
        backend = make_backend(cfg, weights=str(weights) if weights else None, backend=kind)
        backend.detect(frame)  # warm-up
        start = time.perf_counter()
        for _ in range(args.frames):
            backend.detect(frame)
        seconds = (time.perf_counter() - start) / args.frames
        rows.append((label, seconds))
    print(f"\nframes per second at {frame.shape[1]}x{frame.shape[0]}, {args.faces} faces, one frame per call:")
    for label, seconds in rows:
        print(f"  {label:<40} {1 / seconds:6.1f} fps  ({seconds * 1000:.0f} ms per frame)")
    print(f"(data set: {report.kept} faces kept of {report.records} records; work folder {root})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
