"""`pcp-osc routes`: the shipped route presets and what to program on each desk."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("routes", help="list the desk/Resolume route presets, or show one's desk programming")
    p.add_argument("preset", nargs="?", help="eos, grandma3, magicq, qlc, resolume, looks, custom")
    p.add_argument("--markdown", action="store_true", help="print the whole docs/routes.md")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..routes import main

    argv = (["--markdown"] if args.markdown else []) + ([args.preset] if args.preset else [])
    return main(argv)
