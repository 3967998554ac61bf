"""The Stable Diffusion background generator (diffusers), in one file that reads top to bottom.

What it loads (``generator.model``; found and checked by models.py), and never downloads unless told to:
  * a folder in diffusers layout (has model_index.json);
  * one checkpoint file, .safetensors or .ckpt (the form VJs download). diffusers
    needs the architecture's configs and tokenizer for it: they come from
    ``generator.model_config`` (any local diffusers folder of the same
    architecture; configs alone are enough), else from the local Hugging Face
    cache of the default repo for that architecture. Neither present: a clear
    error, no download (diffusers itself would silently go online here);
  * a hub id ("stabilityai/sd-turbo") when it is in the local cache, or from the
    network only with ``generator.allow_download = true``.

How it makes a background for a cue (``generate``):
  1. load once (device auto: cuda, then mps, then cpu; float16 off the cpu);
  2. the prompt from the config's template for the cue's emotion (colour words, intent);
  3. the init image: the procedural background of the same cue and seed, so the
     cue's hue and brightness are in the picture, not only in the prompt;
  4. img2img with the schedule (turbo: 1-4 steps, no guidance; lcm / lcm-lora:
     4 steps; classic: 25 steps with guidance), seeded;
  5. colour match: the output's colour statistics pulled toward the init image
     (``colour_match``), then the image is scaled to the stage size.

Every failure is a :class:`GeneratorError` whose message says what to change
(missing model, wrong path, too little memory); the worker then lets the
procedural generator stand in for that cue.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from pathlib import Path

import cv2
import numpy as np

from ..config import GeneratorConfig, PaletteConfig
from ..types import Background, Cue
from . import GeneratorError
from .models import check_memory, hub_offline, model_kind, out_of_memory, pick_device, pick_dtype, single_file_config
from .procedural import check_size, pick_seed, render
from .prompts import build_prompt

log = logging.getLogger("pcp_osc.backgrounds.diffusion")

# Schedule defaults: (steps, guidance). Turbo models are distilled for guidance off;
# LCM needs none with LoRA (its w-embedding pipelines take their own, see _guidance).
SCHEDULE_DEFAULTS = {"turbo": (1, 0.0), "lcm": (4, 1.0), "lcm-lora": (4, 1.0), "classic": (25, 7.5)}


# --------------------------------------------------------------------------- choices


def resolve_schedule(cfg: GeneratorConfig) -> tuple[str, int, float]:
    """(schedule, steps, guidance) after applying 'auto' and the schedule's defaults."""
    schedule = cfg.schedule
    if schedule == "auto":
        name = Path(cfg.model).name.lower()
        if cfg.lcm_lora:
            schedule = "lcm-lora"
        elif "turbo" in name or "lightning" in name:
            schedule = "turbo"
        elif "lcm" in name:
            schedule = "lcm"
        else:
            schedule = "classic"
    if schedule == "lcm-lora" and not cfg.lcm_lora:
        raise GeneratorError("generator.schedule = \"lcm-lora\" needs generator.lcm_lora: the LCM-LoRA weights file or folder")
    steps, guidance = SCHEDULE_DEFAULTS[schedule]
    return schedule, (cfg.steps or steps), (guidance if cfg.guidance < 0 else cfg.guidance)


# --------------------------------------------------------------------------- the generator


class DiffusionGenerator:
    """Stable Diffusion img2img from the cue's procedural background. Loads once; one
    generation at a time (the worker guarantees that; a lock makes it safe anyway)."""

    name = "diffusion"

    def __init__(
        self,
        gen_cfg: GeneratorConfig,
        palette_cfg: PaletteConfig,
        *,
        progress=None,
    ) -> None:
        self.cfg = gen_cfg
        self.palette = palette_cfg
        self.progress = progress or (lambda text: log.info("%s", text))
        self.schedule, self.steps, self.guidance = resolve_schedule(gen_cfg)
        check_size(gen_cfg.width, gen_cfg.height)
        self.device: str | None = None
        self.dtype = None
        self.pipe = None
        self._text2img = None
        self._load_error = ""
        self._lock = threading.RLock()

    @property
    def label(self) -> str:
        return f"diffusion:{Path(self.cfg.model).name or '?'}/{self.schedule}"

    # ------------------------------------------------------------------ loading

    def load(self) -> None:
        """Load the pipeline (once). A failed load is remembered, so a show does not
        retry a missing model on every cue; raises GeneratorError."""
        with self._lock:
            if self.pipe is not None:
                return
            if self._load_error:
                raise GeneratorError(self._load_error)
            try:
                hub_offline(not self.cfg.allow_download)
                self._load()
            except GeneratorError as e:
                self._load_error = str(e)
                raise
            except ImportError as e:
                self._load_error = (
                    f"Stable Diffusion needs the diffusion extra ({e.name or e}); install it with "
                    "pip install 'pcp-osc[diffusion]'"
                )
                raise GeneratorError(self._load_error) from None
            except Exception as e:
                oom = out_of_memory(e, self.device or "?")
                self._load_error = str(oom) if oom else f"could not load model {self.cfg.model!r}: {str(e).splitlines()[0] if str(e) else type(e).__name__}"
                raise GeneratorError(self._load_error) from None

    def _load(self) -> None:
        import torch
        import diffusers
        from diffusers import AutoPipelineForImage2Image

        cfg = self.cfg
        kind, where = model_kind(cfg.model)
        self.device = pick_device(cfg.device)
        self.dtype = pick_dtype(cfg.dtype, self.device)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        check_memory(kind, where, self.device, self.dtype)
        self.progress(f"loading {kind} {where!r} on {self.device} ({str(self.dtype).replace('torch.', '')})")
        # Library warnings and progress bars are for developers, not the show log.
        diffusers.utils.logging.set_verbosity_error()
        diffusers.utils.logging.disable_progress_bar()
        try:
            import transformers

            transformers.utils.logging.set_verbosity_error()
            transformers.utils.logging.disable_progress_bar()
        except ImportError:
            pass
        t0 = time.perf_counter()
        # An abstract backdrop needs no NSFW checker; it would black out whole frames mid-show.
        common = dict(torch_dtype=self.dtype, safety_checker=None, requires_safety_checker=False)
        if kind == "folder":
            pipe = AutoPipelineForImage2Image.from_pretrained(where, local_files_only=True, **common)
        elif kind == "file":
            from diffusers import StableDiffusionImg2ImgPipeline, StableDiffusionXLImg2ImgPipeline

            arch, config_dir = single_file_config(where, cfg)
            if arch.startswith(("xl", "playground")):
                cls, common = StableDiffusionXLImg2ImgPipeline, dict(torch_dtype=self.dtype)
            elif arch.startswith(("v1", "v2")) or arch in ("inpainting", "inpainting_v2"):
                cls = StableDiffusionImg2ImgPipeline
            else:
                raise GeneratorError(f"checkpoint {where!r} is a {arch!r} model; supported: Stable Diffusion 1.x, 2.x and XL")
            pipe = cls.from_single_file(where, config=config_dir, local_files_only=True, **common)
        else:
            try:
                pipe = AutoPipelineForImage2Image.from_pretrained(where, local_files_only=not cfg.allow_download, **common)
            except (OSError, EnvironmentError) as e:
                if cfg.allow_download:
                    raise GeneratorError(f"could not get model {where!r} from the hub: {str(e).splitlines()[0]}") from None
                raise GeneratorError(
                    f"model {where!r} is neither a folder or file on this machine nor in the local Hugging Face cache; "
                    f"fetch it once (huggingface-cli download {where}) or set generator.allow_download = true"
                ) from None
        self._set_schedule(pipe)
        if cfg.tiny_vae:
            from diffusers import AutoencoderTiny

            tiny = Path(cfg.tiny_vae).expanduser()
            if not (tiny / "config.json").is_file():
                raise GeneratorError(f"generator.tiny_vae = {cfg.tiny_vae!r} is not an AutoencoderTiny folder (no config.json)")
            pipe.vae = AutoencoderTiny.from_pretrained(str(tiny), torch_dtype=self.dtype, local_files_only=True)
        pipe = pipe.to(self.device)
        pipe.set_progress_bar_config(disable=True)
        self.pipe = pipe
        self.progress(f"model ready in {time.perf_counter() - t0:.1f} s: {self.schedule}, {self.steps} steps, guidance {self.guidance}")

    def _set_schedule(self, pipe) -> None:
        from diffusers import DPMSolverMultistepScheduler, LCMScheduler

        if self.schedule == "turbo":
            # Distilled for few steps: the last timestep must be the first one sampled.
            pipe.scheduler = type(pipe.scheduler).from_config(pipe.scheduler.config, timestep_spacing="trailing")
        elif self.schedule == "lcm":
            pipe.scheduler = LCMScheduler.from_config(pipe.scheduler.config)
        elif self.schedule == "lcm-lora":
            lora = Path(self.cfg.lcm_lora).expanduser()
            if not lora.exists():
                raise GeneratorError(f"generator.lcm_lora = {self.cfg.lcm_lora!r} does not exist")
            if lora.is_file():
                pipe.load_lora_weights(str(lora.parent), weight_name=lora.name, adapter_name="lcm")
            else:
                pipe.load_lora_weights(str(lora), adapter_name="lcm")
            pipe.fuse_lora()
            pipe.scheduler = LCMScheduler.from_config(pipe.scheduler.config)
        else:
            pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config)

    # ------------------------------------------------------------------ generating

    def generate(self, cue: Cue, *, seed: int | None = None, size: tuple[int, int] | None = None) -> Background:
        """A background for ``cue``: img2img from its procedural background. Raises GeneratorError."""
        with self._lock:
            self.load()
            t0 = time.perf_counter()
            seed = pick_seed(seed, self.cfg.seed)
            out_w, out_h = size or (self.cfg.width, self.cfg.height)
            check_size(out_w, out_h)
            prompt = build_prompt(cue, self.cfg, self.palette)
            init = render(cue.emotion, cue.colour, self.cfg.sd_width, self.cfg.sd_height, seed)
            try:
                image = self._denoise(prompt, init, seed)
            except GeneratorError:
                raise
            except Exception as e:
                oom = out_of_memory(e, self.device or "?")
                if oom:
                    raise oom from None
                raise GeneratorError(f"generation failed: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
            image = colour_match(image, init, self.cfg.colour_match)
            image = fit(image, out_w, out_h)
            return Background(
                image=image,
                prompt=prompt,
                seed=seed,
                seconds=time.perf_counter() - t0,
                generator=self.label,
                cue_id=cue.id,
            )

    def _denoise(self, prompt: str, init: np.ndarray, seed: int) -> np.ndarray:
        import torch
        from PIL import Image

        # A CPU generator gives the same picture for a seed on every device.
        rng = torch.Generator(device="cpu").manual_seed(seed)
        guidance = self.guidance
        common = dict(
            prompt=prompt,
            negative_prompt=self.cfg.negative_prompt if guidance > 1.0 else None,
            guidance_scale=guidance,
            generator=rng,
            output_type="np",
        )
        strength = float(self.cfg.strength)
        with torch.inference_mode():
            if strength >= 1.0:
                if self._text2img is None:
                    from diffusers import AutoPipelineForText2Image

                    self._text2img = AutoPipelineForText2Image.from_pipe(self.pipe)
                    self._text2img.set_progress_bar_config(disable=True)
                out = self._text2img(
                    num_inference_steps=self.steps, width=self.cfg.sd_width, height=self.cfg.sd_height, **common
                )
            else:
                # img2img runs int(num_inference_steps * strength) steps: ask for enough that
                # exactly `steps` run (1-step turbo at strength 0.5 needs 2).
                n = max(self.steps, math.ceil(self.steps / strength - 1e-9))
                out = self.pipe(image=Image.fromarray(init), strength=strength, num_inference_steps=n, **common)
        arr = np.asarray(out.images[0])
        if not np.isfinite(arr).all():
            raise GeneratorError("the model produced NaNs (float16 overflow in its VAE?); try dtype = \"float32\" or tiny_vae")
        return np.clip(arr * 255.0 + 0.5, 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------- colour and size


def colour_match(image: np.ndarray, reference: np.ndarray, weight: float) -> np.ndarray:
    """Move the image's colour statistics (mean and spread of L*, a*, b*) toward the
    reference's by ``weight`` 0..1 (Reinhard colour transfer). The structure stays
    the model's; the hue and brightness become the cue's."""
    if weight <= 0:
        return image
    src = cv2.cvtColor(image.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)
    ref = cv2.cvtColor(reference.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)
    s_mean, s_std = src.reshape(-1, 3).mean(0), src.reshape(-1, 3).std(0) + 1e-3
    r_mean, r_std = ref.reshape(-1, 3).mean(0), ref.reshape(-1, 3).std(0)
    matched = (src - s_mean) * (r_std / s_std) + r_mean
    mixed = src + float(weight) * (matched - src)
    rgb = cv2.cvtColor(mixed.astype(np.float32), cv2.COLOR_LAB2RGB)
    return np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8)


def fit(image: np.ndarray, width_px: int, height_px: int) -> np.ndarray:
    """Scale to fill width x height, cropping the centre where the aspect differs."""
    h, w = image.shape[:2]
    if (w, h) == (width_px, height_px):
        return image
    k = max(width_px / w, height_px / h)
    sw, sh = max(width_px, round(w * k)), max(height_px, round(h * k))
    interp = cv2.INTER_CUBIC if k > 1 else cv2.INTER_AREA
    scaled = cv2.resize(image, (sw, sh), interpolation=interp)
    x0, y0 = (sw - width_px) // 2, (sh - height_px) // 2
    return np.ascontiguousarray(scaled[y0 : y0 + height_px, x0 : x0 + width_px])


def fidelity_over(generator, cues: list[Cue], seed: int = 0) -> dict:
    """Colour fidelity of a generator over a set of cues: per cue and the mean hue error,
    and how well image brightness follows cue brightness (Pearson r)."""
    from .colours import colour_fidelity

    rows = []
    for i, cue in enumerate(cues):
        bg = generator.generate(cue, seed=seed + i)
        rows.append(colour_fidelity(bg.image, cue.colour) | {"emotion": cue.emotion_id, "confidence": cue.confidence})
    errors = [r["hue_error_deg"] for r in rows if r["target_hue_deg"] is not None]
    got = np.array([r["brightness"] for r in rows])
    want = np.array([r["target_brightness"] for r in rows])
    r_b = float(np.corrcoef(got, want)[0, 1]) if len(rows) > 2 and got.std() > 0 and want.std() > 0 else float("nan")
    return {
        "cues": rows,
        "mean_hue_error_deg": round(float(np.mean(errors)), 1) if errors else None,
        "max_hue_error_deg": round(float(np.max(errors)), 1) if errors else None,
        "brightness_r": round(r_b, 3),
    }
