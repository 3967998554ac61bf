"""Stage backgrounds: a generator makes one per cue, a worker keeps it off the cue path.

    gen = make_generator(config.generator, config.palette)       # procedural | diffusion | comfyui
    worker = BackgroundWorker(gen, on_background=parts.background, on_status=problems.reporter("generator"))
    worker.start(); worker.submit(cue)                             # returns at once (a part: on_cue)
    worker.generate_now()                                          # /pcp/generate

(``show.assemble`` wires it so; generator.kind = "comfyui" has a worker of its own, comfyui/pool.py.)

Every generator has ``name``, ``load()`` (may take long; the worker's first
generation calls it) and ``generate(cue, *, seed=None, size=None) -> Background``.
"""

from __future__ import annotations

import time

import numpy as np

from ..config import GeneratorConfig, PaletteConfig
from ..emotions import N_EMOTIONS, parse_emotion
from ..types import Cue, Mood
from .crossfade import Crossfader
from .procedural import ProceduralGenerator
from .worker import BackgroundWorker


class GeneratorError(RuntimeError):
    """A generator cannot make a background; the message says what to change."""


def make_generator(gen_cfg: GeneratorConfig, palette_cfg: PaletteConfig, kind: str | None = None, comfy_cfg=None):
    """The configured generator (``kind`` overrides ``gen_cfg.kind``). Loading a
    model (or connecting to ComfyUI) is deferred to ``load()``/the first ``generate``,
    so this returns at once. Returns None for kind "off"."""
    kind = kind or gen_cfg.kind
    if kind == "procedural":
        return ProceduralGenerator(gen_cfg, palette_cfg)
    if kind == "diffusion":
        from .diffusion import DiffusionGenerator

        return DiffusionGenerator(gen_cfg, palette_cfg)
    if kind == "comfyui":
        from .comfyui import ComfyUIGenerator

        return ComfyUIGenerator(gen_cfg, palette_cfg, comfy_cfg)
    if kind == "off":
        return None
    raise GeneratorError(f"generator kind {kind!r} is not known; choose procedural, diffusion, comfyui or off")


def cue_for(
    emotion: object,
    confidence: float,
    intent: object | None = None,
    palette_cfg: PaletteConfig | None = None,
    cue_id: int = 0,
    source: str = "override",
) -> Cue:
    """A cue made by hand (command line, benchmark, tests): the emotion at this confidence,
    coloured by the palette exactly as the daemon colours it."""
    from ..palette import colour_for

    palette_cfg = palette_cfg or PaletteConfig()
    k = parse_emotion(emotion, "emotion")
    i = k if intent is None else parse_emotion(intent, "intent")
    if not 0.0 <= float(confidence) <= 1.0:
        raise ValueError(f"confidence {confidence!r} is out of range; allowed 0..1")
    dist = np.zeros(N_EMOTIONS, np.float32)
    dist[k] = float(confidence)
    mood = Mood(emotion=k, confidence=float(confidence), distribution=dist, faces=0.0, source=source)
    return Cue(
        id=cue_id,
        mood=mood,
        colour=colour_for(mood, i, palette_cfg),
        intent=i,
        window_s=15.0,
        wall_time=time.time(),
        timestamp=time.monotonic(),
        reason="override",
    )


__all__ = [
    "BackgroundWorker",
    "Crossfader",
    "GeneratorError",
    "ProceduralGenerator",
    "cue_for",
    "make_generator",
]
