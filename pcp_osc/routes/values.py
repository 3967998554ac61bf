"""Cue values: every placeholder a route template can use, with its OSC type and range."""

from __future__ import annotations

import colorsys
from typing import Any

import numpy as np

from ..emotions import EMOTIONS
from ..osc import osc_arg
from ..types import Colour, Cue, Mood

# name: (OSC type, (lo, hi) or None, meaning). The value ranges are the contract tests check.
PLACEHOLDERS: dict[str, tuple[str, tuple[float, float] | None, str]] = {
    "emotion": ("s", None, f"{', '.join(EMOTIONS[:-1])} or {EMOTIONS[-1]}"),
    "index": ("i", (0, 4), "emotion index, 0-based"),
    "index1": ("i", (1, 5), "emotion index, 1-based (cue and playback numbers)"),
    "confidence": ("f", (0.0, 1.0), "confidence of the emotion over the window"),
    "confidence100": ("f", (0.0, 100.0), "the same, 0..100"),
    "confidence255": ("i", (0, 255), "the same, 0..255 (DMX; QLC+)"),
    "r": ("f", (0.0, 1.0), "stage colour red, brightness applied"),
    "g": ("f", (0.0, 1.0), "stage colour green"),
    "b": ("f", (0.0, 1.0), "stage colour blue"),
    "r100": ("f", (0.0, 100.0), "red 0..100 (Eos, grandMA3 levels)"),
    "g100": ("f", (0.0, 100.0), "green 0..100"),
    "b100": ("f", (0.0, 100.0), "blue 0..100"),
    "r255": ("i", (0, 255), "red 0..255 (DMX)"),
    "g255": ("i", (0, 255), "green 0..255"),
    "b255": ("i", (0, 255), "blue 0..255"),
    "hue": ("f", (0.0, 1.0), "hue of the stage colour, 0..1"),
    "hue360": ("f", (0.0, 360.0), "hue in degrees"),
    "saturation": ("f", (0.0, 1.0), "saturation of the stage colour"),
    "brightness": ("f", (0.0, 1.0), "brightness (HSV value) of the stage colour"),
    "hex": ("s", None, "the stage colour as #rrggbb"),
    "source": ("s", None, "audience, intent or override"),
    "faces": ("i", (0, 100000), "faces per frame over the window"),
    "cue_id": ("i", (0, 2**31 - 1), "cue counter since start"),
    "intent": ("s", None, "the performance's intended emotion"),
    **{f"is_{e}": ("i", (0, 1), f"1 when the cue's emotion is {e}, else 0") for e in EMOTIONS},
}


def cue_values(cue: Cue) -> dict[str, Any]:
    """Every placeholder's value for this cue, as plain Python types."""
    c = cue.colour
    r, g, b = (float(v) for v in c.rgb)
    h, s, v = colorsys.rgb_to_hsv(r, g, b)
    k = int(cue.emotion)
    values: dict[str, Any] = {
        "emotion": EMOTIONS[k],
        "index": k,
        "index1": k + 1,
        "confidence": float(cue.confidence),
        "confidence100": float(cue.confidence) * 100.0,
        "confidence255": int(round(float(cue.confidence) * 255)),
        "r": r, "g": g, "b": b,
        "r100": r * 100.0, "g100": g * 100.0, "b100": b * 100.0,
        "r255": int(round(r * 255)), "g255": int(round(g * 255)), "b255": int(round(b * 255)),
        "hue": float(h), "hue360": float(h) * 360.0, "saturation": float(s), "brightness": float(v),
        "hex": c.hex,
        "source": str(cue.source),
        "faces": int(round(float(cue.mood.faces))),
        "cue_id": int(cue.id),
        "intent": EMOTIONS[int(cue.intent)],
    }
    for i, e in enumerate(EMOTIONS):
        values[f"is_{e}"] = int(i == k)
    return values


def as_text(v: Any) -> str:
    v = osc_arg(v)
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def sample_cue(emotion: int, colour: Colour | None = None, confidence: float = 0.87, cue_id: int = 123456) -> Cue:
    dist = np.full(len(EMOTIONS), (1 - confidence) / (len(EMOTIONS) - 1))
    dist[emotion] = confidence
    mood = Mood(emotion=emotion, confidence=confidence, distribution=dist, faces=12.0, source="audience")
    return Cue(id=cue_id, mood=mood, colour=colour or Colour(0.81, 0.333, 0.05), intent=4, window_s=15.0,
               wall_time=0.0, timestamp=0.0)
