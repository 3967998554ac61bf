"""`pcp-osc bench`: perception frames per second with 1, 8 and 32 faces, faces found vs
placed, and the fer library side by side on the same frames (when available)."""

from __future__ import annotations

import argparse
import json
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="measure perception speed and accuracy (and fer's, side by side)",
                       description="Figures for the README, measured on this machine. Timings depend on what "
                                   "else runs: compare ratios within one run.")
    p.add_argument("--config", "-c", metavar="FILE", help="TOML configuration (its [perception] section is used)")
    p.add_argument("--seconds", type=float, default=5.0, metavar="S", help="time per case (default 5)")
    p.add_argument("--faces", default="1,8,32", metavar="N,N,..", help="face counts (default 1,8,32)")
    p.add_argument("--fer-python", metavar="PYTHON", help="a Python with fer installed (default: .cache/fer-venv, "
                   "made by tools/make_fer_venv.sh, or $PCP_OSC_FER_PYTHON)")
    p.add_argument("--no-fer", action="store_true", help="skip the fer comparison")
    p.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    p.add_argument("--live", action="store_true", help="instead, live video from real photographs: a camera pan with a cut "
                   "(found share, flicker, track ids, fer side by side) and a slow source (a picture every 2 s)")
    p.add_argument("--light", default="", metavar="NAME,..", help="with --live: also the same video under these stage "
                   "lights (dim, magenta, blue, red; or all): faces found and emotions kept from normal light")
    p.add_argument("--stills", action="store_true", help="instead, photographs: 1280x720 stills from real scenes (faces "
                   "20..110 px) searched whole, pictures per second and faces found (fer side by side), and the false "
                   "boxes on the real scenes at their own size and from a 4K camera")
    p.add_argument("--backgrounds", nargs=argparse.REMAINDER, metavar="...",
                   help="instead, the background generators' bench (procedural, and Stable Diffusion with random "
                        "weights; --comfyui: ComfyUI round trips); the rest of the line goes to it, e.g. --backgrounds --procedural-only")
    p.add_argument("--stage-light", nargs=argparse.REMAINDER, metavar="...",
                   help="instead, the stage-light bench: real scenes darkened and washed in colour, how many faces keep "
                        "their normal-light emotion; the rest of the line goes to it, e.g. --stage-light --json")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.backgrounds is not None:
        from pcp_bench.backgrounds import main as backgrounds_bench

        return backgrounds_bench(args.backgrounds)
    if getattr(args, "stage_light", None) is not None:
        from pcp_bench.stagelight import main as stage_light_bench

        return stage_light_bench(args.stage_light)
    from pcp_bench.perception import format_table, run_bench
    from ..config import ConfigError, load_config
    from ..perception import PerceptionError

    if args.stills:
        from pcp_bench.stills import format_stills, run_stills_bench

        if not 0.5 <= args.seconds <= 600:
            print(f"pcp-osc bench: --seconds {args.seconds} is out of range; allowed 0.5..600", file=sys.stderr)
            return 2
        try:
            result = run_stills_bench(load_config(args.config), seconds=args.seconds,
                                      fer=False if args.no_fer else args.fer_python,
                                      progress=lambda s: print(f"[bench] {s}", file=sys.stderr, flush=True))
        except (ConfigError, PerceptionError, RuntimeError, ValueError) as e:
            print(f"pcp-osc bench: {e}", file=sys.stderr)
            return 2
        print(json.dumps(result, indent=2) if args.json else format_stills(result))
        return 0
    if args.light and not args.live:
        print("pcp-osc bench: --light goes with --live (the stills' stage-light bench is --stage-light)", file=sys.stderr)
        return 2
    if args.live:
        from pcp_bench.live import format_live, run_live_bench
        from pcp_bench.stagelight import LIGHTS

        lights = tuple(LIGHTS) if args.light == "all" else tuple(x.strip() for x in args.light.split(",") if x.strip())
        unknown = [x for x in lights if x not in LIGHTS]
        if unknown:
            print(f"pcp-osc bench: --light {', '.join(unknown)} not known; allowed: {', '.join(LIGHTS)} or all", file=sys.stderr)
            return 2
        try:
            result = run_live_bench(load_config(args.config), fer=False if args.no_fer else args.fer_python,
                                    progress=lambda s: print(f"[bench] {s}", file=sys.stderr, flush=True), lights=lights)
        except (ConfigError, PerceptionError, RuntimeError, ValueError) as e:
            print(f"pcp-osc bench: {e}", file=sys.stderr)
            return 2
        print(json.dumps(result, indent=2) if args.json else format_live(result))
        return 0

    try:
        counts = tuple(int(x) for x in args.faces.split(",") if x.strip())
        if not counts or any(not 0 <= n <= 64 for n in counts):
            raise ValueError
    except ValueError:
        print(f"pcp-osc bench: --faces {args.faces!r} must be a comma list of counts 0..64, e.g. 1,8,32", file=sys.stderr)
        return 2
    if not 0.5 <= args.seconds <= 600:
        print(f"pcp-osc bench: --seconds {args.seconds} is out of range; allowed 0.5..600", file=sys.stderr)
        return 2
    try:
        config = load_config(args.config)
        result = run_bench(config, seconds=args.seconds, counts=counts,
                           fer=False if args.no_fer else args.fer_python,
                           progress=lambda s: print(f"[bench] {s}", file=sys.stderr, flush=True))
    except (ConfigError, PerceptionError, RuntimeError) as e:
        print(f"pcp-osc bench: {e}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2) if args.json else format_table(result))
    return 0
