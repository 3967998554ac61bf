"""The YOLO perception backend: an ultralytics model whose classes are emotions.

Two modes (``perception.yolo_mode``):

- ``detector``: one network finds faces and their emotion in the full frame,
  the original project's approach. A box's emotion scores are its class
  probabilities merged into the five emotions and normalised to sum to 1; its
  ``detection_confidence`` is the strongest class probability (YOLO's own box
  confidence). Non-maximum suppression is class-agnostic: one face is one box,
  whatever emotions compete for it.
- ``classifier``: a YOLO model run on the faces found by the shipped face
  detector, one square crop per face (the face and 20% around it). A
  classification model gives its class probabilities. A *detect* model trained
  on face crops (how published YOLO emotion models are used) gives the class
  probabilities of the most confident box it finds in the crop -- the top box's
  class is the reading -- whether or not that box clears ``yolo_conf``: every
  face the shipped detector found gets a reading. With
  ``perception.classifier.mirror`` each crop and its mirror image are read and
  averaged, as the shipped classifier does.

``auto`` reads the mode from the model's task (a detect model: ``detector``). Weights are either an
ultralytics ``.pt`` (run with torch) or an exported ``.onnx`` run on
onnxruntime **without** importing torch or ultralytics: class names, task and
input size come from the metadata ultralytics writes into the ONNX file, and
letterboxing, box decoding and NMS are done here in numpy. The ``.pt`` path
uses the very same pre- and post-processing, so the two formats differ only by
the network's arithmetic (``pcp-osc export`` reports how much).
"""

from __future__ import annotations

import ast
import logging
import time
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np

from ..emotions import EMOTIONS, UnknownEmotion, merge_matrix
from ..types import Faces
from . import PerceptionError
from .region import AudienceRegion
from .search import flat_picture
from .tracking import FaceTracker

log = logging.getLogger(__name__)

MODES = ("auto", "detector", "classifier")
_TASK_TO_MODE = {"detect": "detector", "classify": "classifier"}
LETTERBOX_FILL = 114  # ultralytics pads with this grey; the same value keeps .pt results identical to predict()
FACE_CROP_MARGIN = 0.2  # classifier crops: face box grown by this share per side, squared (as the converter writes)
MAX_BATCH = 16  # frames or faces per forward pass; bounds memory on a 4K crowd


# --------------------------------------------------------------------------- geometry


def letterbox(image_bgr: np.ndarray, size_hw: tuple[int, int]) -> tuple[np.ndarray, float, tuple[float, float]]:
    """Resize keeping aspect ratio and pad to ``size_hw``. Returns (image, gain, (pad_x, pad_y))."""
    h, w = image_bgr.shape[:2]
    th, tw = size_hw
    gain = min(th / h, tw / w)
    nw, nh = max(1, int(round(w * gain))), max(1, int(round(h * gain)))
    resized = cv2.resize(image_bgr, (nw, nh), interpolation=cv2.INTER_LINEAR) if (nw, nh) != (w, h) else image_bgr
    pad_x, pad_y = (tw - nw) / 2, (th - nh) / 2
    top, left = int(round(pad_y - 0.1)), int(round(pad_x - 0.1))
    bottom, right = th - nh - top, tw - nw - left
    out = cv2.copyMakeBorder(resized, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(LETTERBOX_FILL,) * 3)
    return out, gain, (float(left), float(top))


def to_tensor(images_bgr: Sequence[np.ndarray]) -> np.ndarray:
    """BGR uint8 HWC images of one size -> RGB float32 NCHW in 0..1 (ultralytics' input)."""
    batch = np.stack([im[..., ::-1] for im in images_bgr]).astype(np.float32) / 255.0
    return np.ascontiguousarray(batch.transpose(0, 3, 1, 2))


def square_crop_box(box: np.ndarray, margin: float = FACE_CROP_MARGIN) -> np.ndarray:
    """A face box grown by ``margin`` per side and made square around its centre (xyxy, may leave the image)."""
    x1, y1, x2, y2 = (float(v) for v in box)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    side = max(x2 - x1, y2 - y1) * (1 + 2 * margin)
    return np.array([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2], dtype=np.float32)


def crop_face(image_bgr: np.ndarray, box: np.ndarray, margin: float = FACE_CROP_MARGIN) -> np.ndarray:
    """The square face crop the classifier sees; parts outside the frame are padded with edge pixels."""
    x1, y1, x2, y2 = (int(round(v)) for v in square_crop_box(box, margin))
    h, w = image_bgr.shape[:2]
    side = max(1, x2 - x1)
    pad = max(0, -x1, -y1, x2 - w, y2 - h)
    src = image_bgr
    if pad:
        src = cv2.copyMakeBorder(image_bgr, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    return src[y1 + pad : y1 + pad + side, x1 + pad : x1 + pad + side]


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Indices kept by greedy non-maximum suppression, best first."""
    order = np.argsort(-scores, kind="stable")
    areas = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        xx1 = np.maximum(boxes[i, 0], boxes[rest, 0])
        yy1 = np.maximum(boxes[i, 1], boxes[rest, 1])
        xx2 = np.minimum(boxes[i, 2], boxes[rest, 2])
        yy2 = np.minimum(boxes[i, 3], boxes[rest, 3])
        inter = np.clip(xx2 - xx1, 0, None) * np.clip(yy2 - yy1, 0, None)
        iou = inter / np.maximum(areas[i] + areas[rest] - inter, 1e-9)
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


# --------------------------------------------------------------------------- runners


def _parse_names(value: Any) -> list[str]:
    """Class names from ultralytics' ``names`` ({0: 'joy', ...} or its str() in ONNX metadata)."""
    if isinstance(value, str):
        value = ast.literal_eval(value)
    if isinstance(value, dict):
        return [str(value[k]) for k in sorted(value, key=int)]
    return [str(v) for v in value]


def _imgsz(value: Any, default: int) -> tuple[int, int]:
    if isinstance(value, str):
        value = ast.literal_eval(value)
    if value is None:
        return (default, default)
    if isinstance(value, (int, float)):
        return (int(value), int(value))
    value = list(value)
    return (int(value[0]), int(value[-1]))


class _OnnxRunner:
    """An exported ultralytics model on onnxruntime. Imports neither torch nor ultralytics."""

    def __init__(self, path: Path, device: str, threads: int = 0) -> None:
        import onnxruntime as ort

        ort.disable_telemetry_events()  # and ORT_DISABLE_TELEMETRY, set in pcp_osc/__init__.py before the import

        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        providers = ["CPUExecutionProvider"]
        if device.startswith("cuda") or device == "auto":
            if "CUDAExecutionProvider" in ort.get_available_providers():
                providers.insert(0, "CUDAExecutionProvider")
            elif device.startswith("cuda"):
                log.warning("device %s asked for, but onnxruntime has no CUDA provider here; running on the CPU", device)
        try:
            self.session = ort.InferenceSession(str(path), sess_options=opts, providers=providers)
        except Exception as e:  # onnxruntime raises its own types
            raise PerceptionError(f"could not load ONNX weights {path}: {e}") from e
        meta = self.session.get_modelmeta().custom_metadata_map
        if "names" not in meta:
            raise PerceptionError(
                f"ONNX weights {path} carry no class names (metadata 'names'); export them with `pcp-osc export`"
            )
        self.names = _parse_names(meta["names"])
        self.task = meta.get("task", "detect")
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        shape = inp.shape  # [batch, 3, h, w]; symbolic dims are strings
        fixed_hw = all(isinstance(d, int) for d in shape[2:4])
        self.imgsz = (int(shape[2]), int(shape[3])) if fixed_hw else _imgsz(meta.get("imgsz"), 640)
        self.max_batch = shape[0] if isinstance(shape[0], int) else MAX_BATCH
        self.end2end = str(meta.get("end2end", "False")) == "True"
        self.device = "cuda" if self.session.get_providers()[0].startswith("CUDA") else "cpu"

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        outs = []
        for i in range(0, len(batch), self.max_batch):
            outs.append(self.session.run(None, {self.input_name: batch[i : i + self.max_batch]})[0])
        return np.concatenate(outs)


class _TorchRunner:
    """An ultralytics .pt checkpoint run with torch (the raw head output, decoded like the ONNX one)."""

    def __init__(self, path: Path, device: str) -> None:
        from .yolo_offline import ultralytics_offline

        ultralytics_offline()
        import torch
        from ultralytics import YOLO

        try:
            model = YOLO(str(path))
        except Exception as e:
            raise PerceptionError(f"could not load YOLO weights {path}: {e}") from e
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device.startswith("cuda") and not torch.cuda.is_available():
            log.warning("device %s asked for, but torch sees no CUDA GPU here; running on the CPU", device)
            device = "cpu"
        self.device = device
        self.torch = torch
        self.names = _parse_names(model.names)
        self.task = model.task
        net = model.model
        head = net.model[-1] if hasattr(net, "model") else None
        if head is not None and getattr(head, "end2end", False):
            head.end2end = False  # raw per-class scores for every anchor; we do the NMS
        args = getattr(net, "args", {}) or {}
        self.imgsz = _imgsz(args.get("imgsz") if isinstance(args, dict) else getattr(args, "imgsz", None), 640)
        self.net = net.float().eval().to(device)
        self.max_batch = MAX_BATCH
        self.end2end = False

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        torch = self.torch
        outs = []
        with torch.inference_mode():
            for i in range(0, len(batch), self.max_batch):
                y = self.net(torch.from_numpy(batch[i : i + self.max_batch]).to(self.device))
                if isinstance(y, (list, tuple)):
                    y = y[0]
                outs.append(y.float().cpu().numpy())
        return np.concatenate(outs)


def _warn_pickle(path: Path) -> None:
    """A .pt file is a Python pickle: loading it runs whatever code it carries. Weights
    trained on this machine sit in a training run folder (weights/ beside args.yaml) and
    are trusted; any other .pt gets a warning that says what to do instead."""
    if path.parent.name == "weights" and (path.parent.parent / "args.yaml").is_file():
        return
    log.warning("YOLO weights %s are a .pt file, a Python pickle: loading it runs any code inside it. Use .pt "
                "files only from your own training (pcp-osc train); ask others for an exported .onnx, which "
                "holds no code (pcp-osc export turns your own .pt into one)", path)


# --------------------------------------------------------------------------- backend


class YoloBackend:
    """``perception.backend = "yolo"``: a YOLO detector or classifier, from .pt or .onnx weights."""

    name = "yolo"

    def __init__(self, cfg, weights: str | Path | None = None, mode: str | None = None, *, face_detector=None) -> None:
        self.cfg = cfg
        if not weights:
            raise PerceptionError("perception.backend = yolo needs weights: set perception.weights or pass --weights FILE")
        path = Path(weights).expanduser()
        if not path.is_file():
            raise PerceptionError(f"YOLO weights {str(path)!r} not found (perception.weights / --weights)")
        suffix = path.suffix.lower()
        device = getattr(cfg, "device", "cpu") or "cpu"
        if suffix == ".onnx":
            self.runner: _OnnxRunner | _TorchRunner = _OnnxRunner(path, device, getattr(cfg, "threads", 0))
        elif suffix == ".pt":
            _warn_pickle(path)
            self.runner = _TorchRunner(path, device)
        else:
            raise PerceptionError(f"YOLO weights {path.name!r} must be an ultralytics .pt or an exported .onnx")
        self.weights = path
        self.format = suffix[1:]
        self.class_names = list(self.runner.names)
        try:
            self.merge = merge_matrix(self.class_names, where=f"YOLO weights {path.name}")
        except UnknownEmotion as e:
            raise PerceptionError(
                f"{e}. Every class of the model must name one of the five emotions; rename the class in the "
                f"training data.yaml or retrain"
            ) from e

        mode = (mode or "auto").lower()
        if mode not in MODES:
            raise PerceptionError(f"yolo_mode {mode!r} not understood; allowed: {', '.join(MODES)}")
        model_mode = _TASK_TO_MODE.get(self.runner.task)
        if model_mode is None:
            raise PerceptionError(
                f"YOLO weights {path.name} are a {self.runner.task!r} model; the YOLO backend runs detect or classify models"
            )
        # A detect model may read face crops (yolo_mode = classifier); a classify model cannot find faces.
        self.crop_detector = mode == "classifier" and model_mode == "detector"
        if self.crop_detector:
            model_mode = "classifier"
        if mode != "auto" and mode != model_mode:
            raise PerceptionError(
                f"yolo_mode = {mode} but weights {path.name} are a {self.runner.task} model ({model_mode}); "
                f"use yolo_mode = auto or {model_mode}, or other weights"
            )
        if self.runner.end2end:
            raise PerceptionError(
                f"ONNX weights {path.name} were exported end-to-end (NMS inside, no per-class scores); "
                f"export them again with `pcp-osc export`"
            )
        self.mode = model_mode
        classifier_cfg = getattr(cfg, "classifier", None)
        self.mirror = bool(getattr(classifier_cfg, "mirror", False))
        self.conf_threshold = float(getattr(cfg, "yolo_conf", 0.25))
        self.iou_threshold = float(getattr(cfg, "yolo_iou", 0.5))
        self.min_face_px = int(getattr(cfg, "min_face_px", 0))
        self.face_detector = face_detector
        self.cfg = cfg
        self.region = AudienceRegion.from_config(cfg)
        self._tracker: FaceTracker | None = None
        if self.mode == "classifier" and self.face_detector is None:
            self.face_detector = _shipped_face_detector(cfg)
        log.info(
            "YOLO %s from %s (%s, input %dx%d, classes %s, on %s)",
            "detect model reading face crops" if self.crop_detector else self.mode, path.name, self.format, self.runner.imgsz[1], self.runner.imgsz[0],
            ", ".join(self.class_names), self.runner.device,
        )

    @property
    def imgsz(self) -> tuple[int, int]:
        return self.runner.imgsz

    # -- the Backend protocol

    def detect(self, image_bgr: np.ndarray, timestamp_s: float | None = None) -> Faces:
        """One picture of a live stream: faces with track ids (see the default backend)."""
        if self.mode == "classifier":
            # the shipped detector follows the faces (tracks, search schedule, region)
            faces = self.face_detector.detect(image_bgr, timestamp_s)
            scores = self.classify_crops([crop_face(_as_bgr(image_bgr), box) for box in faces.boxes])
            return Faces(faces.boxes, faces.detection_confidence, scores, track_id=faces.track_id)
        faces = self._in_region(image_bgr, self._detect([image_bgr])[0])
        if self._tracker is None:
            self._tracker = FaceTracker(hold_s=float(getattr(self.cfg, "track_hold_s", 0.5)), confident=self.conf_threshold)
        from .default import _timestamp

        t = time.monotonic() if timestamp_s is None else _timestamp(timestamp_s)
        if self._tracker.t is not None and t < self._tracker.t:
            self._tracker.reset()  # time went back: another video
        self._tracker.predict(t)
        ids = self._tracker.update(t, faces.boxes, faces.detection_confidence)
        return Faces(faces.boxes, faces.detection_confidence, faces.scores, track_id=ids)

    def detect_many(self, images_bgr: Sequence[np.ndarray]) -> list[Faces]:
        if not len(images_bgr):
            return []
        if self.mode == "classifier":
            return self._classify_faces(images_bgr)
        return [self._in_region(im, f) for im, f in zip(images_bgr, self._detect(images_bgr))]

    def cancel(self) -> None:
        """Stop (see DefaultBackend.cancel): the shipped face detector's search ends soon."""
        if callable(getattr(self.face_detector, "cancel", None)):
            self.face_detector.cancel()

    def set_region(self, region: AudienceRegion | None) -> None:
        """Count only the faces inside ``region`` (None: the whole picture) from the next
        picture on; in classifier mode the face detector searches only there."""
        self.region = region
        if self.face_detector is not None and callable(getattr(self.face_detector, "set_region", None)):
            self.face_detector.set_region(region)

    def _in_region(self, image: np.ndarray, faces: Faces) -> Faces:
        """Only the faces centred in the audience region (cfg.region / region_mask)."""
        if self.region is None or not len(faces):
            return faces
        return faces[self.region.geometry(image.shape[1], image.shape[0]).inside(faces.boxes)]

    # -- detector mode

    def _detect(self, images_bgr: Sequence[np.ndarray]) -> list[Faces]:
        boxed = [letterbox(_as_bgr(im), self.imgsz) for im in images_bgr]
        raw = self.runner(to_tensor([b[0] for b in boxed]))  # (b, 4 + nc, anchors)
        # a black, white or flat picture (a blackout, a strobe's flash) holds no face, whatever
        # a model makes of its noise and compression blocks (search.flat_picture)
        return [Faces.blind() if flat_picture(_as_bgr(im)) else self._decode(pred, gain, pad, im.shape[:2])
                for pred, (_, gain, pad), im in zip(raw, boxed, images_bgr)]

    def _decode(self, pred: np.ndarray, gain: float, pad: tuple[float, float], shape_hw) -> Faces:
        nc = len(self.class_names)
        if pred.shape[0] != 4 + nc:
            raise PerceptionError(
                f"YOLO weights {self.weights.name}: output has {pred.shape[0]} rows per anchor, expected 4 + {nc} classes"
            )
        probs = pred[4:].T  # (anchors, nc), sigmoid class probabilities
        conf = probs.max(axis=1)
        keep = conf >= self.conf_threshold
        if not keep.any():
            return Faces.empty()
        probs, conf, xywh = probs[keep], conf[keep], pred[:4].T[keep]
        boxes = np.empty_like(xywh)
        boxes[:, 0] = xywh[:, 0] - xywh[:, 2] / 2
        boxes[:, 1] = xywh[:, 1] - xywh[:, 3] / 2
        boxes[:, 2] = xywh[:, 0] + xywh[:, 2] / 2
        boxes[:, 3] = xywh[:, 1] + xywh[:, 3] / 2
        order = nms(boxes, conf, self.iou_threshold)
        boxes, conf, probs = boxes[order], conf[order], probs[order]
        boxes[:, [0, 2]] = np.clip((boxes[:, [0, 2]] - pad[0]) / gain, 0, shape_hw[1])
        boxes[:, [1, 3]] = np.clip((boxes[:, [1, 3]] - pad[1]) / gain, 0, shape_hw[0])
        big = (boxes[:, 3] - boxes[:, 1]) >= self.min_face_px
        scores = self._five(probs[big])
        return Faces(boxes[big], conf[big], scores)

    def _five(self, class_probs: np.ndarray) -> np.ndarray:
        five = np.asarray(class_probs, dtype=np.float32) @ self.merge
        return five / np.maximum(five.sum(axis=1, keepdims=True), 1e-12)

    # -- classifier mode

    def classify_crops(self, crops_bgr: Sequence[np.ndarray]) -> np.ndarray:
        """(n, 5) emotion scores for face crops (yolo_mode = classifier): with ``mirror``,
        each crop and its mirror image in one batch, averaged."""
        if self.mode != "classifier":
            raise PerceptionError(
                f"YOLO weights {self.weights.name} run as a detector; classify_crops needs yolo_mode = classifier"
            )
        n = len(crops_bgr)
        if not n:
            return np.zeros((0, len(EMOTIONS)), dtype=np.float32)
        crops = [_as_bgr(c) for c in crops_bgr]
        if self.mirror:
            crops += [np.ascontiguousarray(c[:, ::-1]) for c in crops]
        probs = self._crop_detections(crops) if self.crop_detector else self._crop_classes(crops)
        if self.mirror:
            probs = (probs[:n] + probs[n:]) / 2
        return self._five(probs)

    def _crop_classes(self, crops: list[np.ndarray]) -> np.ndarray:
        h, w = self.imgsz
        resized = [cv2.resize(c, (w, h), interpolation=cv2.INTER_LINEAR) for c in crops]
        return self.runner(to_tensor(resized))  # softmax over the model's classes

    def _crop_detections(self, crops: list[np.ndarray]) -> np.ndarray:
        """Per crop, the class probabilities of the most confident box a detect model finds in it."""
        raw = self.runner(to_tensor([letterbox(c, self.imgsz)[0] for c in crops]))  # (n, 4 + nc, anchors)
        nc = len(self.class_names)
        if raw.shape[1] != 4 + nc:
            raise PerceptionError(
                f"YOLO weights {self.weights.name}: output has {raw.shape[1]} rows per anchor, expected 4 + {nc} classes"
            )
        probs = raw[:, 4:, :]  # (n, nc, anchors), sigmoid class probabilities
        best = probs.max(axis=1).argmax(axis=1)  # the most confident box of each crop
        top = np.take_along_axis(probs, best[:, None, None], axis=2)[:, :, 0]
        return top / np.maximum(top.sum(axis=1, keepdims=True), 1e-12)  # a distribution, as a classify model's

    def _classify_faces(self, images_bgr: Sequence[np.ndarray]) -> list[Faces]:
        found = self.face_detector.detect_many(list(images_bgr))
        crops, owners = [], []
        for k, (im, faces) in enumerate(zip(images_bgr, found)):
            for box in faces.boxes:
                crops.append(crop_face(_as_bgr(im), box))
                owners.append(k)
        scores = self.classify_crops(crops)
        owners_arr = np.asarray(owners, dtype=np.int64)
        return [
            Faces(faces.boxes, faces.detection_confidence, scores[owners_arr == k])
            for k, faces in enumerate(found)
        ]


def _as_bgr(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return image


def _shipped_face_detector(cfg):
    """The shipped default backend, used only for its face boxes (its expression scores are replaced)."""
    try:
        from .default import DefaultBackend
    except ImportError as e:
        raise PerceptionError(f"yolo_mode = classifier needs the shipped face detector, which failed to load: {e}") from e
    return DefaultBackend(cfg)
