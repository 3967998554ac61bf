"""The dashboard's camera preview: the latest frame, scaled down, faces blurred
(by default) and boxed with their emotion. Encoded as JPEG in memory only: the
preview is never written to disk."""

from __future__ import annotations

import cv2
import numpy as np

from ..emotions import EMOTIONS
from ..types import Colour, Faces

PREVIEW_WIDTH_PX = 640
JPEG_QUALITY = 75
REGION_OUTSIDE_DIM = 0.35  # outside the audience region the preview is this bright
REGION_LINE_BGR = (80, 220, 80)
BLUR_BLOCK_PX = 10  # detail kept in a blurred face, in preview pixels: faces stay unrecognisable at any size


def _bgr(hex_colour: str) -> tuple[int, int, int]:
    r, g, b = Colour.from_hex(hex_colour).rgb255
    return (b, g, r)


def render_preview(image_bgr: np.ndarray, faces: Faces, colours_hex: dict[str, str], blur: bool = True,
                   region=None) -> bytes:
    """JPEG bytes of the frame with face boxes and labels; faces pixelated when ``blur``;
    with an audience ``region`` (perception.region.AudienceRegion), what lies outside it
    is dimmed (and blurred when ``blur``: no face is found there to blur) and the region
    outlined."""
    h, w = image_bgr.shape[:2]
    scale = min(1.0, PREVIEW_WIDTH_PX / float(w))
    img = cv2.resize(image_bgr, (max(1, int(w * scale)), max(1, int(h * scale))), interpolation=cv2.INTER_AREA) if scale < 1 else image_bgr.copy()
    ih, iw = img.shape[:2]
    if region is not None:
        mask = region.geometry(iw, ih).mask
        outside = mask == 0
        if blur and outside.any():
            # no face is looked for outside the region, so none is boxed and blurred there:
            # with blurring on, everything outside is blurred (the stage, an excluded row)
            small = cv2.resize(img, (max(1, iw // BLUR_BLOCK_PX), max(1, ih // BLUR_BLOCK_PX)), interpolation=cv2.INTER_AREA)
            soft = cv2.GaussianBlur(cv2.resize(small, (iw, ih), interpolation=cv2.INTER_LINEAR), (0, 0), BLUR_BLOCK_PX / 2)
            img[outside] = soft[outside]
        img[outside] = (img[outside] * REGION_OUTSIDE_DIM).astype(np.uint8)
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(img, contours, -1, REGION_LINE_BGR, 2, cv2.LINE_AA)
    boxes = (faces.boxes * scale).round().astype(int) if len(faces) else np.zeros((0, 4), int)
    if blur:
        for x1, y1, x2, y2 in boxes:
            # pad a little: hair and jaw line identify people too
            px, py = (x2 - x1) // 6, (y2 - y1) // 6
            x1, y1, x2, y2 = max(0, x1 - px), max(0, y1 - py), min(iw, x2 + px), min(ih, y2 + py)
            if x2 - x1 < 2 or y2 - y1 < 2:
                continue
            roi = img[y1:y2, x1:x2]
            small = cv2.resize(roi, (max(1, (x2 - x1) // BLUR_BLOCK_PX), max(1, (y2 - y1) // BLUR_BLOCK_PX)), interpolation=cv2.INTER_AREA)
            # smooth, not blocky: hard block edges would keep a face's outline readable
            img[y1:y2, x1:x2] = cv2.GaussianBlur(
                cv2.resize(small, (x2 - x1, y2 - y1), interpolation=cv2.INTER_LINEAR), (0, 0), BLUR_BLOCK_PX / 2)
    for (x1, y1, x2, y2), row in zip(boxes, faces.scores):
        k = int(row.argmax())
        colour = _bgr(colours_hex.get(EMOTIONS[k], "#ffffff"))
        cv2.rectangle(img, (x1, y1), (x2, y2), colour, 2, cv2.LINE_AA)
        label = f"{EMOTIONS[k]} {row[k] * 100:.0f}%"
        (tw, th), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)
        ty = y1 - 4 if y1 - th - 6 > 0 else y2 + th + 4
        cv2.rectangle(img, (x1, ty - th - 3), (x1 + tw + 4, ty + 3), colour, -1)
        text_colour = (0, 0, 0) if sum(colour) > 380 else (255, 255, 255)
        cv2.putText(img, label, (x1 + 2, ty), cv2.FONT_HERSHEY_SIMPLEX, 0.45, text_colour, 1, cv2.LINE_AA)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise ValueError("the preview frame could not be encoded as JPEG")
    return bytes(buf)


def render_background(image_rgb: np.ndarray, width_px: int = PREVIEW_WIDTH_PX) -> bytes:
    h, w = image_rgb.shape[:2]
    scale = min(1.0, width_px / float(w))
    img = cv2.cvtColor(np.ascontiguousarray(image_rgb), cv2.COLOR_RGB2BGR)
    if scale < 1:
        img = cv2.resize(img, (int(w * scale), max(1, int(h * scale))), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 85])
    if not ok:
        raise ValueError("the background could not be encoded as JPEG")
    return bytes(buf)


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers (baseline, progressive, lossless, arithmetic); not DHT (C4), JPG (C8) or DAC (CC)
JPEG_SOF = frozenset((0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF))


def frame_size(data: bytes) -> tuple[str, int, int]:
    """(format, width_px, height_px) of a JPEG or PNG read from its header alone, without
    decoding a pixel: a small file can declare a huge picture (a 421 KB PNG of 20000x20000
    needs 1.2 GB once decoded). ValueError naming what was wrong."""
    if data[:8] == PNG_SIGNATURE:
        if len(data) < 24 or data[12:16] != b"IHDR":
            raise _not_an_image(data, "its PNG image header (IHDR) is missing")
        width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
        fmt = "PNG"
    elif data[:2] == b"\xff\xd8":
        width = height = -1
        i, n = 2, len(data)
        while i + 4 <= n:
            if data[i] != 0xFF:
                raise _not_an_image(data, f"no JPEG marker at byte {i}")
            marker = data[i + 1]
            if marker == 0xFF:  # fill byte before a marker
                i += 1
                continue
            if marker in (0x01,) or 0xD0 <= marker <= 0xD7:  # markers without a length
                i += 2
                continue
            if marker in (0xD9, 0xDA):  # end of image, or the scan began: no frame header came first
                break
            length = int.from_bytes(data[i + 2:i + 4], "big")
            if length < 2:
                raise _not_an_image(data, f"JPEG segment length {length} at byte {i}")
            if marker in JPEG_SOF:
                if i + 9 > n:
                    break
                height, width = int.from_bytes(data[i + 5:i + 7], "big"), int.from_bytes(data[i + 7:i + 9], "big")
                break
            i += 2 + length
        if width < 0:
            raise _not_an_image(data, "no JPEG frame header (SOF) before its image data")
        fmt = "JPEG"
    else:
        raise _not_an_image(data, "only JPEG and PNG are accepted")
    if width == 0 or height == 0:
        raise ValueError(f"the posted {fmt} declares {width}x{height} pixels; a camera frame has both sides above 0")
    return fmt, width, height


def decode_frame(data: bytes, max_pixels: int | None = None) -> np.ndarray:
    """A posted camera frame (JPEG, or PNG) -> BGR uint8. ValueError with what was wrong.

    Only JPEG and PNG are decoded, and only after their header says the picture has at
    most ``max_pixels`` pixels (width x height), so a decompression bomb costs nothing."""
    if not data:
        raise ValueError("the posted frame is empty; the camera page posts one JPEG image per request")
    fmt, width, height = frame_size(data)
    if max_pixels is not None and width * height > max_pixels:
        raise FrameTooLarge(
            f"the posted {fmt} is {width}x{height} = {width * height:,} pixels, more than "
            f"web.max_frame_pixels = {max_pixels:,}; lower the camera page's resolution")
    arr = np.frombuffer(data, dtype=np.uint8)
    img = cv2.imdecode(arr, cv2.IMREAD_COLOR)
    if img is None or img.size == 0:
        head = data[:4].hex()
        raise ValueError(f"the posted frame ({len(data)} bytes, starting {head}) is not a JPEG or PNG image that can be decoded")
    return img


def _not_an_image(data: bytes, detail: str) -> ValueError:
    return ValueError(f"the posted frame ({len(data)} bytes, starting {data[:4].hex()}) is not a JPEG or PNG image "
                      f"that can be decoded ({detail})")


class FrameTooLarge(ValueError):
    """A posted frame whose header declares more pixels than allowed (HTTP 413)."""
