"""Emotion -> stage colour. Hue from the emotion, brightness from confidence.

The original project used the emotion's colour with the confidence as its
illuminance; pcp-osc keeps that and adds a blend toward the performance's
intended emotion, so a designer can keep the stage on-concept while the audience
still moves it.
"""

from __future__ import annotations

import numpy as np

from .config import PaletteConfig
from .emotions import EMOTIONS, N_EMOTIONS
from .types import Colour, Mood


def emotion_colour(index: int, cfg: PaletteConfig) -> Colour:
    """The full-brightness colour of an emotion (index 0..4)."""
    return Colour.from_hex(getattr(cfg, EMOTIONS[index]))


def palette_array(cfg: PaletteConfig) -> np.ndarray:
    """(5, 3) float32 RGB 0..1, one row per emotion."""
    return np.array([emotion_colour(i, cfg).rgb for i in range(N_EMOTIONS)], dtype=np.float32)


def brightness(confidence: float, cfg: PaletteConfig) -> float:
    """Confidence 0..1 -> brightness min_brightness..1 along the configured curve."""
    c = min(1.0, max(0.0, float(confidence))) ** cfg.gamma
    return cfg.min_brightness + (1.0 - cfg.min_brightness) * c


def colour_for(mood: Mood, intent: int, cfg: PaletteConfig, blend: float | None = None) -> Colour:
    """The stage colour of a mood: the emotion's colour at the confidence's brightness,
    mixed toward the intended emotion's colour by ``blend`` (config default when None).

    Intent and override cues are already the intended/forced emotion, so blending
    only changes audience cues.
    """
    w = cfg.blend if blend is None else float(blend)
    base = emotion_colour(mood.emotion, cfg)
    if mood.source == "audience" and w > 0:
        base = base.mix(emotion_colour(intent, cfg), w)
    return base.scaled(brightness(mood.confidence, cfg))


def live_colour(distribution: np.ndarray, cfg: PaletteConfig) -> Colour:
    """A smooth colour for the live stream: the share-weighted mix of the five colours,
    at the brightness of the strongest share (so a split room reads dimmer)."""
    d = np.asarray(distribution, dtype=np.float32)
    total = float(d.sum())
    if total <= 0:
        return Colour(0, 0, 0)
    d = d / total
    rgb = d @ palette_array(cfg)
    peak = float(rgb.max())
    if peak > 0:
        rgb = rgb / peak  # keep hue, drop the mixing's dimming
    return Colour(*rgb).scaled(brightness(float(d.max()), cfg))
