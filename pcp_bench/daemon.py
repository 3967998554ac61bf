"""Daemon-level figures for `pcp-osc bench`: frame-to-OSC latency measured on a receiving
UDP socket, and the daemon's peak memory as a separate process.

Latency: a frame is handed to a live daemon (the browser source's ``push``, the same
hand-off a camera reader makes) and the clock stops when its ``/pcp/live/faces``
datagram arrives on a real socket. Frames go one at a time, so this is the path's
latency (capture hand-off -> perception -> mood -> OSC encode -> UDP), not queueing.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np


def _receiver() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(5.0)
    return s


def frame_to_osc_latency(frames: list[np.ndarray], repeats: int = 200, warmup: int = 10) -> dict:
    """p50/p99/max milliseconds from frame hand-off to its live OSC message arriving."""
    from pcp_osc.capture import BrowserSource
    from pcp_osc.config import config_from_dict
    from pcp_osc.daemon import Daemon

    rx = _receiver()
    cfg = config_from_dict({
        "osc": {"target": f"127.0.0.1:{rx.getsockname()[1]}", "control_port": 0, "control_host": "127.0.0.1",
                "live_rate_hz": 120.0, "heartbeat": False},
        "log": {"enabled": False}, "generator": {"kind": "off"},
    })
    src = BrowserSource()
    daemon = Daemon(cfg, source=src)
    daemon.start()
    out = []
    try:
        for i in range(repeats + warmup):
            # drain anything left (heartbeat/status/cues) so the next live message is ours
            rx.setblocking(False)
            try:
                while True:
                    rx.recv(65536)
            except (BlockingIOError, OSError):
                pass
            rx.settimeout(5.0)
            time.sleep(1.0 / 120)  # past the live rate limit (120 Hz): each measured frame's live stream goes out
            t0 = time.monotonic()
            src.push(frames[i % len(frames)])
            while True:
                data = rx.recv(65536)
                if data.startswith(b"/pcp/live/faces\x00"):
                    break
            if i >= warmup:
                out.append((time.monotonic() - t0) * 1000)
    finally:
        daemon.stop()
        rx.close()
    a = np.array(out)
    return {"frames": len(a), "p50_ms": float(np.percentile(a, 50)), "p99_ms": float(np.percentile(a, 99)),
            "max_ms": float(a.max())}


def daemon_peak_memory(frames: list[np.ndarray], seconds: float = 20.0, sample_s: float = 0.05) -> dict:
    """Run `pcp-osc run` as its own process on a folder of the bench frames (default config:
    perception, procedural backgrounds and sinks, show log) and sample its resident memory
    (psutil, every 50 ms) to find the peak."""
    import psutil

    with tempfile.TemporaryDirectory(prefix="pcp-bench-") as tmp:
        folder = Path(tmp) / "frames"
        folder.mkdir()
        for i, f in enumerate(frames):
            cv2.imwrite(str(folder / f"{i:03d}.png"), f)
        cmd = [sys.executable, "-m", "pcp_osc", "run", "--source", str(folder), "--seconds", str(seconds),
               "--control-port", "0", "--quiet", "--log", str(Path(tmp) / "show.db"), "--target", "127.0.0.1:9"]
        with open(Path(tmp) / "daemon.log", "w") as err:
            proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
            ps = psutil.Process(proc.pid)
            peak = 0
            while proc.poll() is None:
                try:
                    peak = max(peak, ps.memory_info().rss + sum(c.memory_info().rss for c in ps.children(recursive=True)))
                except psutil.Error:
                    pass
                time.sleep(sample_s)
        if proc.returncode != 0:
            raise RuntimeError(f"daemon exited {proc.returncode}: {(Path(tmp) / 'daemon.log').read_text()[-800:]}")
    return {"peak_rss_mb": peak / 2**20, "seconds": seconds}


def main(argv: list[str] | None = None) -> int:
    """``python -m pcp_bench.daemon [--repeats N]``: the frame-to-OSC latency alone (the
    bench's 8-face frames through a live daemon), e.g. held to two cores with
    ``taskset -c 0,1`` to compare code versions on a quiet machine."""
    import argparse
    import os

    from .perception import sway_frames

    ap = argparse.ArgumentParser(prog="python -m pcp_bench.daemon", description=main.__doc__)
    ap.add_argument("--repeats", type=int, default=300, help="frames measured (default %(default)s)")
    args = ap.parse_args(argv)
    if not 10 <= args.repeats <= 100000:
        ap.error(f"--repeats {args.repeats} is out of range; allowed 10..100000")
    frames, _ = sway_frames(8)
    r = frame_to_osc_latency(frames, repeats=args.repeats)
    print(f"frame-to-OSC latency, {r['frames']} frames: p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, "
          f"max {r['max_ms']:.1f} ms; {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
