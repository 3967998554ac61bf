"""A small data set in the AI Hub release's layout, built in the test (no download, no real people).

Faces are drawn: a skin-coloured oval whose brows and mouth show the emotion
(smile = joy, open mouth + raised brows = anxiety, slanted brows + tight mouth
= anger, frown = sadness, straight mouth = neutral), on a noisy background, in
photos of a few sizes. File names follow the release's pattern
``<person hash>_<성별>_<나이>_<감정>_<장소>_<timestamp>-001-NNN.jpg`` and the JSON
records its schema, with planned disagreements, unknowns and bad boxes so the
converter's counts are known in advance.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

# the seven release labels and which of the five they merge into
KOREAN = {"기쁨": "joy", "당황": "anxiety", "불안": "anxiety", "분노": "anger", "상처": "sadness", "슬픔": "sadness", "중립": "neutral"}
DRAW_AS = {"joy": "joy", "anxiety": "anxiety", "anger": "anger", "sadness": "sadness", "neutral": "neutral"}
SIZES = [(320, 240), (256, 256), (240, 320), (400, 300)]  # (w, h): landscape, square, portrait
PLACES = ["공공시설&종교&의료시설", "실내", "야외"]


def draw_face(img: np.ndarray, box, emotion: str, rng: np.random.Generator) -> None:
    """Draw a face whose expression shows ``emotion`` inside ``box`` (x1, y1, x2, y2)."""
    x1, y1, x2, y2 = (int(v) for v in box)
    cx, cy, w, h = (x1 + x2) // 2, (y1 + y2) // 2, x2 - x1, y2 - y1
    skin = tuple(int(v) for v in rng.integers([120, 150, 190], [170, 200, 240]))
    cv2.ellipse(img, (cx, cy), (w // 2, h // 2), 0, 0, 360, skin, -1)
    eye_y, eye_dx, eye_r = cy - h // 8, w // 5, max(2, w // 14)
    for sx in (-1, 1):
        cv2.circle(img, (cx + sx * eye_dx, eye_y), eye_r, (40, 30, 20), -1)
    t = max(2, w // 25)
    brow_y = eye_y - h // 7
    mouth_y, mw = cy + h // 5, w // 4
    if emotion == "joy":
        cv2.ellipse(img, (cx, mouth_y - h // 16), (mw, h // 8), 0, 10, 170, (30, 30, 160), t + 1)
    elif emotion == "anxiety":
        for sx in (-1, 1):
            cv2.ellipse(img, (cx + sx * eye_dx, brow_y - h // 20), (w // 9, h // 20), 0, 180, 360, (40, 30, 20), t)
        cv2.ellipse(img, (cx, mouth_y), (w // 9, h // 8), 0, 0, 360, (20, 20, 90), -1)
    elif emotion == "anger":
        for sx in (-1, 1):
            cv2.line(img, (cx + sx * (eye_dx + w // 8), brow_y - h // 16), (cx + sx * (eye_dx - w // 10), brow_y + h // 20), (20, 20, 20), t + 1)
        cv2.line(img, (cx - mw, mouth_y), (cx + mw, mouth_y), (20, 20, 120), t + 1)
        cv2.line(img, (cx - mw, mouth_y + t * 2), (cx + mw, mouth_y + t * 2), (20, 20, 120), t)
    elif emotion == "sadness":
        for sx in (-1, 1):
            cv2.line(img, (cx + sx * (eye_dx + w // 9), brow_y + h // 20), (cx + sx * (eye_dx - w // 10), brow_y - h // 20), (40, 30, 20), t)
        cv2.ellipse(img, (cx, mouth_y + h // 10), (mw, h // 9), 0, 200, 340, (60, 40, 120), t + 1)
    else:
        cv2.line(img, (cx - mw, mouth_y), (cx + mw, mouth_y), (60, 40, 120), t + 1)


def person_hash(k: int) -> str:
    return hashlib.sha256(f"test-person-{k}".encode()).hexdigest()


@dataclass
class Planned:
    """What the converter must find: kept faces per merged emotion, drops per reason."""

    kept: dict[str, int] = field(default_factory=lambda: {e: 0 for e in ("joy", "anxiety", "anger", "sadness", "neutral")})
    dropped: dict[str, int] = field(default_factory=dict)
    clipped: int = 0
    ties_broken: int = 0
    records: int = 0
    expected_label: dict[str, str] = field(default_factory=dict)  # filename -> emotion id, for kept records

    def drop(self, reason: str) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + 1


def build_aihub(root: Path, persons: int = 12, photos_per_person: int = 8, seed: int = 0) -> Planned:
    """Write images per label folder plus one JSON per label folder; return what a correct conversion yields."""
    rng = np.random.default_rng(seed)
    labels = list(KOREAN)
    by_label: dict[str, list[dict]] = {k: [] for k in labels}
    plan = Planned()
    n = 0
    for p in range(persons):
        pid = person_hash(p)
        gender = "여" if p % 2 else "남"
        age = 20 + 10 * (p % 4)
        for j in range(photos_per_person):
            label = labels[(p + j) % len(labels)]
            emotion = KOREAN[label]
            w, h = SIZES[(p * 3 + j) % len(SIZES)]
            img = rng.integers(40, 200, size=(h, w, 3), dtype=np.uint8)
            img = cv2.GaussianBlur(img, (0, 0), 3)
            side = int(min(w, h) * rng.uniform(0.45, 0.7))
            x1 = int(rng.integers(3, w - side - 3)); y1 = int(rng.integers(3, h - side - 3))  # jitter stays inside
            box = [x1, y1, x1 + side, y1 + int(side * 1.0)]
            draw_face(img, box, DRAW_AS[emotion], rng)
            name = f"{pid}_{gender}_{age}_{label}_{PLACES[j % 3]}_2020120{1 + p % 9}1{j:02d}000-001-{j + 1:03d}.jpg"
            folder = root / "images" / label
            folder.mkdir(parents=True, exist_ok=True)
            ok, buf = cv2.imencode(".jpg", img)
            (folder / name).write_bytes(buf.tobytes())

            def annot(lbl, bx=box, jitter=True):
                b = [v + (float(rng.uniform(-2, 2)) if jitter else 0.0) for v in bx]
                return {"boxes": {"minX": b[0], "minY": b[1], "maxX": b[2], "maxY": b[3]}, "faceExp": lbl}

            rec = {"filename": name, "gender": gender, "age": age, "isProf": "일반인", "faceExp_uploader": label}
            case = n % 10
            # planned disagreements; every other case: all three agree
            if case == 1:  # one unknown, two agree
                rec.update(annot_A=annot(label), annot_B=annot("알수없음"), annot_C=annot(label))
            elif case == 2:  # a merged-label agreement: 당황 vs 불안 both anxiety, or 슬픔 vs 상처 both sadness
                alt = {"당황": "불안", "불안": "당황", "슬픔": "상처", "상처": "슬픔"}.get(label, label)
                rec.update(annot_A=annot(label), annot_B=annot(alt), annot_C=annot("중립" if emotion != "neutral" else "기쁨"))
            elif case == 3 and emotion != "neutral":  # tie settled by the uploader: A=label, B=중립, C=unknown
                rec.update(annot_A=annot(label), annot_B=annot("중립"), annot_C=annot("알수없음"))
                plan.ties_broken += 1
            elif case == 4:  # all unknown -> dropped
                rec.update(annot_A=annot("알수없음"), annot_B=annot("알수없음"), annot_C=annot("알수없음"))
                plan.drop("no annotator label")
                emotion = None
            elif case == 5 and emotion not in ("joy", "anger"):  # tie the uploader cannot settle -> dropped
                rec.update(annot_A=annot("기쁨"), annot_B=annot("분노"), annot_C=annot("알수없음"))
                plan.drop("tie")
                emotion = None
            elif case == 6:  # box runs 10 % past the right edge -> clipped, kept
                over = [box[0] + (w - box[2]) + side * 0.1, box[1], w + side * 0.1, box[3]]
                rec.update(annot_A=annot(label, over, False), annot_B=annot(label, over, False), annot_C=annot(label, over, False))
                plan.clipped += 1
            elif case == 7 and p % 3 == 0:  # box entirely outside the image -> dropped
                out = [w + 10, 5, w + 60, 55]
                rec.update(annot_A=annot(label, out, False), annot_B=annot(label, out, False), annot_C=annot(label, out, False))
                plan.drop("box outside image")
                emotion = None
            else:
                rec.update(annot_A=annot(label), annot_B=annot(label), annot_C=annot(label))
            by_label[label].append(rec)
            plan.records += 1
            if emotion is not None:
                plan.kept[emotion] += 1
                plan.expected_label[name] = emotion
            n += 1
    # one record whose image is missing, one duplicate
    by_label["기쁨"].append({"filename": f"{person_hash(999)}_남_30_기쁨_실내_20201201000000-001-001.jpg",
                             "faceExp_uploader": "기쁨", "annot_A": {"faceExp": "기쁨", "boxes": {"minX": 1, "minY": 1, "maxX": 9, "maxY": 9}}})
    plan.drop("image not found")
    by_label["중립"].append(dict(by_label["중립"][0]))
    plan.drop("duplicate record")
    plan.records += 2
    for label, recs in by_label.items():
        (root / "labels").mkdir(parents=True, exist_ok=True)
        (root / "labels" / f"{label}.json").write_text(json.dumps(recs, ensure_ascii=False), encoding="utf-8")
    return plan
