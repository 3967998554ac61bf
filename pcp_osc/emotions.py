"""The five emotions of the show, and every name the outside world uses for them.

The original project merged AI Hub's seven Korean labels into five; those five,
in this order, are pcp-osc's canonical emotions (index = position). Anything that
names an emotion -- OSC control, config, the command line, a model's class
names -- goes through :func:`parse_emotion`, so ids, indices, Korean labels and
FER2013 / AffectNet names are all accepted, case-insensitively.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

EMOTIONS: tuple[str, ...] = ("joy", "anxiety", "anger", "sadness", "neutral")
N_EMOTIONS = len(EMOTIONS)

# Every alias -> canonical index. Lower-case keys; Korean labels as they are.
_ALIASES: dict[str, int] = {}


def _add(index: int, *names: str) -> None:
    for name in names:
        _ALIASES[name.lower()] = index


_add(0, "joy", "기쁨", "happy", "happiness", "happy_face", "joyful")
_add(1, "anxiety", "당황", "불안", "fear", "surprise", "surprised", "fearful", "anxious", "embarrassment")
_add(2, "anger", "분노", "angry", "disgust", "disgusted", "contempt")
_add(3, "sadness", "슬픔", "상처", "sad", "hurt")
_add(4, "neutral", "중립", "calm", "none")

# The AI Hub release's seven labels, in the order the original project listed them.
AIHUB_LABELS: tuple[str, ...] = ("기쁨", "당황", "분노", "불안", "상처", "슬픔", "중립")
# FER2013's class order, as the fer package's mini-Xception emits it.
FER2013_CLASSES: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


class UnknownEmotion(ValueError):
    """A name that is not one of the five emotions nor any known alias."""

    def __init__(self, value: object, where: str = "") -> None:
        place = f" in {where}" if where else ""
        super().__init__(
            f"unknown emotion {value!r}{place}; allowed: {', '.join(EMOTIONS)} "
            f"(or 0..{N_EMOTIONS - 1}, Korean labels {'/'.join(AIHUB_LABELS)}, "
            f"FER/AffectNet names such as happy, fear, surprise, angry, disgust, contempt, sad)"
        )
        self.value = value


def parse_emotion(value: object, where: str = "") -> int:
    """Return the canonical index (0..4) of an emotion given by id, index or alias.

    Raises :class:`UnknownEmotion` naming the value and what is allowed.
    """
    if isinstance(value, (bool, np.bool_)):
        raise UnknownEmotion(value, where)
    if isinstance(value, (int, np.integer)):
        if 0 <= int(value) < N_EMOTIONS:
            return int(value)
        raise UnknownEmotion(value, where)
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return parse_emotion(int(value), where)
    if isinstance(value, str):
        key = value.strip().lower()
        if key.isdigit():
            return parse_emotion(int(key), where)
        if key in _ALIASES:
            return _ALIASES[key]
    raise UnknownEmotion(value, where)


def emotion_id(value: object, where: str = "") -> str:
    """The canonical id ("joy", ...) of an emotion given in any accepted form."""
    return EMOTIONS[parse_emotion(value, where)]


def merge_matrix(class_names: Sequence[str], where: str = "model classes") -> np.ndarray:
    """A (len(class_names), 5) 0/1 matrix that sums a model's class scores into the five.

    ``scores_5 = scores_model @ merge_matrix(names)``. An unmappable class name
    raises :class:`UnknownEmotion` naming it.
    """
    m = np.zeros((len(class_names), N_EMOTIONS), dtype=np.float32)
    for i, name in enumerate(class_names):
        m[i, parse_emotion(name, f"{where} (class {i})")] = 1.0
    return m


def merge_scores(scores: np.ndarray, class_names: Iterable[str]) -> np.ndarray:
    """Sum (n, k) scores over a model's k classes into (n, 5) scores over the five."""
    return np.asarray(scores, dtype=np.float32) @ merge_matrix(list(class_names))
