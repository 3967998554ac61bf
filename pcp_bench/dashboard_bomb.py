"""The daemon's peak memory under a decompression-bomb PNG posted to the dashboard.

    python -m pcp_bench.dashboard_bomb [--bombs 3] [--side 20000]

Starts `pcp-osc run --source browser --web 127.0.0.1:PORT` as its own process, posts
``--bombs`` copies at once of a valid greyscale PNG of zeros (20000x20000: 389 KB on the
wire, 1.2 GB once decoded to BGR) to /api/frame, and prints the answers and the
daemon's peak resident memory (Linux VmHWM; rss through psutil) before and after.
Everything stays on loopback.
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import zlib
from pathlib import Path

import psutil

MB = 1024 * 1024


def png_bomb(width_px: int, height_px: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    co, row, parts = zlib.compressobj(9), b"\0" * (width_px + 1), []
    for _ in range(height_px // 100):
        parts.append(co.compress(row * 100))
    parts += [co.compress(row * (height_px % 100)), co.flush()]
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width_px, height_px, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b""))


def peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return psutil.Process(pid).memory_info().rss


def post(url: str, data: bytes, token: str) -> tuple[int, str]:
    req = urllib.request.Request(url, data=data, method="POST",
                                 headers={"Content-Type": "image/png", "X-PCP-Token": token})
    try:
        with urllib.request.urlopen(req, timeout=300) as r:
            return r.status, r.read().decode()[:200]
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()[:200]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bombs", type=int, default=3, help="bombs posted at once (default 3)")
    ap.add_argument("--side", type=int, default=20000, help="the bomb's width and height in pixels (default 20000)")
    args = ap.parse_args()
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    bomb = png_bomb(args.side, args.side)
    proc = subprocess.Popen(
        [sys.executable, "-m", "pcp_osc", "run", "--source", "browser", "--web", f"127.0.0.1:{port}", "--generator", "off",
         "--no-log", "--control-port", "0", "--target", "127.0.0.1:9", "--seconds", "600", "-q"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        token, deadline = "", time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            m = re.search(r"dashboard: (\S+)", line)
            if m:
                token = (re.search(r"token=(\S+)", m.group(1)) or [None, ""])[1]
                break
        time.sleep(1.0)
        before = peak_rss(proc.pid)
        answers: list = []
        threads = [threading.Thread(target=lambda: answers.append(post(f"http://127.0.0.1:{port}/api/frame", bomb, token)))
                   for _ in range(args.bombs)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        seconds = time.monotonic() - t0
        after = peak_rss(proc.pid)
        print(f"bomb: {args.side}x{args.side} greyscale PNG, {len(bomb) / 1024:.0f} KB, posted {args.bombs}x at once")
        for status, body in answers:
            print(f"  HTTP {status}: {body}")
        print(f"daemon peak memory: {before / MB:.0f} MB before, {after / MB:.0f} MB after "
              f"(+{(after - before) / MB:.0f} MB) in {seconds:.2f} s")
        print(json.dumps({"bombs": args.bombs, "side_px": args.side, "bomb_bytes": len(bomb),
                          "peak_before_mb": round(before / MB), "peak_after_mb": round(after / MB)}))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
