"""The audience region set while the show runs: drawn on the dashboard's preview in a real
headless Chromium, or sent as show control (`/pcp/region x y x y ...` over real UDP, or
the dashboard's JSON). The daemon runs real perception on a real photograph of people in
full (pcp_osc/data/scenes) from an image folder, and its faces are read where a show reads
them: `/pcp/live/faces` on a real UDP socket, and the show log (a real SQLite file)."""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3

import cv2
import numpy as np
import pytest

from _browser import launch, screenshot_path
from oscutil import OscReceiver, send_osc
from pcp_bench.live import window
from pcp_osc.config import config_from_dict, load_config
from pcp_osc.daemon import Daemon
from pcp_osc.data.scenes import scene
from pcp_osc.perception.region import MAX_REGION_POINTS
from pcp_osc.show import assemble
from pcp_osc.web import WebDashboard
from test_web import free_port, http, wait_for

LEFT = 0.55  # the region the operator draws: the picture's left 55%


def centres_x(boxes: np.ndarray) -> np.ndarray:
    return (boxes[:, 0] + boxes[:, 2]) / 2


@contextlib.contextmanager
def show_on_a_photograph(tmp_path):
    """The whole show as `pcp-osc run` assembles it (show log, dashboard), its camera a
    folder holding one real group photograph at 1280x720, read 3 times a second."""
    s = scene("group_blue_room").scaled(2 / 3)
    picture = window(s.image, 0, 0)  # 1280x720, people in full, faces 17..110 px
    folder = tmp_path / "camera"
    folder.mkdir()
    cv2.imwrite(str(folder / "hall.png"), picture)
    rx = OscReceiver()
    cfg = config_from_dict({
        "capture": {"source": str(folder), "fps": 3.0, "loop": True},
        "osc": {"target": rx.target, "control_port": 0, "control_host": "127.0.0.1", "heartbeat": False},
        "log": {"path": str(tmp_path / "show.db")}, "generator": {"kind": "off"},
        "perception": {"threads": 1},
        "web": {"enabled": True, "bind": f"127.0.0.1:{free_port()}"},
    })
    daemon = assemble(cfg)
    dash = next(p for p in daemon.parts if isinstance(p, WebDashboard))
    daemon.start()
    try:
        yield daemon, dash, rx
    finally:
        daemon.stop()
        rx.close()


def settled_faces(daemon: Daemon, rx: OscReceiver, predicate, what: str) -> np.ndarray:
    """The daemon's faces once three pictures in a row satisfy ``predicate`` (boxes), and
    /pcp/live/faces on the UDP socket says the same count."""
    streak = {"n": 0, "frame": -1}

    def check():
        frame = daemon.last_frame.index if daemon.last_frame is not None else -1
        if frame == streak["frame"]:
            return None
        streak["frame"] = frame
        boxes = daemon.last_faces.boxes
        streak["n"] = streak["n"] + 1 if predicate(boxes) else 0
        return (boxes,) if streak["n"] >= 3 else None

    boxes, = wait_for(check, timeout_s=40, what=what)
    wait_for(lambda: rx.values("/pcp/live/faces") and rx.values("/pcp/live/faces")[-1] == len(boxes),
             timeout_s=5, what=f"/pcp/live/faces = {len(boxes)} on the UDP socket")
    return boxes


def test_the_operator_draws_the_audience_region_on_the_preview_and_clears_it(tmp_path) -> None:
    from playwright.sync_api import sync_playwright

    with show_on_a_photograph(tmp_path) as (daemon, dash, rx), sync_playwright() as p:
        everyone = settled_faces(daemon, rx, lambda b: len(b) >= 8, "the faces of the whole picture")
        left = int((centres_x(everyone) < LEFT * 1280).sum())
        assert 3 <= left <= len(everyone) - 3, "faces on both sides of the line the operator draws"

        browser = launch(p)
        context = browser.new_context(viewport={"width": 1400, "height": 900}, has_touch=True)
        context.grant_permissions(["clipboard-read", "clipboard-write"], origin=dash.url.rstrip("/"))
        page = context.new_page()
        page.goto(dash.url_with_token())
        wait_for(lambda: page.evaluate("document.getElementById('preview').naturalWidth") > 0, what="the preview")
        assert page.text_content("#region-now") == "the whole picture"
        box = page.eval_on_selector("#preview-wrap", "e => { const r = e.getBoundingClientRect(); "
                                                     "return [r.left, r.top, r.width, r.height]; }")

        def click(fx: float, fy: float) -> None:  # a point of the picture, as the operator sees it
            page.mouse.click(box[0] + fx * box[2], box[1] + fy * box[3])

        def tap(fx: float, fy: float) -> None:  # the same with a finger (a tablet at the desk)
            page.touchscreen.tap(box[0] + fx * box[2], box[1] + fy * box[3])

        page.click("#region-start")
        # corners a little beyond the picture land on its edge (a finger is not a mouse)
        click(-0.01, -0.01)
        tap(LEFT, 0.004)
        tap(LEFT, 1.01)
        click(0.8, 0.5)
        page.click("#region-undo")  # the last corner was a slip
        click(0.004, 0.996)
        assert page.eval_on_selector_all("#region-draw circle", "c => c.length") == 4
        page.screenshot(path=str(screenshot_path("dashboard-region-drawing.png")))
        click(0.0, 0.0)  # the first corner again closes the outline and applies it

        wait_for(lambda: "audience region set: 4 points" in page.text_content("#region-result"), what="the daemon's answer")
        region = daemon.status()["audience_region"]
        assert region[0] == [0, 0] and region[3] == [0, 1], f"clicks at the edge are on the edge: {region}"
        assert all(abs(x - LEFT) < 0.01 for x, _ in region[1:3]), region
        inside = settled_faces(daemon, rx, lambda b: len(b) == left and (centres_x(b) < LEFT * 1280).all(),
                               "only the faces inside the region")
        assert len(inside) == left
        wait_for(lambda: page.text_content("#region-now") == "4 points", what="the region on the page")
        # the line to keep it is the region, as the config reads it
        line = page.text_content("#region-toml")
        page.click("#region-copy")
        wait_for(lambda: "copied" in page.text_content("#region-result"), what="the copy")
        assert page.evaluate("navigator.clipboard.readText()") == line
        (tmp_path / "keep.toml").write_text(f"[perception]\n{line}\n")
        assert load_config(tmp_path / "keep.toml").perception.region == region
        page.screenshot(path=str(screenshot_path("dashboard-region.png")))

        page.click("#region-clear")
        wait_for(lambda: "whole picture is the audience" in page.text_content("#region-result"), what="the clear")
        back = settled_faces(daemon, rx, lambda b: len(b) >= len(everyone), "the faces outside the region back")
        assert (centres_x(back) >= LEFT * 1280).sum() >= len(everyone) - left
        wait_for(lambda: page.text_content("#region-now") == "the whole picture", what="the page after the clear")
        browser.close()
    with sqlite3.connect(tmp_path / "show.db") as db:
        rows = db.execute("SELECT args, sender, accepted, message FROM controls WHERE address = '/pcp/region'").fetchall()
    assert [(r[1], r[2]) for r in rows] == [("web:127.0.0.1", 1)] * 2, rows
    assert len(json.loads(rows[0][0])) == 8 and json.loads(rows[1][0]) == []


# ---------------------------------------------------------------------- refused regions


@contextlib.contextmanager
def dashboard_without_perception(region=None):
    cfg = config_from_dict({"osc": {"target": "127.0.0.1:9", "control_port": 0, "control_host": "127.0.0.1"},
                            "log": {"enabled": False}, "generator": {"kind": "off"},
                            "perception": {"region": region or []},
                            "web": {"bind": f"127.0.0.1:{free_port()}", "token": "region-test-token"}})
    daemon = Daemon(cfg, source="browser", perception=False)
    dash = daemon.parts.add(WebDashboard(daemon, cfg.web))
    daemon.start()
    try:
        yield daemon, dash
    finally:
        daemon.stop()


CONFIGURED = [[0, 0.4], [1, 0.4], [1, 1], [0, 1]]
TOKEN = {"X-PCP-Token": "region-test-token"}
JSON = {"Content-Type": "application/json", **TOKEN}


def post_region(dash, args, headers=None, raw: bytes | None = None):
    body = raw if raw is not None else json.dumps({"address": "region", "args": args}).encode()
    return http("POST", dash.url + "api/control", body, headers or JSON)


@pytest.mark.parametrize("args, status, words", [
    ([0, 0, 1, 0], 422, "has 2 point(s); a region needs at least 3"),
    ([0, 0, 1, 0, 1, 1, 0], 422, "got 7 numbers, not x y pairs"),
    ([0, 0, 640, 0, 640, 360], 422, "point 2 = [640.0, 0.0] is outside 0..1"),
    ([0, 0, 1, 1, 1, 0, 0, 1], 422, "crosses itself: the edge from point 1 to point 2 crosses the edge from point 3 to point 4"),
    ([0, 0, 0.5, 0.5, 1, 1], 422, "encloses no area"),
    ([0, 0, "left", 0, 1, 1], 422, "argument 3 = 'left' is not a number"),
    ([[0, 0], [1, 0], [1, 1]], 400, "args[0] is a list"),
    ([0.5] * (2 * MAX_REGION_POINTS + 2), 400, f"has {MAX_REGION_POINTS + 1} points; a region has 3..{MAX_REGION_POINTS} points"),
])
def test_a_bad_region_is_refused_naming_what_is_wrong_and_nothing_changes(args, status, words) -> None:
    with dashboard_without_perception(CONFIGURED) as (daemon, dash):
        code, body = post_region(dash, args)
        assert code == status and not body["accepted"], (code, body)
        assert words in body["message"], body["message"]
        if status == 422:  # refused by the daemon: the rule and what is allowed
            assert "fractions" in body["message"] or "order around" in body["message"], body["message"]
        else:
            assert '"address": "region"' in body["message"]  # an example of what it takes
        assert daemon.status()["audience_region"] == CONFIGURED and daemon.status()["audience_region_set_by"] is None


def test_a_huge_or_foreign_region_request_changes_nothing() -> None:
    with dashboard_without_perception(CONFIGURED) as (daemon, dash):
        code, body = post_region(dash, None, raw=b'{"address": "region", "args": [' + b"0.5, " * 5000 + b"0.5]}")
        assert code == 413 and "at most 16384 bytes" in body["message"]
        good = [0, 0, 0.5, 0, 0.5, 1, 0, 1]
        origin = {**JSON, "Origin": "http://evil.example"}
        code, body = post_region(dash, good, headers=origin)
        assert code == 403 and "http://evil.example may not use this dashboard" in body["error"]
        code, body = post_region(dash, good, headers={**JSON, "Sec-Fetch-Site": "cross-site"})
        assert code == 403
        code, body = post_region(dash, good, headers={"Content-Type": "application/json"})  # no token
        assert code == 401
        code, body = post_region(dash, None, headers={**TOKEN, "Content-Type": "text/plain"},
                                 raw=json.dumps({"address": "region", "args": good}).encode())
        assert code == 415
        assert daemon.status()["audience_region"] == CONFIGURED and daemon.status()["audience_region_set_by"] is None
        # the dashboard's own page may: the region changes
        code, body = post_region(dash, good, headers={**JSON, "Origin": dash.url.rstrip("/")})
        assert code == 200 and body["accepted"], body
        assert daemon.status()["audience_region"] == [[0, 0], [0.5, 0], [0.5, 1], [0, 1]]


def test_show_control_sets_and_clears_the_region_over_osc() -> None:
    with dashboard_without_perception() as (daemon, dash):
        port = daemon.control_server.port
        send_osc(port, "/pcp/region", 0.0, 0.3, 1.0, 0.3, 1.0, 1.0, 0.0, 1.0)
        wait_for(lambda: daemon.status()["audience_region"] == [[0, 0.3], [1, 0.3], [1, 1], [0, 1]], what="the region")
        assert daemon.status()["audience_region_set_by"].startswith("127.0.0.1:")
        send_osc(port, "/pcp/region", 0.0, 0.3, 1.0)  # refused: half a point
        wait_for(lambda: daemon.counters["control_rejected"] == 1, what="the refusal")
        assert daemon.status()["audience_region"] == [[0, 0.3], [1, 0.3], [1, 1], [0, 1]]
        send_osc(port, "/pcp/region")
        wait_for(lambda: daemon.status()["audience_region"] is None, what="the whole picture again")


def test_a_new_region_takes_effect_at_the_next_picture_of_live_video() -> None:
    """The backend swaps the region between two pictures of the same stream: the next
    picture is searched inside the new region only, and clearing it brings everyone back."""
    from pcp_osc.config import PerceptionConfig
    from pcp_osc.perception.default import DefaultBackend
    from pcp_osc.perception.region import AudienceRegion

    s = scene("group_oval_office").scaled(2 / 3)
    frame = window(s.image, 0, 0)
    b = DefaultBackend(PerceptionConfig(threads=1))
    t = 0.0
    everyone = b.detect(frame, t)
    assert len(everyone) >= 6
    right = AudienceRegion(polygon=[[0.5, 0], [1, 0], [1, 1], [0.5, 1]])
    b.set_region(right)
    inside_ids = set(everyone.track_id[centres_x(everyone.boxes) >= 640].tolist())
    for _ in range(3):
        t += 1 / 30
        got = b.detect(frame, t)
        assert (centres_x(got.boxes) >= 640).all() and len(got) == (centres_x(everyone.boxes) >= 640).sum()
        # the people inside keep their tracks (ids, smoothed readings) across the change
        assert set(got.track_id.tolist()) == inside_ids
    assert all(tile[2] > 640 for tile in b._live.tiles), "only the region is searched"
    b.set_region(None)
    t += 1 / 30
    assert len(b.detect(frame, t)) == len(everyone)


def test_the_config_refuses_a_region_the_dashboard_would_refuse(tmp_path) -> None:
    """One rule for the config file, OSC and the dashboard (perception.region.polygon_problem)."""
    from pcp_osc.config import ConfigError

    many = ", ".join(f"[{0.5 + 0.4 * np.cos(a):.4f}, {0.5 + 0.4 * np.sin(a):.4f}]"
                     for a in np.linspace(0, 2 * np.pi, MAX_REGION_POINTS + 1, endpoint=False))
    for line, words in {"region = [[0, 0], [1, 1], [1, 0], [0, 1]]": "crosses itself",
                        f"region = [{many}]": f"a region has 3..{MAX_REGION_POINTS} [x, y] points"}.items():
        (tmp_path / "c.toml").write_text(f"[perception]\n{line}\n")
        with pytest.raises(ConfigError, match=re.escape(words)):
            load_config(tmp_path / "c.toml")


def test_with_blurring_on_the_preview_blurs_what_lies_outside_the_region() -> None:
    """No face is looked for outside the region, so none there gets a box and a blur of its
    own: with blurring on, the preview blurs everything outside (the faces inside are
    blurred as found)."""
    from pcp_osc.perception.region import AudienceRegion
    from pcp_osc.types import Faces
    from pcp_osc.web.preview import render_preview

    s = scene("group_oval_office")
    region = AudienceRegion(polygon=[[0.5, 0], [1, 0], [1, 1], [0.5, 1]])
    left = s.faces[centres_x(s.faces) < 0.45 * s.size[0]]
    big = left[np.argmax(left[:, 3] - left[:, 1])]  # the largest face outside the region
    assert big[3] - big[1] > 200

    def detail(blur: bool) -> float:
        jpeg = render_preview(s.image, Faces.empty(), {}, blur=blur, region=region)
        img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_GRAYSCALE).astype(np.float32)
        k = img.shape[1] / s.size[0]
        x1, y1, x2, y2 = (big * k).astype(int)
        face = img[y1:y2, x1:x2] / max(1.0, float(img[y1:y2, x1:x2].std()))  # dimming aside
        return float(cv2.Laplacian(face, cv2.CV_32F).var())

    assert detail(blur=True) < detail(blur=False) / 3


def test_a_region_sent_again_and_again_restarts_nothing(tmp_path, caplog) -> None:
    """Show control that sends the same region every frame (an OSC Out exporting on every
    change of anything): the first one sets it; the repeats are answered "unchanged" and
    the people in it keep their track ids. Before, each repeat ended every track and
    searched the picture whole, and logged "audience region set" each time."""
    caplog.set_level("INFO", logger="pcp_osc.daemon")
    args = (0.0, 0.0, LEFT, 0.0, LEFT, 1.0, 0.0, 1.0)
    with show_on_a_photograph(tmp_path) as (daemon, dash, rx):
        port = daemon.control_server.port
        send_osc(port, "/pcp/region", *args)
        settled_faces(daemon, rx, lambda b: len(b) >= 2 and (centres_x(b) <= LEFT * 1280).all(), "faces in the region")
        ids = set(int(i) for i in daemon.last_faces.track_id)
        first = daemon.last_frame.index
        for _ in range(6):
            send_osc(port, "/pcp/region", *args)
            wait_for(lambda: daemon.last_frame.index > first, what="the next picture")
            first = daemon.last_frame.index
        wait_for(lambda: daemon.counters["control_accepted"] >= 7, what="the repeats answered")
        assert set(int(i) for i in daemon.last_faces.track_id) == ids
        assert caplog.text.count("audience region set from show control") == 1
