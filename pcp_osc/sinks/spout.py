"""Spout sink (Windows): shares the background as a GPU texture with TouchDesigner
(Syphon Spout In TOP), Resolume and OBS (Spout2 plugin) on the same PC.

Library: PyPI ``SpoutGL`` (extra ``spout``): ``SpoutSender.sendImage(pixels,
width, height, GL_RGBA, invert, host_fbo)`` uploads the picture. Spout needs a
current OpenGL context on the sending thread; ``SpoutSender.createOpenGL()`` makes
one on a hidden window of its own, and where that is missing or fails a hidden
GLFW window (PyPI ``glfw``) stands in. Everything runs on the sink's own thread,
since an OpenGL context belongs to the thread that made it current.

Imports happen only in ``check()`` and on the sink's thread: importing this module
on Linux or macOS is harmless.
"""

from __future__ import annotations

import logging
import sys

import numpy as np

from .base import SinkUnavailable, StreamingSink
from .syphon import platform_word

log = logging.getLogger("pcp_osc.sinks.spout")

GL_RGBA = 0x1908  # OpenGL's enum value, used where SpoutGL.enums is missing


def import_spout():
    if sys.platform != "win32":
        raise SinkUnavailable(f"Spout needs Windows and SpoutGL; this machine is {platform_word()}: skipping")
    try:
        import SpoutGL
    except Exception as e:
        raise SinkUnavailable(f"Spout needs SpoutGL (pip install 'pcp-osc[spout]'); it does not import here: {e}") from None
    return SpoutGL


class SpoutSink(StreamingSink):
    kind = "spout"

    def __init__(self, name: str = "pcp-osc", **kwargs) -> None:
        super().__init__(name, **kwargs)
        self._sender = None
        self._gl_format = GL_RGBA
        self._glfw = None
        self._window = None
        self._own_context = False

    @classmethod
    def check(cls) -> None:
        import_spout()

    def _open(self) -> None:
        SpoutGL = import_spout()
        enums = getattr(SpoutGL, "enums", None)
        self._gl_format = getattr(enums, "GL_RGBA", GL_RGBA)
        sender = SpoutGL.SpoutSender()
        if hasattr(sender, "createOpenGL") and sender.createOpenGL():
            self._own_context = True
        else:
            self._make_glfw_context()
        sender.setSenderName(self.name)
        self._sender = sender

    def _make_glfw_context(self) -> None:
        try:
            import glfw
        except Exception as e:
            raise SinkUnavailable(
                f"Spout needs an OpenGL context: SpoutGL could not make one and glfw is not installed ({e})"
            ) from None
        if not glfw.init():
            raise SinkUnavailable("Spout needs an OpenGL context and GLFW could not initialise")
        glfw.window_hint(glfw.VISIBLE, glfw.FALSE)
        window = glfw.create_window(16, 16, f"pcp-osc Spout {self.name}", None, None)
        if not window:
            glfw.terminate()
            raise SinkUnavailable("Spout needs an OpenGL context and GLFW could not open a hidden window")
        glfw.make_context_current(window)
        self._glfw, self._window = glfw, window

    def _open_stream(self, width_px: int, height_px: int) -> None:
        pass  # Spout sizes its shared texture from the first sendImage

    def _send_frame(self, rgba: np.ndarray) -> None:
        assert self._sender is not None
        h, w = rgba.shape[:2]
        if not self._sender.sendImage(rgba, w, h, self._gl_format, False, 0):
            raise RuntimeError("SpoutSender.sendImage returned False")
        self._sender.setFrameSync(self.name)

    def _close(self) -> None:
        if self._sender is not None:
            self._sender.releaseSender()
            if self._own_context and hasattr(self._sender, "closeOpenGL"):
                self._sender.closeOpenGL()
            self._sender = None
        if self._glfw is not None:
            self._glfw.destroy_window(self._window)
            self._glfw.terminate()
            self._glfw = self._window = None
