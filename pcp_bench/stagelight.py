"""Stage light: do faces keep the emotion they show in normal light when the room is dark
and washed in colour? ``python -m pcp_bench.stagelight`` (or ``pcp-osc bench --stage-light``).

Real photographs of people in full (pcp_osc/data/scenes: single photographs and 1920x1080
group scenes, every face's box checked by eye) are put under simulated stage light --
darkened, tinted, with sensor noise and JPEG compression, see :data:`LIGHTS` -- and
searched with the shipped backend (``detect_still``). For every face of the scenes:

- found: a box matches the face (the scenes' own scoring, IoU >= 0.3); boxes that match
  no face are false boxes; the search's time per picture (``detect_still``, which also
  reads the faces' expressions) is measured too;
- agrees: its top emotion is the one read on the same face in normal light (by the same
  settings);
- smiles: faces whose photograph's provenance says they smile, read as joy.

In normal light the table also says how many labelled faces (smiling or not, by their
photograph's provenance) are read right -- joy for a smile, anything else otherwise -- so
a normalisation cannot score by reading everything alike. Settings compared:
``perception.classifier.light`` and ``perception.classifier.noise_floor`` (:data:`SETTINGS`).
"""

from __future__ import annotations

import argparse
import json
import runpy
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

# name -> (BGR gain of the wash, overall level, sensor noise sigma in 0..255, JPEG quality)
# Every wash at 30% of the light, sensor noise of sigma 3 and JPEG quality 80 (what the
# browser camera page sends).
LIGHTS: dict[str, tuple[tuple[float, float, float], float, float, int]] = {
    "dim": ((1.0, 1.0, 1.0), 0.30, 3.0, 80),
    "magenta": ((0.9, 0.35, 1.0), 0.30, 3.0, 80),
    "blue": ((1.0, 0.45, 0.3), 0.30, 3.0, 80),
    "red": ((0.3, 0.3, 1.0), 0.30, 3.0, 80),
}
# Settings compared: (perception.classifier.light, perception.classifier.noise_floor).
SETTINGS: tuple[tuple[str, float], ...] = (("off", 0.0), ("equalize", 0.0), ("clahe", 0.0), ("equalize", 10.0), ("stretch", 10.0))
# Who smiles in the scenes' source photographs (their provenance, pcp_osc/data/scenes/PROVENANCE.md);
# the others do not. obama_congress (speaking), bus and zidane are not labelled.
SMILING = {"astronaut": True, "obama_oval_office": True, "trump": True,
           "biden": False, "hopper": False, "obama_blue_room": False}
STILLS = 12  # --kinds still: the 1280x720 stills of pcp-osc bench --stills (faces 20..110 px), seeds 0..11
PREPARE_SCENES = Path(__file__).resolve().parents[1] / "tools" / "prepare_scenes.py"


def stage_light(image_bgr: np.ndarray, light: str, seed: int = 0) -> np.ndarray:
    """``image_bgr`` as a camera sees it under ``light`` (one of :data:`LIGHTS`): the wash's
    colour and level, Gaussian sensor noise, then JPEG compression. Deterministic in ``seed``."""
    if light not in LIGHTS:
        raise ValueError(f"unknown stage light {light!r}; allowed: {', '.join(LIGHTS)}")
    gain, level, noise, quality = LIGHTS[light]
    rng = np.random.default_rng(seed)
    x = image_bgr.astype(np.float32) * (level * np.asarray(gain, np.float32))
    x += rng.normal(0.0, noise, x.shape).astype(np.float32)
    lit = np.clip(np.round(x), 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", lit, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)


@dataclass
class Found:
    """Every scene searched under one light: the pictures, and per true face the box found
    for it (NaN where it was not found)."""

    images: list[np.ndarray]
    boxes: list[np.ndarray]
    false: int = 0  # boxes that are no face (the scenes' own scoring)
    ms: tuple[float, ...] = ()  # detect_still's time per picture, milliseconds

    @property
    def found(self) -> np.ndarray:
        return np.concatenate([~np.isnan(b[:, 0]) for b in self.boxes])


def find_faces(backend, scene_list, light: str | None, seed: int = 0) -> Found:
    """Search every scene (under ``light``, or as it is) and match the boxes to its faces."""
    import time

    from pcp_osc.data.scenes import MATCH_IOU, _iou

    images, boxes, ms = [], [], []
    false = 0
    for k, s in enumerate(scene_list):
        image = np.ascontiguousarray(s.image) if light is None else stage_light(s.image, light, seed + k)
        t0 = time.perf_counter()
        found = backend.detect_still(image).boxes
        ms.append((time.perf_counter() - t0) * 1000)
        false += s.score(found).false
        mine = np.full((len(s.faces), 4), np.nan, np.float32)
        if len(found) and len(s.faces):
            iou = _iou(s.faces, found)
            for fi in range(len(s.faces)):
                j = int(iou[fi].argmax())
                if iou[fi, j] >= MATCH_IOU:
                    mine[fi] = found[j]
        images.append(image)
        boxes.append(mine)
    return Found(images, boxes, false, tuple(ms))


def read_emotions(classifier, found: Found) -> np.ndarray:
    """Per true face, the top emotion read at its found box (-1 where it was not found)."""
    out = []
    for image, boxes in zip(found.images, found.boxes):
        ok = ~np.isnan(boxes[:, 0])
        emotion = np.full(len(boxes), -1)
        if ok.any():
            emotion[ok] = classifier.classify(image, boxes[ok]).argmax(axis=1)
        out.append(emotion)
    return np.concatenate(out) if out else np.zeros((0,), int)


def smile_labels(scene_list) -> np.ndarray:
    """Per face of the scenes: 1 smiling, 0 not, -1 not labelled. A group scene's faces are
    labelled by the person pasted there (the layout in tools/prepare_scenes.py, when this
    runs from the repository); faces of its background photographs are not labelled."""
    groups = runpy.run_path(str(PREPARE_SCENES), run_name="pcp_bench_labels")["GROUPS"] if PREPARE_SCENES.is_file() else {}
    out: list[int] = []
    for s in scene_list:
        if s.kind == "still":  # the people pasted into a still are not labelled
            out += [-1] * len(s.faces)
            continue
        if s.kind == "photo":
            label = SMILING.get(s.name)
            out += [-1 if label is None else int(label)] * len(s.faces)
            continue
        w, h = s.size
        people = groups.get(s.name, {}).get("people", [])
        for x1, y1, x2, y2 in s.faces:
            cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
            near = [(abs(cx - fx * w) + abs(cy - fy * h), src, px) for src, px, fx, fy, _ in people]
            d, src, px = min(near) if near else (1e9, "", 0)
            label = SMILING.get(src) if d < 0.3 * px + 5 else None
            out.append(-1 if label is None else int(label))
    return np.array(out, int)


def run(settings=SETTINGS, lights=tuple(LIGHTS), kinds=("photo", "group"), threads: int = 0, progress=None,
        seed: int = 0) -> dict:
    from pcp_osc.config import ClassifierConfig, PerceptionConfig
    from pcp_osc.data.scenes import scenes, still
    from pcp_osc.emotions import EMOTIONS
    from pcp_osc.perception.default import DefaultBackend

    joy = EMOTIONS.index("joy")
    scene_list = [s for kind in kinds for s in ([still(i) for i in range(STILLS)] if kind == "still" else scenes(kind))]
    labels = smile_labels(scene_list)
    known, smiling = labels >= 0, labels == 1
    result: dict = {"scenes": [s.name for s in scene_list], "faces": int(sum(len(s.faces) for s in scene_list)),
                    "labelled": int(known.sum()), "smiling": int(smiling.sum()),
                    "lights": {k: {"gain_bgr": list(v[0]), "level": v[1], "noise_sigma": v[2], "jpeg_quality": v[3]}
                               for k, v in LIGHTS.items() if k in lights},
                    "noise_seed": seed, "search": {}, "settings": {}}
    detector = DefaultBackend(PerceptionConfig(threads=threads))
    if progress:
        progress("searching the scenes in normal light and under " + ", ".join(lights))
    detector.detect_still(scene_list[0].image)  # first call: onnxruntime's warm-up, not counted
    searched = {light: find_faces(detector, scene_list, light, seed) for light in (None, *lights)}
    for light, f in searched.items():
        result["search"][light or "normal"] = {"found": int(f.found.sum()), "false_boxes": f.false,
                                               "ms_per_picture": round(float(np.mean(f.ms)), 1)}
    for light_mode, floor in settings:
        key = f"{light_mode}, noise floor {floor:g}"
        if progress:
            progress(f"reading the faces: {key}")
        cfg = PerceptionConfig(threads=threads, classifier=ClassifierConfig(light=light_mode, noise_floor=floor))
        classifier = DefaultBackend(cfg).classifier
        normal = read_emotions(classifier, searched[None])
        row = {"normal": {
            "found": int(searched[None].found.sum()),
            "smile_read_right": int(((normal == joy) == smiling)[known].sum()),
            "smiles_joy": int((normal[smiling] == joy).sum()),
            "per_emotion": {e: int((normal == k).sum()) for k, e in enumerate(EMOTIONS)},
        }}
        for light in lights:
            lit = read_emotions(classifier, searched[light])
            row[light] = {
                "found": int(searched[light].found.sum()),
                "agree": int((lit == normal).sum()),
                "smile_read_right": int(((lit == joy) == smiling)[known].sum()),
                "smiles_joy": int((lit[smiling] == joy).sum()),
                "normal_joy_kept": int((lit[normal == joy] == joy).sum()),
                "normal_joy": int((normal == joy).sum()),
            }
        result["settings"][key] = row
    return result


def format_table(result: dict) -> str:
    n, k, sm = result["faces"], result["labelled"], result["smiling"]
    lights = list(result["lights"])
    lines = [f"Stage light: {n} faces in {len(result['scenes'])} real scenes ({', '.join(result['scenes'])});",
             f"{k} faces labelled smiling or not by their photograph's provenance ({sm} smiling).",
             "normal: labelled faces read right (joy = smiling) / smiling faces read joy.",
             "each light: faces found / faces keeping their normal-light emotion / smiling faces read joy.", ""]
    lines.append(f"{'search (faces of ' + str(n) + ')':<24} {'normal':<20}" + "".join(f"{x:<20}" for x in lights))
    lines.append(f"{'found, false, ms/picture':<24} " + "".join(
        f"{r['found']:>2} {r['false_boxes']:>2} {r['ms_per_picture']:>6.0f} ms      " for r in result["search"].values()))
    lines.append("")
    lines.append(f"{'light, noise floor':<24} {'normal':<12}" + "".join(f"{x:<20}" for x in lights))
    for key, row in result["settings"].items():
        nm = row["normal"]
        cells = "".join(f"{row[x]['found']:>2} {row[x]['agree']:>2} ({row[x]['agree'] / n:4.0%}) {row[x]['smiles_joy']:>2}/{sm:<3} "
                        for x in lights)
        lines.append(f"{key:<24} {nm['smile_read_right']:>2}/{k} {nm['smiles_joy']:>2}/{sm:<4} " + cells)
    return "\n".join(lines)


def classifier_cost(faces: int = 8, seconds: float = 6.0, rounds: int = 6) -> dict[str, float]:
    """Milliseconds per face of ``classify_boxes`` (crop, normalise, model; one batch of
    ``faces``) for the plain classifier and the shipped defaults, interleaved, best of rounds."""
    import time

    from pcp_osc.config import ClassifierConfig, PerceptionConfig
    from pcp_osc.data import crowd_frame
    from pcp_osc.perception.default import DefaultBackend

    image, boxes = crowd_frame(faces, seed=1)
    cases = {
        "plain (light off, no mirror, no noise floor)": ClassifierConfig(light="off", mirror=False, noise_floor=0.0),
        "mirror only": ClassifierConfig(light="off", noise_floor=0.0),
        "default (stretch, noise floor 10, mirror)": ClassifierConfig(),
    }
    backends = {k: DefaultBackend(PerceptionConfig(threads=1, classifier=c)) for k, c in cases.items()}  # one thread: steadier on a busy machine
    best = {k: float("inf") for k in cases}
    for _ in range(rounds):
        for k, b in backends.items():
            b.classify_boxes(image, boxes)
            t0, n = time.perf_counter(), 0
            while time.perf_counter() - t0 < seconds / rounds:
                b.classify_boxes(image, boxes)
                n += 1
            best[k] = min(best[k], (time.perf_counter() - t0) / n / len(boxes) * 1000)
    return best


def search_cost(lights=tuple(LIGHTS), kinds=("photo", "group", "still"), rounds: int = 4, seed: int = 0) -> dict:
    """Milliseconds per picture of the whole search (``_find_in_region``, no classifier; one
    thread) in normal light and under each light, with the detector's view as shipped
    (stretched and smoothed) and stretched only (``blur_px`` 0: the view before the
    smoothing), interleaved in one process, best of ``rounds``; and faces found, false
    boxes for each."""
    import time

    from pcp_osc.config import PerceptionConfig
    from pcp_osc.data.scenes import scenes, still
    from pcp_osc.perception import search as face_search
    from pcp_osc.perception.default import DefaultBackend

    scene_list = [s for kind in kinds for s in ([still(i) for i in range(STILLS)] if kind == "still" else scenes(kind))]
    shipped = face_search.view_lut

    def unsmoothed(image):
        v = shipped(image)
        return None if v is None else v._replace(blur_px=np.zeros(3))

    backend = DefaultBackend(PerceptionConfig(threads=1))
    pictures = {light: [np.ascontiguousarray(s.image) if light == "normal" else stage_light(s.image, light, seed + k)
                        for k, s in enumerate(scene_list)] for light in ("normal", *lights)}
    out: dict = {"pictures": len(scene_list), "faces": int(sum(len(s.faces) for s in scene_list))}
    try:
        for r in range(rounds):
            for light, images in pictures.items():
                for name, view in (("smoothed", shipped), ("stretched only", unsmoothed)):
                    face_search.view_lut = view
                    row = out.setdefault(light, {}).setdefault(name, {"ms_per_picture": float("inf")})
                    t0, found = time.perf_counter(), []
                    for im in images:
                        found.append(backend._find_in_region(im, "full")[0])
                    row["ms_per_picture"] = min(row["ms_per_picture"], round((time.perf_counter() - t0) / len(images) * 1000, 1))
                    if not r:
                        tallies = [s.score(b) for s, b in zip(scene_list, found)]
                        row["found"], row["false_boxes"] = sum(t.found for t in tallies), sum(t.false for t in tallies)
    finally:
        face_search.view_lut = shipped
    return out


def format_cost(cost: dict) -> str:
    lines = [f"Whole search, {cost['pictures']} pictures ({cost['faces']} faces), one thread, best of the rounds: "
             "ms per picture, faces found, false boxes", f"{'light':<10} {'smoothed (shipped)':<26} stretched only"]
    for light, rows in cost.items():
        if isinstance(rows, dict):
            a, b = rows["smoothed"], rows["stretched only"]
            lines.append(f"{light:<10} {a['ms_per_picture']:6.1f} ms {a['found']:>4} {a['false_boxes']:>3}        "
                         f"{b['ms_per_picture']:6.1f} ms {b['found']:>4} {b['false_boxes']:>3}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pcp_bench.stagelight", description=__doc__.split("\n\n")[0])
    ap.add_argument("--settings", default=",".join(f"{m}:{f:g}" for m, f in SETTINGS),
                    help="light normalisation:noise floor pairs to compare (default: %(default)s; empty: the search alone)")
    ap.add_argument("--lights", default=",".join(LIGHTS), help="stage lights (default: %(default)s)")
    ap.add_argument("--kinds", help="scene kinds: photo, group, still (the 12 stills of pcp-osc bench --stills: faces "
                    "20..110 px, not labelled); default photo,group (with --search-cost photo,group,still)")
    ap.add_argument("--threads", type=int, default=0, help="onnxruntime threads (0: all cores)")
    ap.add_argument("--seed", type=int, default=0, help="the sensor noise's seed (scene k gets seed + k; default 0)")
    ap.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    ap.add_argument("--cost", action="store_true", help="instead, the classifier's cost per face (plain vs default)")
    ap.add_argument("--search-cost", action="store_true", help="instead, the whole search's ms per picture in normal "
                    "light and under each light, the detector's view smoothed (shipped) or stretched only; with --kinds "
                    "(default here: photo,group,still)")
    args = ap.parse_args(argv)
    if args.cost:
        cost = classifier_cost()
        print(json.dumps(cost, indent=2) if args.json else
              "\n".join(f"{k:<46} {v:.3f} ms/face (8 faces, one batch)" for k, v in cost.items()))
        return 0
    from pcp_osc.perception.classifier import LIGHT_MODES

    settings = []
    for item in (x for x in args.settings.split(",") if x):
        mode, _, floor = item.partition(":")
        try:
            value = float(floor or 0)
        except ValueError:
            value = -1.0
        if mode not in LIGHT_MODES or not 0 <= value <= 40:
            print(f"stage light bench: --settings {item!r} must be MODE:NOISE with MODE one of {', '.join(LIGHT_MODES)} "
                  f"and NOISE 0..40, e.g. equalize:10", file=sys.stderr)
            return 2
        settings.append((mode, value))
    kinds = [k for k in (args.kinds or ("photo,group,still" if args.search_cost else "photo,group")).split(",") if k]
    for k in kinds:
        if k not in ("photo", "group", "still"):
            print(f"stage light bench: --kinds {k!r} not known; allowed: photo, group, still", file=sys.stderr)
            return 2
    lights = [x for x in args.lights.split(",") if x]
    for x in lights:
        if x not in LIGHTS:
            print(f"stage light bench: --lights {x!r} not known; allowed: {', '.join(LIGHTS)}", file=sys.stderr)
            return 2
    if args.search_cost:
        cost = search_cost(tuple(lights), tuple(kinds), seed=args.seed)
        print(json.dumps(cost, indent=2) if args.json else format_cost(cost))
        return 0
    result = run(tuple(settings), tuple(lights), tuple(kinds), threads=args.threads,
                 progress=lambda s: print(f"[stage light] {s}", file=sys.stderr, flush=True), seed=args.seed)
    print(json.dumps(result, indent=2) if args.json else format_table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
