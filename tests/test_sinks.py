"""Texture sinks: the file sink on a real folder, NDI end to end over loopback with a real
receiver, and the Syphon and Spout adapters.

STAND-IN NOTICE: this machine is Linux, so Syphon (macOS) and Spout (Windows) cannot run
here. Their tests inject stand-in ``syphon`` / ``SpoutGL`` modules into sys.modules that
record every call, and pretend the platform is macOS / Windows. They check that the
adapters call the real libraries' API as documented (syphon-python's SyphonMetalServer,
create_mtl_texture, copy_image_to_mtl_texture, publish_frame_texture; SpoutGL's
SpoutSender.createOpenGL, setSenderName, sendImage, setFrameSync, releaseSender) with
the right pixels -- not that a Mac or a PC shows them.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
import types
import uuid
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from oscutil import OscReceiver, wait_until
from pcp_osc.config import ConfigError, SinksConfig
from pcp_osc.osc import OscStream
from pcp_osc.sinks import (
    FileSink,
    NdiSink,
    SinkGroup,
    SpoutSink,
    SyphonSink,
    apply_sink_args,
    default_kinds,
    make_sinks,
    parse_sink_arg,
    sinks_available,
)
from pcp_osc.sinks.base import Sink
from pcp_osc.types import Background


def background(image: np.ndarray, bg_id: int = 1) -> Background:
    return Background(image=image, prompt="test", seed=1234 + bg_id, seconds=0.0, generator="test", cue_id=bg_id, id=bg_id)


def solid(rgb, w=64, h=48) -> np.ndarray:
    img = np.zeros((h, w, 3), np.uint8)
    img[:] = rgb
    return img


def split_red_blue(w=64, h=48) -> np.ndarray:
    """Left half red, right half blue, a white top band: catches flips and channel swaps."""
    img = np.zeros((h, w, 3), np.uint8)
    img[:, : w // 2] = (220, 20, 20)
    img[:, w // 2 :] = (20, 20, 220)
    img[: h // 6] = (250, 250, 250)
    return img


def stream_to(rx: OscReceiver, on_path=None) -> OscStream:
    """The daemon's real OscStream, sending to a real receiver on loopback; ``on_path(path)``
    runs at the moment /pcp/background/path is sent."""

    class Checked(OscStream):
        def background_path(self, path: str) -> None:
            if on_path:
                on_path(path)
            super().background_path(path)

    return Checked([("127.0.0.1", rx.port)])


@pytest.fixture()
def osc_rx():
    rx = OscReceiver()
    yield rx
    rx.close()


# --------------------------------------------------------------------------- file sink


def test_file_sink_writes_pictures_and_names_them_over_osc_after_they_are_complete(tmp_path, osc_rx):
    checked = []

    def on_path(path):
        # At the moment the path goes out, the file must already be whole.
        with Image.open(path) as im:
            im.load()
            checked.append((path, im.size))

    sink = FileSink("t", folder=tmp_path, image_format="png", keep=3, stream=stream_to(osc_rx, on_path))
    sink.start()
    try:
        for i in range(1, 6):
            sink.send(background(solid((10 * i, 100, 200)), i))
            assert wait_until(lambda: sink.last_published_id == i)
    finally:
        sink.stop()
    assert sink.failed is None
    files = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("bg-"))
    assert len(files) == 3, files  # only the newest `keep`
    assert files[-1].startswith("bg-000005-")
    assert [c[1] for c in checked] == [(64, 48)] * 5
    osc_rx.wait_for("/pcp/background/path", lambda m: m.args == [checked[-1][0]])
    assert [m.args[0] for m in osc_rx.all("/pcp/background/path")] == [c[0] for c in checked]
    latest = np.asarray(Image.open(tmp_path / "latest.png").convert("RGB"))
    assert tuple(latest[10, 10]) == (50, 100, 200)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temp files left behind"


def test_file_sink_reader_never_sees_a_partial_file(tmp_path):
    """A reader hammering latest.png and the announced files while 40 large pictures are
    written: every open that succeeds decodes completely."""
    sink = FileSink("t", folder=tmp_path, image_format="png", keep=50)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (360, 640, 3), dtype=np.uint8) for _ in range(4)]  # noise: big PNGs
    stop = threading.Event()
    reads, bad = [0], []

    def reader():
        while not stop.is_set():
            for p in [tmp_path / "latest.png"] + sorted(tmp_path.glob("bg-*.png"))[-2:]:
                try:
                    with Image.open(p) as im:
                        im.load()  # raises on a truncated file
                        if im.size != (640, 360):
                            bad.append((p.name, im.size))
                    reads[0] += 1
                except FileNotFoundError:
                    continue
                except Exception as e:  # a partial file
                    bad.append((p.name, repr(e)))

    t = threading.Thread(target=reader)
    sink.start()
    t.start()
    try:
        for i in range(1, 41):
            sink.send(background(images[i % 4], i))
            wait_until(lambda: sink.last_published_id == i, 5)
    finally:
        stop.set()
        t.join()
        sink.stop()
    assert sink.published == 40
    assert reads[0] > 40
    assert bad == []


def test_file_sink_jpeg(tmp_path):
    sink = FileSink("t", folder=tmp_path, image_format="jpg", keep=2)
    sink.start()
    sink.send(background(solid((200, 30, 30)), 7))
    assert wait_until(lambda: sink.last_published_id == 7)
    sink.stop()
    img = np.asarray(Image.open(sink.last_path).convert("RGB")).astype(int)
    assert sink.last_path.suffix == ".jpg"
    assert np.abs(img.mean((0, 1)) - (200, 30, 30)).max() < 6


def test_file_sink_unwritable_folder_fails_with_a_clear_message_and_others_go_on(tmp_path, caplog):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    sink = FileSink("t", folder=blocker / "sub")
    with caplog.at_level(logging.ERROR):
        sink.start()
    assert sink.failed and "cannot create the background folder" in sink.failed
    assert "the other sinks go on" in caplog.text
    sink.send(background(solid((1, 2, 3))))  # no error, no block
    sink.stop()


class SlowSink(Sink):
    kind = "slow"

    def __init__(self):
        super().__init__("slow")
        self.got = []

    def _publish(self, bg):
        time.sleep(0.3)
        self.got.append(bg.id)


def test_send_never_waits_for_a_slow_sink_and_the_newest_background_wins():
    sink = SlowSink()
    sink.start()
    try:
        t0 = time.monotonic()
        for i in range(1, 101):
            sink.send(background(solid((0, 0, 0), 8, 8), i))
        handed_over_s = time.monotonic() - t0
        assert wait_until(lambda: sink.got and sink.got[-1] == 100, 5)
    finally:
        sink.stop()
    # 100 publishes would take 30 s; handing them over must not wait for any of them.
    assert handed_over_s < 1.0
    assert len(sink.got) <= 3 and sink.skipped >= 97


# --------------------------------------------------------------------------- choosing sinks


def test_parse_and_apply_sink_args(tmp_path):
    assert parse_sink_arg("ndi:StageBG") == ("ndi", "StageBG")
    assert parse_sink_arg("FILE") == ("file", None)
    with pytest.raises(ConfigError, match="unknown sink 'vga'.*ndi, syphon, spout, file"):
        parse_sink_arg("vga:x")
    with pytest.raises(ConfigError, match="empty"):
        parse_sink_arg("ndi:")
    cfg = apply_sink_args(SinksConfig(name="base"), ["ndi:StageBG", f"file:{tmp_path}"])
    assert cfg.kinds == ["ndi", "file"] and cfg.names == {"ndi": "StageBG"} and cfg.file_dir == str(tmp_path)
    sinks = make_sinks(cfg)
    assert [(s.kind, s.name) for s in sinks] == [("ndi", "StageBG"), ("file", "base")]
    assert sinks[1].folder == tmp_path


def test_platform_default_and_missing_platforms_are_skipped_with_a_clear_message(caplog):
    # nothing by surprise: machine-local texture sharing only, never NDI (cyndilib imports here),
    # and files only into a folder the operator named
    assert default_kinds("darwin") == ["syphon"]
    assert default_kinds("win32") == ["spout"]
    assert default_kinds("linux") == []
    assert default_kinds("linux", file_dir="/shows/bg") == ["file"]
    assert make_sinks(SinksConfig()) == []
    with caplog.at_level(logging.WARNING):
        sinks = make_sinks(SinksConfig(kinds=["syphon", "spout", "file"]))
    assert [s.kind for s in sinks] == ["file"]
    assert "Syphon needs macOS and syphon-python; this machine is Linux: skipping" in caplog.text
    assert "Spout needs Windows and SpoutGL; this machine is Linux: skipping" in caplog.text
    rows = {r["kind"]: r for r in sinks_available()}
    assert rows["ndi"]["available"] and rows["file"]["available"]
    assert not rows["syphon"]["available"] and "macOS" in rows["syphon"]["reason"]


def test_unknown_sink_kind_in_config_names_the_choices():
    with pytest.raises(ConfigError, match="sinks.kinds: unknown sink 'hdmi'"):
        make_sinks(SinksConfig(kinds=["hdmi"]))


# --------------------------------------------------------------------------- NDI, for real


def unique_name(tag: str) -> str:
    return f"pcp-test-{tag}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def test_ndi_sink_publishes_a_background_that_a_receiver_gets_pixel_for_pixel(osc_rx):
    from ndi_helpers import NdiTestReceiver

    name = unique_name("px")
    osc = stream_to(osc_rx)
    sink = NdiSink(name, fps=30, crossfade_s=0.0, extra_ips=["127.0.0.1"], stream=osc)
    group = SinkGroup([sink], stream=osc)
    group.start()
    try:
        group.send(background(split_red_blue(), 1))
        with NdiTestReceiver(name) as rx:
            frame, _ = rx.wait_for(lambda f: f.shape[:2] == (48, 64), 15)
            rgb = frame[..., :3].astype(int)
            # NDI sends YUV 4:2:2 (SpeedHQ): saturated colours come back within ~15 levels.
            assert np.abs(rgb[20:44, 4:28].mean((0, 1)) - (220, 20, 20)).max() < 16  # left: red
            assert np.abs(rgb[20:44, 36:60].mean((0, 1)) - (20, 20, 220)).max() < 16  # right: blue
            assert rgb[1:6, 4:60].mean() > 235  # white band on top: not flipped
            # A new background replaces it on the same stream.
            group.send(background(solid((30, 200, 40)), 2))
            frame2, _ = rx.wait_for(lambda f: f[..., 1].mean() > 180, 10)
            assert np.abs(frame2[..., :3].astype(int).mean((0, 1)) - (30, 200, 40)).max() < 16
            # The picture keeps coming with no new background (receivers expect a stream).
            n0 = rx.frames
            time.sleep(1.0)
            assert rx.frames - n0 >= 5  # 30 sent; a loaded CI machine may lose some
    finally:
        group.stop()
    assert sink.frames_sent >= 30
    osc_rx.wait_for("/pcp/background/sender", lambda m: m.args == [name])
    osc_rx.wait_for("/pcp/background/id", lambda m: m.args == [2])
    assert [m.args for m in osc_rx.all("/pcp/background/id")] == [[1], [2]]


def test_ndi_sink_crossfades_between_backgrounds():
    from ndi_helpers import NdiTestReceiver

    name = unique_name("xf")
    sink = NdiSink(name, fps=30, crossfade_s=1.5, extra_ips=["127.0.0.1"])
    sink.start()
    try:
        sink.send(background(solid((0, 0, 0)), 1))
        with NdiTestReceiver(name) as rx:
            rx.wait_for(lambda f: f[..., :3].mean() < 10, 15)
            sink.send(background(solid((240, 240, 240)), 2))
            levels = []
            deadline = time.monotonic() + 8
            while time.monotonic() < deadline:
                f = rx.next_frame(0.5)
                if f is not None:
                    levels.append(float(f[..., :3].mean()))
                    if levels[-1] > 230:
                        break
    finally:
        sink.stop()
    between = [v for v in levels if 30 < v < 210]
    assert levels and levels[-1] > 230, levels
    assert len(between) >= 5, f"expected a gradual crossfade, got levels {levels}"
    assert between == sorted(between)  # it only ever brightens on the way


# --------------------------------------------------------------------------- Syphon and Spout: STAND-INS


class FakeTexture:
    def __init__(self, w, h):
        self.w, self.h = w, h
        self.data = None

    def width(self):
        return self.w

    def height(self):
        return self.h


def install_fake_syphon(monkeypatch):
    """STAND-IN for syphon-python on a Mac (this machine is Linux): records calls."""
    log = []

    class SyphonMetalServer:
        def __init__(self, name, device=None, command_queue=None):
            self.name = name
            self.device = "metal-device"
            log.append(("server", name))

        def publish_frame_texture(self, texture, region=None, size=None, is_flipped=False):
            log.append(("publish", texture.data.copy()))

        def stop(self):
            log.append(("stop",))

    class SyphonServerDirectory:
        def update_run_loop(self):
            log.append(("run_loop",))

    def create_mtl_texture(device, width, height, pixel_format=None):
        assert device == "metal-device"
        log.append(("texture", width, height))
        return FakeTexture(width, height)

    def copy_image_to_mtl_texture(image, texture):
        assert image.shape == (texture.height(), texture.width(), 4) and image.dtype == np.uint8
        texture.data = np.array(image)

    syphon = types.ModuleType("syphon")
    syphon.SyphonMetalServer = SyphonMetalServer
    syphon.SyphonServerDirectory = SyphonServerDirectory
    utils = types.ModuleType("syphon.utils")
    raw = types.ModuleType("syphon.utils.raw")
    raw.create_mtl_texture = create_mtl_texture
    npmod = types.ModuleType("syphon.utils.numpy")
    npmod.copy_image_to_mtl_texture = copy_image_to_mtl_texture
    syphon.utils = utils
    utils.raw, utils.numpy = raw, npmod
    for name, mod in {"syphon": syphon, "syphon.utils": utils, "syphon.utils.raw": raw, "syphon.utils.numpy": npmod}.items():
        monkeypatch.setitem(sys.modules, name, mod)
    monkeypatch.setattr(sys, "platform", "darwin")
    return log


def test_syphon_adapter_publishes_the_picture_as_a_metal_texture_STAND_IN(monkeypatch, osc_rx):
    log = install_fake_syphon(monkeypatch)
    sinks = make_sinks(SinksConfig(kinds=["syphon"], name="Stage", stream_fps=60), stream=stream_to(osc_rx), crossfade_s=0)
    assert [type(s) for s in sinks] == [SyphonSink]
    sink = sinks[0]
    sink.start()
    sink.send(background(split_red_blue(), 3))
    assert wait_until(lambda: sum(1 for e in log if e[0] == "publish") >= 5)
    sink.stop()
    assert log[0] == ("server", "Stage")
    assert ("texture", 64, 48) in log
    published = [e[1] for e in log if e[0] == "publish"]
    expected = np.concatenate([split_red_blue(), np.full((48, 64, 1), 255, np.uint8)], axis=2)
    assert np.array_equal(published[-1], expected)  # RGBA, top row first, nothing lost
    assert ("run_loop",) in log  # headless discovery is serviced
    assert log[-1] == ("stop",)
    osc_rx.wait_for("/pcp/background/sender", lambda m: m.args == ["Stage"])


def install_fake_spout(monkeypatch, create_opengl_ok=True):
    """STAND-IN for SpoutGL on Windows (this machine is Linux): records calls."""
    log = []

    class SpoutSender:
        def createOpenGL(self):
            log.append(("createOpenGL",))
            return create_opengl_ok

        def setSenderName(self, name):
            log.append(("setSenderName", name))

        def sendImage(self, buf, width, height, gl_format, invert, host_fbo):
            a = np.asarray(buf)
            assert a.flags.c_contiguous and a.size >= width * height * 4
            log.append(("sendImage", a.copy(), width, height, gl_format, invert, host_fbo))
            return True

        def setFrameSync(self, name):
            log.append(("setFrameSync", name))

        def releaseSender(self):
            log.append(("releaseSender",))

        def closeOpenGL(self):
            log.append(("closeOpenGL",))

    spout = types.ModuleType("SpoutGL")
    spout.SpoutSender = SpoutSender
    enums = types.ModuleType("SpoutGL.enums")
    enums.GL_RGBA = 0x1908
    spout.enums = enums
    monkeypatch.setitem(sys.modules, "SpoutGL", spout)
    monkeypatch.setitem(sys.modules, "SpoutGL.enums", enums)
    monkeypatch.setattr(sys, "platform", "win32")
    return log


def test_spout_adapter_sends_the_picture_with_sendImage_STAND_IN(monkeypatch):
    log = install_fake_spout(monkeypatch)
    sink = SpoutSink("StageBG", fps=60, crossfade_s=0)
    sink.start()
    sink.send(background(split_red_blue(), 4))
    assert wait_until(lambda: sum(1 for e in log if e[0] == "sendImage") >= 5)
    sink.stop()
    names = [e[0] for e in log]
    assert names[:2] == ["createOpenGL", "setSenderName"] and log[1][1] == "StageBG"
    send = [e for e in log if e[0] == "sendImage"][-1]
    assert send[2:] == (64, 48, 0x1908, False, 0)
    assert np.array_equal(send[1][..., :3], split_red_blue())
    assert ("setFrameSync", "StageBG") in log
    assert names[-2:] == ["releaseSender", "closeOpenGL"]


def test_spout_without_an_opengl_context_says_so_STAND_IN(monkeypatch, caplog):
    install_fake_spout(monkeypatch, create_opengl_ok=False)
    monkeypatch.setitem(sys.modules, "glfw", None)  # no GLFW either: import fails
    sink = SpoutSink("StageBG")
    with caplog.at_level(logging.ERROR):
        sink.start()
    assert sink.failed and "OpenGL context" in sink.failed
    sink.stop()
