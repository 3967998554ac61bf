"""Stage backgrounds: the procedural generator, prompts, the worker, fallback, crossfades, the command.

The Stable Diffusion generator's own tests (tiny real pipeline) are in test_diffusion.py.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from pcp_osc.backgrounds import BackgroundWorker, Crossfader, ProceduralGenerator, cue_for, make_generator
from pcp_osc.backgrounds.colours import colour_fidelity, colour_word, measure_colour
from pcp_osc.backgrounds.procedural import render
from pcp_osc.backgrounds.prompts import build_prompt
from pcp_osc.config import Config, ConfigError, GeneratorConfig, PaletteConfig, config_from_dict
from pcp_osc.emotions import EMOTIONS
from pcp_osc.types import Colour

REPO = Path(__file__).resolve().parents[1]
PALETTE = PaletteConfig()
WHITE = Colour(1.0, 1.0, 1.0)


def small_gen(width=320, height=180, **kw) -> ProceduralGenerator:
    return ProceduralGenerator(GeneratorConfig(width=width, height=height, **kw), PALETTE)


# --------------------------------------------------------------------------- procedural: size and palette


@pytest.mark.parametrize("size", [(1920, 1080), (3840, 2160), (101, 67), (64, 256)])
def test_procedural_makes_the_asked_size(size):
    w, h = size
    for e in range(5):
        img = render(e, cue_for(e, 0.8).colour, w, h, seed=1)
        assert img.shape == (h, w, 3) and img.dtype == np.uint8


@pytest.mark.parametrize("emotion", ["joy", "anger", "sadness", "neutral"])
def test_procedural_mean_hue_is_the_emotions_hue(emotion):
    cue = cue_for(emotion, 0.8, palette_cfg=PALETTE)
    bg = small_gen().generate(cue, seed=3)
    fid = colour_fidelity(bg.image, cue.colour)
    assert fid["target_hue_deg"] is not None
    assert fid["hue_error_deg"] < 8.0, fid


def test_procedural_anxiety_is_white_as_the_palette_says():
    bg = small_gen().generate(cue_for("anxiety", 0.8), seed=3)
    reading = measure_colour(bg.image)
    assert reading.hue_deg is None and reading.saturation < 0.05
    # ...and a palette with another anxiety colour is followed.
    palette = PaletteConfig(anxiety="#00ff80")
    cue = cue_for("anxiety", 0.8, palette_cfg=palette)
    fid = colour_fidelity(ProceduralGenerator(GeneratorConfig(width=320, height=180), palette).generate(cue, seed=3).image, cue.colour)
    assert fid["hue_error_deg"] < 8.0, fid


@pytest.mark.parametrize("emotion", EMOTIONS)
def test_procedural_brightness_tracks_confidence(emotion):
    gen = small_gen()
    levels = [measure_colour(gen.generate(cue_for(emotion, c), seed=9).image).brightness for c in (0.1, 0.5, 0.95)]
    assert levels[0] < levels[1] < levels[2], levels
    assert levels[2] > 1.8 * levels[0], levels


def test_procedural_blend_toward_intent_moves_the_hue():
    palette = PaletteConfig(blend=0.5)
    from pcp_osc.types import Mood
    from pcp_osc.palette import colour_for

    mood = Mood(emotion=2, confidence=0.9, distribution=np.eye(5)[2], faces=4, source="audience")
    colour = colour_for(mood, 4, palette)  # anger orange blended half-way toward neutral purple
    img = render(2, colour, 320, 180, seed=2)
    orange_hue = colour_fidelity(render(2, cue_for("anger", 0.9).colour, 320, 180, seed=2), colour)["hue_deg"]
    fid = colour_fidelity(img, colour)
    assert fid["hue_error_deg"] < 8.0, fid
    assert min(abs(fid["hue_deg"] - orange_hue), 360 - abs(fid["hue_deg"] - orange_hue)) > 20


# --------------------------------------------------------------------------- procedural: structure per emotion


def _value(emotion: int, seed: int) -> np.ndarray:
    return render(emotion, WHITE, 640, 360, seed)[..., 0].astype(np.float32) / 255.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_each_emotion_has_its_own_structure(seed):
    v = {name: _value(i, seed) for i, name in enumerate(EMOTIONS)}

    def grain(a):  # mean neighbour difference of the contrast-normalised image
        z = (a - a.mean()) / (a.std() + 1e-6)
        return float(np.abs(np.diff(z, axis=1)).mean() + np.abs(np.diff(z, axis=0)).mean())

    def hard_edges(a):  # share of neighbour steps over one standard deviation
        z = (a - a.mean()) / (a.std() + 1e-6)
        return float((np.abs(np.diff(z, axis=1)) > 1.0).mean())

    # anxiety: jittery fine grain, far finer than anything else
    assert grain(v["anxiety"]) > 0.8
    assert all(grain(v[e]) < 0.5 for e in EMOTIONS if e != "anxiety")
    # anger: hard streaks (sharp steps), which the soft styles never have
    assert hard_edges(v["anger"]) > 0.03
    assert all(hard_edges(v[e]) < 0.005 for e in ("joy", "sadness", "neutral"))
    # sadness: slow vertical gradient, light from above
    h = v["sadness"].shape[0]
    assert v["sadness"][: h // 3].mean() > 1.5 * v["sadness"][-h // 3 :].mean()
    # joy: radiant, brightness falls away from a core near the middle
    sm = cv2.GaussianBlur(v["joy"], (0, 0), 15)
    y, x = np.unravel_index(sm.argmax(), sm.shape)
    assert 0.2 * 640 < x < 0.8 * 640 and 0.15 * 360 < y < 0.85 * 360
    yy, xx = np.mgrid[:360, :640]
    assert np.corrcoef(np.hypot(yy - y, xx - x).ravel(), v["joy"].ravel())[0, 1] < -0.7
    # neutral: calm, the lowest contrast of all
    contrast = {e: float(a.std() / a.mean()) for e, a in v.items()}
    assert min(contrast, key=contrast.get) == "neutral", contrast


def test_seeds_reproduce_and_differ():
    gen = small_gen()
    cue = cue_for("joy", 0.7)
    a, b, c = gen.generate(cue, seed=42), gen.generate(cue, seed=42), gen.generate(cue, seed=43)
    assert a.seed == b.seed == 42 and c.seed == 43
    assert np.array_equal(a.image, b.image)
    assert np.abs(a.image.astype(int) - c.image.astype(int)).mean() > 2.0
    # no seed given: a fresh one, recorded, that makes the same picture again
    d = gen.generate(cue)
    assert np.array_equal(gen.generate(cue, seed=d.seed).image, d.image)
    # a fixed seed in the config is used when none is asked for
    fixed = small_gen(seed=7)
    assert fixed.generate(cue).seed == 7


def test_wrong_size_is_refused_with_the_allowed_range():
    with pytest.raises(ValueError, match=r"5000x100 .*width 8\.\.3840"):
        render(0, WHITE, 5000, 100, seed=0)


# --------------------------------------------------------------------------- prompts


def test_prompt_names_emotion_intent_confidence_and_colour_words():
    cfg = Config()
    for emotion, word in (("joy", "yellow"), ("anxiety", "white"), ("anger", "orange"), ("sadness", "blue"), ("neutral", "purple")):
        cue = cue_for(emotion, 0.73, intent="joy")
        prompt = build_prompt(cue, cfg.generator, cfg.palette)
        assert f"emotion of {emotion}" in prompt
        assert f"73% {word}" in prompt
        assert "joy with yellow accents" in prompt
    # the original project's wording is the start of the default
    assert build_prompt(cue_for("sad", 0.5), cfg.generator, cfg.palette).startswith(
        "art style background of feeling the emotion of sadness with 50% blue"
    )


def test_prompt_templates_per_emotion_from_config():
    cfg = config_from_dict({"generator": {"prompts": {"angry": "storm of {colour_word} for {emotion}"}}})
    assert build_prompt(cue_for("anger", 0.9), cfg.generator, cfg.palette) == "storm of orange for anger"
    assert "emotion of joy" in build_prompt(cue_for("joy", 0.9), cfg.generator, cfg.palette)
    with pytest.raises(ConfigError, match="generator.prompts: unknown emotion 'fury'"):
        config_from_dict({"generator": {"prompts": {"fury": "x"}}})
    bad = config_from_dict({"generator": {"prompt": "a {mood} sky"}})
    with pytest.raises(ValueError, match=r"unknown field \{mood\}.*\{emotion\}"):
        build_prompt(cue_for("joy", 0.9), bad.generator, bad.palette)


def test_colour_words_follow_a_changed_palette():
    assert colour_word(Colour.from_hex("#00c040")) == "green"
    palette = PaletteConfig(joy="#ff1493")
    cue = cue_for("joy", 1.0, palette_cfg=palette)
    assert "100% pink" in build_prompt(cue, GeneratorConfig(), palette)


# --------------------------------------------------------------------------- the worker


class SlowProcedural(ProceduralGenerator):
    """Real CPU work that takes a while: the 4K procedural background, several times over.
    It stands in for a slow model so the worker's hand-offs can be watched."""

    name = "slow-procedural"

    def __init__(self, repeats: int = 6):
        super().__init__(GeneratorConfig(width=3840, height=2160), PALETTE)
        self.repeats = repeats
        self.calls: list[int] = []

    def generate(self, cue, *, seed=None, size=None):
        self.calls.append(cue.id)
        for _ in range(self.repeats - 1):
            render(cue.emotion, cue.colour, 3840, 2160, 1)
        return super().generate(cue, seed=seed, size=size)


def test_worker_takes_the_newest_cue_and_drops_stale_ones():
    got = []
    gen = SlowProcedural()
    worker = BackgroundWorker(gen, on_background=got.append)
    worker.start()
    try:
        cues = [cue_for(i % 5, 0.3 + 0.02 * i, cue_id=i) for i in range(1, 31)]
        submit_s = []
        for cue in cues:
            t0 = time.perf_counter()
            worker.submit(cue)
            submit_s.append(time.perf_counter() - t0)
            time.sleep(0.01)
        assert worker.wait_idle(60)
    finally:
        worker.stop()
    st = worker.status()
    assert max(submit_s) < 0.005, f"submit took {max(submit_s) * 1000:.1f} ms"
    assert st["submitted"] == 30
    assert st["dropped"] > 0 and st["generated"] + st["dropped"] == 30, st
    assert len(got) == st["generated"] < 30
    assert got[-1].cue_id == 30, "the newest cue must always get its background"
    assert gen.calls == sorted(gen.calls), "never an older cue after a newer one"
    assert [bg.id for bg in got] == list(range(1, len(got) + 1))
    assert st["generator"] == "slow-procedural" and st["busy"] is False and st["last_seconds"] > 0


def test_generate_now_regenerates_for_the_latest_cue_with_a_new_seed():
    got = []
    worker = BackgroundWorker(small_gen(), on_background=got.append)
    worker.start()
    try:
        assert worker.generate_now() is False  # nothing to draw yet
        worker.submit(cue_for("anger", 0.9, cue_id=5))
        assert worker.wait_idle(10)
        assert worker.generate_now() is True
        assert worker.wait_idle(10)
    finally:
        worker.stop()
    assert [bg.cue_id for bg in got] == [5, 5]
    assert got[0].seed != got[1].seed
    assert not np.array_equal(got[0].image, got[1].image)


def test_broken_model_path_falls_back_to_procedural_and_says_why():
    import diffusers  # noqa: F401  (dev install; a missing one fails, never skips)
    cfg = GeneratorConfig(kind="diffusion", model=str(REPO / "no-such-model" / "sd.safetensors"), width=320, height=180)
    gen = make_generator(cfg, PALETTE)
    statuses, got = [], []
    worker = BackgroundWorker(gen, on_background=got.append, on_status=statuses.append)
    worker.start()
    try:
        worker.submit(cue_for("sadness", 0.8, cue_id=1))
        assert worker.wait_idle(60)
        worker.submit(cue_for("joy", 0.8, cue_id=2))
        assert worker.wait_idle(60)
    finally:
        worker.stop()
    assert len(got) == 2
    assert all(bg.generator == "procedural" for bg in got)
    assert got[0].image.shape == (180, 320, 3)
    assert "no-such-model" in got[0].note and "does not exist" in got[0].note
    assert statuses[0].startswith("generator-failed: model path") and "does not exist" in statuses[0]
    st = worker.status()
    assert st["fallbacks"] == 2 and "does not exist" in st["last_error"]
    # the colour is still the cue's
    assert colour_fidelity(got[0].image, cue_for("sadness", 0.8).colour)["hue_error_deg"] < 8


def test_worker_survives_a_failing_consumer():
    calls = []

    def bad_sink(bg):
        calls.append(bg.id)
        raise RuntimeError("sink unplugged")

    worker = BackgroundWorker(small_gen(), on_background=bad_sink)
    worker.start()
    try:
        for i in range(3):
            worker.submit(cue_for("joy", 0.5, cue_id=i))
            assert worker.wait_idle(10)
    finally:
        worker.stop()
    assert calls == [1, 2, 3]


# --------------------------------------------------------------------------- crossfades


def test_crossfade_blends_old_into_new_over_the_set_time():
    old = np.zeros((90, 160, 3), np.uint8)
    new = np.full((90, 160, 3), 200, np.uint8)
    fade = Crossfader(2.0)
    assert fade.frame(0.0) is None
    fade.set(old, now=10.0)
    assert np.array_equal(fade.frame(10.0), old)  # the first image shows at once
    fade.set(new, now=20.0)
    assert fade.fading(20.5) and not fade.fading(22.0)
    means = [float(fade.frame(20.0 + t).mean()) for t in (0.0, 0.5, 1.0, 1.5, 2.0, 3.0)]
    assert means[0] == 0.0 and means[-2] == 200.0 and means[-1] == 200.0
    assert means[0] < means[1] < means[2] < means[3] < means[4]
    assert abs(means[2] - 100) < 2  # half-way at half the time


def test_crossfade_restarts_from_what_is_on_screen_and_resizes():
    a = np.zeros((90, 160, 3), np.uint8)
    b = np.full((90, 160, 3), 200, np.uint8)
    c = np.full((180, 320, 3), 100, np.uint8)
    fade = Crossfader(1.0)
    fade.set(a, 0.0)
    fade.set(b, 1.0)
    on_screen = fade.frame(1.5).mean()
    fade.set(c, 1.5)  # mid-fade: no jump
    assert abs(fade.frame(1.5).mean() - on_screen) < 1.0
    assert fade.frame(1.5).shape == (180, 320, 3)
    assert fade.frame(2.5).mean() == 100.0
    instant = Crossfader(0.0)
    instant.set(a, 0.0)
    instant.set(b, 0.0)
    assert instant.frame(0.0).mean() == 200.0


# --------------------------------------------------------------------------- the command


def _pcp(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pcp_osc", *args], cwd=REPO, capture_output=True, text=True, timeout=300)


def test_generate_command_writes_the_background_and_prints_prompt_seed_seconds(tmp_path):
    out = tmp_path / "bg.png"
    r = _pcp("generate", "--emotion", "슬픔", "--confidence", "0.8", "--intent", "joy", "--size", "640x360", "--seed", "11", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert "seed: 11" in r.stdout and "seconds:" in r.stdout and "prompt:" in r.stdout
    img = cv2.cvtColor(cv2.imread(str(out)), cv2.COLOR_BGR2RGB)
    assert img.shape == (360, 640, 3)
    expected = render(3, cue_for("sadness", 0.8, intent="joy").colour, 640, 360, 11)
    assert np.array_equal(img, expected)  # PNG is lossless: the same seed, the same picture


def test_generate_command_explains_bad_input(tmp_path):
    r = _pcp("generate", "--emotion", "bored", "--confidence", "0.5", "--out", str(tmp_path / "x.png"))
    assert r.returncode == 2 and "unknown emotion 'bored'" in r.stderr and "joy" in r.stderr
    r = _pcp("generate", "--emotion", "joy", "--confidence", "0.5", "--size", "9000x10", "--out", str(tmp_path / "x.png"))
    assert r.returncode == 2 and "9000x10" in r.stderr and "3840" in r.stderr
    r = _pcp("generate", "--emotion", "joy", "--confidence", "1.5", "--out", str(tmp_path / "x.png"))
    assert r.returncode == 2 and "confidence 1.5" in r.stderr
    assert not (tmp_path / "x.png").exists()


def test_generate_names_the_flag_of_a_bad_emotion_or_confidence(tmp_path):
    """`pcp-osc generate` names the flag the operator typed (it said "in emotion")."""
    import subprocess
    import sys

    def gen(*args):
        return subprocess.run([sys.executable, "-m", "pcp_osc", "generate", *args, "--out", str(tmp_path / "bg.png")],
                              capture_output=True, text=True, timeout=120)

    r = gen("--emotion", "rage", "--confidence", "0.5")
    assert r.returncode == 2 and "unknown emotion 'rage' in --emotion; allowed: joy" in r.stderr
    r = gen("--emotion", "joy", "--intent", "rage", "--confidence", "0.5")
    assert r.returncode == 2 and "unknown emotion 'rage' in --intent" in r.stderr
    r = gen("--emotion", "joy", "--confidence", "1.5")
    assert r.returncode == 2 and "--confidence 1.5 is out of range; allowed 0..1" in r.stderr
    assert not (tmp_path / "bg.png").exists()
