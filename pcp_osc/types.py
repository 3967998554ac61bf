"""The plain values that flow between stages: Frame -> Faces -> Mood -> Cue -> Background,
and what the daemon tells its parts: a LiveSample per processed frame, a ControlEvent per
show-control message.

Each stage takes and returns these, so every stage can be tested alone and the
daemon only wires them together. A backend's quirks end at its adapter: every
perception backend returns :class:`Faces`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .emotions import EMOTIONS, N_EMOTIONS


def plain(value: Any) -> Any:
    """Numpy scalars and arrays (also inside lists and tuples) as plain Python values, for JSON,
    SQLite and OSC. Python values pass unchanged."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


@dataclass(frozen=True)
class Frame:
    """One camera image. ``image`` is BGR uint8 (OpenCV order), ``timestamp`` is time.monotonic()."""

    image: np.ndarray
    timestamp: float
    index: int
    source: str = ""


@dataclass
class Faces:
    """Faces found in one frame, as parallel arrays (supervision's Detections habit).

    boxes: (n, 4) float32 xyxy in pixels of the frame.
    detection_confidence: (n,) float32, the face detector's confidence.
    scores: (n, 5) float32, each row a distribution over EMOTIONS (sums to 1).
    track_id: (n,) int64, the face's track on live video (the same person keeps the same
        id from picture to picture, as supervision's ``tracker_id``); -1 where the face is
        not tracked (photographs, backends without tracking). Default: all -1.
    """

    boxes: np.ndarray
    detection_confidence: np.ndarray
    scores: np.ndarray
    data: dict[str, Any] = field(default_factory=dict)
    track_id: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.boxes = np.asarray(self.boxes, dtype=np.float32).reshape(-1, 4)
        self.detection_confidence = np.asarray(self.detection_confidence, dtype=np.float32).reshape(-1)
        self.scores = np.asarray(self.scores, dtype=np.float32).reshape(-1, N_EMOTIONS)
        n = len(self.boxes)
        self.track_id = (np.full(n, -1, np.int64) if self.track_id is None
                         else np.asarray(self.track_id, dtype=np.int64).reshape(-1))
        if len(self.detection_confidence) != n or len(self.scores) != n or len(self.track_id) != n:
            raise ValueError(
                f"Faces arrays disagree: {n} boxes, {len(self.detection_confidence)} confidences, "
                f"{len(self.scores)} score rows, {len(self.track_id)} track ids"
            )

    @classmethod
    def empty(cls) -> "Faces":
        return cls(np.zeros((0, 4)), np.zeros((0,)), np.zeros((0, N_EMOTIONS)))

    @classmethod
    def blind(cls) -> "Faces":
        """No faces, because nothing could be seen (a black, white or flat picture: a
        blackout, a strobe's flash): ``data["blind"]``. The mood holds through it."""
        return cls(np.zeros((0, 4)), np.zeros((0,)), np.zeros((0, N_EMOTIONS)), data={"blind": True})

    def __len__(self) -> int:
        return len(self.boxes)

    def __getitem__(self, index: Any) -> "Faces":
        if isinstance(index, (int, np.integer)):
            index = [int(index)]
        return Faces(self.boxes[index], self.detection_confidence[index], self.scores[index],
                     track_id=self.track_id[index])

    @property
    def emotion_index(self) -> np.ndarray:
        """(n,) index of each face's strongest emotion."""
        return self.scores.argmax(axis=1) if len(self) else np.zeros((0,), dtype=np.int64)

    def to_json(self) -> list[dict[str, Any]]:
        """The faces as plain JSON values (the `pcp-osc detect --json` face objects)."""
        out = []
        for box, row, track in zip(self.boxes, self.scores, self.track_id):
            k = int(row.argmax())
            face = {
                "box": [round(float(v), 1) for v in box],
                "emotion": EMOTIONS[k],
                "confidence": round(float(row[k]), 4),
                "scores": {e: round(float(s), 4) for e, s in zip(EMOTIONS, row)},
            }
            if track >= 0:
                face["track"] = int(track)
            out.append(face)
        return out


@dataclass(frozen=True)
class Colour:
    """A stage colour, 0..1 per channel, brightness already applied."""

    r: float
    g: float
    b: float

    def __post_init__(self) -> None:
        for name in ("r", "g", "b"):
            v = float(getattr(self, name))
            object.__setattr__(self, name, min(1.0, max(0.0, v)))

    @property
    def rgb(self) -> tuple[float, float, float]:
        return (self.r, self.g, self.b)

    @property
    def rgb255(self) -> tuple[int, int, int]:
        return tuple(int(round(c * 255)) for c in self.rgb)  # type: ignore[return-value]

    @property
    def hex(self) -> str:
        return "#%02x%02x%02x" % self.rgb255

    @classmethod
    def from_hex(cls, text: str) -> "Colour":
        t = text.strip().lstrip("#")
        if len(t) != 6 or any(c not in "0123456789abcdefABCDEF" for c in t):
            raise ValueError(f"colour {text!r} is not #rrggbb")
        return cls(int(t[0:2], 16) / 255, int(t[2:4], 16) / 255, int(t[4:6], 16) / 255)

    def scaled(self, k: float) -> "Colour":
        return Colour(self.r * k, self.g * k, self.b * k)

    def mix(self, other: "Colour", w: float) -> "Colour":
        """(1-w)*self + w*other."""
        return Colour(*(a * (1 - w) + b * w for a, b in zip(self.rgb, other.rgb)))

    @property
    def hsv(self) -> tuple[float, float, float]:
        """Hue 0..1, saturation 0..1, value 0..1."""
        import colorsys

        return colorsys.rgb_to_hsv(*self.rgb)


SOURCES = ("audience", "intent", "override")


@dataclass(frozen=True)
class Mood:
    """What the audience feels: over a window (a cue's mood) or right now (the live stream).

    distribution: (5,) shares over EMOTIONS summing to 1 (or the intent's one-hot).
    source: "audience", "intent" (no faces: the performance's intended emotion
    stands in) or "override" (show control forced it).
    faces: faces per frame (mean over the window for a cue; the latest frame for live).
    """

    emotion: int
    confidence: float
    distribution: np.ndarray
    faces: float
    source: str
    valence: float = 0.0
    arousal: float = 0.0
    frames: int = 0

    @property
    def emotion_id(self) -> str:
        return EMOTIONS[self.emotion]


@dataclass(frozen=True)
class Cue:
    """The unit that leaves the daemon: a window's mood, its stage colour, when and which."""

    id: int
    mood: Mood
    colour: Colour
    intent: int
    window_s: float
    wall_time: float  # time.time() when the cue was made
    timestamp: float  # time.monotonic() when the cue was made
    reason: str = "window"  # window | intent | override | release | start

    @property
    def emotion(self) -> int:
        return self.mood.emotion

    @property
    def emotion_id(self) -> str:
        return EMOTIONS[self.mood.emotion]

    @property
    def intent_id(self) -> str:
        return EMOTIONS[self.intent]

    @property
    def confidence(self) -> float:
        return self.mood.confidence

    @property
    def source(self) -> str:
        return self.mood.source

    def to_json(self) -> dict[str, Any]:
        """The cue as plain JSON values (the dashboard's cue event and the status's ``cue``)."""
        return {
            "id": int(self.id), "emotion": self.emotion_id, "confidence": round(float(self.confidence), 4),
            "source": self.source, "faces": round(float(self.mood.faces), 2), "hex": self.colour.hex,
            "color": [round(float(v), 4) for v in self.colour.rgb], "reason": self.reason,
            "intent": self.intent_id, "window_s": float(self.window_s), "wall_time": float(self.wall_time),
            "shares": {e: round(float(v), 4) for e, v in zip(EMOTIONS, self.mood.distribution)},
        }


@dataclass
class Background:
    """A generated stage background. ``image`` is RGB uint8 (H, W, 3)."""

    image: np.ndarray
    prompt: str
    seed: int
    seconds: float
    generator: str
    cue_id: int = -1
    id: int = 0
    note: str = ""  # e.g. why the procedural generator stood in
    info: dict = field(default_factory=dict)  # generator details, e.g. ComfyUI's server, prompt id and timings


@dataclass(frozen=True)
class LiveSample:
    """One processed frame, as the daemon tells its parts (``Part.on_live``): the live mood,
    its colour, the faces it came from and the frame (kept in memory only; nothing writes
    it unless the operator turned frame storage on)."""

    mood: Mood
    colour: Colour
    faces: Faces
    frame: Frame | None = None
    wall_time: float = field(default_factory=time.time)


@dataclass(frozen=True)
class ControlEvent:
    """One show-control message and what came of it (``Part.on_control``). ``args`` are JSON
    values (see ``control.osc_json``); ``message`` says what was done, or what was wrong."""

    address: str
    args: tuple
    sender: str
    accepted: bool
    message: str
    wall_time: float = field(default_factory=time.time)

    def to_json(self) -> dict[str, Any]:
        return {"address": self.address, "args": plain(list(self.args)), "sender": self.sender,
                "accepted": bool(self.accepted), "message": self.message, "wall_time": self.wall_time}
