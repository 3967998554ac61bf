"""A part that remembers what the daemon told it: the tests' ear on the typed hooks."""

from __future__ import annotations

from pcp_osc.parts import BasePart
from pcp_osc.types import Background, ControlEvent, Cue, LiveSample


class Heard(BasePart):
    """Every cue, live sample, control event and background, in arrival order (lists append
    atomically, so the tests read them from their own thread)."""

    role = "heard"

    def __init__(self) -> None:
        self.cues: list[Cue] = []
        self.live: list[LiveSample] = []
        self.controls: list[ControlEvent] = []
        self.backgrounds: list[Background] = []

    def on_cue(self, cue: Cue) -> None:
        self.cues.append(cue)

    def on_live(self, sample: LiveSample) -> None:
        self.live.append(sample)

    def on_control(self, event: ControlEvent) -> None:
        self.controls.append(event)

    def on_background(self, background: Background) -> None:
        self.backgrounds.append(background)
