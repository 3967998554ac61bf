"""`pcp-osc dataset aihub SRC DST`: turn a labelled release into a YOLO data set."""

from __future__ import annotations

import argparse
import sys


def _fractions(text: str) -> tuple[float, float, float]:
    try:
        parts = tuple(float(x) for x in text.split(","))
    except ValueError:
        parts = ()
    if len(parts) != 3 or any(p < 0 for p in parts) or sum(parts) <= 0:
        raise argparse.ArgumentTypeError(f"--split {text!r}: give three non-negative shares, e.g. 0.8,0.1,0.1")
    return parts  # type: ignore[return-value]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dataset", help="convert labelled face data into a YOLO data set",
                       description="Convert labelled face data into a YOLO data set over the five emotions.")
    kinds = p.add_subparsers(dest="kind", metavar="KIND")
    a = kinds.add_parser(
        "aihub",
        help='AI Hub "한국인 감정인식을 위한 복합 영상" (images + JSON with annot_A/B/C)',
        description="Majority over annotators (merged five labels; unknowns don't vote; ties go to the "
        "uploader's label or are dropped), boxes checked against the image, split by person.",
    )
    a.add_argument("src", metavar="SRC", help="the release folder (images and JSON files, any depth)")
    a.add_argument("dst", metavar="DST", help="output folder (data.yaml, images/, labels/, report.json)")
    a.add_argument("--layout", choices=("detect", "classify"), default="detect",
                   help="detect: full images + box labels (YOLO detector); classify: square face crops per emotion folder")
    a.add_argument("--copy", action="store_true", help="copy images instead of symlinking them (detect layout)")
    a.add_argument("--split", type=_fractions, default=(0.8, 0.1, 0.1), metavar="TRAIN,VAL,TEST",
                   help="shares of persons per split (default 0.8,0.1,0.1)")
    a.add_argument("--min-votes", type=int, default=1, metavar="N", help="agreeing annotator votes a label needs (default 1)")
    a.add_argument("--min-box-inside", type=float, default=0.5, metavar="SHARE",
                   help="a box partly outside the image is clipped if this share of it is inside, else dropped (default 0.5)")
    a.add_argument("--crop-px", type=int, default=96, metavar="PX", help="side of face crops in the classify layout (default 96)")
    a.add_argument("--json", action="store_true", help="print the report as JSON instead of a table")
    a.add_argument("--quiet", "-q", action="store_true", help="no progress meter")
    p.set_defaults(func=run, _parser=p)


def run(args: argparse.Namespace) -> int:
    if getattr(args, "kind", None) != "aihub":
        args._parser.print_help()
        return 2
    import json

    from ..datasets.aihub import convert

    if args.min_votes < 1 or args.min_votes > 3:
        print(f"--min-votes {args.min_votes}: allowed 1..3 (three annotators)", file=sys.stderr)
        return 2
    if not 0.0 < args.min_box_inside <= 1.0:
        print(f"--min-box-inside {args.min_box_inside}: allowed 0 < share <= 1", file=sys.stderr)
        return 2
    try:
        report = convert(
            args.src, args.dst, layout=args.layout, copy=args.copy, fractions=args.split,
            min_votes=args.min_votes, min_box_inside=args.min_box_inside, crop_px=args.crop_px,
            progress=not args.quiet,
        )
    except (FileNotFoundError, ValueError) as e:
        print(f"dataset aihub: {e}", file=sys.stderr)
        return 2
    if args.json:
        out = report.to_json()
        out.pop("split_of_person", None)
        print(json.dumps(out, ensure_ascii=False, indent=2))
        for warning in report.warnings:
            print(f"dataset aihub: warning: {warning}", file=sys.stderr)
    else:
        print(report.table())
        print(f"\nwrote {report.data_yaml} and {args.dst}/report.json")
    return 0 if report.kept else 1
