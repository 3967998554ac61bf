"""The shipped perception backend on real photographs (pcp_osc/data, public domain):
RetinaFace + mini-Xception on onnxruntime, no stand-ins."""

from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest

from pcp_bench.perception import match_counts
from pcp_osc.config import PerceptionConfig
from pcp_osc.data import crowd_frame, face_box, face_photos, photo, photo_names
from pcp_osc.emotions import EMOTIONS
from pcp_osc.perception import PerceptionError, make_backend
from pcp_osc.perception.default import DefaultBackend
from pcp_osc.perception.doctor import weights_report
from pcp_osc.perception.weights import CLASSIFIER_FILE, DETECTOR_FILE, weights_dir

JOY = EMOTIONS.index("joy")
NEUTRAL = EMOTIONS.index("neutral")


@pytest.fixture(scope="module")
def backend() -> DefaultBackend:
    return DefaultBackend(PerceptionConfig(threads=1))


def test_make_backend_gives_the_default_backend():
    b = make_backend(PerceptionConfig(threads=1))
    assert b.name == "default"


def test_astronaut_is_found_and_read_as_joy(backend):
    # scikit-image's original NASA portrait, not our crop: Eileen Collins smiles.
    from skimage import data

    image = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    faces = backend.detect_still(image)
    assert len(faces) == 1, faces.boxes
    x1, y1, x2, y2 = faces.boxes[0]
    # Her face: centred near (225, 115) in the 512x512 image, about 90 x 115 px.
    assert 200 < (x1 + x2) / 2 < 250 and 90 < (y1 + y2) / 2 < 140
    assert 80 < y2 - y1 < 150
    assert faces.detection_confidence[0] > 0.9
    assert faces.emotion_index[0] == JOY
    assert faces.scores[0, JOY] > 0.8


@pytest.mark.parametrize("name", ["obama_portrait.jpg", "trump_portrait.jpg"])
def test_smiling_official_portraits_read_as_joy(backend, name):
    faces = backend.detect_still(photo(name))
    assert len(faces) == 1
    assert faces.emotion_index[0] == JOY


@pytest.mark.parametrize("name", ["hopper.jpg", "biden.jpg"])
def test_unsmiling_portraits_are_not_read_as_joy(backend, name):
    # What the model does on these: neutral on top (with sadness/anger second), never joy.
    faces = backend.detect_still(photo(name))
    assert len(faces) == 1
    assert faces.emotion_index[0] == NEUTRAL
    assert faces.scores[0, JOY] < 0.2


def test_every_shipped_photo_has_its_face_where_faces_json_says(backend):
    for name in photo_names():
        faces = backend.detect_still(photo(name))
        found, false = match_counts(face_box(name)[None], faces.boxes)
        assert (found, false) == (1, 0), name


def test_20px_faces_in_a_1280x720_crowd_are_found_in_a_still(backend):
    image, boxes = crowd_frame(8, face_px_range=(20, 20), seed=1)
    assert image.shape == (720, 1280, 3) and len(boxes) == 8
    assert np.allclose(boxes[:, 3] - boxes[:, 1], 20, atol=1)
    faces = backend.detect_still(image)
    found, false = match_counts(boxes, faces.boxes)
    assert found >= 7 and false == 0


def test_20px_faces_are_found_on_live_video_by_the_sweep_and_followed():
    b = DefaultBackend(PerceptionConfig(threads=1, small_faces="sweep"))
    off = DefaultBackend(PerceptionConfig(threads=1, small_faces="off"))
    image, boxes = crowd_frame(6, face_px_range=(20, 22), seed=4)
    # Without the small-face search the detector cannot see 20 px faces at all.
    assert match_counts(boxes, off.detect(image).boxes)[0] <= 1
    # A live stream: the crowd sways a few pixels; every frame after the first is a
    # cheap sweep step, yet the faces stay found and are followed as they move.
    for k in range(40):
        dx = int(round(3 * np.sin(k / 4)))
        frame = np.roll(image, dx, axis=1)
        faces = b.detect(frame, k / 30)  # the video's clock: the same result on a slow or busy machine
        if k >= 30:
            found, false = match_counts(boxes + np.float32([dx, 0, dx, 0]), faces.boxes)
            assert found >= 5 and false == 0, (k, found, false)


def test_4k_frame_is_tiled_and_its_faces_found_once():
    cfg = PerceptionConfig(threads=1, small_faces="off", detect_side=1280, tile=True)
    b = DefaultBackend(cfg)
    image, boxes = crowd_frame(10, size=(3840, 2160), face_px_range=(80, 300), seed=2)
    assert max(image.shape) * cfg.detect_scale > cfg.detect_side  # so the frame is tiled
    faces = b.detect(image)
    found, false = match_counts(boxes, faces.boxes)
    assert found >= 9 and false == 0  # no face counted twice across tile overlaps


def test_batch_classification_equals_per_face_classification(backend):
    image, boxes = crowd_frame(12, face_px_range=(30, 140), seed=5)
    batch = backend.classify_boxes(image, boxes)
    one_by_one = np.concatenate([backend.classify_boxes(image, b[None]) for b in boxes])
    assert batch.shape == (12, 5)
    np.testing.assert_allclose(batch, one_by_one, atol=1e-5)


def test_detect_many_equals_detect_still_per_image(backend):
    images = [photo("astronaut_collins.jpg"), crowd_frame(5, face_px_range=(40, 120), seed=6)[0], photo("hopper.jpg")]
    many = backend.detect_many(images)
    for image, got in zip(images, many):
        want = backend.detect_still(image)
        np.testing.assert_allclose(got.boxes, want.boxes, atol=1e-3)
        np.testing.assert_allclose(got.scores, want.scores, atol=1e-5)


def test_score_rows_are_distributions_over_the_five(backend):
    image, boxes = crowd_frame(32, face_px_range=(24, 90), seed=7)
    faces = backend.detect_still(image)
    assert len(faces) >= 28
    assert faces.scores.shape == (len(faces), 5)
    np.testing.assert_allclose(faces.scores.sum(axis=1), 1.0, atol=1e-5)
    assert (faces.scores >= 0).all()


def test_face_photos_and_crowd_frames_are_valid_and_repeatable():
    heads = face_photos()
    assert len(heads) == len(photo_names()) >= 6
    assert all(h.dtype == np.uint8 and h.ndim == 3 and h.shape[0] == h.shape[1] for h in heads)
    a, ba = crowd_frame(8, seed=3)
    b, bb = crowd_frame(8, seed=3)
    assert np.array_equal(a, b) and np.array_equal(ba, bb)
    h = ba[:, 3] - ba[:, 1]
    assert ((h >= 19) & (h <= 161)).all()
    with pytest.raises(ValueError, match="face_px_range"):
        crowd_frame(2, face_px_range=(50, 10))


def test_grey_and_bgra_images_are_accepted(backend):
    bgr = photo("astronaut_collins.jpg")
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    bgra = cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA)
    assert len(backend.detect_still(gray)) == 1
    assert len(backend.detect_still(bgra)) == 1


@pytest.mark.parametrize(
    "bad, words",
    [
        (None, "None"),
        (np.zeros((0, 0, 3), np.uint8), "shape"),
        (np.zeros((10, 10, 3), np.float32), "dtype float32"),
        (np.zeros((10, 10, 5), np.uint8), "5 channels"),
        ("frame.jpg", "str"),
    ],
)
def test_bad_images_give_a_clear_error(backend, bad, words):
    with pytest.raises(ValueError, match=words):
        backend.detect(bad)


def _copy_weights(tmp_path, with_manifest=True):
    src = weights_dir()
    for name in (DETECTOR_FILE, CLASSIFIER_FILE) + (("manifest.json",) if with_manifest else ()):
        shutil.copy(src / name, tmp_path / name)
    return json.loads((src / "manifest.json").read_text())


def test_missing_weight_file_names_the_file_its_hash_and_the_fix(tmp_path):
    manifest = _copy_weights(tmp_path)
    (tmp_path / DETECTOR_FILE).unlink()
    expected = next(e["sha256"] for e in manifest["files"] if e["file"] == DETECTOR_FILE)
    with pytest.raises(PerceptionError) as err:
        DefaultBackend(PerceptionConfig(weights_dir=str(tmp_path)))
    msg = str(err.value)
    assert DETECTOR_FILE in msg and "missing" in msg and expected in msg and "tools/convert_weights.py" in msg


def test_corrupt_weight_file_is_refused_with_its_expected_hash(tmp_path):
    manifest = _copy_weights(tmp_path)
    data = bytearray((tmp_path / CLASSIFIER_FILE).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tmp_path / CLASSIFIER_FILE).write_bytes(bytes(data))
    expected = next(e["sha256"] for e in manifest["files"] if e["file"] == CLASSIFIER_FILE)
    with pytest.raises(PerceptionError) as err:
        DefaultBackend(PerceptionConfig(weights_dir=str(tmp_path)))
    msg = str(err.value)
    assert CLASSIFIER_FILE in msg and "damaged" in msg and expected in msg and "tools/convert_weights.py" in msg


def test_unloadable_weight_file_without_a_manifest_is_a_clear_error(tmp_path):
    _copy_weights(tmp_path, with_manifest=False)
    (tmp_path / DETECTOR_FILE).write_bytes(b"not an onnx model")
    with pytest.raises(PerceptionError, match=f"{DETECTOR_FILE}.*could not be loaded.*convert_weights"):
        DefaultBackend(PerceptionConfig(weights_dir=str(tmp_path)))


def test_weights_report_for_doctor(tmp_path):
    rows = {r["file"].split("/")[-1]: r for r in weights_report()}
    for name in (DETECTOR_FILE, CLASSIFIER_FILE):
        assert rows[name]["present"] and rows[name]["sha256_ok"] is True and rows[name]["size_bytes"] > 100_000
    _copy_weights(tmp_path)
    (tmp_path / CLASSIFIER_FILE).write_bytes(b"xx")
    (tmp_path / DETECTOR_FILE).unlink()
    rows = {r["file"].split("/")[-1]: r for r in weights_report(tmp_path)}
    assert rows[CLASSIFIER_FILE]["sha256_ok"] is False and "convert_weights" in rows[CLASSIFIER_FILE]["note"]
    assert rows[DETECTOR_FILE]["present"] is False and "missing" in rows[DETECTOR_FILE]["note"]


def test_a_small_face_hidden_for_two_frames_is_found_again_at_once():
    # Someone raises a hand in front of a far-away face: it is gone for two frames, and
    # must come back the frame it is visible again (not a full sweep later).
    b = DefaultBackend(PerceptionConfig(threads=1, small_faces="sweep"))
    image, boxes = crowd_frame(4, face_px_range=(20, 22), seed=9)
    hidden = image.copy()
    x1, y1, x2, y2 = boxes[0].astype(int)
    hidden[y1 - 5:y2 + 5, x1 - 5:x2 + 5] = 20
    counts = [match_counts(boxes, b.detect(f, k / 30).boxes)[0] for k, f in enumerate([image] * 5 + [hidden] * 2 + [image])]
    assert counts[:5] == [4] * 5
    assert counts[5:7] == [3, 3]
    assert counts[7] == 4
