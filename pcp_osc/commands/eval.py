"""`pcp-osc eval --data DATA`: score a perception backend on labelled faces."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="score a perception backend on labelled faces (P/R/F1, confusion, mAP50)",
                       description="Score the shipped default or a YOLO backend on a YOLO detection data set "
                       "(data.yaml) or a folder of face crops per emotion.")
    p.add_argument("--data", required=True, metavar="DATA", help="data.yaml (or its folder), or DIR/<emotion>/*.jpg crops")
    p.add_argument("--split", default="test", help="split to score (default test)")
    p.add_argument("--config", "-c", metavar="FILE", help="TOML configuration for the perception section")
    p.add_argument("--backend", choices=("default", "yolo"), help="perception backend (default: the config's)")
    p.add_argument("--weights", metavar="FILE", help="YOLO weights (.pt or .onnx)")
    p.add_argument("--yolo-mode", choices=("auto", "detector", "classifier"))
    p.add_argument("--conf", type=float, metavar="P", help="YOLO box threshold (perception.yolo_conf)")
    p.add_argument("--out", default="runs/pcp-osc/eval", metavar="DIR",
                   help="where confusion.png and eval.json go (default runs/pcp-osc/eval)")
    p.add_argument("--json", action="store_true", help="print the result as JSON instead of a table")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress meter")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..config import ConfigError, load_config
    from ..evaluate import EvalError, confusion_png, evaluate, write_json
    from ..perception import PerceptionError, make_backend

    try:
        cfg = load_config(args.config).perception
    except ConfigError as e:
        print(f"eval: {e}", file=sys.stderr)
        return 2
    if args.conf is not None:
        if not 0.0 < args.conf < 1.0:
            print(f"eval: --conf {args.conf}: allowed 0 < P < 1", file=sys.stderr)
            return 2
        cfg = dataclasses.replace(cfg, yolo_conf=args.conf)
    try:
        backend = make_backend(cfg, weights=args.weights, backend=args.backend, yolo_mode=args.yolo_mode)
        result = evaluate(backend, args.data, args.split, progress=not args.quiet)
    except (EvalError, PerceptionError) as e:
        print(f"eval: {e}", file=sys.stderr)
        return 2
    out = Path(args.out)
    png = confusion_png(result, out / "confusion.png")
    js = write_json(result, out / "eval.json")
    if args.json:
        data = result.to_json()
        data.update(confusion_png=str(png), json=str(js))
        print(json.dumps(data, indent=2))
    else:
        print(result.table())
        print(f"\nwrote {png} and {js}")
    return 0
