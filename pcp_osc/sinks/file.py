"""File sink: the portable fallback. Each background becomes a PNG or JPEG in a folder.

A reader (TouchDesigner's Movie File In TOP, Resolume, a web page) must never load
half a file, so each picture is written to a hidden temp file in the same folder and
moved into place with ``os.replace`` (atomic on one file system). Only then is
``/pcp/background/path <path>`` sent. ``latest.<ext>`` always names the newest
picture (a hard link where the file system allows, else a second atomic copy), for
receivers that watch one fixed file. Only the newest ``keep`` pictures stay.
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path

import cv2
import numpy as np

from ..osc import OscStream
from ..types import Background
from .base import Sink

log = logging.getLogger("pcp_osc.sinks.file")

JPEG_QUALITY = 92
PNG_COMPRESSION = 1  # fast: a 1920x1080 background in ~40 ms instead of ~300 ms at the default 3
FILE_RE = re.compile(r"^bg-(\d{6,})-.*\.(png|jpg)$")


class FileSink(Sink):
    kind = "file"

    def __init__(
        self,
        name: str = "pcp-osc",
        *,
        folder: str | os.PathLike | None = None,
        image_format: str = "png",
        keep: int = 10,
        stream: OscStream | None = None,
    ) -> None:
        super().__init__(name, stream=stream)
        if image_format not in ("png", "jpg"):
            raise ValueError(f"file sink format {image_format!r} is not allowed; choose png or jpg")
        if keep < 1:
            raise ValueError(f"file sink keep = {keep} must be at least 1")
        # No folder named: a temporary one, removed when the sink stops (and at exit, should
        # stop never come), so runs do not pile pcp-osc-backgrounds-* folders up in /tmp.
        self.temporary = not folder
        self.folder = Path(folder) if folder else Path(tempfile.mkdtemp(prefix="pcp-osc-backgrounds-"))
        if self.temporary:
            atexit.register(shutil.rmtree, self.folder, True)
        self.image_format = image_format
        self.keep = int(keep)
        self.last_path: Path | None = None

    def describe(self) -> str:
        return super().describe() + f" -> {self.folder}"

    @property
    def latest_path(self) -> Path:
        return self.folder / f"latest.{self.image_format}"

    def _open(self) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise OSError(f"cannot create the background folder {str(self.folder)!r}: {e.strerror or e}") from None
        if not os.access(self.folder, os.W_OK):
            raise PermissionError(f"the background folder {str(self.folder)!r} is not writable")
        if self.temporary:
            log.info("file sink writes backgrounds to %s, a temporary folder removed when pcp-osc stops "
                     "(name a folder to keep them: --sink file:FOLDER or sinks.file_dir)", self.folder)
        else:
            log.info("file sink writes backgrounds to %s", self.folder)

    def stop(self) -> None:
        super().stop()
        if self.temporary:
            shutil.rmtree(self.folder, ignore_errors=True)

    def _publish(self, bg: Background) -> None:
        data = encode_image(bg.image, self.image_format)
        final = self.folder / f"bg-{bg.id:06d}-{bg.seed & 0xFFFFFFFF:08x}.{self.image_format}"
        write_atomic(final, data)
        self._update_latest(final, data)
        self.last_path = final
        self._prune()
        self._osc("file", lambda s: s.background_path(str(final)))

    def _update_latest(self, final: Path, data: bytes) -> None:
        tmp = self.folder / f".latest-{os.getpid()}.tmp"
        try:
            if tmp.exists():
                tmp.unlink()
            os.link(final, tmp)  # no second encode or write: the same bytes under a second name
            os.replace(tmp, self.latest_path)
        except OSError:
            write_atomic(self.latest_path, data)

    def _prune(self) -> None:
        mine = sorted(
            (p for p in self.folder.iterdir() if FILE_RE.match(p.name)),
            key=lambda p: int(FILE_RE.match(p.name).group(1)),  # type: ignore[union-attr]
        )
        for old in mine[: max(0, len(mine) - self.keep)]:
            try:
                old.unlink()
            except OSError as e:
                log.debug("could not remove old background %s: %s", old, e)


def encode_image(image_rgb: np.ndarray, image_format: str) -> bytes:
    """RGB uint8 -> PNG or JPEG bytes."""
    img = np.asarray(image_rgb)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] not in (3, 4):
        raise ValueError(f"background image must be (H, W, 3) uint8 RGB, got {img.dtype} {img.shape}")
    bgr = cv2.cvtColor(img, cv2.COLOR_RGB2BGR if img.shape[2] == 3 else cv2.COLOR_RGBA2BGRA)
    if image_format == "jpg":
        ok, buf = cv2.imencode(".jpg", bgr[:, :, :3], [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    else:
        ok, buf = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, PNG_COMPRESSION])
    if not ok:
        raise ValueError(f"could not encode the background as {image_format}")
    return buf.tobytes()


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` so a reader of ``path`` sees the old file or the whole new one, never a part."""
    fd, tmp = tempfile.mkstemp(prefix=".bg-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
