"""`pcp-osc run`: the show daemon."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import signal
import sys

from ..config import Config, ConfigError, config_from_dict, load_config

log = logging.getLogger("pcp_osc.run")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run the show daemon (built-in demo when no camera)",
                       description="Watch the audience camera and send emotion cues over OSC.")
    p.add_argument("--config", "-c", metavar="FILE", help="TOML configuration (every key has a default)")
    p.add_argument("--source", "-s", metavar="SRC", help="auto, demo, browser, camera index, video file, image folder or stream URL")
    p.add_argument("--target", "-t", metavar="HOST:PORT", help="TouchDesigner's OSC In (default 127.0.0.1:9011)")
    p.add_argument("--control-port", type=int, metavar="PORT", help="UDP port for show control (default 9010)")
    p.add_argument("--window", type=float, metavar="SECONDS", help="cue window, 1..300 s (default 15)")
    p.add_argument("--intent", metavar="EMOTION", help="the performance's intended emotion at start")
    p.add_argument("--seconds", type=float, metavar="N", help="run N seconds, then exit cleanly")
    p.add_argument("--backend", choices=("default", "yolo"), help="perception backend")
    p.add_argument("--weights", metavar="FILE", help="YOLO weights (.pt or .onnx) for --backend yolo")
    p.add_argument("--yolo-mode", choices=("auto", "detector", "classifier"), help="YOLO model kind (read from the model by default)")
    p.add_argument("--generator", choices=("procedural", "diffusion", "comfyui", "off"), help="stage background generator")
    p.add_argument("--model", metavar="PATH_OR_ID", help="Stable Diffusion model for --generator diffusion")
    p.add_argument("--workflow", metavar="FILE", help="ComfyUI workflow (\"Save (API)\") for --generator comfyui")
    p.add_argument("--comfyui", action="append", metavar="URL", help="ComfyUI server http://HOST:PORT for --generator comfyui (repeatable)")
    p.add_argument("--sink", action="append", metavar="KIND[:NAME]", help="texture sink: ndi, syphon, spout, file[:DIR] (repeatable)")
    p.add_argument("--route", action="append", metavar="PRESET:HOST:PORT", help="OSC route to a desk or Resolume (repeatable)")
    p.add_argument("--log", metavar="FILE", help="show log SQLite file")
    p.add_argument("--no-log", action="store_true", help="do not write a show log")
    p.add_argument("--web", metavar="[HOST:]PORT", help="serve the operator dashboard (127.0.0.1 unless a host is given)")
    p.add_argument("--quiet", "-q", action="store_true", help="no console status line")
    p.set_defaults(func=run)


def config_with_overrides(args: argparse.Namespace) -> Config:
    """The config file (or defaults) with the command line's flags on top, validated together."""
    cfg = load_config(getattr(args, "config", None))
    data = dataclasses.asdict(cfg)

    def put(section: str, key: str, value) -> None:
        if value is not None:
            data[section][key] = value

    put("capture", "source", getattr(args, "source", None))
    put("osc", "target", getattr(args, "target", None))
    put("osc", "control_port", getattr(args, "control_port", None))
    put("mood", "window_s", getattr(args, "window", None))
    put("mood", "intent", getattr(args, "intent", None))
    put("perception", "backend", getattr(args, "backend", None))
    put("perception", "weights", getattr(args, "weights", None))
    put("perception", "yolo_mode", getattr(args, "yolo_mode", None))
    put("generator", "kind", getattr(args, "generator", None))
    if getattr(args, "model", None) and "model" in data["generator"]:
        data["generator"]["model"] = args.model
    put("comfyui", "workflow", getattr(args, "workflow", None))
    put("comfyui", "servers", getattr(args, "comfyui", None))
    if getattr(args, "log", None):
        data["log"]["path"] = args.log
    if getattr(args, "no_log", False):
        data["log"]["enabled"] = False
    if getattr(args, "web", None):
        web = args.web if ":" in args.web else f"127.0.0.1:{args.web}"
        data["web"]["enabled"] = True
        data["web"]["bind"] = web
    return config_from_dict(data)


def check_sink_and_route_flags(args: argparse.Namespace) -> None:
    """--sink and --route checked with the rest of the flags, before the camera or the show
    log is opened (a typo used to leave an empty show log behind)."""
    sinks, routes = getattr(args, "sink", None) or [], getattr(args, "route", None) or []
    if sinks:
        from ..sinks import parse_sink_arg

        for text in sinks:
            parse_sink_arg(text)
    if routes:
        from ..routes import compile_route, parse_route_arg

        for text in routes:
            compile_route(parse_route_arg(text), f"--route {text!r}")


def run(args: argparse.Namespace) -> int:
    try:
        cfg = config_with_overrides(args)
        check_sink_and_route_flags(args)
    except ConfigError as e:
        print(f"pcp-osc: configuration error: {e}", file=sys.stderr)
        return 2
    if str(cfg.capture.source).strip().lower() == "browser" and not cfg.web.enabled:
        log.warning("source browser takes its pictures from the dashboard's /camera page, but the dashboard is off: "
                    "no picture can arrive, cues come from the intent. Add --web PORT (--web 0.0.0.0:8080 for a phone "
                    "on the show network) or [web] enabled = true")
    from ..backgrounds import GeneratorError
    from ..capture import SourceError
    from ..show import assemble
    from ..showlog import ShowLogError

    try:
        daemon = assemble(cfg, args)
    except (SourceError, ConfigError, ShowLogError, ValueError, GeneratorError) as e:
        print(f"pcp-osc: {e}", file=sys.stderr)
        return 2
    # SIGTERM (systemd, a show-control script) stops as cleanly as Ctrl-C.
    signal.signal(signal.SIGTERM, lambda *_: daemon.request_stop())
    try:
        daemon.run_for(args.seconds)
    except OSError as e:  # e.g. the control port is taken
        print(f"pcp-osc: {e}", file=sys.stderr)
        return 1
    return 0
