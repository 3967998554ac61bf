"""Perception: a frame in, :class:`~pcp_osc.types.Faces` out.

Every backend has ``name``, ``detect(image_bgr, timestamp_s=None) -> Faces`` (one
picture of a live stream, in order: faces carry track ids) and
``detect_many(images) -> list[Faces]`` (independent pictures); the daemon and the
commands see nothing else, but for ``set_region(region)`` (an AudienceRegion or None),
with which show control changes the audience region between two pictures. Backends: ``default`` (the shipped face detector + expression classifier on
onnxruntime) and ``yolo`` (ultralytics models, .pt or exported .onnx).
"""

from __future__ import annotations

from typing import Protocol, Sequence

import numpy as np

from ..types import Faces


class PerceptionError(RuntimeError):
    """A backend could not load or run; the message names the file or setting."""


class Backend(Protocol):
    name: str

    def detect(self, image_bgr: np.ndarray, timestamp_s: float | None = None) -> Faces: ...

    def detect_many(self, images_bgr: Sequence[np.ndarray]) -> list[Faces]: ...


def make_backend(cfg, weights: str | None = None, backend: str | None = None, yolo_mode: str | None = None) -> Backend:
    """Build the backend the config (or the command line's overrides) names."""
    kind = backend or cfg.backend
    if kind == "default":
        from .default import DefaultBackend

        return DefaultBackend(cfg)
    if kind == "yolo":
        from .yolo import YoloBackend

        return YoloBackend(cfg, weights=weights or cfg.weights, mode=yolo_mode or cfg.yolo_mode)
    raise PerceptionError(f"unknown perception backend {kind!r}; allowed: default, yolo")
