"""The YOLO backend in the live path: the daemon runs the exported .onnx emotion detector
(trained in the session's YOLO workspace, offline) on an image folder; cues arrive over UDP."""

import subprocess
import sys

from test_daemon_e2e import free_udp_port
from yolo_session import offline_env

EMOTIONS = {"joy", "anxiety", "anger", "sadness", "neutral"}


def test_daemon_with_the_yolo_onnx_detector_sends_audience_cues(yolo_ws, receiver):
    frames = yolo_ws.det / "images" / "test"
    port = free_udp_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "pcp_osc", "run", "--backend", "yolo", "--weights", str(yolo_ws.onnx),
         "--source", str(frames), "--target", receiver.target, "--control-port", str(port),
         "--window", "1", "--seconds", "6", "--no-log", "--generator", "off", "--quiet"],
        cwd=yolo_ws.root, env=offline_env(yolo_ws.root), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-2000:]
    assert "loading perception (yolo backend)" in err
    audience = [c for c in receiver.cues() if c.get("source") == "audience"]
    assert audience, f"no audience cue; stderr: {err[-1500:]}"
    assert all(c["emotion"] in EMOTIONS and c["faces"] >= 1 for c in audience)
    live_faces = receiver.values("/pcp/live/faces")
    assert max(live_faces) >= 1
    attempts = yolo_ws.netlog.read_text() if yolo_ws.netlog.exists() else ""
    assert attempts == "", f"the daemon tried the network: {attempts[:500]}"

