"""Frame sources with real files and a real HTTP stream on loopback. The one thing this
machine lacks is a camera: a missing camera index is tested as missing."""

import functools
import http.server
import threading
import time

import cv2
import numpy as np
import pytest

from pcp_osc.capture import BrowserSource, CaptureDeviceSource, SourceError, open_source
from pcp_osc.config import CaptureConfig


def read_source(cfg, source=None, seconds=0.5):
    """(the source, its frames over ``seconds``), started and stopped."""
    src = open_source(cfg, source)
    src.start()
    try:
        return src, frames_of(src, seconds)
    finally:
        src.stop()


def write_video(path, n=15, size=(320, 240), fps=30):
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    for i in range(n):
        vw.write(np.full((size[1], size[0], 3), i * 10 % 255, np.uint8))
    vw.release()


def frames_of(source, seconds):
    got, last = [], -1
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        f = source.latest(last, timeout_s=0.05)
        if f is not None:
            got.append(f)
            last = f.index
    return got


def test_video_file_loops_or_ends(tmp_path):
    video = tmp_path / "clip.avi"
    write_video(video, n=10, fps=50)
    looping = open_source(CaptureConfig(loop=True), str(video))
    looping.start()
    try:
        assert len(frames_of(looping, 0.8)) > 12  # more than one pass of 10 frames
        assert not looping.ended
    finally:
        looping.stop()
    once = open_source(CaptureConfig(loop=False), str(video))
    once.start()
    try:
        frames_of(once, 0.8)
        assert once.ended and once.frames == 10
    finally:
        once.stop()


def test_slow_consumer_gets_the_newest_frame_not_a_backlog(tmp_path):
    video = tmp_path / "clip.avi"
    write_video(video, n=60, fps=60)
    src = open_source(CaptureConfig(loop=False), str(video))
    src.start()
    try:
        first = src.latest(-1, timeout_s=2)
        time.sleep(0.3)  # a slow perception step
        nxt = src.latest(first.index, timeout_s=1)
        assert nxt.index - first.index > 5  # frames in between were skipped, not queued
    finally:
        src.stop()


def test_image_folder_skips_corrupt_files(tmp_path, caplog):
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"{i}.png"), np.full((50, 60, 3), 100 + i, np.uint8))
    (tmp_path / "1b.jpg").write_bytes(b"not an image")
    src, got = read_source(CaptureConfig(fps=50, loop=False), str(tmp_path))
    assert [int(f.image[0, 0, 0]) for f in got] == [100, 101, 102]
    assert "1b.jpg cannot be decoded; skipping it" in caplog.text


def test_image_folder_names_a_picture_too_small_to_use(tmp_path, caplog):
    """A strip 1 px high decodes, but no face fits in it: the warning says its size and
    the least allowed (it said "expected a colour image", which it is)."""
    cv2.imwrite(str(tmp_path / "0.png"), np.full((1, 640, 3), 100, np.uint8))
    cv2.imwrite(str(tmp_path / "1.png"), np.full((50, 60, 3), 101, np.uint8))
    src, got = read_source(CaptureConfig(fps=50, loop=False), str(tmp_path))
    assert [int(f.image[0, 0, 0]) for f in got] == [101] and src.dropped_corrupt == 1
    assert "a 640x1 px picture, too small; a frame needs at least 8x8 px" in caplog.text


def test_browser_source_refuses_corrupt_frames():
    src = BrowserSource()
    assert not src.push(np.zeros((4, 4), np.uint8))
    assert not src.push(None)
    assert src.push(np.zeros((48, 64, 3), np.uint8))
    assert src.latest(-1, 0.1).image.shape == (48, 64, 3) and src.dropped_corrupt == 2


class _Server:
    def __init__(self, folder, port=0):
        handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
        handler.log_message = lambda *a: None
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_network_stream_that_drops_is_reopened_with_backoff(tmp_path, caplog):
    write_video(tmp_path / "live.avi", n=20, fps=30)
    server = _Server(tmp_path)
    port = server.port
    cfg = CaptureConfig(reconnect_min_s=0.1, reconnect_max_s=0.4)
    src = open_source(cfg, f"http://127.0.0.1:{port}/live.avi")
    assert isinstance(src, CaptureDeviceSource) and src.kind == "stream"
    src.start()
    try:
        assert frames_of(src, 2.0), "no frames from the HTTP stream"
        server.stop()
        time.sleep(1.5)
        assert src.state in ("reconnecting",)
        n = src.frames
        server = _Server(tmp_path, port)  # the stream comes back on the same address
        deadline = time.monotonic() + 10
        while src.frames == n and time.monotonic() < deadline:
            time.sleep(0.05)
        assert src.frames > n, "the stream came back but no frame followed"
        assert "dropped; reopening" in caplog.text
    finally:
        src.stop()
        server.stop()


def test_missing_camera_reports_no_camera_and_retries(caplog):
    src = open_source(CaptureConfig(reconnect_min_s=0.05, reconnect_max_s=0.2), "9")
    src.start()
    try:
        time.sleep(0.6)
        assert src.state == "no-camera" and src.frames == 0
    finally:
        src.stop()
    assert "camera 9 cannot be opened" in caplog.text


@pytest.mark.parametrize("bad,words", [("-1", "negative"), ("/no/such/file.mp4", "neither a camera index")])
def test_bad_sources_say_what_is_allowed(bad, words):
    with pytest.raises(SourceError, match=words):
        open_source(CaptureConfig(), bad)


def test_empty_folder_is_refused(tmp_path):
    with pytest.raises(SourceError, match="has no images"):
        open_source(CaptureConfig(), str(tmp_path))


def test_a_camera_hung_upside_down_is_turned_before_the_faces_are_looked_for(tmp_path):
    # A real group picture as a camera hung upside down from a truss delivers it: the face
    # search finds few of its faces. With capture.rotate = 180 every picture is turned
    # first, and the faces are found as in the upright picture.
    from pcp_osc.config import ConfigError, PerceptionConfig, config_from_dict
    from pcp_osc.data.scenes import scene
    from pcp_osc.perception.default import DefaultBackend

    upright = np.ascontiguousarray(scene("group_blue_room").scaled(0.75).image[:720, :1280])
    cv2.imwrite(str(tmp_path / "hung.png"), cv2.rotate(upright, cv2.ROTATE_180))
    backend = DefaultBackend(PerceptionConfig(threads=1))
    faces = len(backend.detect_still(upright))
    assert faces >= 6
    for rotate, expect_upright in ((0, False), (180, True)):
        frame = read_source(CaptureConfig(source=str(tmp_path), rotate=rotate, fps=20))[1][-1]
        assert np.array_equal(frame.image, upright) == expect_upright
        found = len(backend.detect_still(frame.image))
        assert (found == faces) if expect_upright else (found < faces), (rotate, found, faces)
    with pytest.raises(ConfigError, match="rotate") as e:
        config_from_dict({"capture": {"rotate": 45}})
    assert "90" in str(e.value) and "180" in str(e.value)
