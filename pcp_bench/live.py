"""`pcp-osc bench --live`: live video made from real photographs of people in full.

- **Pan and cut**: a 1280x720 camera window pans across a real group scene
  (pcp_osc/data/scenes, ~3 px per frame and a little vertical drift), then the
  camera cuts to another scene and pans on, at 30 fps. Each frame goes through
  ``backend.detect`` with its video time, as `pcp-osc detect` and the daemon do. A
  face counts as visible in a frame when its whole box is in the picture and it is at
  least MIN_FACE_PX tall (a smaller or cut face is neither a hit nor a miss); "found"
  is the share of visible face-frames reported, counted from 1 s after the start and
  1 s after the cut (``SETTLE_S``). Also: faces reported per frame against faces
  visible (flicker), track ids per person (a person should keep one), and fer on the
  same frames in the same run (every ``FER_EVERY``-th frame: fer has no state, so its
  speed and finds do not depend on the order).
- **Slow source**: pictures of different scenes every 2 s (a folder, or a phone's
  browser camera): how many were searched whole, and the faces found.
- **Under stage light** (``lights``): the same pan and cut as a camera sees it under a
  wash of pcp_bench.stagelight (darker, tinted, sensor noise drawn afresh every frame,
  JPEG): the visible face-frames found, and whether each person keeps the emotion read
  in normal light -- per face-frame (what ``/pcp/live/faces`` says) and per person over
  the shot (the mean of the person's readings, as the mood counts them).

Timings depend on what else the machine runs; compare ratios within one run.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

FRAME_SIZE = (1280, 720)
FPS = 30.0
SETTLE_S = 1.0
FER_EVERY = 5
SLOW_INTERVAL_S = 2.0
# The pan: (scene, scale, first window corner x, y, px per frame x, y, frames): the camera
# pans to and fro across the scene (turning at its edges); then a cut to the next shot.
# At 0.8 the scenes' faces are 19..298 px and 4..9 of them are whole in the window.
PAN_SEGMENTS = (
    ("group_blue_room", 0.8, 0, 100, 3.0, 1.0, 240),
    ("group_oval_office", 0.8, 250, 0, -3.0, 1.0, 240),
)
SLOW_PICTURES = (  # (scene, scale, window corner x, y): 1280x720 pictures of different scenes
    ("group_blue_room", 0.75, 80, 45), ("group_oval_office", 0.75, 160, 90), ("group_flags", 0.8, 128, 72),
    ("group_blue_room", 0.8, 256, 0), ("group_flags", 0.75, 0, 90), ("group_oval_office", 0.8, 0, 144),
)
MIN_FACE_PX = 20  # smaller faces are neither a hit nor a miss (the search is built for 20 px and up)
MATCH_IOU = 0.3  # as pcp_osc.data.scenes: detectors frame faces differently


@dataclass
class LiveVideo:
    """Frames with, per frame, the visible faces (whole box inside) and the boxes that
    are neither a hit nor a false box (faces cut by the edge, the scenes' ignore regions)."""

    frames: list[np.ndarray]
    visible: list[np.ndarray]
    person: list[np.ndarray]      # per frame, a person key per visible face (segment * 1000 + face index)
    dont_care: list[np.ndarray]
    cuts: list[int]               # frame indices where a new shot starts (0 included)
    fps: float = FPS
    face_px: tuple[float, float] = (0.0, 0.0)
    names: list[str] = field(default_factory=list)


def window(image: np.ndarray, x: int, y: int, size=FRAME_SIZE) -> np.ndarray:
    h, w = image.shape[:2]
    x = int(min(max(0, x), w - size[0]))
    y = int(min(max(0, y), h - size[1]))
    return np.ascontiguousarray(image[y:y + size[1], x:x + size[0]])


def _truth(scene, x: int, y: int, size=FRAME_SIZE, segment: int = 0):
    h, w = scene.image.shape[:2]
    x = int(min(max(0, x), w - size[0]))
    y = int(min(max(0, y), h - size[1]))
    off = np.float32([x, y, x, y])
    faces = scene.faces - off
    inside = (faces[:, 0] >= 0) & (faces[:, 1] >= 0) & (faces[:, 2] <= size[0]) & (faces[:, 3] <= size[1])
    inside &= (faces[:, 3] - faces[:, 1]) >= MIN_FACE_PX
    overlaps = (faces[:, 2] > 0) & (faces[:, 3] > 0) & (faces[:, 0] < size[0]) & (faces[:, 1] < size[1])
    dont = np.concatenate([faces[overlaps & ~inside], scene.ignore - off]).reshape(-1, 4)
    keys = segment * 1000 + np.flatnonzero(inside)
    return faces[inside], keys, dont


def pan_video(segments=PAN_SEGMENTS, size=FRAME_SIZE) -> LiveVideo:
    from pcp_osc.data.scenes import scene

    v = LiveVideo([], [], [], [], [])
    sizes = []
    for seg, (name, scale, x0, y0, vx, vy, n) in enumerate(segments):
        s = scene(name) if scale == 1 else scene(name).scaled(scale)
        v.cuts.append(len(v.frames))
        v.names.append(f"{name} x{scale:g}")
        w, h = s.size
        for k in range(n):
            x = _to_and_fro(x0 + vx * k, w - size[0])
            y = _to_and_fro(y0 + vy * k, h - size[1])
            v.frames.append(window(s.image, x, y, size))
            vis, keys, dont = _truth(s, x, y, size, seg)
            v.visible.append(vis)
            v.person.append(keys)
            v.dont_care.append(dont)
            sizes += list(vis[:, 3] - vis[:, 1])
    v.face_px = (float(min(sizes)), float(max(sizes))) if sizes else (0.0, 0.0)
    return v


def _to_and_fro(p: float, span: int) -> int:
    """A position moving on a line that turns at 0 and span."""
    if span <= 0:
        return 0
    p = abs(p) % (2 * span)
    return int(round(p if p <= span else 2 * span - p))


def slow_pictures(pictures=SLOW_PICTURES, size=FRAME_SIZE) -> LiveVideo:
    from pcp_osc.data.scenes import scene

    v = LiveVideo([], [], [], [], [], fps=1.0 / SLOW_INTERVAL_S)
    for i, (name, scale, x, y) in enumerate(pictures):
        s = scene(name) if scale == 1 else scene(name).scaled(scale)
        v.cuts.append(i)
        v.frames.append(window(s.image, x, y, size))
        vis, keys, dont = _truth(s, x, y, size, i)
        v.visible.append(vis)
        v.person.append(keys)
        v.dont_care.append(dont)
        v.names.append(f"{name} x{scale:g}")
    return v


def score_frame(visible: np.ndarray, dont_care: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, int]:
    """(index of the reported box matching each visible face, -1 when missed; false boxes)."""
    from pcp_osc.evaluate import iou_matrix

    match = np.full(len(visible), -1, np.int64)
    used = np.zeros(len(boxes), bool)
    if len(visible) and len(boxes):
        iou = iou_matrix(visible, boxes)
        for fi, bi in sorted(zip(*np.nonzero(iou >= MATCH_IOU)), key=lambda p: -iou[p]):
            if match[fi] < 0 and not used[bi]:
                match[fi], used[bi] = bi, True
    rest = np.asarray(boxes, np.float32).reshape(-1, 4)[~used]
    if len(rest) and len(dont_care):
        from pcp_osc.evaluate import iou_matrix as _iou

        inter = _iou(rest, dont_care)
        rest = rest[inter.max(axis=1) < 0.1]
    return match, len(rest)


def counted(video: LiveVideo, i: int) -> bool:
    """Is frame i counted (1 s after the start of its shot)?"""
    start = max(c for c in video.cuts if c <= i)
    return (i - start) / video.fps >= SETTLE_S


def measure_live(backend, video: LiveVideo, readings: dict | None = None) -> dict:
    """Run every frame through ``backend.detect`` (video time), and score it. ``readings``:
    filled with (frame, person) -> the scores reported for each visible face found in a
    counted frame."""
    times, found, visible, false, flicker = [], 0, 0, 0, 0  # flicker: counted frames with a visible face missed
    first_found, first_visible = [], []
    ids_per_person: dict[int, set] = {}
    last_id: dict[int, int] = {}  # person -> track id in the previous frame (when found there)
    switches = 0
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for i, frame in enumerate(video.frames):
        t = time.perf_counter()
        faces = backend.detect(frame, i / video.fps)
        times.append(time.perf_counter() - t)
        match, nfalse = score_frame(video.visible[i], video.dont_care[i], faces.boxes)
        if i in video.cuts:
            first_found.append(int((match >= 0).sum()))
            first_visible.append(len(match))
        if not counted(video, i):
            continue
        found += int((match >= 0).sum())
        visible += len(match)
        false += nfalse
        flicker += int((match < 0).any())
        now_id = {}
        if readings is not None:
            for key, m in zip(video.person[i], match):
                if m >= 0:
                    readings[(i, int(key))] = np.asarray(faces.scores[m], np.float32)
        for key, m in zip(video.person[i], match):
            if m >= 0 and faces.track_id[m] >= 0:
                tid = int(faces.track_id[m])
                ids_per_person.setdefault(int(key), set()).add(tid)
                switches += int(int(key) in last_id and last_id[int(key)] != tid)
                now_id[int(key)] = tid
        last_id = now_id
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    t = np.array(times)
    counted_frames = sum(counted(video, i) for i in range(len(video.frames)))
    return {
        "frames": len(t),
        "fps": round(len(t) / wall, 1),
        "ms_p50": round(float(np.percentile(t, 50)) * 1000, 1),
        "ms_p95": round(float(np.percentile(t, 95)) * 1000, 1),
        "ms_max": round(float(t.max()) * 1000, 1),
        "cpu_ms_per_frame": round(cpu / len(t) * 1000, 1),
        "found_share": round(found / max(1, visible), 4),
        "face_frames_visible": visible,
        "false_per_frame": round(false / max(1, counted_frames), 3),
        "frames_with_a_face_missed": flicker,
        "frames_counted": counted_frames,
        "found_at_cut": [f"{a}/{b}" for a, b in zip(first_found, first_visible)],
        "people": len(ids_per_person),
        "track_ids_per_person": round(float(np.mean([len(s) for s in ids_per_person.values()])) if ids_per_person else 0.0, 2),
        "id_switches": switches,  # a person found in two frames in a row under two ids
        "searched_whole": dict(getattr(getattr(getattr(backend, "_live", None), "schedule", None), "counts", {}) or {}),
    }


def lit(video: LiveVideo, light: str) -> LiveVideo:
    """The video as a camera sees it under a stage light (pcp_bench.stagelight.LIGHTS), the
    sensor noise drawn afresh for every frame."""
    from .stagelight import stage_light

    return LiveVideo([stage_light(f, light, seed=i) for i, f in enumerate(video.frames)], video.visible, video.person,
                     video.dont_care, video.cuts, video.fps, video.face_px, video.names)


def compare_readings(normal: dict, lit_readings: dict) -> dict:
    """How many face-frames and people keep the emotion read in normal light. Face-frames:
    those found in both runs, top emotion equal. People: each person's readings averaged
    over the face-frames found in both runs (as the mood counts a person), top equal."""
    from pcp_osc.emotions import EMOTIONS

    common = sorted(set(normal) & set(lit_readings))
    same = sum(int(normal[k].argmax() == lit_readings[k].argmax()) for k in common)
    people: dict[int, list] = {}
    for k in common:
        people.setdefault(k[1], []).append(k)
    kept, joy_kept, joy_people = 0, 0, 0
    joy = EMOTIONS.index("joy")
    for keys in people.values():
        a = np.mean([normal[k] for k in keys], axis=0).argmax()
        b = np.mean([lit_readings[k] for k in keys], axis=0).argmax()
        kept += int(a == b)
        joy_people += int(a == joy)
        joy_kept += int(a == joy and b == joy)
    return {"face_frames_compared": len(common), "face_frames_agree": same,
            "people_compared": len(people), "people_agree": kept, "joy_people": joy_people, "joy_people_kept": joy_kept}


def measure_slow(backend, video: LiveVideo) -> dict:
    """Pictures every SLOW_INTERVAL_S of video time: searched whole? faces found?"""
    found = visible = false = whole = 0
    times = []
    for i, frame in enumerate(video.frames):
        t = time.perf_counter()
        faces = backend.detect(frame, i * SLOW_INTERVAL_S)
        times.append(time.perf_counter() - t)
        plan = getattr(getattr(backend, "_live", None), "last_plan", None)
        whole += int(bool(plan is not None and plan.full))
        match, nfalse = score_frame(video.visible[i], video.dont_care[i], faces.boxes)
        found += int((match >= 0).sum())
        visible += len(match)
        false += nfalse
    return {"pictures": len(video.frames), "searched_whole": whole, "found_share": round(found / max(1, visible), 4),
            "faces": visible, "false_boxes": false, "ms_p50": round(float(np.median(times)) * 1000, 1)}


def run_live_bench(config, fer: str | None | bool = None, progress: Callable[[str], None] = lambda s: None,
                   lights: tuple[str, ...] = ()) -> dict:
    from pcp_osc.perception import make_backend

    from .perception import measure_fer, with_fer

    result: dict = {"machine": {"cpus": os.cpu_count(), "load_avg_1m_at_start": round(os.getloadavg()[0], 2),
                                "python": sys.version.split()[0]}, "notes": []}
    progress("building the pan-and-cut video from the real scenes (pcp_osc/data/scenes)")
    video = pan_video()
    result["video"] = {"frames": len(video.frames), "fps": video.fps, "size": list(FRAME_SIZE), "cuts_at": video.cuts[1:],
                       "scenes": video.names, "visible_face_px": [round(v) for v in video.face_px],
                       "visible_faces_per_frame": round(float(np.mean([len(v) for v in video.visible])), 1)}
    backend = make_backend(config.perception)
    progress(f"pcp-osc ({backend.name}) on {len(video.frames)} frames ...")
    normal: dict = {}
    result["pcp_osc"] = r = measure_live(backend, video, normal)
    progress(f"  {r['fps']} fps, found {r['found_share'] * 100:.1f}% of visible face-frames")
    for light in lights:
        progress(f"the same video under stage light '{light}' ...")
        readings: dict = {}
        m = measure_live(make_backend(config.perception), lit(video, light), readings)
        result.setdefault("stage_light", {})[light] = {
            "fps": m["fps"], "found_share": m["found_share"], "face_frames_visible": m["face_frames_visible"],
            "false_per_frame": m["false_per_frame"], "id_switches": m["id_switches"], **compare_readings(normal, readings)}
    def fer_frames(py: str) -> None:
        idx = [i for i in range(len(video.frames)) if i % FER_EVERY == 0 and counted(video, i)]
        progress(f"fer on every {FER_EVERY}th counted frame ({len(idx)} frames) with {py} ...")
        f = measure_fer(py, {8: ([video.frames[i] for i in idx], [video.visible[i] for i in idx])}, 0.1)[8]
        result["fer"] = f
        result["pcp_osc"]["fps_ratio_vs_fer"] = round(r["fps"] / max(f["fps"], 1e-9), 1)

    with_fer(fer, result["notes"], fer_frames)
    progress(f"slow source: {len(SLOW_PICTURES)} pictures, one every {SLOW_INTERVAL_S:g} s ...")
    result["slow"] = measure_slow(make_backend(config.perception), slow_pictures())
    result["machine"]["load_avg_1m_at_end"] = round(os.getloadavg()[0], 2)
    return result


def format_live(result: dict) -> str:
    v, p, s = result["video"], result["pcp_osc"], result["slow"]
    f = result.get("fer")
    lines = [
        f"pcp-osc bench --live: {v['size'][0]}x{v['size'][1]} at {v['fps']:g} fps, {v['frames']} frames panning across "
        f"{' then '.join(v['scenes'])} (cut at frame {', '.join(map(str, v['cuts_at']))}); "
        f"{v['visible_faces_per_frame']} faces visible per frame, {v['visible_face_px'][0]}..{v['visible_face_px'][1]} px; "
        f"{result['machine']['cpus']} CPUs, load {result['machine']['load_avg_1m_at_start']} -> {result['machine']['load_avg_1m_at_end']}",
        f"pcp-osc: {p['fps']} fps (p50 {p['ms_p50']} ms, p95 {p['ms_p95']} ms, max {p['ms_max']} ms, {p['cpu_ms_per_frame']} CPU ms/frame); "
        f"found {p['found_share'] * 100:.1f}% of {p['face_frames_visible']} visible face-frames (from 1 s after start and cut); "
        f"{p['frames_with_a_face_missed']}/{p['frames_counted']} frames with a face missed; {p['false_per_frame']} false boxes/frame; at the cuts {', '.join(p['found_at_cut'])}; "
        f"{p['people']} people, {p['id_switches']} id switches between consecutive frames "
        f"({p['track_ids_per_person']} ids per person: the pan turns, people leave and come back); searches {p['searched_whole']}",
    ]
    if f:
        share = f["faces_found"] / max(1e-9, f["faces_placed"])
        lines.append(f"fer {f['version']}: {f['fps']} fps ({f['cpu_ms_per_frame']} CPU ms/frame), found {share * 100:.1f}% "
                     f"of visible face-frames on the same frames ({f['frames']} frames) -> pcp-osc / fer = {p.get('fps_ratio_vs_fer', '-')}x")
    for light, m in result.get("stage_light", {}).items():
        lines.append(f"under stage light '{light}': {m['fps']} fps, found {m['found_share'] * 100:.1f}% of {m['face_frames_visible']} "
                     f"visible face-frames, {m['false_per_frame']} false boxes/frame; emotion as in normal light: "
                     f"{m['face_frames_agree']}/{m['face_frames_compared']} face-frames "
                     f"({m['face_frames_agree'] / max(1, m['face_frames_compared']) * 100:.0f}%), "
                     f"{m['people_agree']}/{m['people_compared']} people over the shot, "
                     f"joy kept {m['joy_people_kept']}/{m['joy_people']}")
    lines.append(f"slow source (a picture every {SLOW_INTERVAL_S:g} s): {s['searched_whole']}/{s['pictures']} searched whole, "
                 f"found {s['found_share'] * 100:.1f}% of {s['faces']} faces, {s['false_boxes']} false boxes, {s['ms_p50']} ms per picture")
    lines += [f"note: {n}" for n in result["notes"]]
    return "\n".join(lines)
