"""`pcp-osc eval`: metrics any backend can be scored with, on YOLO sets and on crop folders."""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np

from pcp_osc import data as shipped
from pcp_osc.evaluate import average_precision, match_faces
from yolo_session import REPO, offline_env

# What the shipped photographs' provenance says of each subject (PROVENANCE.md), not what a model said.
# obama_speech ("speaking") is left out: no expression is named.
HUMAN_LABELS = {"astronaut_collins.jpg": "joy", "hopper.jpg": "neutral", "obama_portrait.jpg": "joy",
                "biden.jpg": "neutral", "trump_portrait.jpg": "joy"}


def test_average_precision_on_a_hand_worked_ranking():
    # ranked: hit, miss, hit against 3 labelled faces -> recall 1/3 @ p 1, 2/3 @ p 2/3; AP = 1/3*1 + 1/3*2/3
    ap = average_precision(np.array([0.9, 0.8, 0.7]), np.array([True, False, True]), 3)
    assert abs(ap - (1 / 3 + 2 / 9)) < 1e-9
    assert average_precision(np.array([]), np.array([], bool), 2) == 0.0


def test_faces_match_most_confident_first_at_iou_half():
    gt = np.array([[0, 0, 10, 10], [20, 0, 30, 10]], np.float32)
    pred = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60]], np.float32)
    # the more confident of two boxes on one face takes it; the other and the far box match nothing
    assert match_faces(pred, np.array([0.5, 0.9, 0.8]), gt).tolist() == [-1, 0, -1]


def _eval(args, tmp_path):
    done = subprocess.run([sys.executable, "-m", "pcp_osc", "eval", *args, "--out", str(tmp_path / "ev"), "--json", "-q"],
                          cwd=REPO, env=offline_env(tmp_path), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout[done.stdout.rfind("\n{") + 1:] if "\n{" in done.stdout else done.stdout)
    png = tmp_path / "ev" / "confusion.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and cv2.imread(str(png)).shape[0] > 200
    return out


def _consistent(out, labelled_faces):
    counts = np.array(out["confusion"]["counts"])
    assert counts[:5].sum() == labelled_faces == out["faces"]
    assert abs(out["accuracy"] - np.trace(counts[:5, :5]) / labelled_faces) < 1e-3
    for k, (e, m) in enumerate(out["per_class"].items()):
        assert m["support"] == counts[k].sum()
        if counts[:, k].sum():
            assert abs(m["precision"] - counts[k, k] / counts[:, k].sum()) < 1e-3


def test_shipped_default_backend_on_labelled_face_crops(tmp_path):
    for name, emotion in HUMAN_LABELS.items():
        folder = tmp_path / "crops" / emotion
        folder.mkdir(parents=True, exist_ok=True)
        x1, y1, x2, y2 = shipped.face_box(name)
        side = max(x2 - x1, y2 - y1) * 1.4  # the converter's framing: face + 20 % a side
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        image = shipped.photo(name)
        pad = int(side)
        big = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        crop = big[int(cy - side / 2) + pad:int(cy + side / 2) + pad, int(cx - side / 2) + pad:int(cx + side / 2) + pad]
        cv2.imwrite(str(folder / name), crop)
    out = _eval(["--data", str(tmp_path / "crops"), "--backend", "default"], tmp_path)
    assert out["kind"] == "crops" and out["backend"] == "default" and out["map50"] is None
    _consistent(out, len(HUMAN_LABELS))
    assert out["per_class"]["joy"]["support"] == 3


def test_yolo_backend_on_the_detection_test_split(yolo_ws, tmp_path):
    out = _eval(["--data", str(yolo_ws.det / "data.yaml"), "--backend", "yolo", "--weights", str(yolo_ws.onnx)], tmp_path)
    test_faces = sum(yolo_ws.report["faces"]["test"].values())
    assert out["kind"] == "detection" and out["map50"] is not None and 0 <= out["map50"] <= 1
    _consistent(out, test_faces)
    assert set(out["ap50"]) == {e for e, n in yolo_ws.report["faces"]["test"].items() if n}


def test_a_bad_data_folder_is_named(tmp_path):
    (tmp_path / "crops" / "banana").mkdir(parents=True)
    done = subprocess.run([sys.executable, "-m", "pcp_osc", "eval", "--data", str(tmp_path / "crops"), "--backend", "default",
                           "--out", str(tmp_path / "ev")], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "banana" in done.stderr
