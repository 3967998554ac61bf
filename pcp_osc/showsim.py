"""A simulated show, written through the real :class:`ShowLog`: songs (markers), an
audience whose mood drifts per song, a cue per window, show-control interventions
and generated backgrounds. For the show-log bench, the report's tests and a
report preview without a show: ``python -m pcp_osc.showsim OUT.db --minutes 60``.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .emotions import EMOTIONS
from .types import Background, Colour, Cue, Mood

DEFAULT_COLOURS = {"joy": "#ffd400", "anxiety": "#ffffff", "anger": "#ff6a00", "sadness": "#1f4fff", "neutral": "#8a2be2"}
SONGS = [
    ("Opening: Sunrise", "joy"),
    ("Ballad for a Lost City", "sadness"),
    ("Static Storm", "anger"),
    ("Glass Corridor", "anxiety"),
    ("Interlude", "neutral"),
    ("Golden Hour", "joy"),
    ("Encore: Homecoming", "joy"),
]
SHOW_START_WALL = 1_750_000_000.0  # a fixed evening, so generated logs are reproducible


@dataclass(frozen=True)
class SimControl:
    """Same fields as pcp_osc.daemon.ControlEvent."""

    address: str
    args: tuple
    sender: str
    accepted: bool
    message: str
    wall_time: float


def colour_for(emotion: int, confidence: float, min_brightness: float = 0.2) -> Colour:
    return Colour.from_hex(DEFAULT_COLOURS[EMOTIONS[emotion]]).scaled(min_brightness + (1 - min_brightness) * confidence)


def simulated_mood(rng: np.random.Generator, target: int, t_s: float, faces_mean: float) -> Mood:
    base = np.full(len(EMOTIONS), 0.12)
    base[target] += 0.45 + 0.15 * math.sin(t_s / 40.0)
    base[4] += 0.15  # audiences sit near neutral
    dist = rng.dirichlet(base * 40.0)
    k = int(dist.argmax())
    faces = max(0.0, rng.normal(faces_mean, 1.5))
    return Mood(k, float(dist[k]), dist, float(round(faces)), "audience", frames=1)


def background_image(colour: Colour, width_px: int = 192, height_px: int = 108) -> np.ndarray:
    y = np.linspace(0.3, 1.0, height_px)[:, None, None]
    x = np.linspace(0.8, 1.0, width_px)[None, :, None]
    rgb = np.array(colour.rgb255, dtype=np.float32)[None, None, :]
    return np.clip(rgb * y * x + 20, 0, 255).astype(np.uint8)


def write_show(log, minutes: float = 60.0, *, seed: int = 7, live_hz: float = 1.0, window_s: float = 15.0,
               start_wall: float = SHOW_START_WALL, backgrounds: bool = True, progress=None) -> dict:
    """Write a simulated show of ``minutes`` into ``log`` (a ShowLog). Returns counts of what was written."""
    rng = np.random.default_rng(seed)
    duration_s = minutes * 60.0
    song_s = max(60.0, duration_s / len(SONGS))
    counts = {"cues": 0, "live": 0, "markers": 0, "controls": 0, "backgrounds": 0}
    cue_id = 0
    intent = EMOTIONS.index("neutral")
    override: tuple[int, float] | None = None  # (emotion, until_s)
    window: list[Mood] = []
    next_cue_s = window_s
    song = -1
    step_s = 1.0 / live_hz
    t = 0.0
    while t < duration_s:
        wall = start_wall + t
        if int(t // song_s) != song:
            song = int(t // song_s)
            name, feel = SONGS[song % len(SONGS)]
            if song >= len(SONGS):
                name = f"{name} (reprise {song // len(SONGS)})"
            log.log_control(SimControl("/pcp/marker", (name,), "desk:10.0.0.5", True, "marker recorded", wall))
            counts["controls"] += 1
            counts["markers"] += 1
            if song % 3 == 1:  # the stage manager sets the performance's intent for this song
                intent = EMOTIONS.index(feel)
                log.log_control(SimControl("/pcp/intent", (feel,), "desk:10.0.0.5", True, f"intent {feel}", wall + 2))
                counts["controls"] += 1
            if song % 4 == 2:  # the operator forces a look for the first 45 s of the song
                override = (EMOTIONS.index(feel), t + 45.0)
                log.log_control(SimControl("/pcp/override", (feel, 45.0), "web:10.0.0.9", True, f"override {feel} for 45 s", wall + 3))
                counts["controls"] += 1
            if song == 3:
                log.log_control(SimControl("/pcp/intent", ("euphoria",), "10.0.0.77", False,
                                           "unknown emotion 'euphoria'; allowed: joy, anxiety, anger, sadness, neutral", wall + 4))
                counts["controls"] += 1
        _, feel = SONGS[song % len(SONGS)]
        crowd = 8.0 + 6.0 * math.sin(t / 900.0) + (4.0 if feel == "joy" else 0.0)
        if 0.30 < (t % 1800.0) / 1800.0 < 0.32:  # a dark passage: the camera sees nobody
            crowd = 0.0
        mood = simulated_mood(rng, EMOTIONS.index(feel), t, crowd)
        if log.log_live(mood, wall):
            counts["live"] += 1
        window.append(mood)
        if override and t >= override[1]:
            log.log_control(SimControl("/pcp/release", (), "web:10.0.0.9", True, "override released", wall))
            counts["controls"] += 1
            override = None
        if t >= next_cue_s:
            next_cue_s += window_s
            dist = np.mean([m.distribution for m in window], axis=0)
            faces = float(np.mean([m.faces for m in window]))
            window = []
            if override:
                k, source, conf = override[0], "override", 1.0
                dist = np.eye(len(EMOTIONS))[k]
            elif faces < 0.5:
                k, source, conf = intent, "intent", 1.0
                dist = np.eye(len(EMOTIONS))[k]
            else:
                k, source = int(dist.argmax()), "audience"
                conf = float(dist[k])
            cue_id += 1
            colour = colour_for(k, conf)
            cue = Cue(cue_id, Mood(k, conf, dist, faces, source), colour, intent, window_s, wall, t,
                      "override" if source == "override" else "window")
            log.log_cue(cue)
            counts["cues"] += 1
            if backgrounds:
                bg = Background(background_image(colour), f"stage backdrop, {EMOTIONS[k]} mood, colour {colour.hex}",
                                int(rng.integers(0, 2**31 - 1)), 0.02, "procedural", cue_id=cue_id, id=cue_id)
                log.log_background(bg)
                counts["backgrounds"] += 1
        if progress and int(t) % 600 == 0 and t == int(t):
            progress(t / duration_s)
        t += step_s
    return counts


def main(argv: list[str] | None = None) -> int:
    from .showlog import ShowLog

    ap = argparse.ArgumentParser(prog="python -m pcp_osc.showsim", description=__doc__.splitlines()[0])
    ap.add_argument("out", help="show log file to write (.db)")
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args(argv)
    out = Path(args.out)
    if out.exists():
        ap.error(f"{out} exists; choose a new file name (a show log is never overwritten)")
    log = ShowLog(out, live_sample_hz=1.0)
    counts = write_show(log, args.minutes, seed=args.seed, progress=lambda f: print(f"  {f:4.0%}", flush=True))
    log.close()
    print(f"wrote {out}: " + ", ".join(f"{v} {k}" for k, v in counts.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
