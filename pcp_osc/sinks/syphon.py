"""Syphon sink (macOS): shares the background as a GPU texture with TouchDesigner
(Syphon Spout In TOP), Resolume, MadMapper and VDMX on the same Mac.

Library: PyPI ``syphon-python`` (extra ``syphon``). A ``SyphonMetalServer``
publishes a Metal texture; the picture is copied into that texture each frame.
Metal needs no window or OpenGL context, so this runs headless. Because no
window runs an event loop, a ``SyphonServerDirectory`` run loop is stepped each
frame where the library has it, so clients can discover the server.

Imports happen only in ``check()`` and on the sink's thread: importing this module
on Linux or Windows is harmless.
"""

from __future__ import annotations

import logging
import sys

import numpy as np

from .base import SinkUnavailable, StreamingSink

log = logging.getLogger("pcp_osc.sinks.syphon")


def import_syphon():
    if sys.platform != "darwin":
        raise SinkUnavailable(
            f"Syphon needs macOS and syphon-python; this machine is {platform_word()}: skipping"
        )
    try:
        import syphon
        from syphon.utils import raw as syphon_raw
    except Exception as e:
        raise SinkUnavailable(f"Syphon needs syphon-python (pip install 'pcp-osc[syphon]'); it does not import here: {e}") from None
    try:
        from syphon.utils.numpy import copy_image_to_mtl_texture
    except Exception:  # older syphon-python: copy raw bytes instead
        copy_image_to_mtl_texture = None
    return syphon, syphon_raw, copy_image_to_mtl_texture


def platform_word() -> str:
    return {"darwin": "macOS", "win32": "Windows", "linux": "Linux"}.get(sys.platform, sys.platform)


class SyphonSink(StreamingSink):
    kind = "syphon"

    def __init__(self, name: str = "pcp-osc", **kwargs) -> None:
        super().__init__(name, **kwargs)
        self._server = None
        self._texture = None
        self._directory = None
        self._copy = None
        self._raw = None

    @classmethod
    def check(cls) -> None:
        import_syphon()

    def _open(self) -> None:
        syphon, raw, copy_image = import_syphon()
        self._server = syphon.SyphonMetalServer(self.name)
        self._raw, self._copy = raw, copy_image
        directory_cls = getattr(syphon, "SyphonServerDirectory", None)
        if directory_cls is not None:
            try:
                self._directory = directory_cls()
            except Exception as e:  # discovery still works in apps with their own run loop
                log.debug("no Syphon server directory: %s", e)

    def _open_stream(self, width_px: int, height_px: int) -> None:
        assert self._server is not None and self._raw is not None
        self._texture = self._raw.create_mtl_texture(self._server.device, width_px, height_px)

    def _send_frame(self, rgba: np.ndarray) -> None:
        assert self._server is not None and self._texture is not None
        if self._copy is not None:
            self._copy(rgba, self._texture)
        else:
            self._raw.copy_bytes_to_mtl_texture(rgba.tobytes(), self._texture)
        self._server.publish_frame_texture(self._texture)
        if self._directory is not None and hasattr(self._directory, "update_run_loop"):
            self._directory.update_run_loop()

    def _close(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
