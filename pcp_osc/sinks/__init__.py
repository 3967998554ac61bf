"""Texture sinks: where generated backgrounds leave the daemon.

    sinks = make_sinks(cfg.sinks, stream=stream, crossfade_s=cfg.generator.crossfade_s)
    group = SinkGroup(sinks, stream=stream)     # a part of the show: on_background never blocks

(``show.assemble`` does this; ``stream`` is the daemon's OscStream). Kinds: ``ndi`` (everywhere, cyndilib),
``syphon`` (macOS), ``spout`` (Windows), ``file`` (everywhere). With no kinds
configured, only what stays on this machine and was asked for: Syphon on macOS,
Spout on Windows, and ``file`` when ``sinks.file_dir`` names a folder; never NDI,
which announces itself on the network (name it in ``kinds`` or ``--sink ndi``).
A sink this machine cannot run is skipped with one clear log line at start-up;
the others go on.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
from typing import Any, Iterable

from ..config import Config, ConfigError, SinksConfig
from ..osc import OscStream
from ..parts import BasePart
from ..types import Background
from .base import Sink, SinkUnavailable, StreamingSink
from .file import FileSink
from .ndi import NdiSink
from .spout import SpoutSink
from .syphon import SyphonSink, platform_word

log = logging.getLogger("pcp_osc.sinks")

SINK_CLASSES: dict[str, type[Sink]] = {"ndi": NdiSink, "syphon": SyphonSink, "spout": SpoutSink, "file": FileSink}
SINK_KINDS = tuple(SINK_CLASSES)
LIBRARIES = {"ndi": "cyndilib", "syphon": "syphon-python (macOS)", "spout": "SpoutGL (Windows)", "file": "opencv (built in)"}

__all__ = [
    "Sink", "StreamingSink", "SinkUnavailable", "FileSink", "NdiSink", "SyphonSink", "SpoutSink", "SinkGroup",
    "make_sinks", "default_kinds", "sinks_available", "parse_sink_arg", "apply_sink_args", "sink_group",
    "SINK_KINDS",
]


def unavailable_reason(kind: str) -> str | None:
    """None when this machine can run the sink, else the sentence that says why not."""
    try:
        SINK_CLASSES[kind].check()
    except SinkUnavailable as e:
        return str(e)
    return None


def default_kinds(platform: str | None = None, file_dir: str = "") -> list[str]:
    """The sinks used when the config names none: the platform's machine-local texture
    sharing (Syphon, Spout), plus ``file`` when a folder is named. Never a network
    publisher: NDI runs only when configured."""
    platform = platform or sys.platform
    kinds = {"darwin": ["syphon"], "win32": ["spout"]}.get(platform, [])
    return kinds + (["file"] if file_dir else [])


def check_kinds(kinds: Iterable[str], where: str = "sinks.kinds") -> list[str]:
    out = []
    for k in kinds:
        kind = str(k).strip().lower()
        if kind not in SINK_CLASSES:
            raise ConfigError(f"{where}: unknown sink {k!r}; choose from: {', '.join(SINK_KINDS)}")
        if kind not in out:
            out.append(kind)
    return out


def make_sinks(
    sinks_cfg: SinksConfig,
    *,
    stream: OscStream | None = None,
    crossfade_s: float = 2.0,
) -> list[Sink]:
    """Build the configured sinks (not started). Sinks this machine cannot run are left
    out with a log line naming the kind, the reason and the platform."""
    kinds = check_kinds(sinks_cfg.kinds) if sinks_cfg.kinds else default_kinds(file_dir=sinks_cfg.file_dir)
    if not sinks_cfg.kinds:
        if kinds:
            log.info("no sinks configured: using this machine's local default (%s)", ", ".join(kinds))
        else:
            log.info("no texture sink configured: backgrounds stay in the daemon (dashboard, show log); "
                     "publish them with --sink ndi, --sink file:FOLDER or [sinks] kinds")
            return []
    sinks: list[Sink] = []
    for kind in kinds:
        reason = unavailable_reason(kind)
        if reason:
            log.warning("%s sink: %s", kind, reason)
            continue
        name = sinks_cfg.names.get(kind) or sinks_cfg.name
        common: dict[str, Any] = {"stream": stream}
        if kind == "file":
            sinks.append(
                FileSink(name, folder=sinks_cfg.file_dir or None, image_format=sinks_cfg.file_format, keep=sinks_cfg.file_keep, **common)
            )
            continue
        streaming = dict(common, fps=sinks_cfg.stream_fps, crossfade_s=crossfade_s)
        if kind == "ndi":
            sinks.append(NdiSink(name, extra_ips=sinks_cfg.ndi_extra_ips, **streaming))
        else:
            sinks.append(SINK_CLASSES[kind](name, **streaming))
    if not sinks:
        log.warning("no texture sink can run on this machine (%s): backgrounds stay inside the daemon", platform_word())
    return sinks


def sinks_available() -> list[dict[str, Any]]:
    """One row per sink kind for `pcp-osc doctor`: can this machine run it, and if not, why."""
    rows = []
    defaults = default_kinds()
    for kind in SINK_KINDS:
        reason = unavailable_reason(kind)
        rows.append(
            {
                "kind": kind,
                "available": reason is None,
                "reason": reason or "ready",
                "library": LIBRARIES[kind],
                "default": kind in defaults,
            }
        )
    return rows


def parse_sink_arg(text: str) -> tuple[str, str | None]:
    """``--sink KIND[:NAME]`` -> (kind, name or None). For ``file`` the NAME is the folder."""
    kind, sep, name = str(text).strip().partition(":")
    kind = kind.strip().lower()
    if kind not in SINK_CLASSES:
        raise ConfigError(f"--sink {text!r}: unknown sink {kind!r}; choose from: {', '.join(SINK_KINDS)} (e.g. ndi:StageBG)")
    name = name.strip() if sep else ""
    if sep and not name:
        raise ConfigError(f"--sink {text!r}: the name after ':' is empty; write KIND or KIND:NAME")
    return kind, name or None


def apply_sink_args(sinks_cfg: SinksConfig, args: Iterable[str]) -> SinksConfig:
    """The config with ``--sink`` arguments applied: they replace ``kinds``; a NAME sets
    that kind's sender name (the folder, for ``file``)."""
    parsed = [parse_sink_arg(a) for a in args]
    if not parsed:
        return sinks_cfg
    names = dict(sinks_cfg.names)
    file_dir = sinks_cfg.file_dir
    for kind, name in parsed:
        if name and kind == "file":
            file_dir = name
        elif name:
            names[kind] = name
    return dataclasses.replace(sinks_cfg, kinds=check_kinds(k for k, _ in parsed), names=names, file_dir=file_dir)


class SinkGroup(BasePart):
    """The show's one part for all sinks: starts and stops them, fans each background
    out (never blocking), and announces ``/pcp/background/id`` once per background, when
    the first sink has it out."""

    role = "sinks"

    def __init__(self, sinks: list[Sink], *, stream: OscStream | None = None) -> None:
        self.sinks = list(sinks)
        self.stream = stream
        self._announced: int | None = None
        for s in self.sinks:
            s.on_published = self._on_published

    def start(self) -> None:
        for s in self.sinks:
            s.start()
            if s.failed:
                log.warning("%s", s.describe())
            else:
                log.info("%s", s.describe())

    def send(self, background: Background) -> None:
        for s in self.sinks:
            if not s.failed:
                s.send(background)

    def on_background(self, background: Background) -> None:
        self.send(background)

    def stop(self) -> None:
        for s in self.sinks:
            s.stop()

    def describe(self) -> list[str]:
        return [s.describe() for s in self.sinks]

    def _on_published(self, sink: Sink, bg: Background) -> None:
        if self.stream is None or self._announced == bg.id:
            return
        self._announced = bg.id  # races between sink threads at worst send the id twice
        try:
            self.stream.background_id(bg.id)
        except Exception as e:
            log.warning("could not announce background %d over OSC: %s", bg.id, e)


def sink_group(cfg: Config, stream: OscStream | None, sink_args: Iterable[str] = ()) -> SinkGroup:
    """The configured sinks (plus ``--sink`` arguments) as one part, announcing over ``stream``."""
    sinks_cfg = apply_sink_args(cfg.sinks, sink_args)
    return SinkGroup(make_sinks(sinks_cfg, stream=stream, crossfade_s=cfg.generator.crossfade_s), stream=stream)
