"""`pcp-osc train --data DATA.yaml`: fine-tune a YOLO emotion detector (or face classifier), offline.

Defaults and why:
- model: ``yolo11n.yaml`` (detector) / ``yolo11n-cls.yaml`` (classifier), built
  from the architecture with random weights, because pcp-osc never downloads
  pretrained weights. Pass a ``.pt`` you already have to fine-tune from it.
- image size: 640 for the detector (faces in an audience photo are small),
  96 for the classifier (face crops).
- class balance: the detector uses ultralytics' inverse-frequency class weights
  in the classification loss (``cls_pw``, default 0.5: the square root of the
  inverse frequency, a dampened weighting). ultralytics has no weights for
  classification training, so the classifier's training folder is oversampled
  instead: a ``balanced/`` copy of symlinks repeats each minority-class crop so
  every emotion has as many samples as the largest (at most ``--max-repeat``
  times each).
- AMP only on CUDA; plots off unless asked (they need no font then);
  dataloader workers 2 (other work shares this machine).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("pcp_osc.train")

DETECT_MODEL = "yolo11n.yaml"
CLASSIFY_MODEL = "yolo11n-cls.yaml"
DETECT_IMGSZ = 640
CLASSIFY_IMGSZ = 96


class TrainError(ValueError):
    """Bad training input: the message names the file or flag and what is allowed."""


@dataclass
class TrainResult:
    weights: Path  # best.pt, emotion names embedded
    last: Path
    task: str  # detect | classify
    names: list[str]
    epoch_seconds: list[float] = field(default_factory=list)
    train_images: int = 0
    run_dir: Path | None = None


def data_task(data: str | Path) -> tuple[str, Path]:
    """("detect", data.yaml) or ("classify", folder with train/<emotion>/) for what --data points at."""
    path = Path(data)
    if path.is_dir():
        if (path / "data.yaml").is_file() and (path / "images").is_dir():
            return "detect", path / "data.yaml"
        if (path / "train").is_dir():
            return "classify", path
        raise TrainError(f"--data {str(data)!r}: a folder must hold data.yaml + images/ (detect) or train/<emotion>/ (classify)")
    if not path.is_file():
        raise TrainError(f"--data {str(data)!r} not found")
    if path.suffix.lower() not in (".yaml", ".yml"):
        raise TrainError(f"--data {str(data)!r}: give a data.yaml or a classify folder")
    import yaml

    spec = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    root = Path(spec.get("path") or path.parent)
    if not root.is_absolute():
        root = (path.parent / root).resolve()
    if not (root / "images").is_dir() and (root / "train").is_dir():
        return "classify", root  # the converter's classify layout: train/<emotion>/ beside data.yaml
    return "detect", path


def _check_names(names: list[str], where: str) -> None:
    from ..emotions import UnknownEmotion, merge_matrix

    try:
        merge_matrix(names, where=where)
    except UnknownEmotion as e:
        raise TrainError(f"{e}; every class must name one of the five emotions") from e


def _detect_names(yaml_path: Path) -> list[str]:
    import yaml

    spec = yaml.safe_load(yaml_path.read_text(encoding="utf-8")) or {}
    names = spec.get("names")
    if isinstance(names, dict):
        return [str(names[k]) for k in sorted(names, key=int)]
    if isinstance(names, list):
        return [str(n) for n in names]
    raise TrainError(f"{yaml_path}: no 'names' list of classes")


def balanced_classify_folder(src: Path, out: Path, max_repeat: int = 4) -> tuple[Path, dict[str, int]]:
    """A copy of a classify data set (symlinks) whose train/ repeats minority classes; returns (folder, counts)."""
    from ..datasets.aihub import IMAGE_SUFFIXES

    train = src / "train"
    classes = sorted(d.name for d in train.iterdir() if d.is_dir())
    files = {c: sorted(p for p in (train / c).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) for c in classes}
    most = max((len(v) for v in files.values()), default=0)
    if out.exists():
        shutil.rmtree(out)
    counts: dict[str, int] = {}
    for c, items in files.items():
        folder = out / "train" / c
        folder.mkdir(parents=True, exist_ok=True)
        repeat = min(max_repeat, max(1, round(most / max(len(items), 1)))) if items else 0
        for r in range(repeat):
            for p in items:
                os.symlink(p.resolve(), folder / (f"{p.stem}__{r}{p.suffix}" if r else p.name))
        counts[c] = len(items) * repeat
    for split in ("val", "test"):
        if (src / split).is_dir():
            os.symlink((src / split).resolve(), out / split)
    return out, counts


def train(
    data: str | Path,
    model: str | None = None,
    *,
    epochs: int = 100,
    imgsz: int | None = None,
    batch: int = 16,
    out: str | Path = "runs/pcp-osc",
    device: str = "cpu",
    workers: int = 2,
    patience: int = 50,
    seed: int = 0,
    plots: bool = False,
    balance: bool = True,
    cls_pw: float = 0.5,
    max_repeat: int = 4,
    verbose: bool = True,
    extra: dict | None = None,
) -> TrainResult:
    """Train offline; returns where the weights are and how long each epoch took."""
    from ..perception.yolo_offline import ultralytics_offline

    task, data_path = data_task(data)
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    model = model or (DETECT_MODEL if task == "detect" else CLASSIFY_MODEL)
    model_path = Path(model)
    if model_path.suffix.lower() == ".pt" and not model_path.is_file():
        raise TrainError(f"--model {model!r} not found; pcp-osc never downloads weights. Give a .pt you have or an "
                         f"architecture YAML such as {DETECT_MODEL if task == 'detect' else CLASSIFY_MODEL}")
    if model_path.suffix.lower() not in (".pt", ".yaml", ".yml"):
        raise TrainError(f"--model {model!r}: give an ultralytics .pt or an architecture .yaml")
    imgsz = imgsz or (DETECT_IMGSZ if task == "detect" else CLASSIFY_IMGSZ)

    ultralytics_offline()
    import torch
    from ultralytics import YOLO

    if device == "auto":
        device = "cuda:0" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise TrainError(f"--device {device}: torch sees no CUDA GPU here; use --device cpu")
    args: dict = dict(
        epochs=epochs, imgsz=imgsz, batch=batch, device=device, workers=workers, patience=patience, seed=seed,
        plots=plots, project=str(out), name="train", exist_ok=True, amp=device.startswith("cuda"),
        pretrained=False, verbose=verbose,
    )
    if task == "detect":
        names = _detect_names(data_path)
        _check_names(names, f"{data_path} names")
        args["data"] = str(data_path)
        _check_splits(data_path)
        if balance:
            args["cls_pw"] = cls_pw
        train_images = _count_images(data_path)
    else:
        names = sorted(d.name for d in (data_path / "train").iterdir() if d.is_dir())
        _check_names(names, f"{data_path}/train folders")
        folder = data_path
        if balance:
            folder, counts = balanced_classify_folder(data_path, out / "balanced", max_repeat)
            log.info("oversampled classify train set: %s", counts)
        args["data"] = str(folder)
        train_images = sum(1 for _ in (Path(args["data"]) / "train").rglob("*") if _.is_file() or _.is_symlink())
    if extra:
        args.update(extra)

    yolo = YOLO(str(model_path), task=task)
    epoch_seconds: list[float] = []
    marks = {"t": time.monotonic()}

    def on_train_epoch_start(trainer) -> None:
        marks["t"] = time.monotonic()

    def on_train_epoch_end(trainer) -> None:  # training part of the epoch, without validation
        epoch_seconds.append(time.monotonic() - marks["t"])

    yolo.add_callback("on_train_epoch_start", on_train_epoch_start)
    yolo.add_callback("on_train_epoch_end", on_train_epoch_end)
    yolo.train(**args)
    run_dir = out / "train"
    best, last = run_dir / "weights" / "best.pt", run_dir / "weights" / "last.pt"
    if not best.is_file():
        best = last
    return TrainResult(weights=best, last=last, task=task, names=names, epoch_seconds=epoch_seconds,
                       train_images=train_images, run_dir=run_dir)


def _check_splits(yaml_path: Path) -> None:
    """ultralytics fails deep inside on an empty split; say which and what to do instead."""
    import yaml

    from ..datasets.aihub import IMAGE_SUFFIXES

    spec = yaml.safe_load(yaml_path.read_text(encoding="utf-8")) or {}
    root = Path(spec.get("path") or yaml_path.parent)
    if not root.is_absolute():
        root = (yaml_path.parent / root).resolve()
    for key in ("train", "val"):
        folder = root / str(spec.get(key, f"images/{key}"))
        n = sum(1 for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) if folder.is_dir() else 0
        if n == 0:
            raise TrainError(f"{yaml_path}: the {key} split ({folder}) has no images; with few persons give it a "
                             f"larger share (pcp-osc dataset aihub --split 0.7,0.2,0.1)")


def _count_images(yaml_path: Path) -> int:
    import yaml

    from ..datasets.aihub import IMAGE_SUFFIXES

    spec = yaml.safe_load(yaml_path.read_text(encoding="utf-8")) or {}
    root = Path(spec.get("path") or yaml_path.parent)
    if not root.is_absolute():
        root = (yaml_path.parent / root).resolve()
    train = root / str(spec.get("train", "images/train"))
    if train.is_dir():
        return sum(1 for p in train.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="fine-tune a YOLO emotion detector or face classifier (offline)",
                       description="Train a YOLO model whose classes are the five emotions. Never reaches the network.")
    p.add_argument("--data", required=True, metavar="DATA",
                   help="data.yaml of a detection set (pcp-osc dataset aihub) or a classify folder (train/<emotion>/)")
    p.add_argument("--model", metavar="YAML|PT",
                   help=f"architecture YAML (from scratch) or a .pt you have (default {DETECT_MODEL} / {CLASSIFY_MODEL})")
    p.add_argument("--epochs", type=int, default=100, help="default 100")
    p.add_argument("--imgsz", type=int, help=f"input side in px (default {DETECT_IMGSZ} detect, {CLASSIFY_IMGSZ} classify)")
    p.add_argument("--batch", type=int, default=16, help="default 16")
    p.add_argument("--out", default="runs/pcp-osc", metavar="DIR", help="output folder (default runs/pcp-osc)")
    p.add_argument("--device", default="cpu", help='"cpu", "cuda:0" or "auto" (default cpu)')
    p.add_argument("--workers", type=int, default=2, help="dataloader workers (default 2)")
    p.add_argument("--patience", type=int, default=50, help="stop after N epochs without improvement (default 50)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-balance", action="store_true", help="no class weights / oversampling")
    p.add_argument("--cls-pw", type=float, default=0.5, metavar="P", help="detector class-weight power 0..1 (default 0.5)")
    p.add_argument("--plots", action="store_true", help="save training plots (uses a local font, never downloads one)")
    p.add_argument("--hyp", action="append", default=[], metavar="KEY=VALUE",
                   help="any other ultralytics training setting, e.g. --hyp mosaic=0 --hyp lr0=0.005 (repeatable)")
    p.set_defaults(func=run)


# settings pcp-osc owns: changing them through --hyp would break the offline or output guarantees
_OWNED = {"data", "model", "project", "name", "exist_ok", "pretrained", "amp", "device"}


def _parse_hyp(items: list[str]) -> dict:
    import yaml

    from ..perception.yolo_offline import ultralytics_offline

    ultralytics_offline()
    from ultralytics.cfg import DEFAULT_CFG_DICT

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise TrainError(f"--hyp {item!r}: write KEY=VALUE, e.g. mosaic=0")
        if key in _OWNED:
            raise TrainError(f"--hyp {key}: set by pcp-osc itself; use the matching flag instead")
        if key not in DEFAULT_CFG_DICT:
            raise TrainError(f"--hyp {key}: not an ultralytics training setting (see `yolo cfg`)")
        out[key] = yaml.safe_load(value)
    return out


def run(args: argparse.Namespace) -> int:
    for flag, value, low in (("--epochs", args.epochs, 1), ("--batch", args.batch, 1), ("--workers", args.workers, 0)):
        if value < low:
            print(f"train: {flag} {value}: must be at least {low}", file=sys.stderr)
            return 2
    if args.imgsz is not None and not 32 <= args.imgsz <= 4096:
        print(f"train: --imgsz {args.imgsz}: allowed 32..4096", file=sys.stderr)
        return 2
    if not 0.0 <= args.cls_pw <= 1.0:
        print(f"train: --cls-pw {args.cls_pw}: allowed 0..1", file=sys.stderr)
        return 2
    try:
        extra = _parse_hyp(args.hyp)
        result = train(
            args.data, args.model, epochs=args.epochs, imgsz=args.imgsz, batch=args.batch, out=args.out,
            device=args.device, workers=args.workers, patience=args.patience, seed=args.seed, plots=args.plots,
            balance=not args.no_balance, cls_pw=args.cls_pw, extra=extra,
        )
    except TrainError as e:
        print(f"train: {e}", file=sys.stderr)
        return 2
    per_epoch = result.epoch_seconds
    mean = sum(per_epoch) / len(per_epoch) if per_epoch else float("nan")
    summary = {
        "weights": str(result.weights),
        "task": result.task,
        "names": result.names,
        "epochs": len(per_epoch),
        "train_images": result.train_images,
        "seconds_per_epoch_mean": round(mean, 2),
        "seconds_per_epoch": [round(s, 2) for s in per_epoch],
    }
    (result.run_dir / "pcp-osc-train.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    print(f"\nweights: {result.weights}  ({result.task}, classes: {', '.join(result.names)})")
    print(f"{len(per_epoch)} epochs on {result.train_images} training images: {mean:.1f} s per epoch (training pass)")
    return 0
