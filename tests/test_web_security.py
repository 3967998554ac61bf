"""The dashboard is the operator's alone: attacks from a web page the operator's browser
visits, from DNS rebinding and from hostile uploads, against a real `pcp-osc run --web`
process over loopback (real HTTP), and against the real page in headless Chromium.

The decompression bomb's cost is measured on the daemon process itself: its peak
resident memory (VmHWM, read with psutil's process and /proc) before and after.
"""

from __future__ import annotations

import contextlib
from http import server as http_server
import json
import re
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import zlib
from pathlib import Path

import cv2
import numpy as np
import psutil
import pytest

from _browser import launch
from heard import Heard
from pcp_osc.config import Config, ConfigError, config_from_dict
from pcp_osc.daemon import Daemon
from pcp_osc.emotions import EMOTIONS
from pcp_osc.web import WebDashboard
from pcp_osc.web.preview import frame_size, render_preview
from test_web import free_port, http, wait_for

DATA = Path(__file__).resolve().parents[1] / "pcp_osc" / "data"
MB = 1024 * 1024


def png_bomb(width_px: int = 20000, height_px: int = 20000) -> bytes:
    """A valid greyscale PNG of zeros: a few hundred KB that decode to width x height pixels
    (20000x20000: 389 KB on the wire, 1.2 GB as the BGR image OpenCV would make)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    co, row, parts = zlib.compressobj(9), b"\0" * (width_px + 1), []
    for _ in range(height_px // 100):
        parts.append(co.compress(row * 100))
    parts += [co.compress(row * (height_px % 100)), co.flush()]
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width_px, height_px, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b""))


def jpeg_claiming(width_px: int, height_px: int) -> bytes:
    """A real small JPEG whose frame header is rewritten to claim another size."""
    ok, buf = cv2.imencode(".jpg", np.full((16, 16, 3), 128, np.uint8))
    data = bytearray(bytes(buf))
    i = 2
    while data[i + 1] not in (0xC0, 0xC2):
        i += 2 + int.from_bytes(data[i + 2:i + 4], "big")
    data[i + 5:i + 9] = struct.pack(">HH", height_px, width_px)
    return bytes(data)


def peak_rss_bytes(pid: int) -> int:
    """The process's peak resident memory so far (Linux VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc status")


class RunningDaemon:
    def __init__(self, proc: subprocess.Popen, url: str, token: str, lines: list[str]) -> None:
        self.proc, self.url, self.token, self.lines = proc, url, token, lines
        self.port = int(url.rsplit(":", 1)[1].strip("/"))

    def api(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None, token: bool = True):
        h = dict(headers or {})
        if token:
            h.setdefault("X-PCP-Token", self.token)
        return http(method, self.url + path, body, h)

    def status(self) -> dict:
        st, body = self.api("GET", "api/status")
        assert st == 200, body
        return body


@pytest.fixture(scope="module")
def daemon_proc(tmp_path_factory):
    """`pcp-osc run --source browser --web 127.0.0.1:PORT` as its own process."""
    tmp = tmp_path_factory.mktemp("web-security")
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "pcp_osc", "run", "--source", "browser", "--web", f"127.0.0.1:{port}",
         "--generator", "off", "--no-log", "--control-port", "0", "--target", "127.0.0.1:9", "--seconds", "600", "-q"],
        cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True).start()
    try:
        found = wait_for(lambda: next((m for m in map(re.compile(r"dashboard: (http://\S+/)\?token=(\S+)").search, lines) if m), None),
                         timeout_s=60, what="the dashboard address printed at start-up")
        d = RunningDaemon(proc, found.group(1), found.group(2), lines)
        wait_for(lambda: d.api("GET", "api/status")[0] == 200, what="the dashboard to answer")
        yield d
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def control_json(address: str, *args) -> bytes:
    return json.dumps({"address": address, "args": list(args)}).encode()


# --------------------------------------------------------------------------- token, Host, Origin, content type


def test_the_printed_address_carries_a_token_that_loopback_requires_too(daemon_proc) -> None:
    d = daemon_proc
    assert len(d.token) >= 16 and f"{d.url}?token={d.token}" in "".join(d.lines)
    st, body = d.api("GET", "api/status", token=False)
    assert st == 401 and "token" in body["error"]
    st, _ = d.api("GET", "api/preview.jpg", token=False)
    assert st == 401
    st, _ = http("GET", d.url + f"api/status?token={d.token}")  # the page's EventSource and images use the query
    assert st == 200
    st, _ = d.api("POST", "api/control", control_json("intent", "anger"), {"Content-Type": "application/json"}, token=False)
    assert st == 401 and d.status()["intent"] != "anger"
    st, page = http("GET", d.url)  # the page itself holds nothing secret
    assert st == 200 and b"pcp-osc" in page


def test_a_foreign_host_is_refused_so_dns_rebinding_gets_nothing(daemon_proc) -> None:
    d = daemon_proc
    for host in (f"evil.example:{d.port}", "evil.example", f"127.0.0.1.nip.io:{d.port}"):
        st, body = d.api("GET", "api/status", headers={"Host": host})
        assert st == 403 and "Host" in body["error"], (host, st, body)
        st, _ = d.api("GET", "", headers={"Host": host})
        assert st == 403
        st, _ = d.api("POST", "api/control", control_json("override", "anger"),
                      {"Host": host, "Content-Type": "application/json"})
        assert st == 403
    assert d.status()["override"] != "anger"
    for host in (f"localhost:{d.port}", f"127.0.0.1:{d.port}", f"[::1]:{d.port}"):
        st, _ = d.api("GET", "api/status", headers={"Host": host})
        assert st == 200, host


def test_a_request_from_another_origin_is_refused(daemon_proc) -> None:
    d = daemon_proc
    before = d.status()["intent"]
    for origin in ("http://evil.example", f"http://127.0.0.1:{d.port + 1}", "null", f"https://evil.example:{d.port}"):
        st, body = d.api("POST", "api/control", control_json("intent", "anger"),
                         {"Content-Type": "application/json", "Origin": origin})
        assert st == 403 and "may not use this dashboard" in body["error"], (origin, st, body)
    assert d.status()["intent"] == before
    st, body = d.api("GET", "api/status", headers={"Sec-Fetch-Site": "cross-site"})
    assert st == 403
    st, body = d.api("GET", "api/status", headers={"Sec-Fetch-Site": "same-site"})  # another port on this machine
    assert st == 403
    # the dashboard's own page: same origin
    st, body = d.api("POST", "api/control", control_json("intent", "sadness"),
                     {"Content-Type": "application/json", "Origin": d.url.rstrip("/"), "Sec-Fetch-Site": "same-origin"})
    assert st == 200 and body["accepted"] and d.status()["intent"] == "sadness"
    st, _ = d.api("GET", "api/status", headers={"Origin": d.url.rstrip("/").replace("127.0.0.1", "localhost"),
                                                 "Host": f"localhost:{d.port}"})
    assert st == 200


def test_control_takes_only_json_so_a_plain_text_post_cannot_drive_the_show(daemon_proc) -> None:
    d = daemon_proc
    before = d.status()["override"]
    for ctype in ("text/plain", "text/plain;charset=UTF-8", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"):
        st, body = d.api("POST", "api/control", control_json("override", "anger"), {"Content-Type": ctype})
        assert st == 415 and "application/json" in body["message"], (ctype, st, body)
    assert d.status()["override"] == before
    st, body = d.api("POST", "api/control", control_json("override", "anger"), {"Content-Type": "application/json; charset=utf-8"})
    assert st == 200 and d.status()["override"] == "anger"
    d.api("POST", "api/control", control_json("release"), {"Content-Type": "application/json"})


def test_malformed_bodies_get_a_4xx_that_says_what_was_wrong(daemon_proc) -> None:
    d = daemon_proc
    cases = {
        "a 401-digit integer": (b'{"address": "window", "args": [' + b"9" * 401 + b"]}", "64 bits"),
        "a 5000-digit integer": (b'{"address": "window", "args": [' + b"9" * 5000 + b"]}", "not JSON"),
        "50,000-deep JSON": (b"[" * 50_000 + b"]" * 50_000, "bytes"),
        "7,000-deep JSON": (b'{"address": "intent", "args": ' + b"[" * 7_000 + b"]" * 7_000 + b"}", "nested too deeply"),
        "NaN": (b'{"address": "window", "args": [NaN]}', "NaN"),
        "not UTF-8": (b'{"address": "\xff\xfe"}', "UTF-8"),
        "not JSON": (b"override anger", "not JSON"),
        "a list of args in an arg": (b'{"address": "intent", "args": [["joy"]]}', "args[0] is a list"),
        "an object": (b'{"address": "intent", "args": [{"a": 1}]}', "args[0] is an object"),
        "too many args": (control_json("marker", *["x"] * 40), "at most 16"),
        "a 2 MB marker": (control_json("marker", "x" * 2_000_000), "bytes"),
        "no address": (b'{"args": ["joy"]}', "address a string"),
    }
    for what, (body, expected) in cases.items():
        st, answer = d.api("POST", "api/control", body, {"Content-Type": "application/json"})
        assert 400 <= st < 500 and expected in answer["message"], (what, st, answer)
        assert answer["accepted"] is False
    st, answer = d.api("POST", "api/control", control_json("window", 20), {"Content-Type": "application/json"})
    assert st == 200 and d.status()["window_s"] == 20.0  # the daemon goes on
    st, body = d.api("POST", "api/frame", b"GIF89a" + b"\0" * 100, {"Content-Type": "image/png"})
    assert st == 400 and "only JPEG and PNG" in body["error"]
    st, body = d.api("POST", "api/frame", b"x" * 100, {"Content-Type": "text/plain"})
    assert st == 415 and "image/jpeg" in body["error"]


# --------------------------------------------------------------------------- the image bomb


def test_a_decompression_bomb_is_refused_from_its_header_and_the_daemon_stays_small(daemon_proc) -> None:
    d = daemon_proc
    bomb = png_bomb(20000, 20000)
    assert len(bomb) < 500_000 and frame_size(bomb) == ("PNG", 20000, 20000)
    proc = psutil.Process(d.proc.pid)
    peak_before, rss_before = peak_rss_bytes(d.proc.pid), proc.memory_info().rss
    answers: list = []

    def post(data: bytes, ctype: str) -> None:
        answers.append(d.api("POST", "api/frame", data, {"Content-Type": ctype}))

    threads = [threading.Thread(target=post, args=(bomb, "image/png")) for _ in range(6)]
    threads += [threading.Thread(target=post, args=(jpeg_claiming(60000, 60000), "image/jpeg")) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(answers) == 8
    for st, body in answers:
        # refused from the header (413), or not even read while others are being looked at (503)
        assert st in (413, 503), (st, body)
        assert ("web.max_frame_pixels" in body["error"]) if st == 413 else ("web.max_decodes" in body["error"])
    assert sum(st == 413 for st, _ in answers) >= 2
    assert any("20000x20000" in b["error"] for _, b in answers)
    peak_after = peak_rss_bytes(d.proc.pid)
    print(f"daemon memory: peak {peak_before / MB:.0f} MB before the bombs, {peak_after / MB:.0f} MB after "
          f"(rss {rss_before / MB:.0f} -> {proc.memory_info().rss / MB:.0f} MB)")
    # decoded, one bomb alone is 1.2 GB (2.4 GB seen before this check)
    assert peak_after - peak_before < 64 * MB, (peak_before, peak_after)
    # a real frame still goes through
    ok, jpg = cv2.imencode(".jpg", cv2.imread(str(DATA / "obama_portrait.jpg")))
    st, body = d.api("POST", "api/frame", bytes(jpg), {"Content-Type": "image/jpeg"})
    assert st == 200 and body["ok"]


# --------------------------------------------------------------------------- in-process parts: no token, blur


@contextlib.contextmanager
def dashboard(source: str = "browser", allowed_senders: list[str] | None = None, **web):
    cfg = Config()
    cfg.osc.control_port = 0
    cfg.osc.target = "127.0.0.1:9"
    cfg.capture.fps = 4.0
    cfg.perception.threads = 1
    cfg.web.bind = f"127.0.0.1:{free_port()}"
    if allowed_senders is not None:
        cfg.osc.allowed_senders = allowed_senders
    for k, v in web.items():
        setattr(cfg.web, k, v)
    daemon = Daemon(cfg, source=source, perception=source != "browser")
    dash = daemon.parts.add(WebDashboard(daemon, cfg.web))
    heard = daemon.parts.add(Heard())
    daemon.start()
    try:
        yield daemon, dash, heard.controls
    finally:
        daemon.stop()


def test_without_a_token_the_allow_list_decides_who_may_use_the_controls() -> None:
    with pytest.raises(ConfigError, match="require_token = false is allowed only on loopback"):
        config_from_dict({"web": {"require_token": False, "bind": "0.0.0.0:8080"}})
    body = control_json("intent", "joy")
    ctype = {"Content-Type": "application/json"}
    with dashboard(require_token=False, allowed_senders=["10.0.0.0/8"]) as (daemon, dash, controls):
        assert not dash.token_required and "token" not in dash.url_with_token()
        st, answer = http("POST", dash.url + "api/control", body, ctype)
        assert st == 403 and "osc.allowed_senders" in answer["message"] and not controls
        st, _ = http("GET", dash.url + "api/status")
        assert st == 200  # reading needs no token here; only the controls are the allow list's
    for allowed in (["127.0.0.0/8"], ["127.0.0.1"], ["localhost"], []):
        with dashboard(require_token=False, allowed_senders=allowed) as (daemon, dash, controls):
            st, answer = http("POST", dash.url + "api/control", body, ctype)
            assert st == 200 and answer["accepted"] and daemon.status()["intent"] == "joy", allowed
    # with the token, the token decides: the allow list is for tokenless controls
    with dashboard(allowed_senders=["10.0.0.0/8"]) as (daemon, dash, controls):
        st, answer = http("POST", dash.url + "api/control", body, dict(ctype, **{"X-PCP-Token": dash.token}))
        assert st == 200 and answer["accepted"]


def face_detail(jpeg: bytes, box, width_px: int) -> float:
    img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_GRAYSCALE)
    scale = img.shape[1] / width_px
    x1, y1, x2, y2 = (np.asarray(box) * scale).astype(int)
    return float(cv2.Laplacian(img[y1 + 6:y2 - 6, x1 + 6:x2 - 6], cv2.CV_64F).var())


@pytest.mark.parametrize("allow_unblurred", [False, True])
def test_blur_is_enforced_by_the_server_unless_the_config_allows_sharp_previews(allow_unblurred: bool, tmp_path) -> None:
    from pcp_osc.perception import make_backend

    image = cv2.imread(str(DATA / "obama_portrait.jpg"))
    faces = make_backend(Config().perception).detect(image)
    assert len(faces) == 1
    sharp = face_detail(render_preview(image, faces, {e: "#ffffff" for e in EMOTIONS}, blur=False), faces.boxes[0], image.shape[1])
    (tmp_path / "crowd").mkdir()
    cv2.imwrite(str(tmp_path / "crowd" / "frame.jpg"), image)  # an image folder as the camera: real perception finds the face
    with dashboard(source=str(tmp_path / "crowd"), blur_faces=True, allow_unblurred=allow_unblurred) as (daemon, dash, _):
        tok = {"X-PCP-Token": dash.token}
        wait_for(lambda: dash._latest_live is not None and len(dash._latest_live[1]) == 1, timeout_s=30, what="a face in the preview")
        details = {}
        for q in ("blur=0", "blur=false", "blur=off", "blur=1", ""):
            st, jpeg = http("GET", dash.url + f"api/preview.jpg?{q}", headers=tok)
            assert st == 200, (q, st)
            details[q] = face_detail(jpeg, dash._latest_live[1].boxes[0], image.shape[1])
        st, status = http("GET", dash.url + "api/status", headers=tok)
        assert status["web"]["blur_enforced"] is (not allow_unblurred)
    for q in ("blur=1", ""):
        assert details[q] < sharp / 3, (q, details, sharp)
    for q in ("blur=0", "blur=false", "blur=off"):
        if allow_unblurred:
            assert details[q] > sharp * 0.7, (q, details, sharp)  # the operator allowed sharp previews
        else:
            assert details[q] < sharp / 3, (q, details, sharp)  # asking cannot unblur


# --------------------------------------------------------------------------- the real browser


class EvilSite:
    """A page on another origin that tries every way a page can reach the dashboard."""

    def __init__(self, dash_url: str) -> None:
        target = dash_url.rstrip("/")
        html = f"""<!doctype html><html><body>
<form id="f" method="POST" action="{target}/api/control" enctype="text/plain" target="sink">
<input name='{{"address":"override","args":["anger"],"x":"' value='"}}'></form>
<iframe name="sink"></iframe><iframe id="framed" src="{target}/"></iframe>
<img id="peek" src="{target}/api/preview.jpg?blur=0">
<script>
window.results = {{}};
async function attempt(name, url, opts) {{
  try {{ const r = await fetch(url, opts); window.results[name] = r.type === "opaque" ? "opaque" : r.status; }}
  catch (e) {{ window.results[name] = "blocked"; }}
}}
(async () => {{
  const body = JSON.stringify({{address: "override", args: ["anger"]}});
  await attempt("no-cors text/plain", "{target}/api/control", {{method: "POST", mode: "no-cors", headers: {{"Content-Type": "text/plain"}}, body}});
  await attempt("cors json", "{target}/api/control", {{method: "POST", headers: {{"Content-Type": "application/json"}}, body}});
  await attempt("read status", "{target}/api/status", {{}});
  document.getElementById("f").submit();
  window.results.done = true;
}})();
</script></body></html>""".encode()

        class Handler(http_server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.end_headers()
                self.wfile.write(html)

            def log_message(self, *a):
                pass

        self.server = http_server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_web_page_the_operator_visits_cannot_drive_or_watch_the_dashboard() -> None:
    """Worst case: the operator turned the token off (loopback). The Origin, Sec-Fetch-Site
    and content-type checks must stop the page on their own; a rebinding name gets 403."""
    from playwright.sync_api import sync_playwright

    rules = "MAP evil.example 127.0.0.1,MAP rebind.example 127.0.0.1"
    with dashboard(require_token=False) as (daemon, dash, controls), sync_playwright() as p:
        evil = EvilSite(dash.url)
        try:
            browser = launch(p, extra_args=[f"--host-resolver-rules={rules}"])
            page = browser.new_page()
            page.goto(f"http://evil.example:{evil.port}/")
            wait_for(lambda: page.evaluate("window.results && window.results.done"), what="the evil page's attempts")
            time.sleep(1.0)  # the form post lands in its iframe
            results = page.evaluate("window.results")
            assert results["cors json"] == "blocked" and results["read status"] == "blocked", results
            assert page.evaluate("document.getElementById('peek').naturalWidth") == 0  # no preview for another site
            assert not controls and daemon.status()["override"] is None, (results, [c.message for c in controls])
            assert dash.counters["requests_refused"] >= 3

            # DNS rebinding: a name of the attacker's that now points at 127.0.0.1
            resp = page.goto(f"http://rebind.example:{dash.port}/")
            assert resp.status == 403 and "Host" in page.content()
            # and the dashboard cannot be framed by another site
            assert resp.headers.get("x-frame-options") == "DENY"

            # the operator's own page, on the real address, works
            page.goto(dash.url_with_token())
            page.click("#override-sadness")
            wait_for(lambda: daemon.status()["override"] == "sadness", what="the operator's own click")
            browser.close()
        finally:
            evil.close()


def test_the_page_keeps_its_token_and_says_what_to_do_without_it() -> None:
    from playwright.sync_api import sync_playwright

    with dashboard() as (daemon, dash, controls), sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page()
        page.goto(dash.url)  # the address without its token
        wait_for(lambda: "token" in page.text_content("#status"), what="the page saying it needs the token")
        assert "?token=" in page.text_content("#status")
        page.goto(dash.url_with_token())  # the address printed at start-up
        wait_for(lambda: "token" not in page.url, what="the token taken out of the address bar")
        page.reload()  # the tab keeps it
        page.click("#override-anger")
        wait_for(lambda: daemon.status()["override"] == "anger", what="a control after the reload")
        assert controls[-1].sender == "web:127.0.0.1" and dash.counters["unauthorised"] >= 1
        browser.close()


def test_names_the_operator_lists_in_web_hosts_are_served_others_are_not() -> None:
    with pytest.raises(ConfigError, match="without scheme or port"):
        config_from_dict({"web": {"hosts": ["http://show-laptop.local:8080"]}})
    with dashboard(hosts=["Show-Laptop.local"]) as (daemon, dash, _):
        tok = {"X-PCP-Token": dash.token}
        st, _ = http("GET", dash.url + "api/status", headers=dict(tok, Host=f"show-laptop.local:{dash.port}"))
        assert st == 200
        st, body = http("GET", dash.url + "api/status", headers=dict(tok, Host=f"other-laptop.local:{dash.port}"))
        assert st == 403 and "web.hosts" in body["error"]


def test_osc_arguments_of_every_type_reach_the_page_as_json() -> None:
    """A blob sent over OSC used to break the dashboard's event stream (end to end: UDP in, SSE out)."""
    import socket

    from pythonosc.osc_message_builder import OscMessageBuilder

    with dashboard() as (daemon, dash, controls):
        req = urllib.request.Request(dash.url + "api/events", headers={"X-PCP-Token": dash.token})
        stream = urllib.request.urlopen(req, timeout=10)
        b = OscMessageBuilder(address="/pcp/marker")
        b.add_arg(b"\x00\x01\x02blob", "b")
        b.add_arg(1.0, "f")
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.sendto(b.build().dgram, ("127.0.0.1", daemon.control_server.port))
        sock.close()
        event = None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and event is None:
            line = stream.readline().decode()
            if line.startswith("event: control"):
                event = json.loads(stream.readline().decode().removeprefix("data: "))
        stream.close()
        assert event is not None, "no control event on the page's stream"
        assert event["address"] == "/pcp/marker" and event["args"][0]["blob_bytes"] == 7, event
        assert event["args"][1] == 1.0
        st, _ = http("GET", dash.url + "api/status", headers={"X-PCP-Token": dash.token})
        assert st == 200


def test_bound_to_every_interface_the_start_up_line_names_the_show_network_address(tmp_path) -> None:
    """`--web 0.0.0.0:PORT` is for a phone on the show network, which cannot use the printed
    127.0.0.1 address: the start-up line also gives the camera page at each of this machine's
    addresses. Run in a private network namespace whose only other address is 10.77.0.5."""
    import shutil
    import subprocess
    import sys

    assert shutil.which("unshare") and shutil.which("ip"), "unshare and ip (util-linux, iproute2) are needed"
    cmd = (f"ip link set lo up && ip addr add 10.77.0.5/32 dev lo && exec {sys.executable} -m pcp_osc run "
           f"--web 0.0.0.0:8097 --source browser --generator off --no-log --quiet --seconds 2")
    r = subprocess.run(["unshare", "-n", "sh", "-c", cmd], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    token = r.stdout.split("?token=")[1].split()[0]
    assert f"on the show network: http://10.77.0.5:8097/camera?token={token}" in r.stdout, r.stdout
    assert "http://127.0.0.1:8097/camera?" in r.stdout  # the local address stays first
    # printed once, on standard output: the token stays out of the log (stderr, journald, log files)
    assert token not in r.stderr and "dashboard on http://127.0.0.1:8097/" in r.stderr


def test_a_short_fixed_token_is_refused_with_what_to_do() -> None:
    with pytest.raises(ConfigError, match=r"web.token is 3 characters: a fixed token needs at least 8"):
        config_from_dict({"web": {"token": "abc"}})
    with pytest.raises(ConfigError, match="spaces at an end"):
        config_from_dict({"web": {"token": "stage-token "}})
    assert config_from_dict({"web": {"token": "stage-token"}}).web.token == "stage-token"
