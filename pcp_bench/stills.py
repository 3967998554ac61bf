"""`pcp-osc bench --stills`: photographs, searched whole one by one.

- Stills: 1280x720 pictures made from the real scenes (pcp_osc/data/scenes: people in
  full, rooms, flags, furniture; faces 20..110 px; see ``scenes.still``), each searched
  fully with ``backend.detect_still``: pictures per second, CPU ms per picture, faces
  found of the faces there, false boxes. The fer library (Haar cascade + mini-Xception,
  its defaults) on the same pictures in the same run, when a Python with fer is there
  (tools/make_fer_venv.sh).
- Precision: every real scene at its own size and from a 4K camera (twice the size):
  faces, found, false boxes (the goal: at most 1 false box per 30 faces, every face found).

Timings depend on what else the machine runs (the load average is printed with them):
compare the ratio within one run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np

STILLS = 12
FOUR_K_FACTOR = 2.0


def _scenes():
    from pcp_osc.data.scenes import scenes, still

    return [still(i) for i in range(STILLS)], scenes()


def measure_stills(backend, stills, seconds: float) -> dict:
    """detect_still over the stills (cycled) for about ``seconds``; faces and false
    boxes counted on the first pass."""
    backend.detect_still(np.ascontiguousarray(stills[0].image))  # warm-up (sessions, priors)
    times, found, faces, false = [], 0, 0, 0
    cpu0, wall0 = time.process_time(), time.perf_counter()
    k = 0
    while time.perf_counter() - wall0 < seconds or k < len(stills):
        s = stills[k % len(stills)]
        image = np.ascontiguousarray(s.image)
        t = time.perf_counter()
        result = backend.detect_still(image)
        times.append(time.perf_counter() - t)
        if k < len(stills):
            tally = s.score(result.boxes)
            found, faces, false = found + tally.found, faces + len(s.faces), false + tally.false
        k += 1
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    t = np.array(times)
    return {"fps": round(len(t) / wall, 1), "ms_p50": round(float(np.percentile(t, 50)) * 1000, 1),
            "cpu_ms_per_picture": round(cpu / len(t) * 1000, 1), "pictures": len(t),
            "faces": faces, "found": found, "found_pct": round(100 * found / max(1, faces), 1), "false_boxes": false}


def measure_fer_stills(python: str, stills, seconds: float) -> dict:
    from .perception import FER_SCRIPT

    with tempfile.TemporaryDirectory(prefix="pcp-osc-bench-") as td:
        np.savez(Path(td) / "frames.npz", frames_001=np.stack([s.image for s in stills]))
        script = Path(td) / "fer_bench.py"
        script.write_text(FER_SCRIPT)
        env = dict(os.environ, CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="3")
        proc = subprocess.run([python, str(script), str(Path(td) / "frames.npz"), str(seconds)],
                              capture_output=True, text=True, env=env, timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(f"fer run failed: {proc.stderr[-800:]}")
    r = json.loads(proc.stdout.strip().splitlines()[-1])["frames_001"]
    found = faces = false = 0
    for s, boxes in zip(stills, r["boxes"]):
        tally = s.score(np.array(boxes, np.float32).reshape(-1, 4))
        found, faces, false = found + tally.found, faces + len(s.faces), false + tally.false
    t = np.array(r["times"])
    return {"fps": round(len(t) / r["wall"], 1), "ms_p50": round(float(np.percentile(t, 50)) * 1000, 1),
            "cpu_ms_per_picture": round(r["cpu"] / len(t) * 1000, 1), "pictures": len(t),
            "faces": faces, "found": found, "found_pct": round(100 * found / max(1, faces), 1), "false_boxes": false}


def measure_precision(backend, scenes) -> dict:
    """Per view (own size, 4K camera): faces, found, false boxes, and the worst scenes."""
    out = {}
    for view, factor in (("own size", 1.0), ("4K camera", FOUR_K_FACTOR)):
        faces = found = false = 0
        per_scene = {}
        for s in scenes:
            s = s if factor == 1.0 else s.scaled(factor)
            tally = s.score(backend.detect_still(np.ascontiguousarray(s.image)).boxes)
            faces, found, false = faces + len(s.faces), found + tally.found, false + tally.false
            if tally.false or tally.missed:
                per_scene[s.name] = {"missed": tally.missed, "false": tally.false}
        out[view] = {"scenes": len(scenes), "faces": faces, "found": found, "false_boxes": false,
                     "false_per_30_faces": round(30 * false / max(1, faces), 2), "not_clean": per_scene}
    return out


def run_stills_bench(config, seconds: float = 10.0, fer: str | None | bool = None,
                     progress: Callable[[str], None] = lambda s: None) -> dict:
    from pcp_osc.perception import make_backend

    from .perception import with_fer

    result: dict = {"machine": {"cpus": os.cpu_count(), "load_avg_1m_at_start": round(os.getloadavg()[0], 2)},
                    "stills": {}, "precision": {}, "notes": []}
    progress(f"building {STILLS} 1280x720 stills from the real scenes")
    stills, scenes = _scenes()
    backend = make_backend(config.perception)
    progress(f"pcp-osc ({backend.name}) detect_still on the stills, {seconds:.0f} s")
    result["stills"]["pcp-osc"] = measure_stills(backend, stills, seconds)
    def fer_stills(py: str) -> None:
        progress(f"fer on the same stills with {py}, {seconds:.0f} s")
        result["stills"]["fer"] = measure_fer_stills(py, stills, seconds)
        result["stills"]["fps_ratio_vs_fer"] = round(
            result["stills"]["pcp-osc"]["fps"] / max(result["stills"]["fer"]["fps"], 1e-9), 2)

    with_fer(fer, result["notes"], fer_stills)
    progress(f"precision: {len(scenes)} real scenes at their own size and from a 4K camera")
    result["precision"] = measure_precision(backend, scenes)
    result["machine"]["load_avg_1m_at_end"] = round(os.getloadavg()[0], 2)
    return result


def format_stills(result: dict) -> str:
    m = result["machine"]
    lines = [f"pcp-osc bench --stills: {STILLS} stills 1280x720 (faces 20..110 px, real scenes), "
             f"{m['cpus']} CPUs, load {m['load_avg_1m_at_start']} -> {m.get('load_avg_1m_at_end', '?')}",
             "",
             f"{'':9} | {'fps':>6} {'ms p50':>7} {'CPU ms':>7} | {'faces':>5} {'found':>5} {'found %':>7} {'false':>5}"]
    for who in ("pcp-osc", "fer"):
        r = result["stills"].get(who)
        if r:
            lines.append(f"{who:9} | {r['fps']:>6} {r['ms_p50']:>7} {r['cpu_ms_per_picture']:>7} | "
                         f"{r['faces']:>5} {r['found']:>5} {r['found_pct']:>7} {r['false_boxes']:>5}")
    if "fps_ratio_vs_fer" in result["stills"]:
        lines.append(f"pcp-osc / fer fps: {result['stills']['fps_ratio_vs_fer']}x")
    lines += ["", f"{'precision':11} | {'scenes':>6} {'faces':>5} {'found':>5} {'false':>5} {'per 30 faces':>12}"]
    for view, r in result["precision"].items():
        lines.append(f"{view:11} | {r['scenes']:>6} {r['faces']:>5} {r['found']:>5} {r['false_boxes']:>5} {r['false_per_30_faces']:>12}")
        for name, t in r["not_clean"].items():
            lines.append(f"{'':11}   {name}: {t['missed']} missed, {t['false']} false")
    lines += [f"note: {n}" for n in result["notes"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:  # python -m pcp_bench.stills [SECONDS]
    import argparse

    from pcp_osc.config import load_config

    ap = argparse.ArgumentParser(prog="python -m pcp_bench.stills", description="1280x720 stills searched whole, "
                                 "pcp-osc beside fer (same as pcp-osc bench --stills)")
    ap.add_argument("seconds", nargs="?", type=float, default=10.0, help="time per searcher (default 10)")
    args = ap.parse_args(argv)
    r = run_stills_bench(load_config(None), seconds=args.seconds,
                         progress=lambda s: print(f"[bench] {s}", file=sys.stderr, flush=True))
    print(format_stills(r))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
