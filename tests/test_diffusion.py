"""The Stable Diffusion generator's real loading and generation code, on a tiny pipeline.

tests/tiny_sd.py builds a StableDiffusionPipeline from small random components
(real diffusers/transformers classes, a locally built BPE tokenizer) and saves it
in diffusers layout; nothing is downloaded. Random weights draw noise, not art:
these tests check loading, schedules, seeds, prompts, colour fidelity, errors,
fallback and that generation never delays the cues.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

import diffusers  # noqa: E402,F401  (the diffusion extra is part of the dev install: a missing one fails, never skips)

from pcp_osc.backgrounds import BackgroundWorker, GeneratorError, cue_for, make_generator  # noqa: E402
from pcp_osc.backgrounds import diffusion as sd  # noqa: E402
from pcp_osc.backgrounds.colours import colour_fidelity, measure_colour  # noqa: E402
from pcp_osc.backgrounds import models as sd_models  # noqa: E402
from pcp_osc.backgrounds.models import single_file_architecture  # noqa: E402
from pcp_osc.config import GeneratorConfig, PaletteConfig  # noqa: E402

from tiny_sd import save_single_file, save_tiny_pipeline, save_tiny_taesd  # noqa: E402

PALETTE = PaletteConfig()


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    return save_tiny_pipeline(tmp_path_factory.mktemp("tiny-sd") / "model")


@pytest.fixture(scope="module")
def tiny_taesd(tmp_path_factory) -> Path:
    return save_tiny_taesd(tmp_path_factory.mktemp("tiny-taesd") / "taesd")


def gen_cfg(model: Path | str, **kw) -> GeneratorConfig:
    base = dict(kind="diffusion", model=str(model), sd_width=64, sd_height=64, width=192, height=108, schedule="turbo", steps=2)
    base.update(kw)
    return GeneratorConfig(**base)


def count_unet_calls(gen) -> list[int]:
    calls = []
    gen.pipe.unet.register_forward_hook(lambda module, args, out: calls.append(args[0].shape[0]))
    return calls


# --------------------------------------------------------------------------- loading and generating


def test_loads_a_diffusers_folder_and_generates_the_stage_size(tiny_model):
    gen = make_generator(gen_cfg(tiny_model), PALETTE)
    cue = cue_for("anger", 0.8, intent="joy", cue_id=12)
    bg = gen.generate(cue, seed=5)
    assert bg.image.shape == (108, 192, 3) and bg.image.dtype == np.uint8
    assert bg.seed == 5 and bg.cue_id == 12 and bg.seconds > 0
    assert bg.generator == "diffusion:model/turbo"
    assert "emotion of anger" in bg.prompt and "80% orange" in bg.prompt and "joy with yellow accents" in bg.prompt
    assert gen.device == "cpu"


def test_seeds_reproduce(tiny_model):
    gen = make_generator(gen_cfg(tiny_model), PALETTE)
    cue = cue_for("joy", 0.7)
    a, b, c = gen.generate(cue, seed=3), gen.generate(cue, seed=3), gen.generate(cue, seed=4)
    assert np.array_equal(a.image, b.image)
    assert np.abs(a.image.astype(int) - c.image.astype(int)).mean() > 1.0
    d = gen.generate(cue)  # no seed: a new one, recorded, that makes the same picture again
    assert np.array_equal(gen.generate(cue, seed=d.seed).image, d.image)


@pytest.mark.parametrize(
    "schedule, steps, strength, expected_calls, batch",
    [
        ("turbo", 1, 0.6, 1, 1),  # 1 step at img2img strength 0.6 still runs exactly 1 step
        ("lcm", 4, 0.5, 4, 1),
        ("classic", 3, 0.6, 3, 2),  # classifier-free guidance: conditional + unconditional in one batch
        ("turbo", 2, 1.0, 2, 1),  # strength 1: text-to-image
    ],
)
def test_schedules_run_the_asked_number_of_steps(tiny_model, schedule, steps, strength, expected_calls, batch):
    gen = make_generator(gen_cfg(tiny_model, schedule=schedule, steps=steps, strength=strength), PALETTE)
    gen.load()
    calls = count_unet_calls(gen)
    gen.generate(cue_for("sadness", 0.6), seed=1)
    assert len(calls) == expected_calls
    assert set(calls) == {batch}
    expected_scheduler = {"turbo": "EulerDiscreteScheduler", "lcm": "LCMScheduler", "classic": "DPMSolverMultistepScheduler"}
    assert type(gen.pipe.scheduler).__name__ == expected_scheduler[schedule]


def test_schedule_defaults_follow_the_model_name():
    assert sd.resolve_schedule(GeneratorConfig(model="/m/sd-turbo")) == ("turbo", 1, 0.0)
    assert sd.resolve_schedule(GeneratorConfig(model="/m/LCM_Dreamshaper_v7")) == ("lcm", 4, 1.0)
    assert sd.resolve_schedule(GeneratorConfig(model="/m/v1-5-pruned.safetensors")) == ("classic", 25, 7.5)
    assert sd.resolve_schedule(GeneratorConfig(model="/m/x", lcm_lora="/l.safetensors")) == ("lcm-lora", 4, 1.0)
    assert sd.resolve_schedule(GeneratorConfig(model="/m/x", steps=8, guidance=2.0)) == ("classic", 8, 2.0)
    with pytest.raises(GeneratorError, match="lcm_lora"):
        sd.resolve_schedule(GeneratorConfig(model="/m/x", schedule="lcm-lora"))


def test_tiny_autoencoder_decodes(tiny_model, tiny_taesd):
    from diffusers import AutoencoderTiny

    gen = make_generator(gen_cfg(tiny_model, tiny_vae=str(tiny_taesd)), PALETTE)
    bg = gen.generate(cue_for("neutral", 0.9), seed=2)
    assert isinstance(gen.pipe.vae, AutoencoderTiny)
    assert bg.image.shape == (108, 192, 3)


def test_lcm_lora_is_loaded_and_changes_the_picture(tiny_model, tmp_path):
    import peft  # noqa: F401  (LoRA loading needs peft, in the diffusion extra)
    import torch
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    # A LoRA for the tiny UNet, saved the way LCM-LoRA files are.
    torch.manual_seed(0)
    unet = UNet2DConditionModel.from_pretrained(str(tiny_model), subfolder="unet")
    unet.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"], init_lora_weights="gaussian"))
    for name, p in unet.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.5)  # "gaussian" init leaves B at 0: give it an effect
    layers = convert_state_dict_to_diffusers(get_peft_model_state_dict(unet))
    StableDiffusionPipeline.save_lora_weights(str(tmp_path), unet_lora_layers=layers, safe_serialization=True)
    lora_file = tmp_path / "pytorch_lora_weights.safetensors"
    assert lora_file.is_file()

    cue = cue_for("joy", 0.8)
    plain = make_generator(gen_cfg(tiny_model, schedule="lcm", steps=2, colour_match=0.0), PALETTE)
    lora = make_generator(gen_cfg(tiny_model, lcm_lora=str(lora_file), schedule="auto", steps=2, colour_match=0.0), PALETTE)
    assert lora.schedule == "lcm-lora"
    a, b = plain.generate(cue, seed=1), lora.generate(cue, seed=1)
    assert type(lora.pipe.scheduler).__name__ == "LCMScheduler"
    assert np.abs(a.image.astype(int) - b.image.astype(int)).mean() > 0.5


# --------------------------------------------------------------------------- colour fidelity


def test_img2img_output_keeps_the_cues_hue_and_brightness(tiny_model):
    gen = make_generator(gen_cfg(tiny_model), PALETTE)
    cues = [cue_for(e, c) for e in ("joy", "anger", "sadness", "neutral") for c in (0.15, 0.9)]
    report = sd.fidelity_over(gen, cues, seed=10)
    assert report["max_hue_error_deg"] < 25.0, report
    assert report["brightness_r"] > 0.6, report  # across emotions, structure differs too
    for e in range(4):  # brighter cue, brighter picture, per emotion
        dim, bright = report["cues"][2 * e], report["cues"][2 * e + 1]
        assert bright["brightness"] > 1.15 * dim["brightness"], (dim, bright)


def test_colour_match_pulls_statistics_toward_the_reference():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)  # grey noise
    reference = np.zeros((64, 64, 3), np.uint8)
    reference[...] = (40, 80, 220)  # blue
    before = colour_fidelity(image, cue_for("sadness", 1.0).colour)
    after = colour_fidelity(sd.colour_match(image, reference, 1.0), cue_for("sadness", 1.0).colour)
    assert before["hue_deg"] is None or before["hue_error_deg"] > 40
    assert after["hue_error_deg"] < 15
    assert np.array_equal(sd.colour_match(image, reference, 0.0), image)


# --------------------------------------------------------------------------- errors


def test_clear_errors_for_missing_and_wrong_models(tmp_path):
    cases = [
        ("", "generator.model is empty"),
        (str(tmp_path / "nowhere" / "model.safetensors"), "does not exist"),
        (str(tmp_path), "not in diffusers layout (no model_index.json)"),
        ("pcp-osc-test/not-a-cached-model", "nor in the local Hugging Face cache"),
    ]
    (tmp_path / "notes.txt").write_text("not a model")
    cases.append((str(tmp_path / "notes.txt"), "is not a checkpoint; allowed: .safetensors, .ckpt"))
    for model, message in cases:
        gen = make_generator(gen_cfg(model), PALETTE)
        with pytest.raises(GeneratorError, match=__import__("re").escape(message)):
            gen.generate(cue_for("joy", 0.5))
        # the failure is remembered: the next cue fails at once, no reload attempt
        t0 = time.perf_counter()
        with pytest.raises(GeneratorError):
            gen.generate(cue_for("joy", 0.5))
        assert time.perf_counter() - t0 < 0.05


def test_single_file_without_local_configs_is_refused_not_downloaded(tiny_model, tmp_path):
    # The tiny UNet's weights as one .safetensors file: its architecture cannot be
    # read (it is not an original-layout checkpoint) and no configs are on this machine.
    import shutil

    src = next((tiny_model / "unet").glob("*.safetensors"))
    ckpt = tmp_path / "my-model.safetensors"
    shutil.copy(src, ckpt)
    gen = make_generator(gen_cfg(ckpt, model_config=str(tmp_path)), PALETTE)
    with pytest.raises(GeneratorError, match="model_config .* is not a diffusers folder"):
        gen.load()


def test_single_file_checkpoint_loads_offline_and_matches_the_folder(tiny_model, tmp_path):
    """The tiny pipeline as ONE original-layout .safetensors (the form VJs download),
    loaded offline (the network is blocked for the whole suite) with model_config = a
    copy of the tiny folder holding only configs and tokenizer, no weights: the
    picture equals the folder's own for the same cue and seed, so every weight came
    from the file."""
    import shutil

    from safetensors import safe_open

    ckpt = save_single_file(tiny_model, tmp_path / "tiny-sd.safetensors")
    with safe_open(str(ckpt), framework="pt") as f:
        keys = set(f.keys())
    assert "model.diffusion_model.input_blocks.0.0.weight" in keys
    assert "first_stage_model.decoder.up.0.block.0.conv1.weight" in keys
    assert "cond_stage_model.transformer.text_model.embeddings.position_embedding.weight" in keys
    assert not any(k.startswith(("unet.", "vae.", "text_encoder.", "down_blocks.")) for k in keys)
    assert single_file_architecture(str(ckpt)) == "v1"

    configs = tmp_path / "configs-only"
    shutil.copytree(tiny_model, configs, ignore=shutil.ignore_patterns("*.safetensors", "*.bin"))
    assert not list(configs.rglob("*.safetensors"))

    cue = cue_for("sadness", 0.7, intent="joy", cue_id=4)
    from_folder = make_generator(gen_cfg(tiny_model), PALETTE).generate(cue, seed=7)
    gen = make_generator(gen_cfg(ckpt, model_config=str(configs)), PALETTE)
    from_file = gen.generate(cue, seed=7)
    assert type(gen.pipe).__name__ == "StableDiffusionImg2ImgPipeline"
    assert from_file.generator == "diffusion:tiny-sd.safetensors/turbo"
    diff = np.abs(from_file.image.astype(int) - from_folder.image.astype(int))
    assert diff.max() <= 1, f"file and folder differ by up to {diff.max()} (mean {diff.mean():.2f})"
    # and the comparison can fail: another seed gives a visibly different picture
    other = gen.generate(cue, seed=8)
    assert np.abs(other.image.astype(int) - from_folder.image.astype(int)).mean() > 1.0


def test_too_little_memory_is_refused_before_loading(tiny_model, monkeypatch):
    # This machine has plenty; pretend it has 100 MB free (a small stage PC / a full GPU).
    monkeypatch.setattr(sd_models, "_free_memory_bytes", lambda device: 100_000_000)
    gen = make_generator(gen_cfg(tiny_model), PALETTE)
    with pytest.raises(GeneratorError, match=r"not enough memory on cpu .* 0\.1 GB free"):
        gen.load()


def test_broken_model_falls_back_with_the_reason(tiny_model, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(tiny_model, broken)
    for f in (broken / "unet").glob("*.safetensors"):
        f.write_bytes(b"this is not a safetensors file")
    statuses, got = [], []
    worker = BackgroundWorker(make_generator(gen_cfg(broken), PALETTE), on_background=got.append, on_status=statuses.append)
    worker.start()
    try:
        worker.submit(cue_for("sadness", 0.8, cue_id=3))
        assert worker.wait_idle(60)
    finally:
        worker.stop()
    assert len(got) == 1 and got[0].generator == "procedural" and got[0].cue_id == 3
    assert got[0].image.shape == (108, 192, 3)
    assert statuses and statuses[0].startswith("generator-failed: could not load model")
    assert "broken" in worker.status()["last_error"]


# --------------------------------------------------------------------------- never in the cues' way


def test_slow_generation_never_delays_the_daemons_cues(tiny_model, receiver):
    """The real daemon, assembled as `pcp-osc run` does, with the diffusion generator on the
    tiny pipeline at 64 steps of 128 px (each background takes seconds on this CPU even when
    warm, longer than the 1 s window, so newer requests replace waiting ones; 4 or 32 steps
    of 64 px took 0.4..0.8 s warm, under the window):
    window cues leave on time over real UDP while it generates, and an operator's override
    goes out at once."""
    from oscutil import send_osc

    from pcp_osc.capture import BrowserSource
    from pcp_osc.config import config_from_dict
    from pcp_osc.show import assemble

    cfg = config_from_dict({
        "osc": {"target": receiver.target, "control_port": 0, "control_host": "127.0.0.1", "heartbeat": False},
        "mood": {"window_s": 1.0, "intent": "joy"},
        "generator": {"kind": "diffusion", "model": str(tiny_model), "schedule": "classic", "steps": 64,
                      "sd_width": 128, "sd_height": 128, "width": 192, "height": 108, "strength": 1.0},
        "log": {"enabled": False},
    })
    daemon = assemble(cfg, source=BrowserSource(), perception=False)
    busy_at_cue: list[bool] = []
    daemon.start()
    try:
        for n in range(1, 8):
            receiver.wait_for("/pcp/cue/hex", after=n, timeout_s=3)
            busy_at_cue.append(bool(daemon.status()["generator"]["busy"]))
        n = len(receiver.cues())
        t_sent = time.monotonic()
        send_osc(daemon.control_server.port, "/pcp/override", "anger")
        override = receiver.wait_for("/pcp/cue/source", lambda m: m.args[0] == "override", timeout_s=2)
        override_latency_s = override.t - t_sent
        busy_at_override = daemon.status()["generator"]["busy"]
        st = daemon.status()["generator"]
    finally:
        daemon.stop()
        # a diffusion step cannot be interrupted: let the one in progress end before torch is torn down
        worker = next(p for p in daemon.parts if p.role == "generator")
        assert worker.wait_idle(300)

    cues = receiver.cues()
    window_cues = cues[1:8]  # after the start cue
    gaps = np.diff([c["t"] for c in window_cues])
    assert np.all((gaps > 0.85) & (gaps < 1.3)), f"window cue gaps {np.round(gaps, 3)} s while generating"
    assert [c["id"] for c in cues[:n + 1]] == list(range(n + 1)), "every cue arrives, in order"
    assert override_latency_s < 0.2, f"the override took {override_latency_s * 1000:.0f} ms to go out"
    assert sum(busy_at_cue) >= 4 and busy_at_override, f"the generator was not busy while cues went out: {busy_at_cue}"
    # Requests were replaced while it worked: each background took longer than a window.
    assert st["fallbacks"] == 0, f"the diffusion generator failed, the procedural one stood in: {st['last_error']}"
    assert "diffusion" in st["generator"] and st["dropped"] > 0, repr(st)
