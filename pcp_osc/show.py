"""Assemble a show: the daemon plus the parts the configuration turns on. The one place
where parts are built and wired; read it to see where every cue goes.

    cue ──► show log ─► sinks ─► generator ─► routes ─► dashboard   (Part.on_cue, in this order)
        └─► OSC stream (TouchDesigner, extra targets)                (after the parts)
    generator's background ──► show log, sinks, dashboard           (Part.on_background)
    sinks ──► OSC stream: /pcp/background/id, /path, /sender

Every part owns its thread, so none can hold up a cue. A part whose library or platform
is missing says so and the show goes on without it.
"""

from __future__ import annotations

import argparse
import logging

from .capture import FrameSource, open_source
from .config import Config
from .daemon import Daemon
from .osc import OscStream
from .parts import Parts, StatusBoard

log = logging.getLogger("pcp_osc.show")


def assemble(cfg: Config, args: argparse.Namespace | None = None, **daemon_kwargs) -> Daemon:
    """Build a Daemon and every part ``cfg`` (and the run command's flags) asks for."""
    # The source first: a missing camera stops start-up before any part makes a file.
    source = daemon_kwargs.pop("source", None)
    if not isinstance(source, FrameSource):
        source = open_source(cfg.capture, source)
    parts = Parts()  # every hook reaches the parts in the order they are added here
    problems = StatusBoard()  # what parts report as wrong goes into /pcp/status
    stream = OscStream.from_config(cfg.osc)
    try:
        return _assemble(cfg, args, source, parts, problems, stream, daemon_kwargs)
    except BaseException:
        parts.stop()  # a part made before the failure (the show log) closes cleanly
        stream.close()
        raise


def _assemble(cfg: Config, args: argparse.Namespace | None, source: FrameSource, parts: Parts,
              problems: StatusBoard, stream: OscStream, daemon_kwargs: dict) -> Daemon:
    showlog = None
    if cfg.log.enabled:
        from .showlog import ShowLog

        showlog = parts.add(ShowLog.from_config(cfg, on_status=problems.reporter("showlog")))

    worker = None
    if cfg.generator.kind != "off":
        from .sinks import sink_group

        parts.add(sink_group(cfg, stream, getattr(args, "sink", None) or []))
        hooks = dict(on_background=parts.background, on_status=problems.reporter("generator"),
                     every_cue=cfg.generator.every_cue)
        if cfg.generator.kind == "comfyui":
            # Several servers, newest cue wins, procedural stand-in: its own worker (backgrounds/comfyui/pool.py).
            from .backgrounds.comfyui import make_worker

            worker = parts.add(make_worker(cfg.comfyui, cfg.generator, cfg.palette, **hooks))
        else:
            from .backgrounds import BackgroundWorker, make_generator

            worker = parts.add(BackgroundWorker(make_generator(cfg.generator, cfg.palette), **hooks))

    route_specs = getattr(args, "route", None) or []
    if cfg.routes or route_specs:
        from .routes import RouteSender, parse_route_arg

        parts.add(RouteSender(list(cfg.routes) + [parse_route_arg(s) for s in route_specs]))

    daemon = Daemon(
        cfg, source=source, stream=stream, parts=parts, problems=problems,
        generate=worker.generate_now if worker is not None else None,
        after_commit=showlog.after_commit if showlog is not None else None,
        **daemon_kwargs,
    )

    if cfg.web.enabled:  # the dashboard reads the daemon's status and sends it show control
        try:
            from .web import WebDashboard
        except ImportError as e:
            log.error("the web dashboard needs aiohttp (pip install 'pcp-osc[web]'): %s", e)
        else:
            parts.add(WebDashboard(daemon, cfg.web))

    if args is not None and not getattr(args, "quiet", True):  # the console's status line (pcp-osc run)
        from .console import StatusLine

        parts.add(StatusLine(daemon))
    return daemon
