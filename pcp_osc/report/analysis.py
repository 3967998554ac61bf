"""The post-show analysis: a show log read back, split at its markers, and what moved the
audience where. No plotting or HTML here (plots.py and page.py render it)."""

from __future__ import annotations

import csv
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..emotions import EMOTIONS
from ..osc import CONTROL_NAMES
from ..showlog import connect, schema_version

# Show-control messages the report lists as interventions (markers are the setlist; pings are noise).
INTERVENTIONS = tuple(name for name in CONTROL_NAMES if name not in ("marker", "ping"))


@dataclass
class Segment:
    """A stretch of the show between two markers (a song or a cue in the running order)."""

    name: str
    start: float
    end: float
    seconds_by_emotion: np.ndarray  # (5,) audience time per dominant emotion
    no_faces_s: float
    mean_shares: np.ndarray  # (5,) mean audience shares (nan when no faces)
    cues: int

    @property
    def length_s(self) -> float:
        return self.end - self.start


@dataclass
class Show:
    path: Path
    name: str
    start: float
    end: float
    clean_end: bool
    meta: dict[str, str]
    cues: list[dict[str, Any]]
    live_t: np.ndarray
    live_shares: np.ndarray  # (n, 5)
    live_faces: np.ndarray
    markers: list[tuple[float, str]]
    controls: list[dict[str, Any]]
    backgrounds: list[dict[str, Any]]
    segments: list[Segment] = field(default_factory=list)

    @property
    def duration_s(self) -> float:
        return max(0.0, self.end - self.start)


def _rows(conn, sql: str) -> list[dict[str, Any]]:
    cur = conn.execute(sql)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r)) for r in cur.fetchall()]


def load_show(path: str | Path) -> Show:
    """Read a show log (any schema version; migrated on open)."""
    p = Path(path)
    conn = connect(p)
    try:
        meta = {k: v for k, v in conn.execute("SELECT key, value FROM meta")}
        meta["schema"] = str(schema_version(conn))
        cues = _rows(conn, "SELECT * FROM cues ORDER BY wall_time, seq")
        live = np.array(
            conn.execute(f"SELECT wall_time, faces, {', '.join(EMOTIONS)} FROM live ORDER BY wall_time").fetchall(),
            dtype=np.float64,
        ).reshape(-1, 2 + len(EMOTIONS))
        markers = [(float(t), str(n)) for t, n in conn.execute("SELECT wall_time, name FROM markers ORDER BY wall_time, seq")]
        controls = _rows(conn, "SELECT wall_time, address, args, sender, accepted, message FROM controls ORDER BY wall_time, seq")
        backgrounds = _rows(conn, "SELECT bg_id, cue_id, wall_time, prompt, seed, seconds, generator, file, note, thumb_jpeg "
                                  "FROM backgrounds ORDER BY wall_time, seq")
    finally:
        conn.close()
    times = [c["wall_time"] for c in cues] + live[:, 0].tolist() + [t for t, _ in markers]
    times += [c["wall_time"] for c in controls] + [b["wall_time"] for b in backgrounds]
    if times:  # the events say when the show ran (an imported or simulated log was written later)
        start, last = min(times), max(times)
    else:
        start = float(meta.get("started_wall", 0.0))
        last = float(meta.get("ended_wall", start))
    if cues:  # the last cue covers its window
        last = max(last, cues[-1]["wall_time"] + 1.0)
    clean = "ended_wall" in meta
    show = Show(
        path=p, name=meta.get("name", p.stem), start=start, end=last, clean_end=clean, meta=meta, cues=cues,
        live_t=live[:, 0], live_faces=live[:, 1], live_shares=live[:, 2:], markers=markers, controls=controls,
        backgrounds=backgrounds,
    )
    show.segments = segments(show)
    return show


def _sample_seconds(t: np.ndarray) -> np.ndarray:
    """How long each live sample stands for: the gap to the next, capped so a pause in logging is not counted."""
    if len(t) == 0:
        return np.zeros(0)
    if len(t) == 1:
        return np.ones(1)
    dt = np.diff(t)
    typical = float(np.median(dt))
    dt = np.minimum(dt, 3.0 * typical)
    return np.append(dt, typical)


def segments(show: Show) -> list[Segment]:
    """Split the show at its markers; time per dominant emotion and mean shares per segment."""
    bounds: list[tuple[str, float]] = []
    if not show.markers or show.markers[0][0] - show.start > 5.0:
        bounds.append(("(before the first marker)" if show.markers else "(whole show)", show.start))
    bounds += [(name, t) for t, name in show.markers]
    out: list[Segment] = []
    dt = _sample_seconds(show.live_t)
    use_live = len(show.live_t) > 0
    for i, (name, t0) in enumerate(bounds):
        t1 = bounds[i + 1][1] if i + 1 < len(bounds) else show.end
        if t1 <= t0:
            continue
        secs = np.zeros(len(EMOTIONS))
        no_faces = 0.0
        mean = np.full(len(EMOTIONS), np.nan)
        if use_live:
            sel = (show.live_t >= t0) & (show.live_t < t1)
            seen = sel & (show.live_faces > 0)
            dom = show.live_shares[seen].argmax(axis=1) if seen.any() else np.zeros(0, int)
            np.add.at(secs, dom, dt[seen])
            no_faces = float(dt[sel & ~seen].sum())
            if seen.any():
                mean = np.average(show.live_shares[seen], axis=0, weights=dt[seen])
        n_cues = 0
        cue_shares = []
        for c in show.cues:
            if t0 <= c["wall_time"] < t1:
                n_cues += 1
                if not use_live:
                    w = float(c["window_s"])
                    if c["source"] == "audience":
                        secs[int(c["emotion_index"])] += w
                        cue_shares.append([c[e] for e in EMOTIONS])
                    else:
                        no_faces += w
        if not use_live and cue_shares:
            mean = np.mean(cue_shares, axis=0)
        out.append(Segment(name, t0, t1, secs, no_faces, mean, n_cues))
    return out


def show_mean_shares(show: Show) -> np.ndarray:
    seen = show.live_faces > 0
    if seen.any():
        return np.average(show.live_shares[seen], axis=0, weights=_sample_seconds(show.live_t)[seen])
    rows = [[c[e] for e in EMOTIONS] for c in show.cues if c["source"] == "audience"]
    return np.mean(rows, axis=0) if rows else np.full(len(EMOTIONS), np.nan)


def audience_mostly(show: Show) -> str | None:
    """The emotion most audience cues carried (None when no cue came from the audience)."""
    audience = [int(c["emotion_index"]) for c in show.cues if c["source"] == "audience"]
    return EMOTIONS[int(np.bincount(audience, minlength=len(EMOTIONS)).argmax())] if audience else None


def mean_faces_per_frame(show: Show) -> float:
    if len(show.live_faces):
        return float(show.live_faces.mean())
    return float(np.mean([c["faces"] for c in show.cues])) if show.cues else 0.0


def moved_toward(seg: Segment, overall: np.ndarray) -> tuple[str, float] | None:
    """The emotion whose share rose most in this segment against the whole show, in percentage points."""
    if np.isnan(seg.mean_shares).any() or np.isnan(overall).any():
        return None
    delta = (seg.mean_shares - overall) * 100.0
    k = int(delta.argmax())
    return EMOTIONS[k], float(delta[k])


def override_spans(show: Show) -> list[tuple[float, float, str]]:
    """(start, end, emotion) for each stretch the show was under override, from the cues' sources."""
    spans: list[tuple[float, float, str]] = []
    open_at, emo = None, ""
    for c in show.cues:
        if c["source"] == "override" and open_at is None:
            open_at, emo = c["wall_time"], c["emotion"]
        elif c["source"] != "override" and open_at is not None:
            spans.append((open_at, c["wall_time"], emo))
            open_at = None
    if open_at is not None:
        spans.append((open_at, show.end, emo))
    return spans


def clock(t: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(t))


def span(seconds: float) -> str:
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def write_csv(show: Show, folder: str | Path) -> list[Path]:
    """The report's tables as CSV files (times as ISO local time and as seconds since the show started)."""
    d = Path(folder)
    d.mkdir(parents=True, exist_ok=True)
    iso = lambda t: time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(t)) + f".{int((t % 1) * 1000):03d}"  # noqa: E731
    out = []

    def write(name: str, header: list[str], rows: list[list[Any]]) -> None:
        p = d / name
        with p.open("w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(header)
            w.writerows(rows)
        out.append(p)

    cue_cols = ["cue_id", "emotion", "confidence", "source", "reason", "faces", "intent", "window_s", "hex", *EMOTIONS]
    write("cues.csv", ["time", "show_s", *cue_cols],
          [[iso(c["wall_time"]), round(c["wall_time"] - show.start, 3), *[c[k] for k in cue_cols]] for c in show.cues])
    write("live.csv", ["time", "show_s", "faces", *EMOTIONS],
          [[iso(t), round(t - show.start, 3), f, *[round(float(v), 4) for v in s]]
           for t, f, s in zip(show.live_t, show.live_faces, show.live_shares)])
    write("markers.csv", ["time", "show_s", "name"], [[iso(t), round(t - show.start, 3), n] for t, n in show.markers])
    write("controls.csv", ["time", "show_s", "address", "args", "sender", "accepted", "message"],
          [[iso(c["wall_time"]), round(c["wall_time"] - show.start, 3), c["address"], c["args"], c["sender"], c["accepted"], c["message"]]
           for c in show.controls])
    write("backgrounds.csv", ["time", "show_s", "bg_id", "cue_id", "generator", "seed", "seconds", "prompt", "file", "note"],
          [[iso(b["wall_time"]), round(b["wall_time"] - show.start, 3), b["bg_id"], b["cue_id"], b["generator"], b["seed"],
            b["seconds"], b["prompt"], b["file"] or "", b["note"]] for b in show.backgrounds])
    overall = show_mean_shares(show)
    seg_rows = []
    for s in show.segments:
        mv = moved_toward(s, overall)
        seg_rows.append([s.name, iso(s.start), round(s.length_s, 1), *[round(float(v), 1) for v in s.seconds_by_emotion],
                         round(s.no_faces_s, 1), *(["", ""] if mv is None else [mv[0], round(mv[1], 1)]), s.cues])
    write("markers_emotion_time.csv",
          ["marker", "start", "length_s", *[f"{e}_s" for e in EMOTIONS], "no_faces_s", "moved_toward", "moved_pp", "cues"], seg_rows)
    return out
