"""Prompts for the diffusion generator, from the config's templates.

The original project's prompt was "art style background of feeling the emotion
of {label} with {conf}% {color}"; the default template keeps it and adds the
brightness and the performance's intended emotion, so the picture leans toward
the show's concept even when the audience disagrees.
"""

from __future__ import annotations

import string

from ..config import GeneratorConfig, PaletteConfig
from ..emotions import EMOTIONS, parse_emotion
from ..palette import emotion_colour
from ..types import Cue
from .colours import brightness_word, colour_word

FIELDS = ("emotion", "intent", "confidence_pct", "colour_word", "intent_colour_word", "brightness_word", "hex")


def prompt_fields(cue: Cue, palette_cfg: PaletteConfig) -> dict[str, str]:
    """The values a template may use, in words a text encoder knows."""
    return {
        "emotion": EMOTIONS[cue.emotion],
        "intent": EMOTIONS[cue.intent],
        "confidence_pct": str(int(round(cue.confidence * 100))),
        # Name the hue of the cue's colour (blend applied), not of its brightness.
        "colour_word": colour_word(cue.colour.scaled(1.0 / max(cue.colour.hsv[2], 1e-3))),
        "intent_colour_word": colour_word(emotion_colour(cue.intent, palette_cfg)),
        "brightness_word": brightness_word(cue.colour.hsv[2]),
        "hex": cue.colour.hex,
    }


def template_for(emotion: int, gen_cfg: GeneratorConfig) -> str:
    for key, template in gen_cfg.prompts.items():
        if parse_emotion(key, "generator.prompts") == emotion:
            return template
    return gen_cfg.prompt


def check_template(template: str, where: str = "generator.prompt") -> None:
    """Raise ValueError naming an unknown {field} in a template."""
    for _, name, _, _ in string.Formatter().parse(template):
        if name is not None and name not in FIELDS:
            raise ValueError(f"{where}: unknown field {{{name}}} in {template!r}; allowed: {', '.join('{' + f + '}' for f in FIELDS)}")


def build_prompt(cue: Cue, gen_cfg: GeneratorConfig, palette_cfg: PaletteConfig) -> str:
    """The positive prompt for a cue."""
    template = template_for(cue.emotion, gen_cfg)
    check_template(template)
    return template.format(**prompt_fields(cue, palette_cfg))
