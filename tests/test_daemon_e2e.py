"""The whole live path as an operator runs it: `pcp-osc run` as its own process on an
image folder or video, real models, cues read from a real UDP socket, show control sent
over UDP. A camera is the one thing this machine lacks: a missing camera is tested as such."""

import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from oscutil import OscReceiver, send_osc

DATA = Path(__file__).resolve().parents[1] / "pcp_osc" / "data"
BOXES = json.loads((DATA / "faces.json").read_text())
SMILING = ["astronaut_collins.jpg", "obama_portrait.jpg", "trump_portrait.jpg"]


def free_udp_port() -> int:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def crowd(names: list[str], size=(1280, 720), face_h=110) -> np.ndarray:
    """Photos of the given people side by side on a dark stage, faces about face_h px tall."""
    w, h = size
    canvas = np.full((h, w, 3), 25, np.uint8)
    x = 20
    for name in names:
        img = cv2.imread(str(DATA / name))
        x1, y1, x2, y2 = BOXES[name]["box"]
        scale = face_h / (y2 - y1)
        img = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        ih, iw = img.shape[:2]
        iw = min(iw, w - x)
        ih = min(ih, h - 100)
        canvas[100:100 + ih, x:x + iw] = img[:ih, :iw]
        x += iw + 10
        if x > w - 50:
            break
    return canvas


def start_daemon(tmp_path, *args, env=None):
    cmd = [sys.executable, "-m", "pcp_osc", "run", "--quiet", *map(str, args)]
    return subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})


def finish(proc, timeout=60):
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


@pytest.fixture
def smiling_folder(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(4):
        cv2.imwrite(str(folder / f"{i:02d}.jpg"), crowd(SMILING if i % 2 else SMILING[::-1]))
    return folder


def test_smiling_crowd_becomes_joy_cues_over_udp(tmp_path, smiling_folder, receiver):
    port = free_udp_port()
    before = {p for p in tmp_path.rglob("*")}
    proc = start_daemon(tmp_path, "--source", smiling_folder, "--target", receiver.target, "--control-port", port,
                        "--window", 2, "--seconds", 9, "--log", tmp_path / "show.db")
    try:
        # a whole audience cue: its last message (/hex) has arrived, not only /source
        receiver.wait_for("/pcp/cue/hex", lambda m: any(c.get("source") == "audience" and "hex" in c for c in receiver.cues()),
                          timeout_s=40)
        cue = [c for c in receiver.cues() if c.get("source") == "audience"][0]
        assert cue["emotion"] == "joy", cue
        assert cue["faces"] == 3
        assert cue["confidence"] > 0.4
        r, g, b = cue["color"]
        assert r > 0.3 and g > 0.2 and b < 0.1 and cue["hex"].startswith("#")  # yellow, lit by confidence
        live = receiver.wait_for("/pcp/live/faces", lambda m: m.args[0] == 3)
        assert receiver.values("/pcp/live/joy")[-1] > 0.3
        # show control over UDP reaches the running daemon: override, then release
        send_osc(port, "/pcp/override", "sadness")
        receiver.wait_for("/pcp/cue/source", lambda m: m.args[0] == "override", timeout_s=5)
        assert receiver.cues()[-1]["emotion"] == "sadness"
        send_osc(port, "/pcp/marker", "Song 2")
        send_osc(port, "/pcp/release")
        n = len(receiver.all("/pcp/cue/source"))
        receiver.wait_for("/pcp/cue/source", lambda m: m.args[0] == "audience", after=n - 1, timeout_s=5)
    finally:
        code, out, err = finish(proc)
    assert code == 0, err[-2000:]
    # the show log has the cues and the marker; nothing of the audience was written
    con = sqlite3.connect(tmp_path / "show.db")
    tables = {r[0] for r in con.execute("select name from sqlite_master where type='table'")}
    assert "cues" in tables
    assert con.execute("select count(*) from cues").fetchone()[0] >= 3
    assert con.execute("select count(*) from markers where name = 'Song 2'").fetchone()[0] == 1
    con.close()
    new = {p for p in tmp_path.rglob("*")} - before
    images = [p for p in new if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".bmp", ".webp")]
    assert images == [], f"audience images written without the operator asking: {images}"


def test_faceless_video_sends_the_intent_and_window_changes_over_osc(tmp_path, receiver):
    video = tmp_path / "empty-hall.avi"
    vw = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (640, 360))
    for i in range(20):
        vw.write(np.full((360, 640, 3), 10 + i, np.uint8))
    vw.release()
    port = free_udp_port()
    proc = start_daemon(tmp_path, "--source", video, "--target", receiver.target, "--control-port", port,
                        "--window", 1, "--intent", "슬픔", "--seconds", 8, "--no-log")
    try:
        receiver.wait_for("/pcp/cue/id", lambda m: m.args[0] >= 2, timeout_s=40)
        cues = receiver.cues()
        assert {c["emotion"] for c in cues} == {"sadness"} and {c["source"] for c in cues} == {"intent"}
        send_osc(port, "/pcp/intent", "joy")
        receiver.wait_for("/pcp/cue/emotion", lambda m: m.args[0] == "joy", timeout_s=5)
        send_osc(port, "/pcp/window", 2.5)
        time.sleep(0.3)
        n = len(receiver.cues())
        receiver.wait_for("/pcp/cue/id", after=n + 1, timeout_s=8)
        c = receiver.cues()
        assert 2.2 < c[n + 1]["t"] - c[n]["t"] < 2.9
    finally:
        code, out, err = finish(proc)
    assert code == 0, err[-2000:]


def test_missing_camera_keeps_cues_flowing_and_says_so(tmp_path, receiver):
    proc = start_daemon(tmp_path, "--source", 7, "--target", receiver.target, "--control-port", free_udp_port(),
                        "--window", 1, "--seconds", 4, "--no-log")
    code, out, err = finish(proc)
    assert code == 0
    assert "camera 7 cannot be opened" in err and "cues go on from the intended emotion" in err
    assert "WARN" not in err and "VIDEOIO" not in err, err  # OpenCV's raw warnings stay out of the console
    assert len(receiver.cues()) >= 3
    assert "no-camera: camera 7" in receiver.values("/pcp/status")


def test_corrupt_image_in_the_folder_is_skipped_and_named(tmp_path, smiling_folder, receiver):
    (smiling_folder / "00-corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    proc = start_daemon(tmp_path, "--source", smiling_folder, "--target", receiver.target,
                        "--control-port", free_udp_port(), "--window", 1, "--seconds", 5, "--no-log")
    code, out, err = finish(proc)
    assert code == 0
    assert "00-corrupt.jpg cannot be decoded; skipping it" in err
    assert any(c.get("source") == "audience" for c in receiver.cues())


def test_missing_weights_say_which_file_and_the_show_goes_on(tmp_path, receiver):
    empty = tmp_path / "no-weights"
    empty.mkdir()
    proc = start_daemon(tmp_path, "--source", "demo", "--target", receiver.target, "--control-port", free_udp_port(),
                        "--window", 1, "--seconds", 3, "--no-log", env={"PCP_OSC_WEIGHTS": str(empty)})
    code, out, err = finish(proc)
    assert code == 0
    assert "perception cannot start" in err and "retinaface_mnet025.onnx" in err
    assert any(v.startswith("perception-failed") for v in receiver.values("/pcp/status"))
    assert {c["source"] for c in receiver.cues()} == {"intent"}


def test_bad_source_names_what_is_allowed(tmp_path):
    r = subprocess.run([sys.executable, "-m", "pcp_osc", "run", "--source", "nowhere.mp4x", "--seconds", "1"],
                       capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert r.returncode == 2
    assert "'nowhere.mp4x' is neither a camera index" in r.stderr and "rtsp://" in r.stderr


def test_a_blocked_log_pipe_and_a_control_flood_never_delay_cues(tmp_path, receiver):
    """Under a supervisor whose log pipe nobody reads, with show control flooding in,
    the window cues still leave on time (log lines are written off the cue path)."""
    port = free_udp_port()
    proc = subprocess.Popen([sys.executable, "-m", "pcp_osc", "run", "--source", "demo", "--target", receiver.target,
                             "--control-port", str(port), "--window", "1", "--seconds", "9", "--no-log",
                             "--generator", "off", "--quiet"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # never read until the end
    try:
        receiver.wait_for("/pcp/cue/id", lambda m: m.args[0] >= 1, timeout_s=60)
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        end = time.monotonic() + 5
        i = 0
        while time.monotonic() < end:  # ~ a thousand log lines a second: fills a 64 KiB pipe at once
            send_osc(port, "/pcp/marker", f"flood {i} " + "x" * 100, sock=s)
            i += 1
            time.sleep(0.001)
        s.close()
        cues = [c for c in receiver.cues() if c["id"] >= 1]
    finally:
        proc.communicate(timeout=60)
    gaps = np.diff([c["t"] for c in cues])
    assert len(cues) >= 5 and gaps.max() < 1.4, f"cue gaps under a control flood: {np.round(gaps, 2)}"


def test_a_taken_dashboard_port_stops_cleanly_with_the_reason(tmp_path):
    """The web port is taken by another program: start-up stops with a message naming the port
    and what to do, the show log is closed, and the process ends (it used to abort with
    'terminate called without an active exception', exit 134, threads left running)."""
    blocker = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    blocker.bind(("127.0.0.1", 0))
    blocker.listen(1)
    web_port = blocker.getsockname()[1]
    try:
        r = subprocess.run([sys.executable, "-m", "pcp_osc", "run", "--quiet", "--source", "demo", "--seconds", "5",
                            "--control-port", str(free_udp_port()), "--target", f"127.0.0.1:{free_udp_port()}",
                            "--log", str(tmp_path / "show.db"), "--web", str(web_port)],
                           capture_output=True, text=True, cwd=tmp_path, timeout=90)
    finally:
        blocker.close()
    assert r.returncode == 1, r.stderr[-2000:]
    assert "terminate called" not in r.stderr
    assert f"the web dashboard cannot listen on 127.0.0.1:{web_port}: the port is taken" in r.stderr
    assert "--web PORT" in r.stderr
    assert "show log closed" in r.stderr


@pytest.mark.parametrize("flag, value, said", [
    ("--sink", "foo", "--sink 'foo': unknown sink 'foo'; choose from: ndi, syphon, spout, file"),
    ("--route", "eos", "--route 'eos': write PRESET:HOST[:PORT][:udp|tcp]"),
    ("--route", "qlc:127.0.0.1:70000", "--route 'qlc:127.0.0.1:70000': port '70000' is not 1..65535"),
])
def test_a_bad_sink_or_route_flag_stops_before_anything_is_opened(tmp_path, flag, value, said):
    """A typo in --sink or --route is a configuration error like any other flag's: exit 2
    before the camera or the show log is opened (it used to leave an empty show log behind)."""
    r = subprocess.run([sys.executable, "-m", "pcp_osc", "run", "--source", "demo", "--seconds", "1",
                        "--control-port", str(free_udp_port()), flag, value],
                       capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert r.returncode == 2
    assert f"pcp-osc: configuration error: {said}" in r.stderr
    assert "show log" not in r.stderr and not (tmp_path / "shows").exists()


def test_a_browser_source_without_the_dashboard_says_no_picture_can_arrive(tmp_path):
    """`--source browser` takes pictures from the dashboard's /camera page; without --web nothing
    can arrive and the show silently ran on the intent. Now it says so and how to fix it."""
    base = [sys.executable, "-m", "pcp_osc", "run", "--quiet", "--source", "browser", "--seconds", "1", "--no-log",
            "--generator", "off", "--target", f"127.0.0.1:{free_udp_port()}"]
    r = subprocess.run([*base, "--control-port", str(free_udp_port())], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "the dashboard is off: no picture can arrive" in r.stderr and "--web PORT" in r.stderr
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    web_port = s.getsockname()[1]
    s.close()
    r = subprocess.run([*base, "--control-port", str(free_udp_port()), "--web", str(web_port)],
                       capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "no picture can arrive" not in r.stderr and "/camera?token=" in r.stdout


def test_a_target_that_cannot_be_sent_to_is_in_the_status_not_ok(tmp_path):
    """TouchDesigner's machine is on a network this one cannot reach (a cable out, a wrong
    address): every cue fails to leave, and /pcp/status and the console said `ok`. Now the status
    names the target and why, as a second receiver on this machine hears it. Run in a private
    network namespace (only loopback up), so 10.0.0.20 is unreachable and nothing leaves."""
    import shutil

    assert shutil.which("unshare") and shutil.which("ip"), "unshare and ip (util-linux, iproute2) are needed"
    cfg = tmp_path / "show.toml"
    cfg.write_text('[osc]\ntarget = "10.0.0.20:9011"\nextra_targets = ["127.0.0.1:9013"]\n'
                   '[generator]\nkind = "off"\n[log]\nenabled = false\n')
    py = sys.executable
    cmd = (f"ip link set lo up && ({py} -m pcp_osc monitor --port 9013 --host 127.0.0.1 --json --seconds 9 > mon.jsonl &) "
           f"&& sleep 1 && {py} -m pcp_osc run --config {cfg} --source demo --window 2 --seconds 5 --quiet")
    # the sends to 10.0.0.20 are this test's point (and cannot leave the namespace): the network
    # guard records them in a log of this test's own, not the session's, and refuses them
    guard_log = tmp_path / "network-attempts.log"
    r = subprocess.run(["unshare", "-n", "sh", "-c", cmd], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                       env={**os.environ, "PCP_NETBLOCK_LOG": str(guard_log)})
    assert r.returncode == 0, r.stderr[-2000:]
    assert "10.0.0.20" in guard_log.read_text()  # the guard (or the kernel) refused them
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and "/pcp/cue/id" not in (tmp_path / "mon.jsonl").read_text():
        time.sleep(0.5)
    time.sleep(4)  # the monitor ends by itself (--seconds 9)
    heard = [json.loads(line) for line in (tmp_path / "mon.jsonl").read_text().splitlines()]
    statuses = [m["args"][0] for m in heard if m["address"] == "/pcp/status"]
    # (the test suite's network guard may answer before the kernel does: either reason is fine)
    assert statuses and all(s.startswith("osc-send-failed: 10.0.0.20:9011 (") for s in statuses), statuses
    assert any(m["address"] == "/pcp/cue/id" for m in heard)  # the reachable receiver still gets the cues
    assert "cannot send OSC to 10.0.0.20:9011" in r.stderr
