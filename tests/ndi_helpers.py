"""A real NDI receiver for tests (cyndilib, the same library the NDI sink uses).

Discovery goes through NDI's extra-IPs config set to loopback, because containers and
CI runners have no mDNS. Reusable by any test that needs to see what an NDI sender
put on the network:

    with NdiTestReceiver("pcp-test-123") as rx:
        frame, t = rx.wait_for(lambda f: f[..., 1].mean() > 200, timeout_s=10)

Frames are read the way TouchDesigner's NDI In TOP shows them: NDI's frame-sync
("what is on the stream now"), polled. cyndilib's queued ``receive()`` missed most
frames on a loaded 2-core machine and holds the GIL while it waits, starving a sender
in the same process; frame-sync does neither. ``frames`` is NDI's own count of
video frames that arrived.
"""

from __future__ import annotations

import os
import tempfile
import time
from typing import Callable

import numpy as np

from pcp_osc.sinks.ndi import configure_extra_ips

FIND_TIMEOUT_S = 20.0


class NdiTestReceiver:
    """Finds the source whose NDI name ends in ``(sender_name)`` and receives RGBA frames."""

    def __init__(self, sender_name: str, extra_ips: tuple[str, ...] = ("127.0.0.1",), find_timeout_s: float = FIND_TIMEOUT_S):
        self.sender_name = sender_name
        self.extra_ips = extra_ips
        self.find_timeout_s = find_timeout_s
        self.source_name: str | None = None
        self._last: np.ndarray | None = None
        self._finder = None
        self._receiver = None
        self._vf = None
        self._old_env: str | None = None
        self._tmp: tempfile.TemporaryDirectory | None = None

    def __enter__(self) -> "NdiTestReceiver":
        from cyndilib.finder import Finder
        from cyndilib.receiver import Receiver
        from cyndilib.video_frame import VideoFrameSync
        from cyndilib.wrapper.ndi_recv import RecvBandwidth, RecvColorFormat

        self._old_env = os.environ.get("NDI_CONFIG_DIR")
        self._tmp = tempfile.TemporaryDirectory(prefix="pcp-osc-ndi-test-")
        configure_extra_ips(list(self.extra_ips), self._tmp.name)
        self._finder = Finder()
        self._finder.open()
        suffix = f"({self.sender_name})"
        deadline = time.monotonic() + self.find_timeout_s
        names: list[str] = []
        while time.monotonic() < deadline:
            self._finder.wait_for_sources(0.25)
            names = self._finder.get_source_names()
            match = [n for n in names if n.endswith(suffix)]
            if match:
                self.source_name = match[0]
                break
        if self.source_name is None:
            self.__exit__(None, None, None)
            raise TimeoutError(f"no NDI source named {suffix} within {self.find_timeout_s:.0f} s; sources seen: {names}")
        self._receiver = Receiver(color_format=RecvColorFormat.RGBX_RGBA, bandwidth=RecvBandwidth.highest)
        self._vf = VideoFrameSync()
        self._receiver.frame_sync.set_video_frame(self._vf)
        self._receiver.set_source(self._finder.get_source(self.source_name))
        return self

    @property
    def frames(self) -> int:
        """Video frames that have arrived from the sender (NDI's count)."""
        return int(self._receiver.get_performance_data()["video"]["frames_total"])

    def latest_frame(self) -> np.ndarray | None:
        """The picture on the stream now as (H, W, 4) RGBA uint8, or None before the first frame."""
        self._receiver.frame_sync.capture_video()
        w, h = self._vf.xres, self._vf.yres
        if not w or not h:
            return None
        flat = np.asarray(self._vf.get_array())
        stride = self._vf.get_line_stride() or w * 4
        return flat[: stride * h].reshape(h, stride)[:, : w * 4].reshape(h, w, 4).copy()

    def next_frame(self, timeout_s: float = 1.0, poll_s: float = 0.005) -> np.ndarray | None:
        """The first picture that differs from the one seen last (None if none in time)."""
        deadline = time.monotonic() + timeout_s
        while True:
            frame = self.latest_frame()
            if frame is not None and (self._last is None or frame.shape != self._last.shape or not np.array_equal(frame, self._last)):
                self._last = frame
                return frame
            if time.monotonic() >= deadline:
                return None
            time.sleep(poll_s)

    def wait_for(self, predicate: Callable[[np.ndarray], bool], timeout_s: float = 10.0) -> tuple[np.ndarray, float]:
        """Frames until one satisfies ``predicate``: (frame, time.monotonic() it arrived)."""
        deadline = time.monotonic() + timeout_s
        last = None
        while time.monotonic() < deadline:
            frame = self.latest_frame()
            if frame is not None:
                last = frame
                if predicate(frame):
                    return frame, time.monotonic()
            time.sleep(0.002)
        summary = "no frame at all" if last is None else f"last frame mean RGBA {last.reshape(-1, 4).mean(0).round(1).tolist()}"
        raise TimeoutError(f"no NDI frame from {self.source_name} matched within {timeout_s:.0f} s ({summary})")

    def __exit__(self, *exc) -> None:
        if self._receiver is not None:
            try:
                self._receiver.disconnect()
            except Exception:
                pass
            self._receiver = None
        if self._finder is not None:
            self._finder.close()
            self._finder = None
        if self._old_env is None:
            os.environ.pop("NDI_CONFIG_DIR", None)
        else:
            os.environ["NDI_CONFIG_DIR"] = self._old_env
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
