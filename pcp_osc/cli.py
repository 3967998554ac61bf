"""`pcp-osc`: the command line. Sub-commands live in pcp_osc/commands/<name>.py."""

from __future__ import annotations

import argparse
import importlib
import logging
import logging.handlers
import queue
import sys

from . import __version__
from .commands import COMMAND_MODULES
from .console import SafeFormatter, ThirdPartyFilter


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pcp-osc",
        description="Audience emotion to live-show cues over OSC, with generated stage backgrounds.",
    )
    parser.add_argument("--version", action="version", version=f"pcp-osc {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"pcp_osc.commands.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    listener = setup_logging(logging.DEBUG if args.verbose else logging.INFO)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    finally:
        listener.stop()


LOG_QUEUE_RECORDS = 10000


class _DroppingQueueHandler(logging.handlers.QueueHandler):
    """Never waits: a full queue (a stuck terminal or log pipe) drops the record."""

    def enqueue(self, record: logging.LogRecord) -> None:
        try:
            self.queue.put_nowait(record)
        except queue.Full:
            pass


def setup_logging(level: int) -> logging.handlers.QueueListener:
    """Log lines are written by a listener thread: a thread on the cue path only enqueues,
    so a slow or blocked stderr (a full pipe under a supervisor) can never delay a cue."""
    stream = logging.StreamHandler(sys.stderr)
    # On a terminal, clear the refreshing status line before a log line takes its place.
    prefix = "\r\033[K" if sys.stderr.isatty() else ""
    # Messages can carry text from the network (marker names, addresses): the formatter
    # escapes control characters so no record can drive the terminal or forge a line.
    stream.setFormatter(SafeFormatter(prefix + "%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S"))
    q: queue.Queue = queue.Queue(maxsize=LOG_QUEUE_RECORDS)
    root = logging.getLogger()
    handler = _DroppingQueueHandler(q)
    handler.addFilter(ThirdPartyFilter())  # python-osc warns on the root logger for every odd packet
    root.handlers[:] = [handler]
    root.setLevel(level)
    listener = logging.handlers.QueueListener(q, stream, respect_handler_level=False)
    listener.start()
    return listener


if __name__ == "__main__":
    sys.exit(main())
