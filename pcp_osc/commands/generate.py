"""`pcp-osc generate`: one stage background from the command line.

    pcp-osc generate --emotion joy --confidence 0.8 --out joy.png
    pcp-osc generate --emotion sad --confidence 0.6 --intent joy --generator diffusion \\
        --model ~/models/sd-turbo --size 1920x1080 --seed 7 --out sad.png
    pcp-osc generate --emotion anger --confidence 0.9 --generator comfyui \\
        --workflow stage-look.json --server http://10.0.0.21:8188 --out anger.png

Prints the prompt, seed and seconds, so a look can be made again.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..emotions import EMOTIONS, UnknownEmotion, parse_emotion


def _size(text: str) -> tuple[int, int]:
    w, sep, h = text.lower().partition("x")
    if not sep or not w.isdigit() or not h.isdigit():
        raise argparse.ArgumentTypeError(f"size {text!r} is not WIDTHxHEIGHT (e.g. 1920x1080)")
    return int(w), int(h)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "generate",
        help="make one stage background for an emotion",
        description="Make one stage background for an emotion and confidence, and print its prompt, seed and seconds.",
    )
    p.add_argument("--emotion", required=True, help=f"{', '.join(EMOTIONS)} (or an alias, index, Korean label)")
    p.add_argument("--confidence", type=float, required=True, help="0..1: sets the brightness")
    p.add_argument("--intent", default=None, help="the performance's intended emotion (default: the emotion)")
    p.add_argument("--generator", choices=("procedural", "diffusion", "comfyui"), default=None, help="default: the config's generator.kind")
    p.add_argument("--model", default=None, help="diffusion model: diffusers folder, .safetensors/.ckpt file, or a cached hub id")
    p.add_argument("--workflow", default=None, help="comfyui: workflow file exported with \"Save (API)\" (default: the config's comfyui.workflow)")
    p.add_argument("--server", action="append", default=None, metavar="URL",
                   help="comfyui: server http://HOST:PORT (repeat for several; default: the config's comfyui.servers)")
    p.add_argument("--size", type=_size, default=None, help="WIDTHxHEIGHT of the background (default: the config's)")
    p.add_argument("--seed", type=int, default=None, help="seed (default: a new one, printed)")
    p.add_argument("--steps", type=int, default=None, help="diffusion steps (default: the schedule's)")
    p.add_argument("--config", default=None, help="TOML config file (palette, generator)")
    p.add_argument("--out", required=True, help="image file to write (.png or .jpg)")
    p.set_defaults(func=run)


def run(args) -> int:
    import dataclasses

    import cv2

    from ..backgrounds import GeneratorError, cue_for, make_generator
    from ..backgrounds.colours import colour_fidelity
    from ..backgrounds.procedural import check_size
    from ..config import ConfigError, load_config

    try:
        cfg = load_config(args.config)
        gen_cfg = cfg.generator
        changes = {}
        if args.model is not None:
            changes["model"] = args.model
        if args.steps is not None:
            if not 1 <= args.steps <= 200:
                raise ValueError(f"--steps {args.steps} is out of range; allowed 1..200")
            changes["steps"] = args.steps
        if args.size is not None:
            check_size(*args.size)
            changes["width"], changes["height"] = args.size
        gen_cfg = dataclasses.replace(gen_cfg, **changes)
        kind = args.generator or ("procedural" if gen_cfg.kind == "off" else gen_cfg.kind)
        comfy_cfg = cfg.comfyui
        if args.workflow is not None or args.server:
            if kind != "comfyui":
                raise ValueError("--workflow and --server are for --generator comfyui")
            from ..config import _server_url_check

            for url in args.server or []:
                problem = _server_url_check(url)
                if problem:
                    raise ValueError(f"--server {url!r}: {problem}")
            comfy_cfg = dataclasses.replace(
                comfy_cfg, servers=list(dict.fromkeys(args.server or comfy_cfg.servers)), workflow=args.workflow or comfy_cfg.workflow
            )
        parse_emotion(args.emotion, "--emotion")  # named as the operator typed it
        if args.intent is not None:
            parse_emotion(args.intent, "--intent")
        if not 0.0 <= args.confidence <= 1.0:
            raise ValueError(f"--confidence {args.confidence:g} is out of range; allowed 0..1")
        cue = cue_for(args.emotion, args.confidence, args.intent, cfg.palette)
        out = Path(args.out)
        if out.suffix.lower() not in (".png", ".jpg", ".jpeg"):
            raise ValueError(f"--out {args.out!r} must end in .png or .jpg")
        gen = make_generator(gen_cfg, cfg.palette, kind=kind, comfy_cfg=comfy_cfg)
        if hasattr(gen, "progress"):
            gen.progress = lambda text: print(text, file=sys.stderr, flush=True)
        try:
            gen.load()
            bg = gen.generate(cue, seed=args.seed)
        finally:
            if hasattr(gen, "close"):
                gen.close()
    except (ConfigError, UnknownEmotion, ValueError, GeneratorError) as e:
        print(f"pcp-osc generate: {e}", file=sys.stderr)
        return 2
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), cv2.cvtColor(bg.image, cv2.COLOR_RGB2BGR)):
        print(f"pcp-osc generate: could not write {str(out)!r}", file=sys.stderr)
        return 1
    fid = colour_fidelity(bg.image, cue.colour)
    print(f"prompt: {bg.prompt}")
    print(f"seed: {bg.seed}")
    print(f"seconds: {bg.seconds:.3f}")
    print(f"generator: {bg.generator}")
    if bg.info.get("prompt_id"):
        t = bg.info.get("timings_ms", {})
        print(f"comfyui: prompt {bg.info['prompt_id']} on {bg.info['server']}; server {t.get('server_ms', 0):.0f} ms, "
              f"pcp-osc {t.get('total_ms', 0) - t.get('server_ms', 0):.0f} ms (init image, upload, fetch, decode)")
    print(f"colour: cue {cue.colour.hex} hue {fid['target_hue_deg']} -> image hue {fid['hue_deg']}, brightness {fid['brightness']}")
    print(f"wrote {out} ({bg.image.shape[1]}x{bg.image.shape[0]})")
    return 0
