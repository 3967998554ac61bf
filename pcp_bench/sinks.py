"""Figures for the show's outputs: ``python -m pcp_bench.sinks``

1. NDI: time from "background ready" (handed to the NDI sink) to that picture being on a
   receiver's stream, at 1920x1080, over loopback. The receiver runs in another process,
   as TouchDesigner or Resolume would, and watches NDI's frame-sync (what an NDI In TOP
   shows) for a marker patch whose grey level changes with each background.
2. Routes: time from a cue handed to RouteSender to the last datagram arriving at five
   routes (Eos, grandMA3, MagicQ, QLC+, Resolume presets) on real UDP sockets, and how
   long the hand-over itself takes on the cue path.

Absolute times depend on the machine and its load; run it on the show machine.
"""

from __future__ import annotations

import argparse
import os
import select
import socket
import statistics
import subprocess
import sys
import time

import numpy as np

MARK_PX = 64  # marker patch in the top-left corner


def _marker_level(i: int) -> int:
    return 30 + (i % 10) * 20


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def receive_main(name: str, timeout_s: float) -> int:
    """Child process: find the sender, then print "level t_monotonic" at each marker change."""
    from pcp_osc.sinks.ndi import configure_extra_ips

    configure_extra_ips(["127.0.0.1"])
    from cyndilib.finder import Finder
    from cyndilib.receiver import Receiver
    from cyndilib.video_frame import VideoFrameSync
    from cyndilib.wrapper.ndi_recv import RecvBandwidth, RecvColorFormat

    finder = Finder()
    finder.open()
    deadline = time.monotonic() + 20
    source = None
    while time.monotonic() < deadline and source is None:
        finder.wait_for_sources(0.25)
        hits = [n for n in finder.get_source_names() if n.endswith(f"({name})")]
        source = finder.get_source(hits[0]) if hits else None
    if source is None:
        print("ERROR no source", flush=True)
        return 1
    rx = Receiver(color_format=RecvColorFormat.RGBX_RGBA, bandwidth=RecvBandwidth.highest)
    vf = VideoFrameSync()
    rx.frame_sync.set_video_frame(vf)
    rx.set_source(source)
    print("READY", flush=True)
    last = None
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        rx.frame_sync.capture_video()
        w, h = vf.xres, vf.yres
        if w and h:
            t = time.monotonic()
            flat = np.asarray(vf.get_array())
            stride = vf.get_line_stride() or w * 4
            patch = flat[: stride * MARK_PX].reshape(MARK_PX, stride)[8 : MARK_PX - 8, 32 : (MARK_PX - 8) * 4 : 4]
            level = int(round(float(patch.mean())))
            if last is None or abs(level - last) > 6:
                last = level
                print(f"{level} {t:.6f}", flush=True)
        time.sleep(0.001)
    finder.close()
    return 0


def bench_ndi(trials: int, width: int, height: int) -> list[float]:
    from pcp_osc.backgrounds.procedural import render
    from pcp_osc.types import Background, Colour
    from pcp_osc.sinks.ndi import NdiSink

    name = f"pcp-bench-{os.getpid()}"
    sink = NdiSink(name, fps=30, crossfade_s=0.0, extra_ips=["127.0.0.1"])
    sink.start()
    rng = np.random.default_rng(1)
    pictures = []
    for i in range(trials + 1):
        img = render(i % 5, Colour(*rng.uniform(0.2, 1.0, 3)), width, height, seed=i)
        img[:MARK_PX, :MARK_PX] = _marker_level(i)
        pictures.append(img)
    child = subprocess.Popen(
        [sys.executable, "-m", "pcp_bench.sinks", "--receive", name, "--timeout", str(30 + trials * 3)],
        stdout=subprocess.PIPE, text=True,
    )
    latencies = []
    try:
        sink.send(Background(pictures[0], "bench", 0, 0.0, "bench", id=1))
        line = child.stdout.readline().strip()
        if line != "READY":
            raise RuntimeError(f"NDI receiver did not start: {line!r}")
        _wait_level(child, _marker_level(0), 20)
        for i in range(1, trials + 1):
            time.sleep(0.4)  # let the stream settle between trials
            t0 = time.monotonic()
            sink.send(Background(pictures[i], "bench", i, 0.0, "bench", id=i + 1))
            t1 = _wait_level(child, _marker_level(i), 10)
            latencies.append((t1 - t0) * 1000)
            print(f"  ndi trial {i}: {latencies[-1]:.1f} ms", file=sys.stderr)
    finally:
        sink.stop()
        child.kill()
        child.wait()
    return latencies


def _wait_level(child: subprocess.Popen, level: int, timeout_s: float) -> float:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        r, _, _ = select.select([child.stdout], [], [], max(0.0, end - time.monotonic()))
        if not r:
            break
        line = child.stdout.readline()
        if not line:
            break
        parts = line.split()
        if len(parts) == 2 and abs(int(parts[0]) - level) <= 6:
            return float(parts[1])
    raise TimeoutError(f"marker level {level} never reached the NDI receiver")


def bench_routes(cues: int) -> tuple[list[float], list[float], int]:
    from pcp_osc.config import RouteConfig
    from pcp_osc.routes import RouteSender, compile_route, sample_cue
    from pcp_osc.types import Colour

    import logging

    logging.getLogger("pcp_osc.routes").setLevel(logging.ERROR)  # QLC+ port warning: a bench port
    presets = [("eos", {}), ("grandma3", {"mode": "colour"}), ("magicq", {}), ("qlc", {}), ("resolume", {})]
    socks, configs, per_cue = [], [], 0
    for preset, options in presets:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        s.setblocking(False)
        socks.append(s)
        rc = RouteConfig(preset=preset, target=f"127.0.0.1:{s.getsockname()[1]}", options=options)
        per_cue += len(compile_route(rc).templates)
        configs.append(rc)
    sender = RouteSender.from_config(configs)
    sender.start()
    fanout, handover = [], []
    rng = np.random.default_rng(2)
    try:
        for i in range(cues):
            cue = sample_cue(i % 5, Colour(*rng.uniform(0, 1, 3)), cue_id=i)
            t0 = time.perf_counter()
            sender.send(cue)
            handover.append((time.perf_counter() - t0) * 1e6)
            got, end = 0, time.monotonic() + 2
            while got < per_cue and time.monotonic() < end:
                ready, _, _ = select.select(socks, [], [], 0.5)
                for s in ready:
                    while True:
                        try:
                            s.recv(2048)
                            got += 1
                        except BlockingIOError:
                            break
            fanout.append((time.perf_counter() - t0) * 1000)
            if got < per_cue:
                raise RuntimeError(f"cue {i}: {got} of {per_cue} datagrams arrived")
            time.sleep(0.01)
    finally:
        sender.stop()
        for s in socks:
            s.close()
    return fanout, handover, per_cue


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pcp_bench.sinks", description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=10, help="NDI backgrounds to time (default 10)")
    ap.add_argument("--cues", type=int, default=200, help="cues to fan out (default 200)")
    ap.add_argument("--width", type=int, default=1920)
    ap.add_argument("--height", type=int, default=1080)
    ap.add_argument("--skip-ndi", action="store_true")
    ap.add_argument("--receive", help=argparse.SUPPRESS)
    ap.add_argument("--timeout", type=float, default=60, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.receive:
        return receive_main(a.receive, a.timeout)
    print(f"pcp-osc output figures ({os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f})")
    if not a.skip_ndi:
        print(f"NDI, background ready -> frame on a receiver in another process, {a.width}x{a.height}, loopback:")
        ms = bench_ndi(a.trials, a.width, a.height)
        print(f"  median {statistics.median(ms):.1f} ms, p90 {_pct(ms, 0.9):.1f} ms, min {min(ms):.1f} ms, max {max(ms):.1f} ms ({len(ms)} backgrounds)")
    fan, hand, per_cue = bench_routes(a.cues)
    print(f"Cue fan-out to five routes (eos, grandma3, magicq, qlc, resolume; {per_cue} datagrams a cue, UDP loopback):")
    print(f"  handed over on the cue path: median {statistics.median(hand):.0f} us, p99 {_pct(hand, 0.99):.0f} us")
    print(f"  last datagram arrived: median {statistics.median(fan):.2f} ms, p90 {_pct(fan, 0.9):.2f} ms, max {max(fan):.2f} ms ({len(fan)} cues)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
