"""The expression classifier: face boxes in a frame -> (n, 5) emotion scores.

    classifier = ExpressionClassifier.from_config(cfg.perception.classifier, session_options)
    scores = classifier.classify(image_bgr, boxes_xyxy)      # (n, 5), rows sum to 1
    crops = classifier.crops(image_bgr, boxes_xyxy)          # what the model sees (uint8)
    scores = classifier.scores(crops)                        # many frames' crops, one batch

What a caller may rely on:
- every face given is classified in one batch (``scores`` of a concatenation of
  several frames' ``crops`` is one run too); with ``mirror`` each crop and its mirror
  image go through the same batch and their probabilities are averaged, so a face reads
  the same whichever way it is turned;
- each crop is framed by the model's :class:`InputSpec` (size, colour, margin, how it
  is made square) and, where the frame ends, padded with the mean of its bottom rows;
- each crop's light is normalised (``light``, see :func:`normalise_light`) before the
  model sees it: stage washes, dimming and colour casts change the reading less;
- rows of ``scores`` sum to 1 over the five emotions: the model's classes are summed
  into them by :func:`pcp_osc.emotions.merge_matrix`.

The shipped model is fer's FER2013 mini-Xception (64x64 gray). Any other ONNX expression
model runs with its class names and its input spec from ``[perception.classifier]``
(e.g. HSEmotion's exports: 224 px RGB, ImageNet mean and std); see README "Bring your
own classifier".
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from ..emotions import FER2013_CLASSES, N_EMOTIONS, UnknownEmotion, merge_matrix
from . import PerceptionError

log = logging.getLogger(__name__)

# fer's own crop (fer.FER.detect_emotions): the Haar box made square, 10 px added on
# each side, resized to 64x64 gray. Haar boxes measured on the shipped photographs are
# 0.88x the RetinaFace box's longer side (0.81..1.01), and fer's faces are typically
# ~100 px, where 10 px is 10%: so the crop side is 0.88 * 1.2 = 1.06x the box.
FER_INPUT_PX = 64
HAAR_PER_RETINA_SIDE = 0.88
FER_MARGIN_FRACTION = 0.10  # each side, of the Haar box

COLOURS = ("gray", "rgb", "bgr")
SQUARE_MODES = ("expand", "pad", "stretch")
OUTPUTS = ("auto", "probabilities", "logits")
LIGHT_MODES = ("off", "equalize", "clahe", "stretch")
# CLAHE on a face crop: one tile (a global, clip-limited equalisation) keeps the face's
# own shading (which side is lit, the mouth's shadow) that 4x4 tiles flatten.
CLAHE_CLIP = 2.0
CLAHE_TILES = (1, 1)
STRETCH_PERCENTILES = (0.5, 99.5)
# A crop shrunk to the model's size is first blurred with this sigma per pixel of
# shrink (area averaging alone leaves a dark room's sensor noise in).
ANTIALIAS_SIGMA = 0.8
# Noise floor: every crop is also read with these many fixed noise patterns added (and
# the readings averaged), so the model's answer no longer hinges on the fine grain that a
# dark, noisy, compressed camera picture changes. Measured on the real scenes under
# stage light (pcp_bench/stagelight.py): 2 patterns of sigma 10 raised agreement with
# normal light from 55-72% to 78-90%; more patterns gave no more.
NOISE_FLOOR_SAMPLES = 2
NOISE_FLOOR_SEED = 1234
MAX_OWN_BATCH = 64  # faces per run of a model with a dynamic batch


@dataclass(frozen=True)
class InputSpec:
    """How a face becomes the model's input.

    size_px: the input's side (square). colour: gray, rgb or bgr. mean, std: per channel
    (or one for all), on pixels scaled to 0..1; a float input gets (x / 255 - mean) / std,
    a uint8 input the pixels as they are (its graph normalises). margin: added to each
    side of the face box, as a share of its longer side. square: ``expand`` takes a
    square of the frame around the face, ``pad`` takes the box and pads it to a square,
    ``stretch`` resizes the box as it is.
    """

    size_px: int = FER_INPUT_PX
    colour: str = "gray"
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    margin: float = 0.0
    square: str = "expand"

    def __post_init__(self) -> None:
        if self.colour not in COLOURS:
            raise ValueError(f"input colour {self.colour!r} not understood; allowed: {', '.join(COLOURS)}")
        if self.square not in SQUARE_MODES:
            raise ValueError(f"input square {self.square!r} not understood; allowed: {', '.join(SQUARE_MODES)}")
        if not 8 <= self.size_px <= 1024:
            raise ValueError(f"input size_px {self.size_px} is out of range; allowed 8..1024")
        for key in ("mean", "std"):
            if len(getattr(self, key)) not in (1, self.channels):
                raise ValueError(f"input {key} {list(getattr(self, key))} must have 1 or {self.channels} values for {self.colour}")
        if any(s <= 0 for s in self.std):
            raise ValueError(f"input std {list(self.std)} must be above 0")

    @property
    def channels(self) -> int:
        return 1 if self.colour == "gray" else 3


# The shipped fer mini-Xception: a square 1.06x the RetinaFace box, 64x64 gray, uint8.
SHIPPED_SPEC = InputSpec(
    size_px=FER_INPUT_PX,
    colour="gray",
    margin=(HAAR_PER_RETINA_SIDE * (1 + 2 * FER_MARGIN_FRACTION) - 1) / 2,
    square="expand",
)


class ExpressionClassifier:
    """An ONNX expression model, its class names and its input spec."""

    def __init__(self, session, class_names: Sequence[str], spec: InputSpec, *, name: str = "classifier",
                 mirror: bool = True, light: str = "stretch", noise_floor: float = 10.0, output: str = "auto") -> None:
        if light not in LIGHT_MODES:
            raise PerceptionError(f"perception.classifier.light = {light!r} not understood; allowed: {', '.join(LIGHT_MODES)}")
        if output not in OUTPUTS:
            raise PerceptionError(f"perception.classifier.output = {output!r} not understood; allowed: {', '.join(OUTPUTS)}")
        self.session = session
        self.spec = spec
        self.name = name
        self.mirror = bool(mirror)
        self.light = light
        self.noise_floor = float(noise_floor)
        self.output = output
        self.class_names = list(class_names)
        try:
            self.merge = merge_matrix(self.class_names, f"{name} classes")
        except UnknownEmotion as e:
            raise PerceptionError(f"{e}; name each class of the model by one of those (perception.classifier.classes)") from e
        inp = session.get_inputs()[0]
        self.input_name = inp.name
        self._layout, self._dtype, self._batch = _input_layout(inp, spec, name)
        out = session.get_outputs()[0]
        n_out = out.shape[-1] if out.shape and isinstance(out.shape[-1], int) else None
        if n_out is not None and n_out != len(self.class_names):
            raise PerceptionError(
                f"{name} has {n_out} output classes but perception.classifier.classes names {len(self.class_names)} "
                f"({', '.join(self.class_names)}); list one name per output, in the model's order"
            )
        self._mean = np.asarray(spec.mean, np.float32)
        self._std = np.asarray(spec.std, np.float32)
        self._clahe = cv2.createCLAHE(CLAHE_CLIP, CLAHE_TILES)
        self._noise = _noise_fields(spec.size_px, self.noise_floor) if self.noise_floor > 0 else None

    @classmethod
    def shipped(cls, path: Path, opts, *, mirror: bool = True, light: str = "stretch",
                noise_floor: float = 10.0) -> "ExpressionClassifier":
        """The shipped FER2013 mini-Xception (weights/fer_mini_xception.onnx)."""
        import onnxruntime as ort

        return cls(onnx_session(ort, path, opts), FER2013_CLASSES, SHIPPED_SPEC, name="fer_mini_xception",
                   mirror=mirror, light=light, noise_floor=noise_floor, output="probabilities")

    @classmethod
    def from_config(cls, ccfg, shipped_path: Path, opts) -> "ExpressionClassifier":
        """The model ``[perception.classifier]`` names (its ``model``), else the shipped one."""
        if ccfg is None:
            return cls.shipped(shipped_path, opts)
        if not ccfg.model:
            return cls.shipped(shipped_path, opts, mirror=ccfg.mirror, light=ccfg.light, noise_floor=ccfg.noise_floor)
        import onnxruntime as ort

        path = Path(ccfg.model).expanduser()
        if not path.is_file():
            raise PerceptionError(f"perception.classifier.model = {ccfg.model!r}: no such file (an ONNX expression model)")
        try:
            session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own types
            raise PerceptionError(
                f"perception.classifier.model = {ccfg.model!r} could not be loaded by onnxruntime "
                f"({e.__class__.__name__}: {str(e)[:200]}); it must be an ONNX model file"
            ) from e
        if not ccfg.classes:
            raise PerceptionError(
                f"perception.classifier.classes is empty: list the class names of {path.name} in its output order, "
                f"e.g. classes = [\"anger\", \"disgust\", \"fear\", \"happiness\", \"neutral\", \"sadness\", \"surprise\"]"
            )
        spec = _own_spec(ccfg, session, path.name)
        clf = cls(session, ccfg.classes, spec, name=path.name, mirror=ccfg.mirror, light=ccfg.light,
                  noise_floor=ccfg.noise_floor, output=ccfg.output)
        log.info("expression classifier: %s (%d px %s, classes %s)", path.name, spec.size_px, spec.colour, ", ".join(ccfg.classes))
        return clf

    # ------------------------------------------------------------------ public

    def classify(self, image: np.ndarray, boxes: np.ndarray, versions: np.ndarray | None = None) -> np.ndarray:
        """(n, 5) scores for the faces at ``boxes`` (xyxy px) in a BGR uint8 frame (a full
        reading each, or the ``versions`` given: see :meth:`scores`)."""
        if not len(boxes):
            return np.zeros((0, N_EMOTIONS), np.float32)
        return self.scores(self.crops(image, boxes), versions)

    def crops(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """(n, S, S) gray or (n, S, S, 3) colour uint8 crops as the model sees them (framed
        by the spec, light normalised); where a crop leaves the frame it is padded with the
        mean of the bottom rows, as fer pads."""
        spec = self.spec
        n, size = len(boxes), spec.size_px
        colour_crops = np.empty((n, size, size, 3), np.uint8)
        h, w = image.shape[:2]
        pad_value = tuple(float(v) for v in image[-2:].reshape(-1, 3).mean(0)) if n else (0.0,) * 3
        for i, box in enumerate(boxes):
            x0, y0, x1, y1 = _crop_window(box, spec)
            cx0, cy0, cx1, cy1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
            if cx1 <= cx0 or cy1 <= cy0:  # a box wholly outside the frame
                patch = np.empty((y1 - y0, x1 - x0, 3), np.uint8)
                patch[:] = np.round(pad_value).astype(np.uint8)
            else:
                patch = image[cy0:cy1, cx0:cx1]
                if (cx0, cy0, cx1, cy1) != (x0, y0, x1, y1):
                    patch = cv2.copyMakeBorder(patch, cy0 - y0, y1 - cy1, cx0 - x0, x1 - cx1,
                                               cv2.BORDER_CONSTANT, value=pad_value)
            if spec.square == "pad":
                patch = _pad_square(patch, pad_value)
            shrink = max(patch.shape[:2]) / size
            if shrink > 1 and self.light != "off":
                if shrink > 2:  # area-average down to twice the size first: the blur then costs little
                    patch = cv2.resize(patch, (2 * size, 2 * size), interpolation=cv2.INTER_AREA)
                    shrink = 2.0
                patch = cv2.GaussianBlur(patch, (0, 0), ANTIALIAS_SIGMA * shrink)
            interp = cv2.INTER_AREA if shrink > 1 else cv2.INTER_LINEAR
            colour_crops[i] = cv2.resize(patch, (size, size), interpolation=interp)
        return self._model_colour(colour_crops)

    @property
    def n_versions(self) -> int:
        """How many versions of a crop one full reading averages: the crop and (``mirror``)
        its mirror image, each (noise floor) with every noise pattern added."""
        return (2 if self.mirror else 1) * (len(self._noise) if self._noise is not None else 1)

    def scores(self, crops: np.ndarray, versions: np.ndarray | None = None) -> np.ndarray:
        """(n, 5) scores of crops made by :meth:`crops`, in one batch.

        A full reading (``versions`` None, or -1 for a crop) averages the probabilities of
        all :attr:`n_versions` versions of the crop: with ``mirror`` the crop and its mirror
        image, with a noise floor each of those with every noise pattern added. A reading
        of version ``k`` (0 <= k < n_versions) runs that one version only: live video reads
        a followed face one version at a time, in turn, and pools them over its track
        (:meth:`LiveSearch.readings`), so a face costs one pass per reading, not four.
        Versions go crop, mirror, crop, mirror, ... with the noise patterns in turn."""
        n = len(crops)
        if not n:
            return np.zeros((0, N_EMOTIONS), np.float32)
        which = np.full(n, -1, np.int64) if versions is None else np.asarray(versions, np.int64).reshape(n)
        if ((which < -1) | (which >= self.n_versions)).any():
            raise ValueError(f"classifier versions must be -1 (all) or 0..{self.n_versions - 1}")
        batches, owners = [], []
        for k in range(self.n_versions):
            idx = np.flatnonzero((which < 0) | (which == k))
            if len(idx):
                batches.append(self._version(crops[idx], k))
                owners.append(idx)
        owner = np.concatenate(owners)
        probs = self._probabilities(self._run(self._tensor(np.concatenate(batches))))
        total = np.zeros((n, probs.shape[1]), np.float64)
        np.add.at(total, owner, probs)
        probs = (total / np.bincount(owner, minlength=n)[:, None]).astype(np.float32)
        scores = probs @ self.merge
        scores /= np.maximum(scores.sum(axis=1, keepdims=True), 1e-12)
        return scores

    def _version(self, crops: np.ndarray, k: int) -> np.ndarray:
        """Version ``k`` of crops (see :meth:`scores`)."""
        sides = 2 if self.mirror else 1
        out = crops[:, :, ::-1] if k % sides else crops
        if self._noise is not None:
            out = _add_noise(out, self._noise[k // sides])
        return out

    # ------------------------------------------------------------------ steps

    def _model_colour(self, crops_bgr: np.ndarray) -> np.ndarray:
        """BGR crops -> light-normalised crops in the model's colour."""
        colour = self.spec.colour
        out = np.empty(crops_bgr.shape[:3] if colour == "gray" else crops_bgr.shape, np.uint8)
        for i, c in enumerate(crops_bgr):
            out[i] = normalise_light(c, self.light, colour, self._clahe)
        return out

    def _tensor(self, crops: np.ndarray) -> np.ndarray:
        batch = np.ascontiguousarray(crops)
        if self._dtype == np.uint8:
            x = batch
        else:
            x = ((batch.astype(np.float32) / 255.0 - self._mean) / self._std).astype(self._dtype)
        if self._layout == "nhw":
            return np.ascontiguousarray(x)
        if x.ndim == 3:
            x = x[..., None]
        if self._layout == "nchw":
            x = x.transpose(0, 3, 1, 2)
        return np.ascontiguousarray(x)

    def _run(self, x: np.ndarray) -> np.ndarray:
        step = self._batch or MAX_OWN_BATCH
        try:
            outs = [self.session.run(None, {self.input_name: x[i:i + step]})[0] for i in range(0, len(x), step)]
        except Exception as e:  # onnxruntime's own types: a shape or type the model refuses
            raise PerceptionError(f"{self.name} refused its input {x.shape[1:]} {x.dtype}: {str(e)[:300]}") from e
        out = np.concatenate(outs).astype(np.float32).reshape(len(x), -1)
        if out.shape[1] != len(self.class_names):
            raise PerceptionError(
                f"{self.name} returned {out.shape[1]} scores per face but perception.classifier.classes names "
                f"{len(self.class_names)} ({', '.join(self.class_names)}); list one name per output, in the model's order"
            )
        return out

    def _probabilities(self, out: np.ndarray) -> np.ndarray:
        logits = self.output == "logits" or (
            self.output == "auto" and (out.min() < 0 or np.abs(out.sum(axis=1) - 1).max() > 1e-3)
        )
        if not logits:
            return out
        e = np.exp(out - out.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)


# ---------------------------------------------------------------------- light


def normalise_light(crop_bgr: np.ndarray, light: str, colour: str = "gray", clahe=None) -> np.ndarray:
    """One face crop (BGR uint8) with its light normalised, in ``colour``.

    ``off``: as it is. ``equalize``: the luminance's histogram equalised (dim, washed-out
    or colour-cast faces regain the contrast the model was trained on). ``clahe``: the
    same with a clip limit (CLAHE, one tile). ``stretch``: the luminance's 0.5..99.5
    percentiles stretched to 0..255. A colour model gets its chroma back unchanged.
    """
    if colour == "gray":
        y = cv2.cvtColor(crop_bgr, cv2.COLOR_BGR2GRAY)
        return _equalise(y, light, clahe)
    if light == "off":
        return cv2.cvtColor(crop_bgr, cv2.COLOR_BGR2RGB) if colour == "rgb" else crop_bgr
    ycc = cv2.cvtColor(crop_bgr, cv2.COLOR_BGR2YCrCb)
    ycc[..., 0] = _equalise(np.ascontiguousarray(ycc[..., 0]), light, clahe)
    return cv2.cvtColor(ycc, cv2.COLOR_YCrCb2RGB if colour == "rgb" else cv2.COLOR_YCrCb2BGR)


def _equalise(y: np.ndarray, light: str, clahe) -> np.ndarray:
    if light == "equalize":
        return cv2.equalizeHist(y)
    if light == "clahe":
        return (clahe or cv2.createCLAHE(CLAHE_CLIP, CLAHE_TILES)).apply(y)
    if light == "stretch":
        lo, hi = np.percentile(y, STRETCH_PERCENTILES)
        gain = 255.0 / max(float(hi - lo), 1.0)
        return cv2.convertScaleAbs(y, alpha=gain, beta=-float(lo) * gain)
    return y


def _noise_fields(size_px: int, sigma: float) -> list[np.ndarray]:
    """The fixed noise patterns of the noise floor (int16, size x size): the same every
    run, so a picture always reads the same."""
    rng = np.random.default_rng(NOISE_FLOOR_SEED)
    return [np.round(rng.normal(0.0, sigma, (size_px, size_px))).astype(np.int16) for _ in range(NOISE_FLOOR_SAMPLES)]


def _add_noise(crops: np.ndarray, field: np.ndarray) -> np.ndarray:
    """uint8 crops (n, S, S) or (n, S, S, C) with a noise pattern added (to every channel), clipped."""
    f = field if crops.ndim == 3 else field[:, :, None]
    return np.clip(crops.astype(np.int16) + f, 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------- helpers


def onnx_session(ort, path: Path, opts):
    try:
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own types for a damaged file
        raise PerceptionError(
            f"weight file {path} could not be loaded by onnxruntime ({e.__class__.__name__}: {str(e)[:200]}); "
            f"rebuild it with: python tools/convert_weights.py"
        ) from e


_ONNX_DTYPES = {"tensor(uint8)": np.uint8, "tensor(float)": np.float32, "tensor(float16)": np.float16,
                "tensor(double)": np.float64}


def _input_layout(inp, spec: InputSpec, name: str) -> tuple[str, type, int | None]:
    """(layout nhw/nhwc/nchw, dtype, fixed batch or None) of a model input, checked against the spec."""
    dtype = _ONNX_DTYPES.get(inp.type)
    if dtype is None:
        raise PerceptionError(f"{name}: input {inp.name!r} is {inp.type}; allowed: uint8, float, float16 or double images")
    shape = list(inp.shape)
    fixed = lambda d: d if isinstance(d, int) and d > 0 else None  # noqa: E731
    if len(shape) == 3:
        layout, channels, hw = "nhw", 1, shape[1:3]
    elif len(shape) == 4 and fixed(shape[1]) in (1, 3) and fixed(shape[3]) not in (1, 3):
        layout, channels, hw = "nchw", shape[1], shape[2:4]
    elif len(shape) == 4 and fixed(shape[3]) in (1, 3):
        layout, channels, hw = "nhwc", shape[3], shape[1:3]
    else:
        raise PerceptionError(
            f"{name}: input {inp.name!r} has shape {shape}; expected images (N, C, H, W) or (N, H, W, C) with C = 1 or 3, "
            f"or (N, H, W) gray"
        )
    if channels != spec.channels:
        raise PerceptionError(
            f"{name} takes {channels}-channel images but perception.classifier.colour = {spec.colour!r}; "
            f"use {'gray' if channels == 1 else 'rgb or bgr'}"
        )
    sizes = {fixed(d) for d in hw} - {None}
    if sizes and sizes != {spec.size_px}:
        raise PerceptionError(
            f"{name} takes {hw[0]}x{hw[1]} images but perception.classifier.size_px = {spec.size_px}; "
            f"set size_px = {max(sizes)} (or 0 to read it from the model)"
        )
    return layout, dtype, fixed(shape[0])


def _own_spec(ccfg, session, name: str) -> InputSpec:
    """The InputSpec of an own model: the config's keys, with size and colour read from
    the model where the config leaves them at 0 / auto."""
    inp = session.get_inputs()[0]
    shape = list(inp.shape)
    ints = [d if isinstance(d, int) and d > 0 else None for d in shape]
    channels = 1 if len(shape) == 3 else (ints[1] if ints[1] in (1, 3) else ints[3] if len(shape) == 4 else None)
    hw = shape[1:3] if len(shape) == 3 or channels == ints[3] else shape[2:4]
    size = ccfg.size_px or next((d for d in hw if isinstance(d, int) and d > 0), 0)
    if not size:
        raise PerceptionError(f"{name} does not fix its input size (shape {shape}); set perception.classifier.size_px")
    colour = ccfg.colour if ccfg.colour != "auto" else ("gray" if channels == 1 else "rgb")
    try:
        return InputSpec(size_px=int(size), colour=colour, mean=tuple(ccfg.mean) or (0.0,), std=tuple(ccfg.std) or (1.0,),
                         margin=float(ccfg.margin), square=ccfg.square)
    except ValueError as e:
        raise PerceptionError(f"perception.classifier: {e}") from None


def _crop_window(box: np.ndarray, spec: InputSpec) -> tuple[int, int, int, int]:
    """The frame window (x0, y0, x1, y1; may leave the frame) the model sees of a face box."""
    x1, y1, x2, y2 = (float(v) for v in box)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    grow = 2 * spec.margin * max(x2 - x1, y2 - y1)
    if spec.square == "expand":
        bw = bh = max(x2 - x1, y2 - y1) + grow
    else:
        bw, bh = (x2 - x1) + grow, (y2 - y1) + grow
    x0, y0 = int(round(cx - bw / 2)), int(round(cy - bh / 2))
    return x0, y0, x0 + max(1, int(round(bw))), y0 + max(1, int(round(bh)))


def _pad_square(patch: np.ndarray, pad_value) -> np.ndarray:
    h, w = patch.shape[:2]
    if h == w:
        return patch
    side = max(h, w)
    top, left = (side - h) // 2, (side - w) // 2
    return cv2.copyMakeBorder(patch, top, side - h - top, left, side - w - left, cv2.BORDER_CONSTANT, value=pad_value)
