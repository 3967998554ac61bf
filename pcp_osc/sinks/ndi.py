"""NDI sink: a network video source that TouchDesigner (NDI In TOP), Resolume and OBS receive.

Library: PyPI ``cyndilib`` (extra ``ndi``). Its wheels carry the NDI runtime, so
nothing else is installed, and it runs on Linux, macOS and Windows. It takes numpy
buffers directly (``Sender.write_video``) and was chosen over ``ndi-python`` for
that and because its wheel installed and passed a loopback send/receive here; its
finder has no extra-IPs argument, so extra IPs go through NDI's own config file
(see :func:`configure_extra_ips`).

Discovery: NDI finds sources with mDNS, which many show networks block. A receiver
on another machine then needs this machine's IP in its extra/remote source list
(TouchDesigner NDI In TOP "Extra Search IPs", NDI Access Manager "Remote Sources").
``sinks.ndi_extra_ips`` writes the same list into the NDI config this process
uses, which helps the finders running here (the tests, `pcp-osc doctor`).
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import shutil
import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np

from .base import SinkUnavailable, StreamingSink

log = logging.getLogger("pcp_osc.sinks.ndi")

NDI_CONFIG_FILE = "ndi-config.v1.json"  # read from $NDI_CONFIG_DIR by the NDI runtime


def import_cyndilib():
    try:
        import cyndilib  # noqa: F401
        from cyndilib.sender import Sender
        from cyndilib.video_frame import VideoSendFrame
        from cyndilib.wrapper.ndi_structs import FourCC
    except Exception as e:  # ImportError, or the bundled runtime failing to load
        raise SinkUnavailable(
            f"NDI needs the cyndilib package (pip install 'pcp-osc[ndi]'); it does not import here: {e}"
        ) from None
    return Sender, VideoSendFrame, FourCC


def configure_extra_ips(extra_ips: list[str], config_dir: str | os.PathLike | None = None) -> Path | None:
    """Point this process's NDI runtime at a config whose ``networks.ips`` lists ``extra_ips``.

    NDI reads ``$NDI_CONFIG_DIR/ndi-config.v1.json`` once, when the process makes its
    first NDI object (seen here: a sender made before it was set was never found
    through the IPs set later), so the sink calls this before its sender exists.
    An operator's own NDI_CONFIG_DIR wins (their file may hold more
    than IPs); we only log what it would have needed. Returns the folder used."""
    ips = [ip.strip() for ip in extra_ips if ip and ip.strip()]
    if not ips:
        return None
    existing = os.environ.get("NDI_CONFIG_DIR")
    if existing and config_dir is None:
        log.info("NDI_CONFIG_DIR is already %s; add %s to its networks.ips yourself if discovery fails", existing, ",".join(ips))
        return Path(existing)
    folder = Path(config_dir) if config_dir else Path(tempfile.mkdtemp(prefix="pcp-osc-ndi-"))
    if not config_dir:
        atexit.register(shutil.rmtree, folder, True)  # NDI reads it once, at start: nothing needs it after exit
    folder.mkdir(parents=True, exist_ok=True)
    (folder / NDI_CONFIG_FILE).write_text(
        json.dumps({"ndi": {"networks": {"ips": ",".join(ips), "discovery": ""}}}, indent=2), encoding="utf-8"
    )
    os.environ["NDI_CONFIG_DIR"] = str(folder)
    return folder


class NdiSink(StreamingSink):
    kind = "ndi"

    def __init__(self, name: str = "pcp-osc", *, extra_ips: list[str] | None = None, **kwargs) -> None:
        super().__init__(name, **kwargs)
        self.extra_ips = list(extra_ips or [])
        self._sender = None
        self._frame = None

    @classmethod
    def check(cls) -> None:
        import_cyndilib()

    @property
    def sender_name(self) -> str:
        # Receivers list NDI sources as "MACHINE (name)"; the name alone is what we own.
        return self.name

    def _open(self) -> None:
        import_cyndilib()  # fail at start-up with the clear message, not at the first background
        configure_extra_ips(self.extra_ips)

    def _open_stream(self, width_px: int, height_px: int) -> None:
        Sender, VideoSendFrame, FourCC = import_cyndilib()
        # clock_video off: this thread paces the frames itself, so a new background
        # goes out at once instead of after the runtime's frame clock.
        sender = Sender(self.name, clock_video=False)
        vf = VideoSendFrame()
        vf.set_resolution(width_px, height_px)
        vf.set_frame_rate(Fraction(self.fps).limit_denominator(1001))
        vf.set_fourcc(FourCC.RGBA)
        sender.set_video_frame(vf)
        sender.open()
        self._sender, self._frame = sender, vf

    def _send_frame(self, rgba: np.ndarray) -> None:
        assert self._sender is not None
        self._sender.write_video(rgba.reshape(-1))

    def _close(self) -> None:
        if self._sender is not None:
            self._sender.close()
            self._sender = None
