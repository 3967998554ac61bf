"""The expression classifier: face boxes in a frame -> (n, 5) emotion scores.

    classifier = ExpressionClassifier.shipped(session_options)
    scores = classifier.classify(image_bgr, boxes_xyxy)      # (n, 5), rows sum to 1
    crops = classifier.crops(image_bgr, boxes_xyxy)          # what the model sees (uint8)
    scores = classifier.scores(crops)                        # many frames' crops, one batch

What a caller may rely on:
- every face given is classified in one batch (``scores`` of a concatenation of
  several frames' ``crops`` is one run too);
- each crop is framed by the model's :class:`InputSpec` (size, colour, margin, how it
  is made square) and, where the frame ends, padded with the mean of its bottom rows;
- rows of ``scores`` sum to 1 over the five emotions: the model's classes are summed
  into them by :func:`pcp_osc.emotions.merge_matrix`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from ..emotions import FER2013_CLASSES, N_EMOTIONS, merge_matrix
from . import PerceptionError

# fer's own crop (fer.FER.detect_emotions): the Haar box made square, 10 px added on
# each side, resized to 64x64 gray. Haar boxes measured on the shipped photographs are
# 0.88x the RetinaFace box's longer side (0.81..1.01), and fer's faces are typically
# ~100 px, where 10 px is 10%: so the crop side is 0.88 * 1.2 = 1.06x the box.
FER_INPUT_PX = 64
HAAR_PER_RETINA_SIDE = 0.88
FER_MARGIN_FRACTION = 0.10  # each side, of the Haar box
SHIPPED_INPUT_NAME = "face_gray64"

COLOURS = ("gray", "rgb", "bgr")
SQUARE_MODES = ("expand", "pad", "stretch")


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

    def __init__(self, session, class_names: Sequence[str], spec: InputSpec, *, name: str = "classifier") -> None:
        self.session = session
        self.spec = spec
        self.name = name
        self.class_names = list(class_names)
        self.merge = merge_matrix(self.class_names, f"{name} classes")
        self.input_name = session.get_inputs()[0].name

    @classmethod
    def shipped(cls, path: Path, opts) -> "ExpressionClassifier":
        """The shipped FER2013 mini-Xception (weights/fer_mini_xception.onnx)."""
        import onnxruntime as ort

        return cls(onnx_session(ort, path, opts), FER2013_CLASSES, SHIPPED_SPEC, name="fer_mini_xception")

    # ------------------------------------------------------------------ public

    def classify(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """(n, 5) scores for the faces at ``boxes`` (xyxy px) in a BGR uint8 frame."""
        if not len(boxes):
            return np.zeros((0, N_EMOTIONS), np.float32)
        return self.scores(self.crops(image, boxes))

    def crops(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """(n, S, S) gray or (n, S, S, 3) colour uint8 crops, framed by the spec; where a
        crop leaves the frame it is padded with the mean of the bottom rows, as fer pads."""
        spec = self.spec
        n, size = len(boxes), spec.size_px
        shape = (n, size, size) if spec.channels == 1 else (n, size, size, 3)
        out = np.empty(shape, np.uint8)
        if not n:
            return out
        h, w = image.shape[:2]
        bottom = image[-2:]
        pad_value = float(bottom.mean()) if spec.channels == 1 else tuple(float(v) for v in bottom.reshape(-1, 3).mean(0))
        for i, box in enumerate(boxes):
            x0, y0, x1, y1 = _crop_window(box, spec)
            # Crop the colour box first and convert only it: far cheaper than a full-frame cvtColor.
            cx0, cy0, cx1, cy1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
            if cx1 <= cx0 or cy1 <= cy0:
                patch = np.full((y1 - y0, x1 - x0) + ((3,) if spec.channels == 3 else ()), 0, np.uint8)
                patch[:] = np.asarray(pad_value, np.float64).round().astype(np.uint8)
            else:
                patch = _convert(image[cy0:cy1, cx0:cx1], spec.colour)
                if (cx0, cy0, cx1, cy1) != (x0, y0, x1, y1):
                    patch = cv2.copyMakeBorder(patch, cy0 - y0, y1 - cy1, cx0 - x0, x1 - cx1,
                                               cv2.BORDER_CONSTANT, value=pad_value)
            if spec.square == "pad":
                patch = _pad_square(patch, pad_value)
            interp = cv2.INTER_AREA if max(patch.shape[:2]) > size else cv2.INTER_LINEAR
            out[i] = cv2.resize(patch, (size, size), interpolation=interp)
        return out

    def scores(self, crops: np.ndarray) -> np.ndarray:
        """(n, 5) scores of crops made by :meth:`crops` (one batch)."""
        if not len(crops):
            return np.zeros((0, N_EMOTIONS), np.float32)
        probs = self.session.run(None, {self.input_name: crops})[0]
        scores = probs.astype(np.float32) @ self.merge
        scores /= scores.sum(axis=1, keepdims=True)  # the softmax sums to 1 up to rounding
        return scores


# ---------------------------------------------------------------------- helpers


def onnx_session(ort, path: Path, opts):
    try:
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own types for a damaged file
        raise PerceptionError(
            f"weight file {path} could not be loaded by onnxruntime ({e.__class__.__name__}: {str(e)[:200]}); "
            f"rebuild it with: python tools/convert_weights.py"
        ) from e


def _crop_window(box: np.ndarray, spec: InputSpec) -> tuple[int, int, int, int]:
    """The frame window (x0, y0, x1, y1; may leave the frame) the model sees of a face box."""
    x1, y1, x2, y2 = (float(v) for v in box)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    grow = 1 + 2 * spec.margin
    if spec.square == "expand":
        bw = bh = max(x2 - x1, y2 - y1) * grow
    else:
        bw, bh = (x2 - x1) + (grow - 1) * max(x2 - x1, y2 - y1), (y2 - y1) + (grow - 1) * max(x2 - x1, y2 - y1)
    x0, y0 = int(round(cx - bw / 2)), int(round(cy - bh / 2))
    return x0, y0, x0 + max(1, int(round(bw))), y0 + max(1, int(round(bh)))


def _convert(patch_bgr: np.ndarray, colour: str) -> np.ndarray:
    if colour == "gray":
        return cv2.cvtColor(patch_bgr, cv2.COLOR_BGR2GRAY)
    if colour == "rgb":
        return cv2.cvtColor(patch_bgr, cv2.COLOR_BGR2RGB)
    return np.ascontiguousarray(patch_bgr)


def _pad_square(patch: np.ndarray, pad_value) -> np.ndarray:
    h, w = patch.shape[:2]
    if h == w:
        return patch
    side = max(h, w)
    top, left = (side - h) // 2, (side - w) // 2
    return cv2.copyMakeBorder(patch, top, side - h - top, left, side - w - left, cv2.BORDER_CONSTANT, value=pad_value)
