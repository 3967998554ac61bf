"""Colour words for prompts, and colour-fidelity measurement of generated backgrounds.

A background is faithful to its cue when its mean hue is the cue's hue and its
brightness follows the cue's brightness (the confidence). ``measure_colour``
reads both from an image; ``colour_fidelity`` compares them with a cue.
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass

import cv2
import numpy as np

from ..types import Colour

# Named colours a diffusion text encoder knows well, as (word, r, g, b) 0..1.
_NAMED: tuple[tuple[str, float, float, float], ...] = (
    ("red", 1.0, 0.0, 0.0),
    ("orange", 1.0, 0.42, 0.0),
    ("amber", 1.0, 0.75, 0.0),
    ("yellow", 1.0, 0.9, 0.0),
    ("lime green", 0.6, 1.0, 0.0),
    ("green", 0.0, 0.8, 0.2),
    ("teal", 0.0, 0.6, 0.6),
    ("cyan", 0.0, 0.9, 1.0),
    ("blue", 0.12, 0.31, 1.0),
    ("indigo", 0.29, 0.0, 0.8),
    ("purple", 0.54, 0.17, 0.89),
    ("magenta", 1.0, 0.0, 1.0),
    ("pink", 1.0, 0.4, 0.7),
)
_NAMED_HUES = [(w, colorsys.rgb_to_hsv(r, g, b)[0]) for w, r, g, b in _NAMED]

# Below this saturation a colour reads as white/grey, and its hue means nothing.
GREY_SATURATION = 0.18


def colour_word(colour: Colour) -> str:
    """The plain word for a colour's hue ("yellow", "blue", "white"), ignoring brightness."""
    h, s, v = colour.hsv
    if v < 0.04:
        return "black"
    if s < GREY_SATURATION:
        return "white"
    return min(_NAMED_HUES, key=lambda wh: _hue_distance(h, wh[1]))[0]


def brightness_word(value: float) -> str:
    """A word for brightness 0..1, for the prompt ("dim", "soft", "bright", "radiant")."""
    if value < 0.35:
        return "dim"
    if value < 0.6:
        return "soft"
    if value < 0.85:
        return "bright"
    return "radiant"


def _hue_distance(a: float, b: float) -> float:
    """Distance between hues on the 0..1 circle (0..0.5)."""
    d = abs(a - b) % 1.0
    return min(d, 1.0 - d)


@dataclass(frozen=True)
class ColourReading:
    """What an image looks like, colour-wise.

    hue_deg: saturation-weighted circular mean hue (None when the image is grey);
    saturation: mean saturation 0..1; brightness: mean HSV value 0..1.
    """

    hue_deg: float | None
    saturation: float
    brightness: float


def measure_colour(image_rgb: np.ndarray, max_side_px: int = 256) -> ColourReading:
    """Mean hue (circular, weighted by saturation x value so grey and black pixels
    do not vote), mean saturation and mean brightness of an RGB uint8 image."""
    img = np.asarray(image_rgb)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(f"expected an RGB uint8 image (H, W, 3), got {img.dtype} {img.shape}")
    h, w = img.shape[:2]
    k = max_side_px / max(h, w)
    if k < 1:  # the mean does not need every pixel
        img = cv2.resize(img, (max(1, round(w * k)), max(1, round(h * k))), interpolation=cv2.INTER_AREA)
    hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV_FULL).reshape(-1, 3).astype(np.float32)
    hue = hsv[:, 0] / 256.0 * 2 * math.pi
    sat = hsv[:, 1] / 255.0
    val = hsv[:, 2] / 255.0
    weight = sat * val
    if float(weight.sum()) < 1e-6 or float(sat.mean()) < GREY_SATURATION / 2:
        mean_hue = None
    else:
        x = float((np.cos(hue) * weight).sum())
        y = float((np.sin(hue) * weight).sum())
        mean_hue = math.degrees(math.atan2(y, x)) % 360.0
    return ColourReading(mean_hue, float(sat.mean()), float(val.mean()))


def hue_error_deg(a_deg: float | None, b_deg: float | None) -> float:
    """Angular distance of two hues in degrees (0..180); 0 when both are grey, 180 when one is."""
    if a_deg is None and b_deg is None:
        return 0.0
    if a_deg is None or b_deg is None:
        return 180.0
    d = abs(a_deg - b_deg) % 360.0
    return min(d, 360.0 - d)


def colour_hue_deg(colour: Colour) -> float | None:
    h, s, v = colour.hsv
    return None if s < GREY_SATURATION or v < 0.04 else h * 360.0


def colour_fidelity(image_rgb: np.ndarray, colour: Colour) -> dict:
    """How well an image shows a cue's colour (brightness applied).

    Returns hue_deg / target_hue_deg / hue_error_deg (0..180) and brightness /
    target_brightness (HSV value 0..1; an image with structure is darker on
    average than its flat cue colour, so compare brightness across cues, not as
    an absolute match).
    """
    reading = measure_colour(image_rgb)
    target_hue = colour_hue_deg(colour)
    return {
        "hue_deg": None if reading.hue_deg is None else round(reading.hue_deg, 1),
        "target_hue_deg": None if target_hue is None else round(target_hue, 1),
        "hue_error_deg": round(hue_error_deg(reading.hue_deg, target_hue), 1),
        "brightness": round(reading.brightness, 3),
        "target_brightness": round(colour.hsv[2], 3),
        "saturation": round(reading.saturation, 3),
    }
