"""Frame sources: camera, video file, network stream, image folder, the built-in demo, the browser.

Each source runs its reader on its own thread and keeps only the latest frame
(a slow consumer never backs the camera up). A camera or stream that drops is
reopened with backoff while the rest of the daemon keeps sending cues; end of a
file is a state (``ended``), not an exception buried in a thread.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

import cv2
import numpy as np

from .config import CaptureConfig
from .latest import Latest
from .types import Frame

log = logging.getLogger("pcp_osc.capture")

# OpenCV prints its own warnings straight to stderr ("[ WARN:0@0.5] global cap_v4l.cpp:914 open
# VIDEOIO(V4L2:/dev/video3): can't open camera by index", once per retry). pcp-osc says what is
# wrong in the show's words instead, so only OpenCV's errors get through -- unless the operator
# asks for OpenCV's own log with OPENCV_LOG_LEVEL (e.g. OPENCV_LOG_LEVEL=DEBUG).
# Its FFmpeg (streams, files) logs a refused connection at its error level: only fatal ones
# pass (OPENCV_FFMPEG_LOGLEVEL=16 brings them back).
if "OPENCV_LOG_LEVEL" not in os.environ:
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "8")  # AV_LOG_FATAL; read when FFmpeg first opens something

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
VIDEO_SUFFIXES = {".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv"}
STREAM_SCHEMES = ("rtsp://", "rtsps://", "http://", "https://", "rtmp://", "udp://", "tcp://", "srt://")


class SourceError(ValueError):
    """A source that cannot be understood or opened; the message says what is allowed."""


MIN_FRAME_SIDE_PX = 8


def image_problem(image: object) -> str | None:
    """What is wrong with a frame for perception (in the operator's words), or None."""
    if not isinstance(image, np.ndarray):
        return "no picture"
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        return f"not a colour image (shape {image.shape}, {image.dtype}); expected height x width x 3 colours, 8 bits each"
    h, w = image.shape[:2]
    if min(h, w) < MIN_FRAME_SIDE_PX:
        return f"a {w}x{h} px picture, too small; a frame needs at least {MIN_FRAME_SIDE_PX}x{MIN_FRAME_SIDE_PX} px"
    return None


def valid_image(image: object) -> bool:
    return image_problem(image) is None


# capture.rotate: degrees clockwise -> OpenCV's rotation
ROTATIONS = {90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_COUNTERCLOCKWISE}


class FrameSource:
    """Base: a reader thread publishes frames into a latest-value slot."""

    kind = "source"

    def __init__(self, name: str) -> None:
        self.name = name
        self.state = "starting"  # starting | ok | reconnecting | no-camera | ended | stopped
        self.frames = 0
        self.dropped_corrupt = 0
        self._lock = threading.Condition()  # the frame slot's lock; also keeps frame numbers unique
        self._frames: Latest[Frame] = Latest(self._lock)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.rotate = 0  # capture.rotate: degrees clockwise, applied to every frame published

    # -- consumer side
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run_safe, name=f"capture-{self.kind}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._frames.close()
        if self._thread:
            self._thread.join(timeout=3)
        self.state = "stopped"

    def latest(self, after_index: int = -1, timeout_s: float = 0.05) -> Frame | None:
        """The newest frame with index > after_index, waiting up to timeout_s for one."""
        return self._frames.wait_newer(lambda f: f.index > after_index, timeout_s)

    @property
    def ended(self) -> bool:
        return self.state == "ended"

    # -- producer side
    def _publish(self, image: np.ndarray | None) -> bool:
        problem = image_problem(image)
        if problem:
            self.dropped_corrupt += 1
            if self.dropped_corrupt in (1, 10, 100) or self.dropped_corrupt % 1000 == 0:
                log.warning("%s: dropped a frame (%d so far): %s", self.name, self.dropped_corrupt, problem)
            return False
        if self.rotate:
            image = cv2.rotate(image, ROTATIONS[self.rotate])
        with self._lock:
            self._frames.put(Frame(image, time.monotonic(), self.frames, self.name))
            self.frames += 1
        if self.state != "ok":
            self.state = "ok"
        return True

    def _run_safe(self) -> None:
        try:
            self._run()
        except Exception:
            log.exception("%s: reader stopped unexpectedly", self.name)
            self.state = "ended"

    def _run(self) -> None:
        raise NotImplementedError

    def _sleep(self, seconds: float) -> bool:
        """Sleep unless stopping; returns False when the source is stopping."""
        return not self._stop.wait(max(0.0, seconds))


class _Pacer:
    def __init__(self, fps: float) -> None:
        self.period = 1.0 / fps
        self.next = time.monotonic()

    def wait(self, source: FrameSource) -> bool:
        self.next += self.period
        delay = self.next - time.monotonic()
        if delay < -1.0:  # fell far behind (debugger, suspend): do not burst
            self.next = time.monotonic()
        return source._sleep(delay)


class CaptureDeviceSource(FrameSource):
    """A camera by index or a network stream URL: reopened with backoff when it drops."""

    def __init__(self, target: int | str, cfg: CaptureConfig) -> None:
        kind = "camera" if isinstance(target, int) else "stream"
        self.kind = kind
        label = f"camera {target}" if kind == "camera" else f"stream {target}"
        super().__init__(label)
        self.target = target
        self.cfg = cfg

    def _open(self) -> "cv2.VideoCapture | None":
        cap = cv2.VideoCapture(self.target)
        if not cap.isOpened():
            cap.release()
            return None
        if self.kind == "camera":
            if self.cfg.width:
                cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.cfg.width)
            if self.cfg.height:
                cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.cfg.height)
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        return cap

    def _run(self) -> None:
        backoff = self.cfg.reconnect_min_s
        first = True
        while not self._stop.is_set():
            cap = self._open()
            if cap is None:
                self.state = "no-camera" if self.kind == "camera" else "reconnecting"
                if first or backoff >= self.cfg.reconnect_max_s:
                    log.error(
                        "%s cannot be opened; retrying every %.1f s at most, cues go on from the intended emotion",
                        self.name, self.cfg.reconnect_max_s,
                    )
                first = False
                if not self._sleep(backoff):
                    return
                backoff = min(self.cfg.reconnect_max_s, backoff * 2)
                continue
            if not first:
                log.info("%s is back", self.name)
            first = False
            backoff = self.cfg.reconnect_min_s
            failures = 0
            while not self._stop.is_set():
                ok, image = cap.read()
                if not ok:
                    failures += 1
                    if failures >= 5:
                        break
                    self._sleep(0.01)
                    continue
                failures = 0
                self._publish(image)
            cap.release()
            if not self._stop.is_set():
                self.state = "reconnecting"
                log.warning("%s dropped; reopening", self.name)


class VideoFileSource(FrameSource):
    kind = "video"

    def __init__(self, path: Path, cfg: CaptureConfig) -> None:
        super().__init__(f"video {path.name}")
        self.path = path
        self.cfg = cfg

    def _run(self) -> None:
        while not self._stop.is_set():
            cap = cv2.VideoCapture(str(self.path))
            if not cap.isOpened():
                log.error("video %s cannot be read (not a video OpenCV can decode?)", self.path)
                self.state = "ended"
                return
            fps = cap.get(cv2.CAP_PROP_FPS)
            pacer = _Pacer(fps if 1 <= fps <= 240 else self.cfg.fps)
            got_any = False
            while not self._stop.is_set():
                ok, image = cap.read()
                if not ok:
                    break
                got_any = True
                self._publish(image)
                if not pacer.wait(self):
                    break
            cap.release()
            if not got_any:
                log.error("video %s has no readable frames", self.path)
                self.state = "ended"
                return
            if not self.cfg.loop:
                self.state = "ended"
                log.info("video %s ended", self.path.name)
                return


class ImageFolderSource(FrameSource):
    kind = "folder"

    def __init__(self, paths: list[Path], label: str, cfg: CaptureConfig) -> None:
        super().__init__(label)
        self.paths = paths
        self.cfg = cfg

    def _run(self) -> None:
        pacer = _Pacer(self.cfg.fps)
        warned: set[Path] = set()
        while not self._stop.is_set():
            any_ok = False
            for p in self.paths:
                image = cv2.imread(str(p), cv2.IMREAD_COLOR)
                if image is None:
                    if p not in warned:
                        warned.add(p)
                        log.warning("image %s cannot be decoded; skipping it", p)
                    self.dropped_corrupt += 1
                    continue
                any_ok = True
                self._publish(image)
                if not pacer.wait(self):
                    return
            if not any_ok:
                log.error("no readable image in %s", self.name)
                self.state = "ended"
                return
            if not self.cfg.loop:
                self.state = "ended"
                return


class DemoSource(FrameSource):
    """A built-in moving crowd made from the bundled openly licensed photographs,
    with expressions that change slowly, so the whole path runs without a camera."""

    kind = "demo"

    def __init__(self, cfg: CaptureConfig, size: tuple[int, int] = (1280, 720)) -> None:
        super().__init__("demo crowd")
        self.cfg = cfg
        self.size = size

    def _run(self) -> None:
        from .demo import DemoCrowd

        crowd = DemoCrowd(self.cfg.demo_faces, self.size)
        pacer = _Pacer(self.cfg.fps)
        t0 = time.monotonic()
        while not self._stop.is_set():
            self._publish(crowd.frame(time.monotonic() - t0))
            if not pacer.wait(self):
                return


class BrowserSource(FrameSource):
    """Frames posted by the dashboard's camera page (a phone or tablet in the hall)."""

    kind = "browser"

    def __init__(self) -> None:
        super().__init__("browser camera")
        self.state = "no-camera"

    def start(self) -> None:  # nothing to read: frames are pushed
        pass

    def push(self, image_bgr: np.ndarray) -> bool:
        """Hand in one decoded frame; False (and counted) when perception cannot use it
        (:func:`image_problem` says why)."""
        return self._publish(image_bgr)


def camera_available(index: int = 0) -> bool:
    if os.name == "posix" and not Path(f"/dev/video{index}").exists() and not Path("/System").exists():
        return False  # Linux without the device node: skip OpenCV's noisy probe
    cap = cv2.VideoCapture(index)
    ok = cap.isOpened()
    cap.release()
    return ok


def open_source(cfg: CaptureConfig, source: str | None = None) -> FrameSource:
    """The source the config (or --source) names, turned by ``capture.rotate``. Raises
    SourceError with what is allowed."""
    src = _open_source(cfg, source)
    src.rotate = int(getattr(cfg, "rotate", 0) or 0)
    if src.rotate:
        log.info("%s: every picture turned %d degrees clockwise (capture.rotate)", src.name, src.rotate)
    return src


def _open_source(cfg: CaptureConfig, source: str | None = None) -> FrameSource:
    s = str(cfg.source if source is None else source).strip()
    if s in ("", "auto"):
        if camera_available(0):
            return CaptureDeviceSource(0, cfg)
        log.warning("no camera found: running on the built-in demo crowd (use --source to pick a camera, file or stream)")
        return DemoSource(cfg)
    if s == "demo":
        return DemoSource(cfg)
    if s == "browser":
        return BrowserSource()
    if s.lstrip("-").isdigit():
        index = int(s)
        if index < 0:
            raise SourceError(f"camera index {index} is negative; use 0, 1, 2 ...")
        return CaptureDeviceSource(index, cfg)
    if s.lower().startswith(STREAM_SCHEMES):
        return CaptureDeviceSource(s, cfg)
    p = Path(s).expanduser()
    if p.is_dir():
        images = sorted(q for q in p.iterdir() if q.suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            raise SourceError(f"folder {str(p)!r} has no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        return ImageFolderSource(images, f"folder {p.name}", cfg)
    if p.is_file():
        if p.suffix.lower() in IMAGE_SUFFIXES:
            return ImageFolderSource([p], f"image {p.name}", cfg)
        return VideoFileSource(p, cfg)
    raise SourceError(
        f"source {s!r} is neither a camera index, an existing file or folder, nor a stream URL; "
        f"allowed: auto, demo, browser, 0/1/2..., a video file, an image folder, "
        f"or a URL starting with {', '.join(STREAM_SCHEMES[:3])}"
    )
