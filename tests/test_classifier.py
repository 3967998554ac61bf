"""The expression classifier (pcp_osc/perception/classifier.py) on real photographs:
mirror averaging, and a classifier of the venue's own (bring your own ONNX) with its
class names and input spec.

The own model is built here with HSEmotion's ONNX signature -- one (1, 3, 224, 224)
RGB float input with ImageNet normalisation, one row of logits over seven classes
named and ordered as HSEmotion names them -- by wrapping the shipped FER2013
mini-Xception in ONNX operators that undo the normalisation, make the picture gray and
64 px, and reorder its classes. So it is a real expression model with real inference,
and whether pcp-osc frames, colours and normalises its input as the config says shows
in what it reads.
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
from pcp_osc.config import ClassifierConfig, ConfigError, PerceptionConfig, config_from_dict, load_config
from pcp_osc.emotions import EMOTIONS
from pcp_osc.perception import PerceptionError
from pcp_osc.perception.classifier import NOISE_FLOOR_SAMPLES, SHIPPED_SPEC
from pcp_osc.perception.default import DefaultBackend
from pcp_osc.perception.weights import CLASSIFIER_FILE, weights_dir

import onnx  # the dev extra installs it
from onnx import TensorProto, helper, numpy_helper

REPO = Path(__file__).resolve().parents[1]
HSEMOTION_CLASSES = ["Anger", "Disgust", "Fear", "Happiness", "Neutral", "Sadness", "Surprise"]
FER_ORDER = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
# What the photographs' provenance says of each subject (pcp_osc/data/PROVENANCE.md).
HUMAN_LABELS = {"astronaut_collins.jpg": "joy", "hopper.jpg": "neutral", "obama_portrait.jpg": "joy",
                "biden.jpg": "neutral", "trump_portrait.jpg": "joy"}


def hsemotion_like_model(path: Path, size_px: int = 224, batch: int | str = 1) -> Path:
    """An ONNX file with HSEmotion's signature around the shipped mini-Xception."""
    fer = onnx.load(str(weights_dir() / CLASSIFIER_FILE))
    g = fer.graph
    pool = 4  # resized to 256 px, then averaged 4x4: a 64 px picture without aliasing
    up = 64 * pool
    init = [
        numpy_helper.from_array(np.array(IMAGENET_STD, np.float32).reshape(1, 3, 1, 1), "byo_std"),
        numpy_helper.from_array(np.array(IMAGENET_MEAN, np.float32).reshape(1, 3, 1, 1), "byo_mean"),
        numpy_helper.from_array((np.array([0.299, 0.587, 0.114], np.float32) * 255).reshape(1, 3, 1, 1), "byo_gray_w"),
        numpy_helper.from_array(np.array([1, 1, up / size_px, up / size_px], np.float32), "byo_scales"),
        numpy_helper.from_array(np.array(0, np.float32), "byo_lo"),
        numpy_helper.from_array(np.array(255, np.float32), "byo_hi"),
        numpy_helper.from_array(np.array([-1, 64, 64], np.int64), "byo_shape"),
        numpy_helper.from_array(np.array(1e-7, np.float32), "byo_eps"),
        numpy_helper.from_array(np.array([FER_ORDER.index(k) for k in ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")], np.int64), "byo_order"),
    ]
    pre = [
        helper.make_node("Mul", ["input", "byo_std"], ["byo_a"]),
        helper.make_node("Add", ["byo_a", "byo_mean"], ["byo_rgb01"]),
        helper.make_node("Conv", ["byo_rgb01", "byo_gray_w"], ["byo_gray"]),
        helper.make_node("Resize", ["byo_gray", "", "byo_scales"], ["byo_up"], mode="linear"),
        helper.make_node("AveragePool", ["byo_up"], ["byo_small"], kernel_shape=[pool, pool], strides=[pool, pool]),
        helper.make_node("Round", ["byo_small"], ["byo_round"]),
        helper.make_node("Clip", ["byo_round", "byo_lo", "byo_hi"], ["byo_clip"]),
        helper.make_node("Cast", ["byo_clip"], ["byo_u8"], to=TensorProto.UINT8),
        helper.make_node("Reshape", ["byo_u8", "byo_shape"], [g.input[0].name]),
    ]
    post = [
        helper.make_node("Add", [g.output[0].name, "byo_eps"], ["byo_p"]),
        helper.make_node("Log", ["byo_p"], ["byo_logp"]),
        helper.make_node("Gather", ["byo_logp", "byo_order"], ["logits"], axis=1),
    ]
    graph = helper.make_graph(
        pre + list(g.node) + post, "hsemotion_like",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, 3, size_px, size_px])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, len(HSEMOTION_CLASSES)])],
        list(g.initializer) + init,
    )
    model = helper.make_model(graph, opset_imports=list(fer.opset_import))
    model.ir_version = fer.ir_version
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def own(model: Path, **keys) -> PerceptionConfig:
    table = {"model": str(model), "classes": HSEMOTION_CLASSES, "size_px": 224, "colour": "rgb",
             "mean": IMAGENET_MEAN, "std": IMAGENET_STD, "margin": SHIPPED_SPEC.margin, "square": "expand"}
    table.update(keys)
    return config_from_dict({"perception": {"threads": 1, "classifier": table}}).perception


def exact(cfg: PerceptionConfig) -> PerceptionConfig:
    """The config without light normalisation and noise floor: both work at the model's own
    input size (the noise is drawn per input pixel), so two models of different input sizes
    would see different noise and blur."""
    cfg.classifier.noise_floor = 0.0
    cfg.classifier.light = "off"
    return cfg


@pytest.fixture(scope="module")
def hse_model(tmp_path_factory) -> Path:
    return hsemotion_like_model(tmp_path_factory.mktemp("byo") / "enet_like_7.onnx")


@pytest.fixture(scope="module")
def shipped_backend() -> DefaultBackend:
    return DefaultBackend(PerceptionConfig(threads=1))


def _reading(backend, name):
    return backend.classify_boxes(shipped.photo(name), shipped.face_box(name)[None])[0]


# ---------------------------------------------------------------- mirror averaging


def test_a_face_reads_the_same_as_its_mirror_image(shipped_backend):
    clf = shipped_backend.classifier
    assert clf.mirror  # the default
    for name in shipped.photo_names():
        crops = clf.crops(shipped.photo(name), shipped.face_box(name)[None])
        assert np.allclose(clf.scores(crops), clf.scores(crops[:, :, ::-1]), atol=1e-6), name


def test_mirror_averaging_is_the_mean_of_the_face_and_its_mirror_image(tmp_path):
    # Without averaging the model does read a face and its mirror image differently (so
    # the averaging matters), and with it the score is their mean, from one batch.
    single = DefaultBackend(PerceptionConfig(threads=1, classifier=ClassifierConfig(mirror=False))).classifier
    both = DefaultBackend(PerceptionConfig(threads=1, classifier=ClassifierConfig(mirror=True))).classifier
    images = [shipped.photo(n) for n in shipped.photo_names()]
    crops = np.concatenate([single.crops(im, shipped.face_box(n)[None]) for im, n in zip(images, shipped.photo_names())])
    a, b = single.scores(crops), single.scores(np.ascontiguousarray(crops[:, :, ::-1]))
    assert np.abs(a - b).max() > 0.05
    assert np.allclose(both.scores(crops), (a + b) / 2, atol=1e-5)
    calls = []
    real_run = both.session.run
    both.session.run = lambda out, feed: calls.append(len(next(iter(feed.values())))) or real_run(out, feed)
    both.scores(crops)
    # the faces and their mirror images, each with every noise-floor pattern: one batch
    assert calls == [2 * NOISE_FLOOR_SAMPLES * len(crops)]


def test_one_version_at_a_time_pools_to_the_full_reading(shipped_backend):
    # Live video reads a followed face one version (crop or mirror image, with one noise
    # pattern) per reading and pools them over its track: the mean of the versions read
    # one at a time is the full reading a still gets, and the versions do differ (so
    # pooling them is what makes the reading steady, and a single one is not enough).
    clf = shipped_backend.classifier
    assert clf.n_versions == 2 * NOISE_FLOOR_SAMPLES
    crops = np.concatenate([clf.crops(shipped.photo(n), shipped.face_box(n)[None]) for n in shipped.photo_names()])
    full = clf.scores(crops)
    one_at_a_time = [clf.scores(crops, np.full(len(crops), k)) for k in range(clf.n_versions)]
    assert np.allclose(np.mean(one_at_a_time, axis=0), full, atol=1e-5)
    assert max(np.abs(v - full).max() for v in one_at_a_time) > 0.01
    mixed = np.arange(len(crops)) % (clf.n_versions + 1) - 1  # -1 (full) and each version, in one batch
    expect = np.stack([full[i] if k < 0 else one_at_a_time[k][i] for i, k in enumerate(mixed)])
    assert np.allclose(clf.scores(crops, mixed), expect, atol=1e-5)
    with pytest.raises(ValueError, match="versions must be -1"):
        clf.scores(crops, np.full(len(crops), clf.n_versions))


def test_a_followed_face_costs_one_pass_a_reading_and_reads_as_a_still(tmp_path):
    # A real portrait as a 30 fps live picture for 1 s: the new face gets the full
    # reading at once (every version, as a still), then one classifier pass per reading
    # (reread_s), and what is reported stays the still's reading.
    backend = DefaultBackend(PerceptionConfig(threads=1))
    clf = backend.classifier
    name = "obama_portrait.jpg"
    image = shipped.photo(name)
    rows = []
    real_run = clf.session.run
    clf.session.run = lambda out, feed: rows.append(len(next(iter(feed.values())))) or real_run(out, feed)
    first = backend.detect(image, 0.0)
    assert len(first) == 1 and rows == [clf.n_versions]
    still = clf.classify(image, first.boxes)[0]
    assert np.allclose(first.scores[0], still, atol=1e-5)
    rows.clear()
    for k in range(1, 31):
        faces = backend.detect(image, k / 30)
        assert len(faces) == 1
    readings = int(1.0 / backend.cfg.reread_s)
    assert readings - 1 <= sum(rows) <= readings + 1 and max(rows) == 1  # one pass a reading, not n_versions
    assert EMOTIONS[int(faces.scores[0].argmax())] == "joy"
    assert np.abs(faces.scores[0] - clf.classify(image, faces.boxes)[0]).max() < 0.05


def test_smiles_stay_joy_with_mirror_averaging_and_light_normalisation(shipped_backend):
    for name, label in HUMAN_LABELS.items():
        got = EMOTIONS[int(_reading(shipped_backend, name).argmax())]
        assert (got == "joy") == (label == "joy"), (name, got)


# ---------------------------------------------------------------- bring your own classifier


def test_an_own_model_with_hsemotion_signature_reads_real_photographs(hse_model):
    backend = DefaultBackend(exact(own(hse_model)))
    reference = DefaultBackend(exact(PerceptionConfig(threads=1)))
    assert backend.classifier.spec.size_px == 224 and backend.classifier.spec.colour == "rgb"
    for name in shipped.photo_names():
        mine, ref = _reading(backend, name), _reading(reference, name)
        assert abs(mine.sum() - 1) < 1e-4
        # the same network behind another input: the same reading, up to resampling
        assert np.abs(mine - ref).max() < 0.15, (name, mine, ref)
        if name in HUMAN_LABELS:
            assert (EMOTIONS[int(mine.argmax())] == "joy") == (HUMAN_LABELS[name] == "joy"), name
    # a whole photograph through detect_still: found and read through the own model
    faces = backend.detect_still(shipped.photo("obama_portrait.jpg"))
    assert len(faces) == 1 and EMOTIONS[faces.emotion_index[0]] == "joy"


def test_the_input_spec_is_what_the_model_sees(hse_model, shipped_backend):
    # Feeding BGR to a model that wants RGB, or leaving out its normalisation, changes
    # what it reads: the spec is applied, not ignored.
    right = DefaultBackend(exact(own(hse_model)))
    wrong_order = DefaultBackend(exact(own(hse_model, colour="bgr")))
    no_norm = DefaultBackend(exact(own(hse_model, mean=[], std=[])))
    def change(other):
        return max(np.abs(_reading(other, n) - _reading(right, n)).max() for n in shipped.photo_names())

    assert change(wrong_order) > 0.02
    assert change(no_norm) > 0.2


def test_a_fixed_batch_of_one_still_reads_every_face_of_a_crowd(hse_model, tmp_path):
    dynamic = hsemotion_like_model(tmp_path / "dyn.onnx", batch="n")
    one, many = DefaultBackend(own(hse_model)), DefaultBackend(own(dynamic))
    image, boxes = shipped.crowd_frame(6, face_px_range=(60, 110), seed=3)
    a, b = one.classify_boxes(image, boxes), many.classify_boxes(image, boxes)
    assert a.shape == (6, 5) and np.allclose(a, b, atol=1e-5)


def test_size_and_colour_are_read_from_the_model_when_left_out(hse_model):
    backend = DefaultBackend(own(hse_model, size_px=0, colour="auto"))
    assert (backend.classifier.spec.size_px, backend.classifier.spec.colour) == (224, "rgb")


def test_detect_command_with_an_own_classifier_in_the_config(hse_model, tmp_path):
    cfg = tmp_path / "venue.toml"
    cfg.write_text(
        "[perception.classifier]\n"
        f"model = {json.dumps(str(hse_model))}\n"
        f"classes = {json.dumps(HSEMOTION_CLASSES)}\n"
        "size_px = 224\ncolour = \"rgb\"\n"
        f"mean = {IMAGENET_MEAN}\nstd = {IMAGENET_STD}\n"
    )
    assert load_config(cfg).perception.classifier.model == str(hse_model)
    image = str(shipped.photo_path("trump_portrait.jpg"))
    r = subprocess.run([sys.executable, "-m", "pcp_osc", "detect", "--json", "--config", str(cfg), image],
                       capture_output=True, text=True, timeout=300, cwd=REPO)
    assert r.returncode == 0, r.stderr
    faces = json.loads(r.stdout.splitlines()[0])["faces"]
    assert len(faces) == 1 and faces[0]["emotion"] == "joy"


# ---------------------------------------------------------------- what is wrong, said clearly


def test_a_class_that_names_no_emotion_is_refused_at_config_time(hse_model):
    with pytest.raises(ConfigError) as e:
        own(hse_model, classes=["Anger", "Disgust", "Fear", "Happiness", "Neutral", "Sadness", "Boredom"])
    msg = str(e.value)
    assert "perception.classifier.classes" in msg and "'Boredom'" in msg and "class 6" in msg
    assert "joy, anxiety, anger, sadness, neutral" in msg


def test_own_model_keys_without_a_model_are_refused():
    with pytest.raises(ConfigError, match=r"perception\.classifier\.size_px .*model is empty"):
        config_from_dict({"perception": {"classifier": {"size_px": 224}}})
    with pytest.raises(ConfigError, match=r"perception\.classifier\.model = 'x\.onnx' needs perception\.classifier\.classes"):
        config_from_dict({"perception": {"classifier": {"model": "x.onnx"}}})
    with pytest.raises(ConfigError, match=r"perception\.classifier\.mean .* must have 1 value or one per channel \(3 for rgb\)"):
        config_from_dict({"perception": {"classifier": {"model": "x.onnx", "classes": ["joy"], "colour": "rgb", "mean": [0.5, 0.5]}}})
    with pytest.raises(ConfigError, match=r"perception\.classifier\.square = 'crop' is not allowed; choose one of: expand, pad, stretch"):
        config_from_dict({"perception": {"classifier": {"square": "crop"}}})
    with pytest.raises(ConfigError, match=r"unknown key 'perception\.classifier\.input_size'"):
        config_from_dict({"perception": {"classifier": {"input_size": 224}}})


def test_a_model_that_does_not_fit_its_spec_is_named_at_start_up(hse_model, tmp_path):
    with pytest.raises(PerceptionError, match=r"takes 224x224 images but perception\.classifier\.size_px = 260; set size_px = 224"):
        DefaultBackend(own(hse_model, size_px=260))
    with pytest.raises(PerceptionError, match=r"takes 3-channel images but perception\.classifier\.colour = 'gray'"):
        DefaultBackend(own(hse_model, colour="gray", mean=[0.5], std=[0.25]))
    with pytest.raises(PerceptionError, match=r"has 7 output classes but perception\.classifier\.classes names 5"):
        DefaultBackend(own(hse_model, classes=["anger", "fear", "joy", "neutral", "sadness"]))
    with pytest.raises(PerceptionError, match=r"perception\.classifier\.model = '.*nope\.onnx': no such file"):
        DefaultBackend(own(tmp_path / "nope.onnx"))
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(PerceptionError, match=r"junk\.onnx' could not be loaded by onnxruntime"):
        DefaultBackend(own(junk))


def test_config_check_loads_an_own_classifier_against_its_spec(hse_model, tmp_path):
    cfg = tmp_path / "venue.toml"
    cfg.write_text(
        "[perception.classifier]\n"
        f"model = {json.dumps(str(hse_model))}\n"
        f"classes = {json.dumps(HSEMOTION_CLASSES)}\n"
        "size_px = 260\n"
    )
    r = subprocess.run([sys.executable, "-m", "pcp_osc", "config", "--check", str(cfg)],
                       capture_output=True, text=True, timeout=120, cwd=REPO)
    assert r.returncode == 2
    assert "configuration error: enet_like_7.onnx takes 224x224 images but perception.classifier.size_px = 260" in r.stderr
    cfg.write_text(cfg.read_text().replace("size_px = 260", "size_px = 224"))
    r = subprocess.run([sys.executable, "-m", "pcp_osc", "config", "--check", str(cfg)],
                       capture_output=True, text=True, timeout=120, cwd=REPO)
    assert r.returncode == 0 and r.stdout.strip().endswith(": ok"), r.stderr
