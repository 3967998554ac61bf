"""A simulated show, written through the real :class:`ShowLog`: songs (markers), an
audience whose mood drifts per song, a cue per window, show-control interventions
and generated backgrounds. For the show-log bench, the report's tests and a
report preview without a show: ``python -m pcp_bench.showsim OUT.db --minutes 60``.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np

from pcp_osc.emotions import EMOTIONS
from pcp_osc.types import Background, Colour, ControlEvent, Cue, Mood

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


def colour_for(emotion: int, confidence: float) -> Colour:
    """The stage colour the daemon would give this emotion and confidence (default palette)."""
    from pcp_osc.config import PaletteConfig
    from pcp_osc.palette import brightness, emotion_colour

    cfg = PaletteConfig()
    return emotion_colour(emotion, cfg).scaled(brightness(confidence, cfg))


def simulated_mood(rng: np.random.Generator, target: int, t_s: float, faces_mean: float) -> Mood:
    base = np.full(len(EMOTIONS), 0.12)
    base[target] += 0.2 + 0.12 * math.sin(t_s / 40.0)
    base[4] += 0.1  # audiences sit near neutral
    base[(target + 1 + int(t_s // 97) % 4) % len(EMOTIONS)] += 0.08  # a second feeling drifts through each song
    dist = rng.dirichlet(base * 25.0)
    k = int(dist.argmax())
    faces = max(0.0, rng.normal(faces_mean, 1.5)) if faces_mean > 0 else 0.0
    return Mood(k, float(dist[k]), dist, float(round(faces)), "audience", frames=1)


def background_image(colour: Colour, width_px: int = 192, height_px: int = 108, seed: int = 0) -> np.ndarray:
    """A stage-like backdrop in the cue's colour: a soft glow and light beams over a dark floor."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height_px, 0:width_px].astype(np.float32)
    cx, cy = rng.uniform(0.3, 0.7) * width_px, rng.uniform(0.2, 0.5) * height_px
    glow = np.exp(-(((x - cx) / (0.45 * width_px)) ** 2 + ((y - cy) / (0.6 * height_px)) ** 2))
    beams = sum(np.exp(-((x - a * width_px - (y / height_px) * b * width_px) / (0.03 * width_px)) ** 2)
                for a, b in rng.uniform([0.1, -0.3], [0.9, 0.3], size=(4, 2)))
    light = np.clip(0.08 + 0.85 * glow + 0.35 * beams * (1 - y / height_px), 0, 1.2)
    rgb = np.array(colour.rgb, dtype=np.float32) * 0.85 + 0.15
    return np.clip(light[..., None] * rgb[None, None, :] * 255, 0, 255).astype(np.uint8)


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
            log.log_control(ControlEvent("/pcp/marker", (name,), "desk:10.0.0.5", True, "marker recorded", wall))
            counts["controls"] += 1
            counts["markers"] += 1
            if song % 3 == 1:  # the stage manager sets the performance's intent for this song
                intent = EMOTIONS.index(feel)
                log.log_control(ControlEvent("/pcp/intent", (feel,), "desk:10.0.0.5", True, f"intent {feel}", wall + 2))
                counts["controls"] += 1
            if song % 4 == 2:  # the operator forces a look for the first 45 s of the song
                override = (EMOTIONS.index(feel), t + 45.0)
                log.log_control(ControlEvent("/pcp/override", (feel, 45.0), "web:10.0.0.9", True, f"override {feel} for 45 s", wall + 3))
                counts["controls"] += 1
            if song == 3:
                log.log_control(ControlEvent("/pcp/intent", ("euphoria",), "10.0.0.77", False,
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
            log.log_control(ControlEvent("/pcp/release", (), "web:10.0.0.9", True, "override released", wall))
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
                bg = Background(background_image(colour, seed=cue_id), f"stage backdrop, {EMOTIONS[k]} mood, colour {colour.hex}",
                                int(rng.integers(0, 2**31 - 1)), 0.02, "procedural", cue_id=cue_id, id=cue_id)
                log.log_background(bg, wall_time=wall)
                counts["backgrounds"] += 1
        if progress and int(t) % 600 == 0 and t == int(t):
            progress(t / duration_s)
        t += step_s
    return counts


def main(argv: list[str] | None = None) -> int:
    from pcp_osc.showlog import ShowLog

    ap = argparse.ArgumentParser(prog="python -m pcp_bench.showsim", description=__doc__.splitlines()[0])
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
