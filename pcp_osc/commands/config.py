"""`pcp-osc config`: print every key with its default, or check a file."""

from __future__ import annotations

import argparse
import sys

from ..config import ConfigError, defaults_toml, load_config


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("config", help="print the default configuration, or check a file")
    p.add_argument("--check", metavar="FILE", help="validate FILE and say what is wrong")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.check:
        try:
            cfg = load_config(args.check)
            check_parts(cfg)
        except (ConfigError, ValueError) as e:
            print(f"pcp-osc: configuration error: {e}", file=sys.stderr)
            return 2
        print(f"{args.check}: ok")
        return 0
    print(defaults_toml())
    return 0


def check_parts(cfg) -> None:
    """The start-up checks of the parts, without starting anything: route templates
    against their presets, sink kinds, the show-control allow list (host names resolved), the
    ComfyUI workflow's bindings, and an own expression classifier against its input spec."""
    from ..control import AllowList
    from ..routes import compile_route
    from ..sinks import check_kinds

    for i, route in enumerate(cfg.routes):
        compile_route(route, where=f"routes[{i}]")
    check_kinds(cfg.sinks.kinds)
    AllowList(cfg.osc.allowed_senders)
    if cfg.perception.classifier.model:
        from ..config import ConfigError
        from ..perception import PerceptionError
        from ..perception.classifier import ExpressionClassifier

        try:
            ExpressionClassifier.from_config(cfg.perception.classifier, None, None)
        except PerceptionError as e:
            raise ConfigError(str(e)) from None
    if cfg.generator.kind == "comfyui":
        from ..backgrounds.comfyui.workflow import load_workflow

        load_workflow(cfg.comfyui.workflow, cfg.comfyui.bind, cfg.comfyui.output)
