"""Sub-commands of `pcp-osc`. Each module has ``register(subparsers)`` which adds
its parser and sets ``func=run``; ``run(args) -> int`` is the exit status."""

# Order here is the order in `pcp-osc --help`.
COMMAND_MODULES = [
    "run",
    "detect",
    "generate",
    "doctor",
    "bench",
    "report",
    "routes",
    "monitor",
    "send",
    "dataset",
    "train",
    "eval",
    "export",
    "config",
]
