"""`pcp-osc detect IMAGE_OR_VIDEO...`: faces and their emotions in photos or video files.

With ``--json``: JSON Lines on stdout, one object per image or video frame, in the order
given: {"image": path, "frame": index, "faces": [{"box": [x1, y1, x2, y2], "emotion": id,
"confidence": c, "scores": {id: score}, "track": id}]}; "track" (video only) is the same
number for the same person from frame to frame. Without it, a table. A file that cannot be
read is reported on stderr and the others go on; the exit status is then 1.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Iterator

import numpy as np

log = logging.getLogger("pcp_osc.detect")

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".pgm", ".ppm", ".jp2"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv"}


class UnreadableInput(Exception):
    """A file that is missing, not an image/video, or damaged; the message says which."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("detect", help="faces and emotions in images or video files",
                       description="Find the faces in images or video files and read their emotions.")
    p.add_argument("inputs", nargs="+", metavar="IMAGE_OR_VIDEO", help="image or video files, in the order to report them")
    p.add_argument("--json", action="store_true", help="JSON Lines: one object per image or video frame")
    p.add_argument("--config", "-c", metavar="FILE", help="TOML configuration (its [perception] section is used)")
    p.add_argument("--backend", choices=("default", "yolo"), help="perception backend (default: the config's, else default)")
    p.add_argument("--weights", metavar="FILE", help="YOLO weights (.pt or .onnx) for --backend yolo")
    p.add_argument("--yolo-mode", choices=("auto", "detector", "classifier"), help="YOLO model kind (read from the model by default)")
    p.add_argument("--every", type=int, default=1, metavar="N", help="video: every Nth frame (default 1: all)")
    p.add_argument("--threshold", type=float, metavar="P", help="face detector confidence to keep a face (0.01..0.99)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .. import capture  # noqa: F401  (it quiets OpenCV's own warnings: pcp-osc says what is wrong)
    from ..config import ConfigError, load_config
    from ..perception import PerceptionError, make_backend

    if args.every < 1:
        print(f"pcp-osc detect: --every {args.every} must be 1 or more", file=sys.stderr)
        return 2
    try:
        cfg = load_config(args.config).perception
        if args.threshold is not None:
            if not 0.01 <= args.threshold <= 0.99:
                raise ConfigError(f"--threshold {args.threshold} is out of range; allowed 0.01..0.99")
            cfg.face_threshold = args.threshold
        backend = make_backend(cfg, weights=args.weights, backend=args.backend, yolo_mode=args.yolo_mode)
    except (ConfigError, PerceptionError, ValueError, ImportError) as e:
        print(f"pcp-osc detect: {e}", file=sys.stderr)
        return 2

    failed = 0
    out = sys.stdout
    if not args.json:
        out.write(f"{'file':<40} {'frame':>5}  {'faces':>5}  each face: [x1, y1, x2, y2] #track (video) -> emotion confidence\n")
    for path in args.inputs:
        try:
            for frame_index, image, still, t in _frames(path, args.every):
                faces = _detect(backend, image, still, t)
                if args.json:
                    out.write(json.dumps({"image": path, "frame": frame_index, "faces": faces.to_json()}) + "\n")
                else:
                    desc = "; ".join(
                        f"[{', '.join(str(int(round(v))) for v in f['box'])}]"
                        + (f" #{f['track']}" if "track" in f else "")
                        + f" -> {f['emotion']} {f['confidence']:.2f}"
                        for f in faces.to_json()) or "-"
                    out.write(f"{_short(path):<40} {frame_index:>5}  {len(faces):>5}  {desc}\n")
                out.flush()
        except UnreadableInput as e:
            failed += 1
            print(f"pcp-osc detect: {e}", file=sys.stderr)
        except ValueError as e:  # a frame the backend refused: say which file
            failed += 1
            print(f"pcp-osc detect: {path}: {e}", file=sys.stderr)
    if failed:
        print(f"pcp-osc detect: {failed} of {len(args.inputs)} input(s) could not be read", file=sys.stderr)
    return 1 if failed else 0


def _detect(backend, image: np.ndarray, still: bool, t: float):
    # Photos are searched fully for small faces at once; video frames go through the live
    # path the daemon uses (faces followed with track ids, the search planned on the
    # video's own clock, so the result does not depend on how fast this machine is).
    if still:
        return backend.detect_still(image) if hasattr(backend, "detect_still") else backend.detect_many([image])[0]
    return backend.detect(image, t)


def _short(path: str, width: int = 40) -> str:
    return path if len(path) <= width else "…" + path[-(width - 1):]


def _unreadable_image(data: np.ndarray) -> str:
    """Why image bytes that do not decode as 8-bit colour cannot be read."""
    import cv2

    raw = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)  # e.g. a TIFF of 32-bit float samples
    if raw is None:
        return "not a readable image (damaged or not an image)"
    return (f"a {raw.shape[1]}x{raw.shape[0]} image of {raw.dtype} samples, which is not read here; "
            f"save it with 8 or 16 bits per channel")


def _frames(path: str, every: int) -> Iterator[tuple[int, np.ndarray, bool, float]]:
    """(frame index, BGR image, is_still, time in s) for an image (index 0) or each Nth
    video frame (its time from the video's frame rate; 30 fps when it states none)."""
    import cv2

    p = Path(path)
    if not p.exists():
        raise UnreadableInput(f"{path}: no such file")
    if p.is_dir():
        raise UnreadableInput(f"{path}: is a folder; give image or video files (e.g. {path}/*.jpg)")
    suffix = p.suffix.lower()
    if suffix not in VIDEO_SUFFIXES:
        data = np.fromfile(str(p), dtype=np.uint8)
        image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
        if image is not None:
            yield 0, image, True, 0.0
            return
        if suffix in IMAGE_SUFFIXES or data.size == 0:
            what = "empty file" if data.size == 0 else _unreadable_image(data)
            raise UnreadableInput(f"{path}: {what}; images allowed: {', '.join(sorted(IMAGE_SUFFIXES))}")
    cap = cv2.VideoCapture(str(p))
    try:
        if not cap.isOpened():
            raise UnreadableInput(f"{path}: not a readable image or video (damaged, or a format OpenCV cannot open)")
        fps = cap.get(cv2.CAP_PROP_FPS)
        fps = fps if 1 <= fps <= 1000 else 30.0
        index = 0
        got_any = False
        while True:
            ok, frame = cap.read()
            if not ok or frame is None:
                break
            got_any = True
            if index % every == 0:
                yield index, frame, False, index / fps
            index += 1
        if not got_any:
            raise UnreadableInput(f"{path}: video has no readable frames (damaged or empty)")
    finally:
        cap.release()
