"""The AI Hub converter: counts, label merging, annotator majority, box checks, split by person."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from aihub_fixture import build_aihub, person_hash
from pcp_osc.datasets.aihub import SPLITS, convert, person_id, reconcile, split_of
from pcp_osc.emotions import EMOTIONS

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    root = tmp_path_factory.mktemp("aihub")
    plan = build_aihub(root / "src", persons=16, photos_per_person=8, seed=1)
    report = convert(root / "src", root / "det", fractions=(0.6, 0.2, 0.2), progress=False)
    return root, plan, report


def test_counts_per_emotion_and_drops_match_what_the_records_say(converted):
    root, plan, report = converted
    totals = {e: sum(report.faces[s][e] for s in SPLITS) for e in EMOTIONS}
    assert totals == plan.kept
    assert report.dropped == plan.dropped
    assert report.clipped == plan.clipped
    assert report.ties_broken_by_uploader == plan.ties_broken
    assert report.records == plan.records
    assert report.kept == sum(plan.kept.values())
    on_disk = json.loads((root / "det" / "report.json").read_text(encoding="utf-8"))
    assert on_disk["faces"] == report.faces and on_disk["dropped"] == plan.dropped


def test_no_person_is_in_two_splits(converted):
    root, plan, report = converted
    seen: dict[str, set[str]] = defaultdict(set)
    for split in SPLITS:
        for image in (root / "det" / "images" / split).iterdir():
            seen[person_id(image.name)].add(split)
    assert len(seen) == 16
    assert all(len(splits) == 1 for splits in seen.values()), {p[:8]: s for p, s in seen.items() if len(s) > 1}
    assert all(report.persons[s] > 0 for s in SPLITS), report.persons
    # the person id is the release's hash field, and the split does not depend on the run
    assert person_id(f"{person_hash(3)}_여_30_기쁨_실내_20201201000000-001-001.jpg") == person_hash(3)
    assert {split_of(p, (0.6, 0.2, 0.2)) for p in seen} == set(SPLITS)
    assert all(split_of(p, (0.6, 0.2, 0.2)) == next(iter(s)) for p, s in seen.items())


def test_labels_are_the_merged_five_with_boxes_inside_the_image(converted):
    root, plan, _ = converted
    checked = 0
    for split in SPLITS:
        for label in (root / "det" / "labels" / split).glob("*.txt"):
            rows = np.loadtxt(label, ndmin=2)
            assert rows.shape == (1, 5)
            cls, cx, cy, w, h = rows[0]
            image_name = label.stem + ".jpg"
            assert EMOTIONS[int(cls)] == plan.expected_label[image_name], image_name
            assert 0 <= cx - w / 2 + 1e-6 and cx + w / 2 <= 1 + 1e-6 and 0 <= cy - h / 2 + 1e-6 and cy + h / 2 <= 1 + 1e-6
            checked += 1
    assert checked == sum(plan.kept.values())
    yaml_text = (root / "det" / "data.yaml").read_text(encoding="utf-8")
    for i, e in enumerate(EMOTIONS):
        assert f"{i}: {e}" in yaml_text


def test_images_are_symlinked_by_default_and_copied_on_request(converted, tmp_path):
    root, _, _ = converted
    linked = next((root / "det" / "images" / "train").iterdir())
    assert linked.is_symlink() and linked.resolve().is_file()
    convert(root / "src", tmp_path / "copied", copy=True, fractions=(0.6, 0.2, 0.2), progress=False)
    copied = next((tmp_path / "copied" / "images" / "train").iterdir())
    assert not copied.is_symlink() and copied.stat().st_size > 1000


def _rec(a, b, c, uploader="기쁨", boxes=None):
    boxes = boxes or [[10, 10, 50, 50]] * 3
    out = {"filename": "x.jpg", "faceExp_uploader": uploader}
    for key, label, box in zip(("annot_A", "annot_B", "annot_C"), (a, b, c), boxes):
        out[key] = {"faceExp": label, "boxes": dict(zip(("minX", "minY", "maxX", "maxY"), box))}
    return out


def test_majority_rules_unknowns_ties_and_median_box():
    # 당황 and 불안 are both anxiety: two votes against one
    assert EMOTIONS[reconcile(_rec("당황", "불안", "기쁨")).emotion] == "anxiety"
    # unknowns don't vote: one joy beats two unknowns
    assert EMOTIONS[reconcile(_rec("기쁨", "알수없음", "알수없음")).emotion] == "joy"
    # ... unless two agreeing votes are required
    assert reconcile(_rec("기쁨", "알수없음", "알수없음"), min_votes=2).reason == "too few agreeing votes"
    # tie: the uploader's label settles it when it is one of the tied emotions
    d = reconcile(_rec("분노", "슬픔", "알수없음", uploader="상처"))
    assert EMOTIONS[d.emotion] == "sadness" and d.tie_broken
    # ... otherwise the record is dropped
    assert reconcile(_rec("분노", "슬픔", "알수없음", uploader="기쁨")).reason == "tie"
    assert reconcile(_rec("알수없음", "알수없음", "")).reason == "no annotator label"
    # the box is the median over the annotators who voted for the winner (the dissenter's box is ignored)
    d = reconcile(_rec("기쁨", "기쁨", "분노", boxes=[[10, 10, 50, 50], [14, 12, 54, 50], [100, 100, 200, 200]]))
    assert d.box.tolist() == [12, 11, 52, 50]


def test_classify_layout_writes_one_square_crop_per_kept_face(tmp_path):
    plan = build_aihub(tmp_path / "src", persons=6, photos_per_person=5, seed=2)
    report = convert(tmp_path / "src", tmp_path / "cls", layout="classify", crop_px=48, progress=False)
    import cv2

    for e in EMOTIONS:
        crops = [p for s in SPLITS for p in (tmp_path / "cls" / s / e).glob("*.jpg")] if report.kept else []
        assert len(crops) == plan.kept[e], e
        for p in crops[:2]:
            assert cv2.imread(str(p)).shape == (48, 48, 3)


def test_command_prints_the_table_and_rejects_a_missing_folder(tmp_path):
    build_aihub(tmp_path / "src", persons=4, photos_per_person=4, seed=3)
    cmd = [sys.executable, "-m", "pcp_osc", "dataset", "aihub", str(tmp_path / "src"), str(tmp_path / "out")]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "dropped, no annotator label" in done.stdout and "persons" in done.stdout
    assert "converting AI Hub records" in done.stderr  # progress on stderr
    assert (tmp_path / "out" / "report.json").is_file()
    bad = subprocess.run([*cmd[:5], str(tmp_path / "nowhere"), str(tmp_path / "o2")], cwd=REPO,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "nowhere" in bad.stderr and "not found" in bad.stderr


@pytest.mark.parametrize("persons", [3, 4, 5])
def test_three_or_more_persons_give_every_split_a_person(tmp_path, persons):
    # With the default shares (0.8, 0.1, 0.1) a hash alone leaves val or test empty for a
    # few persons -- which `pcp-osc train` then refuses; the converter moves a person there.
    build_aihub(tmp_path / "src", persons=persons, photos_per_person=8, seed=persons)
    report = convert(tmp_path / "src", tmp_path / "det", progress=False)
    assert report.persons == {s: report.persons[s] for s in SPLITS} and all(report.persons[s] >= 1 for s in SPLITS), report.persons
    assert sum(report.persons.values()) == persons and not report.warnings
    by_split = {s: {person_id(p.name) for p in (tmp_path / "det" / "images" / s).iterdir()} for s in SPLITS}
    assert all(by_split[s] for s in SPLITS)
    assert sum(len(v) for v in by_split.values()) == persons  # still one split per person
    hashed = {p: split_of(p, (0.8, 0.1, 0.1)) for v in by_split.values() for p in v}
    for m in report.moved:  # every person not where the hash put it is reported as moved
        assert hashed[m["person"]] == m["from"] and m["person"] in by_split[m["to"]]
    assert sum(hashed[p] != s for s, v in by_split.items() for p in v) == len(report.moved)
    assert report.moved  # with so few persons the hash alone does leave a split empty


def test_too_few_persons_are_named_at_conversion_time(tmp_path):
    build_aihub(tmp_path / "src", persons=2, photos_per_person=8, seed=2)
    r = subprocess.run([sys.executable, "-m", "pcp_osc", "dataset", "aihub", str(tmp_path / "src"), str(tmp_path / "det"), "-q"],
                       cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "warning: only 2 persons with a kept face, so the test split stays empty (--split 0.8,0.1,0.1)" in r.stdout
    assert "add photos of more persons (at least 3)" in r.stdout and "--split 0.5,0.5,0" in r.stdout
    # both persons are in train and val, so training can start
    assert all(any((tmp_path / "det" / "images" / s).iterdir()) for s in ("train", "val"))
