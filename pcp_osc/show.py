"""Assemble a show: the daemon plus the parts the configuration turns on
(show log, background generator and its sinks, routes to desks, web dashboard).

Every part hears the daemon through ``subscribe`` and owns its own thread, so none
of them can hold up a cue. A part whose library or platform is missing says so
and the show goes on without it.
"""

from __future__ import annotations

import argparse
import logging

from .config import Config
from .daemon import Daemon

log = logging.getLogger("pcp_osc.show")


def assemble(cfg: Config, args: argparse.Namespace | None = None, **daemon_kwargs) -> Daemon:
    """Build a Daemon and attach every part ``cfg`` (and the run command's flags) asks for."""
    daemon = Daemon(cfg, **daemon_kwargs)
    _attach_showlog(daemon, cfg)
    _attach_sinks(daemon, cfg, args)
    _attach_generator(daemon, cfg)
    _attach_routes(daemon, cfg, args)
    _attach_web(daemon, cfg)
    return daemon


def _attach_showlog(daemon: Daemon, cfg: Config) -> None:
    if not cfg.log.enabled:
        return
    from .showlog import ShowLog

    showlog = ShowLog.from_config(cfg)
    showlog.attach(daemon)
    daemon.showlog = showlog


def _attach_sinks(daemon: Daemon, cfg: Config, args) -> None:
    if cfg.generator.kind == "off":
        return
    from .sinks import attach_sinks

    # The sink group hears "background" events and announces /pcp/background/id
    # once the first sink has the picture out.
    attach_sinks(daemon, getattr(args, "sink", None) or [])


def _attach_generator(daemon: Daemon, cfg: Config) -> None:
    if cfg.generator.kind == "off":
        return
    from .backgrounds import BackgroundWorker, make_generator

    def on_status(text: str) -> None:
        daemon.set_status_reason("generator", None if text == "ok" else text)

    def on_background(bg) -> None:
        daemon.emit("background", bg)

    if cfg.generator.kind == "comfyui":
        # Several servers, newest cue wins, procedural stand-in: its own worker (backgrounds/comfyui/pool.py).
        from .backgrounds.comfyui import make_worker

        worker = make_worker(cfg.comfyui, cfg.generator, cfg.palette, on_background=on_background, on_status=on_status)
    else:
        generator = make_generator(cfg.generator, cfg.palette)
        worker = BackgroundWorker(generator, on_background=on_background, on_status=on_status)
    daemon.generator_worker = worker
    daemon.add_part(worker)
    if cfg.generator.every_cue:
        daemon.subscribe("cue", worker.submit)


def _attach_routes(daemon: Daemon, cfg: Config, args) -> None:
    routes = list(cfg.routes)
    specs = getattr(args, "route", None) or []
    if not routes and not specs:
        return
    from .routes import RouteSender, parse_route_arg

    routes += [parse_route_arg(s) for s in specs]
    sender = RouteSender(routes)
    daemon.subscribe("cue", sender.send)
    daemon.add_part(sender)


def _attach_web(daemon: Daemon, cfg: Config) -> None:
    if not cfg.web.enabled:
        return
    try:
        from .web import WebDashboard
    except ImportError as e:
        log.error("the web dashboard needs aiohttp (pip install 'pcp-osc[web]'): %s", e)
        return
    daemon.add_part(WebDashboard(daemon, cfg.web))
