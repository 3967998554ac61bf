"""NDI end to end from the daemon: `pcp-osc run` publishes its backgrounds over NDI and a
real NDI receiver in this test (cyndilib, discovery through extra IPs on loopback, since
this machine has no mDNS) gets frames in the cue's colour."""

import subprocess
import sys

import numpy as np

from ndi_helpers import NdiTestReceiver
from test_daemon_e2e import free_udp_port


def test_daemon_background_arrives_over_ndi_in_the_cue_colour(tmp_path, receiver):
    name = f"pcp-e2e-{free_udp_port()}"
    cfg = tmp_path / "show.toml"
    cfg.write_text(f'[sinks]\nkinds = ["ndi"]\nname = "{name}"\nndi_extra_ips = ["127.0.0.1"]\n'
                   '[generator]\nwidth = 640\nheight = 360\ncrossfade_s = 0.0\n')
    proc = subprocess.Popen(
        [sys.executable, "-m", "pcp_osc", "run", "--config", str(cfg), "--source", "browser",
         "--intent", "sadness", "--window", "2", "--target", receiver.target, "--control-port", str(free_udp_port()),
         "--seconds", "40", "--no-log", "--quiet"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        with NdiTestReceiver(name) as rx:
            # sadness is blue: the stream shows a frame whose blue clearly leads red and green
            frame, _ = rx.wait_for(lambda f: f.shape[:2] == (360, 640) and f[..., 2].mean() > 1.5 * f[..., 0].mean() + 5,
                                   timeout_s=30)
        r, g, b = (float(frame[..., i].mean()) for i in range(3))
        assert b > r and b > g, (r, g, b)
        receiver.wait_for("/pcp/background/id", timeout_s=10)
        assert name in receiver.values("/pcp/background/sender")[-1]
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err[-2000:]
