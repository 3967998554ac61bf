"""The web dashboard and the browser camera page, against a real Daemon (real
perception on the built-in demo crowd), in a real headless Chromium.

Chromium's fake camera (--use-fake-device-for-media-stream) stands in for a phone's
camera: this machine has none. Screenshots: test-output/dashboard*.png, camera-page.png.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest

from _browser import launch, screenshot_path
from heard import Heard
from pcp_osc.config import Config
from pcp_osc.daemon import Daemon
from pcp_osc.emotions import EMOTIONS
from pcp_osc.web import WebDashboard
from pcp_osc.web.preview import render_preview
from pcp_osc.web.server import is_loopback

DATA = Path(__file__).resolve().parents[1] / "pcp_osc" / "data"


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@contextlib.contextmanager
def running_show(source: str = "demo", host: str = "127.0.0.1", token: str = "", window_s: float = 1.0,
                 override_timeout_s: float = 0.0):
    cfg = Config()
    cfg.mood.override_timeout_s = override_timeout_s
    cfg.osc.control_port = 0
    cfg.osc.target = "127.0.0.1:9"  # discard: no OSC receiver in these tests
    cfg.mood.window_s = window_s
    cfg.capture.fps = 6.0  # modest CPU: other test suites run beside this one
    cfg.perception.threads = 1
    cfg.web.bind = f"{host}:{free_port()}"
    cfg.web.token = token
    daemon = Daemon(cfg, source=source)
    dash = daemon.parts.add(WebDashboard(daemon, cfg.web))
    heard = daemon.parts.add(Heard())
    daemon.start()
    try:
        yield daemon, dash, heard.cues, heard.controls
    finally:
        daemon.stop()


def wait_for(predicate, timeout_s: float = 15.0, what: str = "condition"):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def http(method: str, url: str, body: bytes | None = None, headers: dict | None = None) -> tuple[int, dict | bytes]:
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            data, status, ctype = r.read(), r.status, r.headers.get("Content-Type", "")
    except urllib.error.HTTPError as e:
        data, status, ctype = e.read(), e.code, e.headers.get("Content-Type", "")
    return status, (json.loads(data) if "json" in ctype else data)


def test_dashboard_shows_live_cues_and_a_click_changes_the_next_cue(monkeypatch, tmp_path) -> None:
    from playwright.sync_api import sync_playwright

    monkeypatch.chdir(tmp_path)
    with running_show("demo") as (daemon, dash, cues, controls), sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport={"width": 1500, "height": 950})
        page.goto(dash.url_with_token())  # the address printed at start-up, token included
        first = wait_for(lambda: page.text_content("#cue-id").strip("# ").split(" ")[0].isdigit()
                         and page.text_content("#cue-id"), what="a cue on the page")
        # live values change as cues arrive: the cue number moves on without a reload
        wait_for(lambda: page.text_content("#cue-id") != first, what="the next cue on the page")
        wait_for(lambda: page.evaluate("window.pcpState.live") >= 3, what="live mood updates")
        shares = [float(page.text_content(f"#pct-{e}").rstrip("%")) for e in EMOTIONS]
        assert 95 <= sum(shares) <= 105, shares
        wait_for(lambda: page.evaluate("document.getElementById('preview').naturalWidth") > 0, what="the camera preview")
        assert page.text_content("#faces-now").split()[0].isdigit()
        # the cue's faces are a mean per frame, said so with one decimal (not "faces 6.01")
        assert re.fullmatch(r"\d+\.\d per frame", page.text_content("#cue-faces")), page.text_content("#cue-faces")
        page.screenshot(path=str(screenshot_path("dashboard.png")))
        assert page.get_attribute("#override-s", "placeholder") == "∞"  # no timeout configured: until release

        # an operator clicks "override sadness": the daemon hears it from web:<ip>, the next cue is sadness
        n_before = len(cues)
        page.click("#override-sadness")
        # (a window cue may slip in between reading the count and the click: the window is 1 s)
        nxt = wait_for(lambda: next((c for c in cues[n_before:] if c.reason == "override"), None), what="the cue after the click")
        assert (nxt.emotion_id, nxt.source) == ("sadness", "override")
        ev = [c for c in controls if c.address == "/pcp/override"][-1]
        assert ev.accepted and ev.sender == "web:127.0.0.1"
        wait_for(lambda: page.text_content("#cue-emotion") == "sadness", what="the page to show the override")
        assert page.text_content("#cue-source") == "override"
        wait_for(lambda: "override sadness" in page.text_content("#control-result"), what="the control's answer")
        wait_for(lambda: "show control applied" in page.text_content("#counters"), what="the counters after a click")
        counters = page.text_content("#counters")
        assert "dashboard button presses" in counters and "control accepted" not in counters

        page.fill("#marker", "Song 2: Ballad")
        page.click("#marker-form button")
        wait_for(lambda: any(c.address == "/pcp/marker" and c.args == ("Song 2: Ballad",) for c in controls), what="the marker")
        page.fill("#window", "500")
        page.click("#window-form button[type=submit]")
        wait_for(lambda: "300" in page.text_content("#control-result"), what="a refused window length explained on the page")
        assert "bad" in page.get_attribute("#control-result", "class") and daemon.status()["window_s"] == 1.0
        page.click("#release")
        wait_for(lambda: cues[-1].source != "override", what="the release")
        page.screenshot(path=str(screenshot_path("dashboard-after-controls.png")))
        browser.close()
    # the preview lives in memory only: nothing of the audience was written
    assert not [f for f in tmp_path.rglob("*") if f.suffix.lower() in (".jpg", ".jpeg", ".png")]


def test_browser_camera_page_delivers_frames_the_daemon_processes() -> None:
    from playwright.sync_api import sync_playwright

    with running_show("browser") as (daemon, dash, cues, _), sync_playwright() as p:
        assert daemon.browser_source is not None
        browser = launch(p, fake_camera=True)
        page = browser.new_page(viewport={"width": 800, "height": 900})
        page.goto(dash.url_with_token("camera"))
        page.fill("#interval", "0.3")  # the operator picks the interval on the page
        page.click("#start")
        wait_for(lambda: page.evaluate("window.pcpCamera.sent") >= 4, timeout_s=30, what="frames sent by the camera page")
        assert page.evaluate("window.pcpCamera.refused") == 0, page.text_content("#message")
        assert dash.counters["frames_received"] >= 4
        wait_for(lambda: daemon.counters["frames"] >= 2, what="perception to process the posted frames")
        assert daemon.last_frame.image.shape[:2] == (480, 640)  # the page's default size, decoded by the server
        assert daemon.source.state not in ("no-camera", "reconnecting")
        page.screenshot(path=str(screenshot_path("camera-page.png")))
        page.click("#stop")
        browser.close()


def test_a_corrupt_frame_gets_a_clear_400_and_the_show_goes_on() -> None:
    with running_show("browser") as (daemon, dash, cues, _):
        status, body = http("POST", dash.url + "api/frame", b"\xff\xd8\xff\xe0 this is not really a jpeg",
                            {"Content-Type": "image/jpeg", "X-PCP-Token": dash.token})
        assert status == 400 and "not a JPEG or PNG image" in body["error"]
        status, body = http("POST", dash.url + "api/frame", b"", {"Content-Type": "image/jpeg", "X-PCP-Token": dash.token})
        assert status == 400 and "empty" in body["error"]
        # a real JPEG, 4x4 px: refused with its size and the least allowed (it said "not a colour image")
        ok, tiny = cv2.imencode(".jpg", cv2.resize(cv2.imread(str(DATA / "obama_portrait.jpg")), (4, 4)))
        status, body = http("POST", dash.url + "api/frame", bytes(tiny), {"Content-Type": "image/jpeg", "X-PCP-Token": dash.token})
        assert status == 400 and "4x4 px picture, too small" in body["error"] and "at least 8x8 px" in body["error"], body
        ok, jpg = cv2.imencode(".jpg", cv2.imread(str(DATA / "obama_portrait.jpg")))
        status, body = http("POST", dash.url + "api/frame", bytes(jpg), {"Content-Type": "image/jpeg", "X-PCP-Token": dash.token})
        assert status == 200 and body["ok"] is True
        n = len(cues)
        wait_for(lambda: len(cues) > n, what="cues after the bad frames")
        wait_for(lambda: daemon.counters["frames"] >= 1, what="the good frame processed")
        assert dash.counters["frames_refused"] == 3


def test_one_camera_page_at_a_time_another_takes_over_when_it_stops(monkeypatch) -> None:
    # Two camera pages at once (a second phone, a page left open on a laptop) were each a
    # camera cut against the other: every face a new person on every picture. The page in
    # use keeps the camera; another is refused, saying which and when it may take over.
    import pcp_osc.web.server as server

    monkeypatch.setattr(server, "CAMERA_HOLD_S", 1.0)
    ok, jpg = cv2.imencode(".jpg", cv2.imread(str(DATA / "obama_portrait.jpg")))
    with running_show("browser") as (daemon, dash, cues, _):
        def post(page: str):
            return http("POST", dash.url + "api/frame", bytes(jpg),
                        {"Content-Type": "image/jpeg", "X-PCP-Token": dash.token, "X-PCP-Camera": page})
        assert post("phone-a")[0] == 200
        status, body = post("phone-b")
        assert status == 409 and body["held_by"] == "127.0.0.1", body
        assert "another camera page" in body["error"] and "takes over 1 s after its last frame" in body["error"]
        assert post("phone-a")[0] == 200  # the page in use goes on
        time.sleep(1.2)  # ... until it has been quiet for CAMERA_HOLD_S
        assert post("phone-b")[0] == 200
        assert post("phone-a")[0] == 409
        assert dash.counters["frames_received"] == 3 and dash.counters["frames_refused"] == 2


def test_frames_are_refused_when_the_show_uses_another_camera() -> None:
    with running_show("demo") as (_, dash, _, _):
        ok, jpg = cv2.imencode(".jpg", np.zeros((48, 64, 3), np.uint8))
        status, body = http("POST", dash.url + "api/frame", bytes(jpg), {"Content-Type": "image/jpeg", "X-PCP-Token": dash.token})
        assert status == 409 and "--source browser" in body["error"]


def test_beyond_loopback_every_api_call_needs_the_printed_token(capsys) -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost") and not is_loopback("0.0.0.0")
    with running_show("demo", host="0.0.0.0") as (daemon, dash, cues, controls):
        assert dash.token_required and len(dash.token) >= 12
        assert dash.token in capsys.readouterr().out  # printed at start-up for the operator
        url = f"http://127.0.0.1:{dash.port}/"
        status, body = http("GET", url + "api/status")
        assert status == 401 and "token" in body["error"]
        status, _ = http("POST", url + "api/control", json.dumps({"address": "/pcp/intent", "args": ["anger"]}).encode(),
                         {"Content-Type": "application/json", "X-PCP-Token": "wrong"})
        assert status == 401 and daemon.status()["intent"] != "anger" and not controls
        status, body = http("POST", url + "api/control", json.dumps({"address": "intent", "args": ["anger"]}).encode(),
                            {"Content-Type": "application/json", "X-PCP-Token": dash.token})
        assert status == 200 and body["accepted"] and daemon.status()["intent"] == "anger"
        status, body = http("GET", url + f"api/status?token={dash.token}")
        assert status == 200 and body["intent"] == "anger"
        status, body = http("POST", url + "api/control", json.dumps({"address": "intent", "args": ["euphoria"]}).encode(),
                            {"Content-Type": "application/json", "X-PCP-Token": dash.token})
        assert status == 422 and not body["accepted"] and "euphoria" in body["message"]
        status, page = http("GET", url)  # the page itself holds nothing secret
        assert status == 200 and b"pcp-osc" in page


def test_the_preview_blurs_faces_unless_the_operator_turns_it_off() -> None:
    from pcp_osc.perception import make_backend

    image = cv2.imread(str(DATA / "obama_portrait.jpg"))
    faces = make_backend(Config().perception).detect(image)
    assert len(faces) == 1
    colours = {e: "#ffffff" for e in EMOTIONS}

    def face_detail(jpeg: bytes) -> float:
        img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_GRAYSCALE)
        scale = img.shape[1] / image.shape[1]
        x1, y1, x2, y2 = (faces.boxes[0] * scale).astype(int)
        inner = img[y1 + 6:y2 - 6, x1 + 6:x2 - 6]  # inside the drawn box
        return float(cv2.Laplacian(inner, cv2.CV_64F).var())

    sharp = face_detail(render_preview(image, faces, colours, blur=False))
    blurred = face_detail(render_preview(image, faces, colours, blur=True))
    assert blurred < sharp / 3, (blurred, sharp)


def test_https_with_the_configured_certificate(tmp_path) -> None:
    import shutil
    import ssl
    import subprocess

    openssl = shutil.which("openssl")
    assert openssl, "openssl is needed to make a test certificate (apt-get install -y openssl)"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-keyout", str(tmp_path / "k.pem"),
                    "-out", str(tmp_path / "c.pem"), "-subj", "/CN=127.0.0.1"], check=True, capture_output=True)
    cfg = Config()
    cfg.osc.control_port = 0
    cfg.osc.target = "127.0.0.1:9"
    cfg.web.bind = f"127.0.0.1:{free_port()}"
    cfg.web.tls_cert, cfg.web.tls_key = str(tmp_path / "c.pem"), str(tmp_path / "k.pem")
    daemon = Daemon(cfg, source="browser", perception=False)
    dash = daemon.parts.add(WebDashboard(daemon, cfg.web))
    daemon.start()
    try:
        assert dash.url.startswith("https://")
        ctx = ssl.create_default_context(cafile=str(tmp_path / "c.pem"))
        ctx.check_hostname = False
        with urllib.request.urlopen(dash.url + "camera", context=ctx, timeout=10) as r:
            assert r.status == 200 and b"audience camera" in r.read()
    finally:
        daemon.stop()
    cfg.web.tls_key = str(tmp_path / "missing.pem")
    with pytest.raises(ValueError, match="web.tls_key = .*missing.pem.* does not exist"):
        WebDashboard(daemon, cfg.web)


def test_a_dashboard_opened_mid_show_shows_the_show_control_log_so_far() -> None:
    """An operator reloads the page (or opens it on a second machine) mid-show: the show-control
    log lists what came before, over OSC and from the web, once each (it used to be empty)."""
    from playwright.sync_api import sync_playwright

    from oscutil import send_osc

    with running_show("demo", window_s=30) as (daemon, dash, cues, controls), sync_playwright() as p:
        port = daemon.control_server.port
        send_osc(port, "/pcp/marker", "1곡 봄날")
        send_osc(port, "/pcp/override", "rage")  # refused: unknown emotion
        wait_for(lambda: len(controls) >= 2, what="the two control messages")
        browser = launch(p)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(dash.url_with_token())
        wait_for(lambda: "marker '1곡 봄날'" in page.text_content("#events"), what="the earlier marker in the log")
        text = page.text_content("#events")
        assert "unknown emotion 'rage'" in text
        page.click("#intent-joy")
        wait_for(lambda: "intent is joy" in page.text_content("#events"), what="the click in the log")
        page.reload()
        wait_for(lambda: "intent is joy" in page.text_content("#events"), what="the log after a reload")
        items = page.eval_on_selector_all("#events li", "els => els.map(e => e.textContent)")
        assert sum("1곡 봄날" in t for t in items) == 1 and sum("intent is joy" in t for t in items) == 1, items
        assert "intent is joy" in items[0]  # newest on top
        page.screenshot(path=str(screenshot_path("dashboard-reloaded-log.png")))
        browser.close()


def test_the_override_field_shows_the_configured_timeout() -> None:
    """With mood.override_timeout_s set, an override without seconds ends after it: the
    page's empty "for … s" field says so instead of promising "∞"."""
    from playwright.sync_api import sync_playwright

    with running_show("demo", override_timeout_s=20) as (daemon, dash, cues, controls), sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page()
        page.goto(dash.url_with_token())
        wait_for(lambda: page.get_attribute("#override-s", "placeholder") == "20", what="the timeout in the field")
        page.click("#override-anger")
        wait_for(lambda: "for 20 s" in page.text_content("#control-result"), what="the control's answer")
        browser.close()
