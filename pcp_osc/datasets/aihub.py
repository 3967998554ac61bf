"""AI Hub "한국인 감정인식을 위한 복합 영상" -> a YOLO data set over the five emotions.

The release: image folders per label, plus JSON files holding a list of records::

    {"filename": "<person hash>_<성별>_<나이>_<감정>_<장소>_<timestamp>-001-007.jpg",
     "gender": "여", "age": 30, "isProf": "전문인", "faceExp_uploader": "기쁨",
     "annot_A": {"boxes": {"minX": .., "minY": .., "maxX": .., "maxY": ..}, "faceExp": "기쁨"},
     "annot_B": {...}, "annot_C": {...}}

How records become labels (all of it is counted in the report):

- **Votes are counted over the five merged emotions**, so 당황 and 불안 agree
  (both anxiety), as do 슬픔 and 상처 (both sadness).
- **Unknowns don't vote**: "알수없음", an empty or missing ``faceExp`` or a label
  that maps to no emotion is no vote.
- **Majority**: the emotion with strictly the most votes wins if it has at least
  ``min_votes`` (default 1) votes.
- **Ties** (e.g. one joy, one anger, one unknown) go to the uploader's intended
  label (``faceExp_uploader``) when it is one of the tied emotions; otherwise the
  record is dropped ("tie").
- **No votes at all**: dropped ("no annotator label"); the uploader's intended
  label alone is what the person was asked to act, not what annotators saw.
- **Box**: the per-coordinate median of the boxes of the annotators who voted
  for the winner. A box partly outside the image (sizes read with EXIF
  orientation, as training loads them) is clipped when at least
  ``min_box_inside`` of its area is inside, and dropped otherwise.
- **Split by person**: the person id is the first ``_`` field of the file name
  (a hash per person in the release); a deterministic hash of it puts every
  photo of one person into the same split, so no face is seen in training and
  scored in test. With as many persons as splits that have a share, no such
  split is left empty: where the hash leaves one empty, the person of the
  largest split whose hash lies nearest it moves there (the report says who).
  With fewer persons the report says which split stays empty and what to change.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
import unicodedata
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ..emotions import EMOTIONS, UnknownEmotion, parse_emotion

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
ANNOTATORS = ("annot_A", "annot_B", "annot_C")
UNKNOWN_LABELS = {"알수없음", "unknown", ""}
SPLITS = ("train", "val", "test")
LAYOUTS = ("detect", "classify")

# Drop reasons, as they appear in the report.
DROP_NO_FILENAME = "record without filename"
DROP_DUPLICATE = "duplicate record"
DROP_NO_IMAGE = "image not found"
DROP_UNREADABLE = "image unreadable"
DROP_NO_VOTES = "no annotator label"
DROP_TIE = "tie"
DROP_FEW_VOTES = "too few agreeing votes"
DROP_NO_BOX = "no box"
DROP_BAD_BOX = "empty or inverted box"
DROP_OUTSIDE = "box outside image"


def nfc(text: str) -> str:
    """Korean file names from macOS archives are NFD; compare them in NFC."""
    return unicodedata.normalize("NFC", text)


def person_id(filename: str) -> str:
    """The person a photo shows: the first ``_`` field of the release's file names (else the stem)."""
    stem = Path(nfc(filename)).stem
    head = stem.split("_", 1)[0]
    return head if head and "_" in stem else stem


def split_of(person: str, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)) -> str:
    """train / val / test for a person, from a hash of the id (stable across runs and machines)."""
    u = int.from_bytes(hashlib.sha256(person.encode("utf-8")).digest()[:8], "big") / 2**64
    total = sum(fractions)
    edge = 0.0
    for name, frac in zip(SPLITS, fractions):
        edge += frac / total
        if u < edge:
            return name
    return SPLITS[-1]


def _hash_position(person: str) -> float:
    return int.from_bytes(hashlib.sha256(person.encode("utf-8")).digest()[:8], "big") / 2**64


def assign_splits(persons, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
                  ) -> tuple[dict[str, str], list[dict[str, str]], list[str]]:
    """Each person's split: :func:`split_of`, except that with at least as many persons as
    splits with a share, no such split is left empty -- the person of the largest split
    whose hash lies nearest the empty split's range moves there. With fewer persons, train
    is filled first, then val (what `pcp-osc train` needs). Returns (person -> split, the
    moves, the splits that stay empty)."""
    split = {p: split_of(p, fractions) for p in sorted(persons)}
    total = sum(fractions)
    edges = np.cumsum([0.0, *(f / total for f in fractions)])
    wanted = [s for s, f in zip(SPLITS, fractions) if f > 0]
    moved: list[dict[str, str]] = []
    for target in wanted:
        counts = Counter(split.values())
        if counts[target]:
            continue
        # a split with persons to spare, else (too few persons) one that matters less: train, then val, then test
        donors = [d for d in wanted if counts[d] > 1] or \
                 [d for d in wanted if counts[d] and SPLITS.index(d) > SPLITS.index(target)]
        if not donors:
            continue
        donor = max(donors, key=lambda d: (counts[d], SPLITS.index(d)))
        lo, hi = edges[SPLITS.index(target)], edges[SPLITS.index(target) + 1]
        centre = (lo + hi) / 2
        person = min((p for p, v in split.items() if v == donor), key=lambda p: (abs(_hash_position(p) - centre), p))
        split[person] = target
        moved.append({"person": person, "from": donor, "to": target})
    counts = Counter(split.values())
    return split, moved, [s for s in wanted if not counts[s]]


def _vote(label: Any) -> int | None:
    if not isinstance(label, (str, int)) or (isinstance(label, str) and nfc(label.strip()).lower() in UNKNOWN_LABELS):
        return None
    try:
        return parse_emotion(nfc(label) if isinstance(label, str) else label)
    except UnknownEmotion:
        return None


def _box(annot: Any) -> np.ndarray | None:
    boxes = annot.get("boxes") if isinstance(annot, dict) else None
    if isinstance(boxes, list):  # some tools write a one-element list
        boxes = boxes[0] if boxes else None
    if not isinstance(boxes, dict):
        return None
    try:
        return np.array([float(boxes[k]) for k in ("minX", "minY", "maxX", "maxY")], dtype=np.float64)
    except (KeyError, TypeError, ValueError):
        return None


@dataclass
class Decision:
    """What one record became: an emotion index and box, or the reason it was dropped."""

    emotion: int | None
    box: np.ndarray | None
    reason: str = ""
    tie_broken: bool = False


def reconcile(record: dict, min_votes: int = 1) -> Decision:
    """Majority over the merged five labels; see the module docstring for ties and unknowns."""
    votes: list[tuple[int, np.ndarray | None]] = []
    for key in ANNOTATORS:
        annot = record.get(key)
        if isinstance(annot, dict):
            v = _vote(annot.get("faceExp"))
            if v is not None:
                votes.append((v, _box(annot)))
    if not votes:
        return Decision(None, None, DROP_NO_VOTES)
    counts = Counter(v for v, _ in votes)
    top = max(counts.values())
    tied = sorted(k for k, c in counts.items() if c == top)
    tie_broken = False
    if len(tied) > 1:
        uploader = _vote(record.get("faceExp_uploader"))
        if uploader not in tied:
            return Decision(None, None, DROP_TIE)
        winner, tie_broken = uploader, True
    else:
        winner = tied[0]
    if counts[winner] < min_votes:
        return Decision(None, None, DROP_FEW_VOTES)
    boxes = [b for v, b in votes if v == winner and b is not None]
    if not boxes:
        return Decision(None, None, DROP_NO_BOX)
    return Decision(winner, np.median(np.stack(boxes), axis=0), tie_broken=tie_broken)


def check_box(box: np.ndarray, width: int, height: int, min_inside: float) -> tuple[np.ndarray | None, str]:
    """(box, "") if inside; (clipped box, "clipped") if mostly inside; (None, reason) otherwise."""
    x1, y1, x2, y2 = box
    if not (x2 > x1 and y2 > y1):
        return None, DROP_BAD_BOX
    clipped = np.array([min(max(x1, 0), width), min(max(y1, 0), height), min(max(x2, 0), width), min(max(y2, 0), height)])
    area = (x2 - x1) * (y2 - y1)
    inside = max(0.0, clipped[2] - clipped[0]) * max(0.0, clipped[3] - clipped[1])
    if inside < min_inside * area or inside <= 0:
        return None, DROP_OUTSIDE
    if np.allclose(clipped, box):
        return box, ""
    return clipped, "clipped"


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) as a loader that honours EXIF orientation sees it, without decoding pixels."""
    from PIL import Image

    with Image.open(path) as im:
        w, h = im.size
        try:
            orientation = im.getexif().get(0x0112, 1)
        except Exception:
            orientation = 1
    return (h, w) if orientation in (5, 6, 7, 8) else (w, h)


def iter_records(src: Path) -> Iterator[tuple[Path, dict]]:
    """Every record of every JSON file under ``src`` (a list of records, or a dict holding them)."""
    for json_path in sorted(src.rglob("*.json")):
        try:
            data = json.loads(json_path.read_bytes().decode("utf-8-sig"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            print(f"warning: skipping {json_path}: not a readable JSON file ({e})", file=sys.stderr)
            continue
        yield from ((json_path, r) for r in _records_in(data))


def _records_in(data: Any) -> Iterator[dict]:
    if isinstance(data, list):
        for item in data:
            if isinstance(item, dict):
                yield item
    elif isinstance(data, dict):
        if "filename" in data:
            yield data
        else:
            for value in data.values():
                if isinstance(value, (list, dict)):
                    yield from _records_in(value)


def index_images(src: Path) -> dict[str, Path]:
    """File name (NFC) -> path, for every image under ``src``."""
    found: dict[str, Path] = {}
    for root, _dirs, files in os.walk(src):
        for name in files:
            if name.lower().endswith(IMAGE_SUFFIXES):
                found.setdefault(nfc(name), Path(root) / name)
    return found


class Progress:
    """A one-line progress meter on stderr, redrawn at most twice a second."""

    def __init__(self, total: int, what: str, stream=None) -> None:
        self.total, self.what, self.stream = total, what, stream or sys.stderr
        self.done, self.start, self.last = 0, time.monotonic(), 0.0

    def step(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        if now - self.last >= 0.5 or self.done == self.total:
            self.last = now
            pct = 100.0 * self.done / max(self.total, 1)
            rate = self.done / max(now - self.start, 1e-6)
            eta = (self.total - self.done) / max(rate, 1e-6)
            self.stream.write(f"\r{self.what}: {self.done}/{self.total} ({pct:.0f}%, {rate:.0f}/s, {eta:.0f} s left)")
            self.stream.flush()

    def close(self) -> None:
        if self.total:
            self.stream.write("\n")
            self.stream.flush()


@dataclass
class ConversionReport:
    """Counts a converter run produced; also written as report.json next to data.yaml."""

    records: int = 0
    kept: int = 0
    faces: dict[str, dict[str, int]] = field(default_factory=lambda: {s: {e: 0 for e in EMOTIONS} for s in SPLITS})
    images: dict[str, int] = field(default_factory=lambda: {s: 0 for s in SPLITS})
    persons: dict[str, int] = field(default_factory=lambda: {s: 0 for s in SPLITS})
    dropped: dict[str, int] = field(default_factory=dict)
    clipped: int = 0
    ties_broken_by_uploader: int = 0
    layout: str = "detect"
    data_yaml: str = ""
    split_of_person: dict[str, str] = field(default_factory=dict)
    moved: list[dict[str, str]] = field(default_factory=list)  # persons moved so no split is empty
    warnings: list[str] = field(default_factory=list)

    def drop(self, reason: str) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + 1

    def to_json(self) -> dict:
        return {
            "records": self.records,
            "kept": self.kept,
            "faces": self.faces,
            "images": self.images,
            "persons": self.persons,
            "dropped": dict(sorted(self.dropped.items())),
            "clipped_boxes": self.clipped,
            "ties_broken_by_uploader": self.ties_broken_by_uploader,
            "layout": self.layout,
            "data_yaml": self.data_yaml,
            "split_of_person": self.split_of_person,
            "moved_persons": self.moved,
            "warnings": self.warnings,
        }

    def table(self) -> str:
        """Counts per emotion and split, then what was dropped and why."""
        width = max(len(e) for e in EMOTIONS) + 2
        lines = [f"{'emotion':<{width}}" + "".join(f"{s:>8}" for s in SPLITS) + f"{'total':>8}"]
        for e in EMOTIONS:
            row = [self.faces[s][e] for s in SPLITS]
            lines.append(f"{e:<{width}}" + "".join(f"{n:>8}" for n in row) + f"{sum(row):>8}")
        totals = [sum(self.faces[s].values()) for s in SPLITS]
        lines.append(f"{'faces':<{width}}" + "".join(f"{n:>8}" for n in totals) + f"{sum(totals):>8}")
        lines.append(f"{'persons':<{width}}" + "".join(f"{self.persons[s]:>8}" for s in SPLITS) + f"{sum(self.persons.values()):>8}")
        lines.append("")
        lines.append(f"records read: {self.records}, kept: {self.kept}, dropped: {sum(self.dropped.values())}")
        for reason, n in sorted(self.dropped.items(), key=lambda kv: -kv[1]):
            lines.append(f"  dropped, {reason}: {n}")
        lines.append(f"boxes clipped to the image: {self.clipped}; ties settled by the uploader's label: {self.ties_broken_by_uploader}")
        for m in self.moved:
            lines.append(f"person {m['person'][:12]} moved from {m['from']} to {m['to']}, which would otherwise be empty")
        lines.extend(f"warning: {w}" for w in self.warnings)
        return "\n".join(lines)


def _place(src: Path, dst: Path, copy: bool) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists() or dst.is_symlink():
        dst.unlink()
    if copy:
        shutil.copy2(src, dst)
    else:
        os.symlink(src.resolve(), dst)


def _write_yaml(path: Path, root: Path, layout: str) -> None:
    """data.yaml as ultralytics reads it; names are the five emotion ids, in their canonical order."""
    names = "\n".join(f"  {i}: {e}" for i, e in enumerate(EMOTIONS))
    if layout == "detect":
        body = f"path: {root.resolve()}\ntrain: images/train\nval: images/val\ntest: images/test\nnames:\n{names}\n"
    else:  # ultralytics' classify loader takes the folder itself; this file documents names and splits
        body = f"path: {root.resolve()}\ntrain: train\nval: val\ntest: test\nnames:\n{names}\n"
    path.write_text(f"# pcp-osc dataset aihub: five emotions ({' '.join(EMOTIONS)})\n" + body, encoding="utf-8")


def convert(
    src: str | Path,
    dst: str | Path,
    *,
    layout: str = "detect",
    copy: bool = False,
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    min_votes: int = 1,
    min_box_inside: float = 0.5,
    crop_px: int = 96,
    progress: bool = True,
) -> ConversionReport:
    """Convert the release under ``src`` into ``dst``; returns (and writes) the report."""
    src, dst = Path(src), Path(dst)
    if not src.is_dir():
        raise FileNotFoundError(f"AI Hub source folder {str(src)!r} not found")
    if layout not in LAYOUTS:
        raise ValueError(f"layout {layout!r} not understood; allowed: {', '.join(LAYOUTS)}")
    if len(fractions) != 3 or any(f < 0 for f in fractions) or sum(fractions) <= 0:
        raise ValueError(f"split fractions {fractions!r} must be three non-negative numbers (train, val, test)")
    dst.mkdir(parents=True, exist_ok=True)
    report = ConversionReport(layout=layout)
    images = index_images(src)
    records = list(iter_records(src))
    report.records = len(records)
    seen: set[str] = set()
    persons: dict[str, set[str]] = {s: set() for s in SPLITS}
    accepted: list[tuple[str, Path, Decision, np.ndarray, str, tuple[int, int], str]] = []
    meter = Progress(len(records), "converting AI Hub records") if progress else None
    # one image file may hold several records only if the release repeats it; we keep the first
    for _json_path, record in records:
        if meter:
            meter.step()
        name = record.get("filename")
        if not isinstance(name, str) or not name.strip():
            report.drop(DROP_NO_FILENAME)
            continue
        name = nfc(Path(name.strip()).name)
        if name in seen:
            report.drop(DROP_DUPLICATE)
            continue
        seen.add(name)
        image = images.get(name)
        if image is None:
            report.drop(DROP_NO_IMAGE)
            continue
        decision = reconcile(record, min_votes=min_votes)
        if decision.emotion is None:
            report.drop(decision.reason)
            continue
        try:
            width, height = image_size(image)
        except Exception:
            report.drop(DROP_UNREADABLE)
            continue
        box, note = check_box(decision.box, width, height, min_box_inside)
        if box is None:
            report.drop(note)
            continue
        accepted.append((name, image, decision, box, note, (width, height), person_id(name)))
    if meter:
        meter.close()
    split_of_person, report.moved, empty = assign_splits({a[-1] for a in accepted}, fractions)
    n_persons = len(split_of_person)
    if empty and n_persons:
        shares = ",".join(f"{f:g}" for f in fractions)
        report.warnings.append(
            f"only {n_persons} person{'s' if n_persons != 1 else ''} with a kept face, so the {' and '.join(empty)} "
            f"split{'s stay' if len(empty) > 1 else ' stays'} empty (--split {shares}); `pcp-osc train` needs images "
            f"in train and val: add photos of more persons (at least {sum(f > 0 for f in fractions)}), "
            f"{_few_persons_advice(n_persons, fractions)}"
        )
    meter = Progress(len(accepted), "writing the data set") if progress else None
    for name, image, decision, box, note, (width, height), person in accepted:
        if meter:
            meter.step()
        split = split_of_person[person]
        if layout == "detect":
            _place(image, dst / "images" / split / name, copy)
            cx, cy = (box[0] + box[2]) / 2 / width, (box[1] + box[3]) / 2 / height
            bw, bh = (box[2] - box[0]) / width, (box[3] - box[1]) / height
            label = dst / "labels" / split / (Path(name).stem + ".txt")
            label.parent.mkdir(parents=True, exist_ok=True)
            label.write_text(f"{decision.emotion} {cx:.6f} {cy:.6f} {bw:.6f} {bh:.6f}\n", encoding="utf-8")
        else:
            if not _write_crop(image, box, dst / split / EMOTIONS[decision.emotion] / (Path(name).stem + ".jpg"), crop_px):
                report.drop(DROP_UNREADABLE)
                continue
        report.kept += 1
        report.clipped += note == "clipped"
        report.ties_broken_by_uploader += decision.tie_broken
        report.faces[split][EMOTIONS[decision.emotion]] += 1
        report.images[split] += 1
        persons[split].add(person)
        report.split_of_person[person] = split
    if meter:
        meter.close()
    report.persons = {s: len(persons[s]) for s in SPLITS}
    yaml_path = dst / "data.yaml"
    _write_yaml(yaml_path, dst, layout)
    report.data_yaml = str(yaml_path)
    (dst / "report.json").write_text(json.dumps(report.to_json(), ensure_ascii=False, indent=2), encoding="utf-8")
    return report


def _few_persons_advice(n_persons: int, fractions: tuple[float, float, float]) -> str:
    """What to change when there are fewer persons than splits with a share."""
    if n_persons >= 2:
        return "or give test no share so train and val get one each (--split 0.5,0.5,0)"
    return "one person cannot fill both train and val"


def _write_crop(image: Path, box: np.ndarray, out: Path, crop_px: int) -> bool:
    import cv2

    from ..perception.yolo import crop_face

    frame = _read_oriented(image)
    if frame is None:
        return False
    crop = cv2.resize(crop_face(frame, box), (crop_px, crop_px), interpolation=cv2.INTER_AREA)
    out.parent.mkdir(parents=True, exist_ok=True)
    return bool(cv2.imwrite(str(out), crop))


def _read_oriented(path: Path):
    """Pixels with EXIF orientation applied (cv2.imread does that), decoded from bytes so Korean paths work."""
    import cv2

    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError:
        return None
    return cv2.imdecode(data, cv2.IMREAD_COLOR)


def persons_by_split(dst: str | Path) -> dict[str, set[str]]:
    """The persons present in each split of a converted detection data set (from its image names)."""
    dst = Path(dst)
    out: dict[str, set[str]] = defaultdict(set)
    for split in SPLITS:
        folder = dst / "images" / split
        if folder.is_dir():
            out[split] = {person_id(p.name) for p in folder.iterdir()}
    return dict(out)

