"""`pcp-osc bench`: figures for the README, measured on this machine.

Perception: 1280x720 frames built from the shipped photographs (faces at several
sizes, the crowd swaying a few pixels from frame to frame as a seated audience does),
with 1, 8 and 32 faces: frames per second of ``backend.detect`` end to end, CPU time
per frame, and faces found vs placed. Side by side, when a Python with ``fer`` is
available (see tools/make_fer_venv.sh), the fer library (Haar cascade + mini-Xception
on TensorFlow Lite, its defaults) on the same frames in the same run.

Timings depend on what else the machine runs: the load average is recorded with them,
and ratios within one run are the figures to compare.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from pcp_osc.evaluate import iou_matrix  # one IoU for the bench and `pcp-osc eval`

FRAME_SIZE = (1280, 720)
FACE_COUNTS = (1, 8, 32)
FACE_PX_RANGE = (20, 160)
MATCH_IOU = 0.4
DISTINCT_FRAMES = 24
CAMERA_FPS = 30.0  # the frames are a 30 fps camera's: the live search is paced on their clock
REPO = Path(__file__).resolve().parent.parent
DEFAULT_FER_PYTHON = REPO / ".cache" / "fer-venv" / "bin" / "python"
ENV_FER_PYTHON = "PCP_OSC_FER_PYTHON"


@dataclass
class BenchContext:
    """What the measures get: the config, the options, and a place for their rows."""

    config: object
    seconds_per_case: float
    progress: Callable[[str], None]
    results: dict = field(default_factory=dict)


# ---------------------------------------------------------------------- frames


def sway_frames(n_faces: int, count: int = DISTINCT_FRAMES, seed: int = 0, size=FRAME_SIZE,
                face_px_range=FACE_PX_RANGE) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """``count`` frames of one crowd, shifted a few px per frame (a seated audience sways),
    and the face boxes in each."""
    import cv2

    from pcp_osc.data import crowd_frame

    # 32 faces up to 160 px do not fit in 1280x720 without overlap; keep their mix of sizes
    # but cap the largest so every face placed is a whole face.
    hi = min(face_px_range[1], 0.9 * math.sqrt(size[0] * size[1] / max(1, n_faces)) / 1.6)
    base, boxes = crowd_frame(n_faces, size=size, face_px_range=(face_px_range[0], max(face_px_range[0], hi)), seed=seed)
    frames, truth = [], []
    for k in range(count):
        dx, dy = 4.0 * math.sin(2 * math.pi * k / count), 3.0 * math.sin(4 * math.pi * k / count)
        m = np.float32([[1, 0, dx], [0, 1, dy]])
        frames.append(cv2.warpAffine(base, m, size, borderMode=cv2.BORDER_REPLICATE))
        truth.append(boxes + np.float32([dx, dy, dx, dy]))
    return frames, truth


def match_counts(truth: np.ndarray, found: np.ndarray) -> tuple[int, int]:
    """(faces placed that were found, boxes that match no placed face)."""
    m = iou_matrix(truth, found)
    if not m.size:
        return 0, len(found)
    return int((m.max(axis=1) >= MATCH_IOU).sum()), int((m.max(axis=0) < MATCH_IOU).sum())


# ---------------------------------------------------------------------- perception


def measure_perception(backend, frames, truth, seconds: float) -> dict:
    """fps of backend.detect over the frames (cycled, stamped as a 30 fps camera's) for
    about ``seconds``; the first
    frame (which, for a new frame size, also searches the whole frame for small faces)
    is timed on its own."""
    t0 = time.perf_counter()
    backend.detect(frames[0], 0.0)
    first_ms = (time.perf_counter() - t0) * 1000
    times, found, false, placed = [], 0, 0, 0
    cpu0, wall0 = time.process_time(), time.perf_counter()
    k = 1
    while time.perf_counter() - wall0 < seconds or k < 2 * len(frames):
        i = k % len(frames)
        t = time.perf_counter()
        faces = backend.detect(frames[i], k / CAMERA_FPS)  # a 30 fps camera's clock, not this machine's
        times.append(time.perf_counter() - t)
        if k >= len(frames):  # after one pass: the sweep has seen the whole frame
            f, x = match_counts(truth[i], faces.boxes)
            found, false, placed = found + f, false + x, placed + len(truth[i])
        k += 1
    wall = time.perf_counter() - wall0
    cpu = time.process_time() - cpu0
    t = np.array(times)
    return {
        "fps": round(len(t) / wall, 1),
        "ms_p50": round(float(np.percentile(t, 50)) * 1000, 1),
        "ms_p95": round(float(np.percentile(t, 95)) * 1000, 1),
        "cpu_ms_per_frame": round(cpu / len(t) * 1000, 1),
        "frames": len(t),
        "first_frame_ms": round(first_ms, 1),
        "faces_placed": len(truth[0]),
        "faces_found": round(found / max(1, placed) * len(truth[0]), 2),
        "false_faces": round(false / max(1, placed) * len(truth[0]), 2),
    }


# ---------------------------------------------------------------------- fer


FER_SCRIPT = textwrap.dedent(
    """
    import json, os, sys, time, warnings
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    warnings.filterwarnings("ignore")
    import logging; logging.disable(logging.WARNING)
    import numpy as np
    from fer.fer import FER
    import fer
    data = np.load(sys.argv[1])
    seconds = float(sys.argv[2])
    detector = FER()                      # its defaults: Haar cascade, TFLite mini-Xception
    out = {"version": fer.__version__}
    for key in sorted(k for k in data.files if k.startswith("frames_")):
        frames = data[key]
        detector.detect_emotions(frames[0])   # warm-up
        boxes, times = [], []
        cpu0, wall0 = time.process_time(), time.perf_counter()
        k = 0
        while time.perf_counter() - wall0 < seconds or k < len(frames):
            i = k % len(frames)
            t = time.perf_counter()
            res = detector.detect_emotions(frames[i])
            times.append(time.perf_counter() - t)
            if k < len(frames):
                boxes.append([[x, y, x + w, y + h] for (x, y, w, h) in (map(int, r["box"]) for r in res)])
            k += 1
        out[key] = {"times": times, "wall": time.perf_counter() - wall0, "cpu": time.process_time() - cpu0, "boxes": boxes}
    print(json.dumps(out))
    """
)


def fer_python(explicit: str | None = None) -> str | None:
    """A Python that can import fer (in-process fer would pull TensorFlow and an OpenCV
    with Haar cascades into pcp-osc's own environment; see tools/make_fer_venv.sh)."""
    for cand in (explicit, os.environ.get(ENV_FER_PYTHON), str(DEFAULT_FER_PYTHON)):
        if cand and Path(cand).exists():
            ok = subprocess.run([cand, "-c", "import fer.fer"], capture_output=True, timeout=120)
            if ok.returncode == 0:
                return cand
            if cand == explicit:
                raise RuntimeError(f"--fer-python {cand} cannot import fer: {ok.stderr.decode()[-300:]}")
    try:
        import fer.fer  # noqa: F401

        return sys.executable
    except Exception:
        return None


def with_fer(fer, notes: list, run) -> None:
    """The fer comparison of a bench, when fer is there: ``run(python)`` (``fer``: False to
    skip, a Python to use, or None to look for one); otherwise, or when it fails, a note
    in ``notes`` says why the comparison is missing."""
    if fer is False:
        return
    try:
        py = fer_python(fer or None)
    except RuntimeError as e:
        notes.append(str(e))
        return
    if not py:
        notes.append("fer not available: run tools/make_fer_venv.sh (or pass --fer-python) for the comparison")
        return
    try:
        run(py)
    except (RuntimeError, subprocess.TimeoutExpired, ValueError, KeyError) as e:
        notes.append(f"fer comparison failed: {e}")


def measure_fer(python: str, cases: dict[int, tuple[list, list]], seconds: float) -> dict[int, dict]:
    with tempfile.TemporaryDirectory(prefix="pcp-osc-bench-") as td:
        np.savez(Path(td) / "frames.npz", **{f"frames_{n:03d}": np.stack(fr) for n, (fr, _) in cases.items()})
        script = Path(td) / "fer_bench.py"
        script.write_text(FER_SCRIPT)
        env = dict(os.environ, CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="3")
        proc = subprocess.run([python, str(script), str(Path(td) / "frames.npz"), str(seconds)],
                              capture_output=True, text=True, env=env, timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(f"fer run failed: {proc.stderr[-800:]}")
    raw = json.loads(proc.stdout.strip().splitlines()[-1])
    out = {}
    for n, (_, truth) in cases.items():
        r = raw[f"frames_{n:03d}"]
        t = np.array(r["times"])
        found = false = placed = 0
        for i, b in enumerate(r["boxes"]):
            f, x = match_counts(truth[i], np.array(b, np.float32).reshape(-1, 4))
            found, false, placed = found + f, false + x, placed + len(truth[i])
        out[n] = {
            "fps": round(len(t) / r["wall"], 1),
            "ms_p50": round(float(np.percentile(t, 50)) * 1000, 1),
            "cpu_ms_per_frame": round(r["cpu"] / len(t) * 1000, 1),
            "frames": len(t),
            "faces_placed": len(truth[0]),
            "faces_found": round(found / max(1, placed) * len(truth[0]), 2),
            "false_faces": round(false / max(1, placed) * len(truth[0]), 2),
            "version": raw["version"],
        }
    return out


# ---------------------------------------------------------------------- the lead's measures

# Daemon-level figures, each fn(ctx: BenchContext) -> dict of name -> value, printed
# under "daemon" and kept in the JSON: frame-to-OSC latency (target p99 <= 50 ms) and
# the daemon's peak memory as its own process (target <= 500 MB); see bench_daemon.py.
def _latency(ctx: BenchContext) -> dict:
    from .daemon import frame_to_osc_latency

    ctx.progress("frame-to-OSC latency, 8 faces, measured on a receiving UDP socket ...")
    frames, _ = sway_frames(8)
    r = frame_to_osc_latency(frames, repeats=300)
    return {"latency_frames": r["frames"], "latency_p50_ms": round(r["p50_ms"], 1),
            "latency_p99_ms": round(r["p99_ms"], 1), "latency_max_ms": round(r["max_ms"], 1)}


def _memory(ctx: BenchContext) -> dict:
    from .daemon import daemon_peak_memory

    ctx.progress("daemon peak memory: `pcp-osc run` on a folder of 8-face frames for 20 s ...")
    frames, _ = sway_frames(8)
    r = daemon_peak_memory(frames, seconds=20.0)
    return {"daemon_peak_rss_mb": round(r["peak_rss_mb"], 1)}


EXTRA_MEASURES: list[Callable[[BenchContext], dict]] = [_latency, _memory]


# ---------------------------------------------------------------------- the run


def run_bench(config, seconds: float = 5.0, counts=FACE_COUNTS, fer: str | None | bool = None,
              progress: Callable[[str], None] = lambda s: None) -> dict:
    """All figures as one dict (what ``pcp-osc bench --json`` prints). ``fer``: a Python
    path, None to look for one, False to skip the comparison."""
    from pcp_osc.perception import make_backend

    load = os.getloadavg()
    result: dict = {
        "machine": {"cpus": os.cpu_count(), "load_avg_1m_at_start": round(load[0], 2), "python": sys.version.split()[0]},
        "frame_size": list(FRAME_SIZE),
        "face_px_range": list(FACE_PX_RANGE),
        "perception": {},
        "fer": {},
        "notes": [],
    }
    pc = config.perception
    result["settings"] = {k: getattr(pc, k) for k in ("backend", "detect_scale", "small_faces", "small_face_scale", "search_s", "search_budget", "cut_change", "track_hold_s",
                                                       "face_threshold", "threads") if hasattr(pc, k)}
    cases = {}
    for n in counts:
        progress(f"building {DISTINCT_FRAMES} frames with {n} face(s) from the shipped photographs")
        cases[n] = sway_frames(n, seed=n)
    for n in counts:
        backend = make_backend(pc)  # a fresh backend per case: no state carried over
        progress(f"perception ({backend.name}): {n} face(s), {seconds:.0f} s")
        result["perception"][n] = measure_perception(backend, *cases[n], seconds)
        r = result["perception"][n]
        progress(f"  {r['fps']} fps, {r['cpu_ms_per_frame']} CPU ms/frame, found {r['faces_found']}/{r['faces_placed']}")
    def fer_cases(py: str) -> None:
        progress(f"fer (Haar + mini-Xception TFLite) with {py}: {len(counts)} cases, {seconds:.0f} s each")
        result["fer"] = measure_fer(py, cases, seconds)
        for n in counts:
            f, p = result["fer"][n], result["perception"][n]
            p["fps_ratio_vs_fer"] = round(p["fps"] / max(f["fps"], 1e-9), 1)

    with_fer(fer, result["notes"], fer_cases)
    ctx = BenchContext(config=config, seconds_per_case=seconds, progress=progress, results=result)
    daemon: dict = {}
    for measure in EXTRA_MEASURES:
        daemon.update(measure(ctx))
    result["daemon"] = daemon
    result["machine"]["load_avg_1m_at_end"] = round(os.getloadavg()[0], 2)
    return result


def format_table(result: dict) -> str:
    lines = [
        f"pcp-osc bench: {result['frame_size'][0]}x{result['frame_size'][1]} frames, faces "
        f"{result['face_px_range'][0]}..{result['face_px_range'][1]} px from the shipped photographs; "
        f"{result['machine']['cpus']} CPUs, load {result['machine']['load_avg_1m_at_start']} -> "
        f"{result['machine'].get('load_avg_1m_at_end', '?')}",
        f"settings: {json.dumps(result.get('settings', {}))}",
        "",
        f"{'faces':>5} | {'pcp-osc fps':>11} {'ms p50':>7} {'ms p95':>7} {'CPU ms':>7} {'found':>7} {'false':>5} | "
        f"{'fer fps':>7} {'CPU ms':>7} {'found':>7} {'false':>5} | {'fps x':>6}",
    ]
    for n, p in result["perception"].items():
        f = result["fer"].get(n) or result["fer"].get(str(n))
        fer_part = (f"{f['fps']:>7} {f['cpu_ms_per_frame']:>7} {f['faces_found']:>7} {f['false_faces']:>5}"
                    if f else f"{'-':>7} {'-':>7} {'-':>7} {'-':>5}")
        ratio = f"{p.get('fps_ratio_vs_fer', '-'):>6}"
        lines.append(f"{n:>5} | {p['fps']:>11} {p['ms_p50']:>7} {p['ms_p95']:>7} {p['cpu_ms_per_frame']:>7} "
                     f"{p['faces_found']:>7} {p['false_faces']:>5} | {fer_part} | {ratio}")
    for key, value in result.get("daemon", {}).items():
        lines.append(f"daemon {key}: {value}")
    for note in result["notes"]:
        lines.append(f"note: {note}")
    return "\n".join(lines)
