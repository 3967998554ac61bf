"""The YOLO path end to end: convert, train on the CPU, export, run as a backend -- offline.

The session fixture (tests/yolo_session.py) trains a detector and a face
classifier once, every command in a subprocess whose sockets are blocked and
recorded.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from pcp_osc import data as shipped
from pcp_osc.config import PerceptionConfig
from pcp_osc.emotions import EMOTIONS
from pcp_osc.evaluate import load_yolo_set, match_faces
from pcp_osc.perception import PerceptionError, make_backend
from pcp_osc.perception.yolo import YoloBackend, letterbox, to_tensor
from yolo_session import DETECT_TRAIN, REPO, _last_json, offline_env, pcp

LOW_CONF = PerceptionConfig(backend="yolo", yolo_conf=0.25)


def _test_images(ws):
    return load_yolo_set(ws.det / "data.yaml", "test")


def test_nothing_reached_for_the_network_and_nothing_written_to_home(yolo_ws):
    attempts = yolo_ws.netlog.read_text() if yolo_ws.netlog.exists() else ""
    assert attempts == "", f"ultralytics tried the network:\n{attempts[:3000]}"
    assert not (yolo_ws.fake_home / ".config" / "Ultralytics").exists()
    settings = json.loads((yolo_ws.settings_dir / "Ultralytics" / "settings.json").read_text())
    assert settings["sync"] is False


def test_the_network_guard_really_catches_an_attempt(tmp_path):
    # Without this, an empty log above could mean a guard that never loaded.
    code = "import urllib.request\ntry:\n    urllib.request.urlopen('http://example.com', timeout=2)\nexcept Exception:\n    pass\n"
    subprocess.run([sys.executable, "-c", code], env=offline_env(tmp_path), timeout=60, check=True)
    assert "example.com" in (tmp_path / "network-attempts.log").read_text()


def test_trained_model_classes_arrive_as_the_five_emotions(yolo_ws):
    for weights in (yolo_ws.pt, yolo_ws.onnx):
        backend = make_backend(LOW_CONF, weights=str(weights), backend="yolo")
        assert backend.class_names == list(EMOTIONS)
        assert backend.mode == "detector"
        faces = backend.detect_many([cv2.imread(str(s.path)) for s in _test_images(yolo_ws)])
        found = [f for f in faces if len(f)]
        assert found, "the trained detector found no face at confidence 0.25"
        for f in found:
            assert f.scores.shape[1] == 5 and np.allclose(f.scores.sum(axis=1), 1, atol=1e-5)


def test_detector_finds_the_labelled_faces(yolo_ws):
    backend = YoloBackend(LOW_CONF, yolo_ws.onnx)
    samples = _test_images(yolo_ws)
    faces = backend.detect_many([cv2.imread(str(s.path)) for s in samples])
    hits = sum(int((match_faces(f.boxes, f.detection_confidence, s.boxes) >= 0).sum()) for f, s in zip(faces, samples))
    # 30 epochs from scratch on ~70 photos: boxes, not yet reliable emotions (that is what AI Hub's 430k photos are for)
    assert hits >= len(samples) // 2, f"{hits} of {len(samples)} labelled test faces found at IoU 0.5"


def test_pt_and_onnx_agree(yolo_ws):
    pt = YoloBackend(LOW_CONF, yolo_ws.pt)
    ox = YoloBackend(LOW_CONF, yolo_ws.onnx)
    assert (pt.format, ox.format) == ("pt", "onnx")
    images = [cv2.imread(str(s.path)) for s in _test_images(yolo_ws)] + [shipped.crowd_frame(6)[0]]
    batch = to_tensor([letterbox(im, pt.imgsz)[0] for im in images])
    assert np.abs(pt.runner(batch) - ox.runner(batch)).max() < 1e-3
    fa, fb = pt.detect_many(images), ox.detect_many(images)
    assert sum(map(len, fa)) > 0
    for a, b in zip(fa, fb):
        assert len(a) == len(b)
        np.testing.assert_allclose(a.boxes, b.boxes, atol=0.5)
        np.testing.assert_allclose(a.scores, b.scores, atol=1e-3)
    # the export command compared them too and said so
    assert yolo_ws.export["max_score_diff"] < 1e-3 and yolo_ws.export["faces_a"] == yolo_ws.export["faces_b"] > 0


def test_batched_detection_equals_one_by_one(yolo_ws):
    backend = YoloBackend(LOW_CONF, yolo_ws.onnx)
    images = [cv2.imread(str(s.path)) for s in _test_images(yolo_ws)[:5]]
    for together, alone in zip(backend.detect_many(images), [backend.detect(im) for im in images]):
        np.testing.assert_allclose(together.boxes, alone.boxes, atol=1e-3)
        np.testing.assert_allclose(together.scores, alone.scores, atol=1e-4)


def _flashes(shape_hw=(480, 640)) -> list[np.ndarray]:
    """Pictures that hold no face: a blackout, a strobe's white flash, an empty dark hall
    through a camera's noise and JPEG compression."""
    h, w = shape_hw
    dark = np.clip(np.random.default_rng(0).normal(12, 2, (h, w, 3)), 0, 255).astype(np.uint8)
    dark = cv2.imdecode(cv2.imencode(".jpg", dark, [cv2.IMWRITE_JPEG_QUALITY, 30])[1], cv2.IMREAD_COLOR)
    return [np.zeros((h, w, 3), np.uint8), np.full((h, w, 3), 255, np.uint8), dark]


def test_a_black_white_or_flat_picture_has_no_faces_live_or_still(yolo_ws):
    """The detector mode under a strobe and in a blackout: no face in a flat picture, whatever
    the model makes of it (this one reported 14 in a black picture), and the lit pictures
    between the flashes keep their faces."""
    backend = YoloBackend(LOW_CONF, yolo_ws.onnx)
    lit = [cv2.imread(str(s.path)) for s in _test_images(yolo_ws)[:3]]
    assert sum(len(f) for f in backend.detect_many(lit)) > 0
    for image in lit:
        flashes = _flashes()
        assert [len(f) for f in backend.detect_many(flashes)] == [0, 0, 0]
        for k, picture in enumerate([image, *flashes, image]):
            faces = backend.detect(picture, k / 30)
            assert len(faces) == (len(backend.detect_many([image])[0]) if picture is image else 0)


def test_onnx_runs_without_torch_or_ultralytics(yolo_ws, tmp_path):
    code = (
        "import sys, cv2\n"
        "from pcp_osc.config import PerceptionConfig\n"
        "from pcp_osc.perception import make_backend\n"
        f"b = make_backend(PerceptionConfig(yolo_conf=0.25), weights={str(yolo_ws.onnx)!r}, backend='yolo')\n"
        f"faces = b.detect(cv2.imread({str(_test_images(yolo_ws)[0].path)!r}))\n"
        "heavy = sorted(m for m in ('torch', 'ultralytics') if m in sys.modules)\n"
        "print(len(faces), heavy)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=offline_env(tmp_path), capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("[]"), done.stdout


def test_detect_command_runs_the_yolo_backend(yolo_ws, tmp_path):
    backend = YoloBackend(PerceptionConfig(), yolo_ws.onnx)  # the command's defaults
    samples = _test_images(yolo_ws)
    found = backend.detect_many([cv2.imread(str(s.path)) for s in samples])
    k = next(i for i, f in enumerate(found) if len(f))  # an image the model finds a face in
    for weights in (yolo_ws.pt, yolo_ws.onnx):
        done = subprocess.run(
            [sys.executable, "-m", "pcp_osc", "detect", "--backend", "yolo", "--weights", str(weights), "--json",
             str(samples[k].path)],
            cwd=REPO, env=offline_env(tmp_path), capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, done.stderr
        record = json.loads(done.stdout.strip().splitlines()[-1])  # stdout holds only JSON lines
        assert [f["emotion"] for f in record["faces"]] == [EMOTIONS[i] for i in found[k].emotion_index]
        np.testing.assert_allclose([f["box"] for f in record["faces"]], found[k].boxes, atol=0.2)


def _renamed_checkpoint(src: Path, dst: Path, names: dict) -> Path:
    import torch

    ckpt = torch.load(src, map_location="cpu", weights_only=False)
    ckpt["model"].names = names
    torch.save(ckpt, dst)
    return dst


def test_unmappable_class_fails_at_start_naming_it(yolo_ws, tmp_path):
    bad = dict(enumerate(EMOTIONS))
    bad[2] = "banana"
    with pytest.raises(PerceptionError, match="banana"):
        YoloBackend(LOW_CONF, _renamed_checkpoint(yolo_ws.pt, tmp_path / "bad.pt", bad))
    import onnx

    model = onnx.load(str(yolo_ws.onnx))
    for prop in model.metadata_props:
        if prop.key == "names":
            prop.value = str(bad)
    onnx.save(model, str(tmp_path / "bad.onnx"))
    with pytest.raises(PerceptionError, match="banana"):
        YoloBackend(LOW_CONF, tmp_path / "bad.onnx")


def test_korean_and_fer_class_names_map_onto_the_five(yolo_ws, tmp_path):
    names = {0: "기쁨", 1: "fear", 2: "angry", 3: "상처", 4: "중립"}
    backend = YoloBackend(LOW_CONF, _renamed_checkpoint(yolo_ws.pt, tmp_path / "ko.pt", names))
    assert np.array_equal(backend.merge, np.eye(5, dtype=np.float32))


def test_wrong_mode_or_missing_weights_are_clear_errors(yolo_ws, tmp_path):
    with pytest.raises(PerceptionError, match=r"yolo_mode = detector but weights best\.pt are a classify model"):
        YoloBackend(LOW_CONF, yolo_ws.cls_pt, "detector")
    with pytest.raises(PerceptionError, match="not found"):
        YoloBackend(LOW_CONF, tmp_path / "nope.onnx")
    with pytest.raises(PerceptionError, match="needs weights"):
        make_backend(PerceptionConfig(backend="yolo"), backend="yolo")


def test_classifier_mode_scores_faces_from_the_shipped_detector(yolo_ws):
    photos = [shipped.photo(n) for n in shipped.photo_names()]
    default = make_backend(PerceptionConfig(), backend="default")
    boxes = default.detect_many(photos)
    for weights in (yolo_ws.cls_pt, yolo_ws.cls_onnx):
        backend = make_backend(PerceptionConfig(), weights=str(weights), backend="yolo")
        assert backend.mode == "classifier" and sorted(backend.class_names) == sorted(EMOTIONS)
        faces = backend.detect_many(photos)
        for a, b in zip(faces, boxes):
            np.testing.assert_allclose(a.boxes, b.boxes)  # the shipped detector's faces ...
            assert len(a) and np.allclose(a.scores.sum(axis=1), 1, atol=1e-5)  # ... scored by the YOLO classifier
    crops = [shipped.photo(n) for n in shipped.photo_names()[:3]]
    a = YoloBackend(PerceptionConfig(), yolo_ws.cls_pt).classify_crops(crops)
    b = YoloBackend(PerceptionConfig(), yolo_ws.cls_onnx).classify_crops(crops)
    assert np.abs(a - b).max() < 1e-3


# ---------------------------------------------------------------- a detect model reading face crops


@pytest.fixture(scope="module")
def crop_detector(yolo_ws):
    """A YOLO *detect* model trained here on face crops -- each crop one image, its face one
    box labelled with the emotion -- as published YOLO emotion models are trained; .pt and
    its ONNX export."""
    root = yolo_ws.root / "crop-det"
    for split in ("train", "val", "test"):
        for crop in sorted((yolo_ws.cls / split).glob("*/*.jpg")):
            emotion = EMOTIONS.index(crop.parent.name)
            (root / "images" / split).mkdir(parents=True, exist_ok=True)
            (root / "labels" / split).mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(root / "images" / split / crop.name), cv2.imread(str(crop)))
            # the converter's crop: the face box grown by 20% a side, so the face is the middle 1/1.4
            (root / "labels" / split / (crop.stem + ".txt")).write_text(f"{emotion} 0.5 0.5 0.714 0.714\n")
    names = "\n".join(f"  {i}: {e}" for i, e in enumerate(EMOTIONS))
    (root / "data.yaml").write_text(f"path: {root}\ntrain: images/train\nval: images/val\ntest: images/test\nnames:\n{names}\n")
    pcp(yolo_ws.root, "train", "--data", str(root / "data.yaml"), "--out", str(root / "run"), *DETECT_TRAIN)
    pt = root / "run" / "train" / "weights" / "best.pt"
    _last_json(pcp(yolo_ws.root, "export", str(pt), "--out", str(root / "crop-det.onnx"), "--json").stdout)
    return pt, root / "crop-det.onnx"


def _labelled_crops(ws, split="test"):
    items = sorted((ws.cls / split).glob("*/*.jpg"))
    return [cv2.imread(str(p)) for p in items], np.array([EMOTIONS.index(p.parent.name) for p in items])


def test_a_detect_model_reads_face_crops_as_a_classifier(yolo_ws, crop_detector):
    crops, truth = _labelled_crops(yolo_ws)
    assert len(crops) >= 10 and len(set(truth.tolist())) >= 4
    cfg = PerceptionConfig(backend="yolo")
    cfg.classifier.mirror = False  # the published usage exactly: one crop, its most confident box
    readings = []
    for weights in crop_detector:
        backend = YoloBackend(cfg, weights, "classifier")
        assert backend.mode == "classifier" and backend.crop_detector and backend.class_names == list(EMOTIONS)
        scores = backend.classify_crops(crops)
        assert scores.shape == (len(crops), 5) and np.allclose(scores.sum(axis=1), 1, atol=1e-5)
        accuracy = float((scores.argmax(axis=1) == truth).mean())
        assert accuracy >= 0.4, (weights.name, accuracy)  # a minute of training on drawn faces; chance is 0.2
        readings.append(scores)
    assert np.abs(readings[0] - readings[1]).max() < 1e-2  # .pt and its ONNX export read alike
    # ultralytics' own predict() on the same crops: the class of its most confident box is our reading
    from pcp_osc.perception.yolo_offline import ultralytics_offline

    ultralytics_offline()
    from ultralytics import YOLO

    results = YOLO(str(crop_detector[0])).predict(crops, imgsz=64, conf=0.001, verbose=False)
    top = [int(r.boxes.cls[int(r.boxes.conf.argmax())]) if len(r.boxes) else -1 for r in results]
    assert all(t >= 0 for t in top)
    assert readings[0].argmax(axis=1).tolist() == top


def test_a_detect_model_as_classifier_scores_the_shipped_detectors_faces(yolo_ws, crop_detector):
    photos = [shipped.photo(n) for n in shipped.photo_names()]
    boxes = make_backend(PerceptionConfig(), backend="default").detect_many(photos)
    backend = make_backend(PerceptionConfig(backend="yolo", yolo_mode="classifier"), weights=str(crop_detector[1]))
    faces = backend.detect_many(photos)
    for a, b in zip(faces, boxes):
        np.testing.assert_allclose(a.boxes, b.boxes)  # every face the shipped detector found ...
        assert len(a) and np.allclose(a.scores.sum(axis=1), 1, atol=1e-5)  # ... has a reading
    # read from the model's task, the same weights are a full-frame detector
    assert YoloBackend(LOW_CONF, crop_detector[1]).mode == "detector"


def test_mirror_averaging_in_yolo_classifier_mode(yolo_ws, crop_detector):
    crops, _ = _labelled_crops(yolo_ws)
    crops = crops[:6]
    mirrored = [np.ascontiguousarray(c[:, ::-1]) for c in crops]
    on = YoloBackend(PerceptionConfig(backend="yolo"), crop_detector[1], "classifier")
    off_cfg = PerceptionConfig(backend="yolo")
    off_cfg.classifier.mirror = False
    off = YoloBackend(off_cfg, crop_detector[1], "classifier")
    assert np.allclose(on.classify_crops(crops), on.classify_crops(mirrored), atol=1e-5)
    assert np.allclose(on.classify_crops(crops), (off.classify_crops(crops) + off.classify_crops(mirrored)) / 2, atol=1e-5)


def test_live_video_keeps_each_face_on_its_track_and_the_audience_region_holds(yolo_ws):
    # The YOLO detector on consecutive pictures of a stream (detect with the picture's
    # time): every face found carries a track id, the same one from picture to picture.
    backend = YoloBackend(LOW_CONF, yolo_ws.onnx)
    images = [cv2.imread(str(s.path)) for s in _test_images(yolo_ws)]
    # (a tiny model trained for a minute: take the picture where it finds the most faces)
    image = max(images, key=lambda im: len(YoloBackend(LOW_CONF, yolo_ws.onnx).detect_many([im])[0]))
    runs = [backend.detect(image, k / 30) for k in range(4)]
    assert len(runs[0]) and all(len(r) == len(runs[0]) and (r.track_id >= 0).all() for r in runs)
    assert all(sorted(r.track_id.tolist()) == sorted(runs[0].track_id.tolist()) for r in runs)
    # an audience region on the right half: nothing centred left of it is reported
    h, w = image.shape[:2]
    right = YoloBackend(PerceptionConfig(backend="yolo", yolo_conf=0.25, region=[[0.5, 0], [1, 0], [1, 1], [0.5, 1]]),
                        yolo_ws.onnx)
    for faces in (right.detect(image, 0.0), right.detect_many([image])[0]):
        assert ((faces.boxes[:, 0] + faces.boxes[:, 2]) / 2 >= w / 2).all()
