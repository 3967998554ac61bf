"""The post-show report: one show log in, one self-contained HTML file out.

``build_report(show_db, out_html, csv_dir=None)``. The page needs nothing beside
itself (plots are PNG embedded as base64, styles inline) so it can be mailed to
the artist. It answers what the original project promised: which songs moved the
audience toward which emotion. It reads logs of killed daemons too (SQLite
replays their WAL on open).
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .emotions import EMOTIONS
from .showlog import connect, schema_version

log = logging.getLogger("pcp_osc.report")

# Plot colours per emotion. The stage colours (palette) are used for the cue strip;
# these differ where a stage colour would vanish on paper (anxiety is white on stage).
PLOT_COLOURS = {"joy": "#f4c20d", "anxiety": "#8fa3b8", "anger": "#f26b1d", "sadness": "#2f5bea", "neutral": "#8e44c9"}
NO_FACES_COLOUR = "#c9ced6"
FIG_WIDTH_IN = 13.0
DPI = 110
MAX_THUMBNAILS = 60
SMOOTH_S = 20.0  # the shares plot is smoothed over this (live samples are noisy second to second)
INTERVENTIONS = ("intent", "override", "release", "window", "blend", "generate")


# --------------------------------------------------------------------------- data


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


def moved_toward(seg: Segment, overall: np.ndarray) -> tuple[str, float] | None:
    """The emotion whose share rose most in this segment against the whole show, in percentage points."""
    if np.isnan(seg.mean_shares).any() or np.isnan(overall).any():
        return None
    delta = (seg.mean_shares - overall) * 100.0
    k = int(delta.argmax())
    return EMOTIONS[k], float(delta[k])


# --------------------------------------------------------------------------- formatting


def clock(t: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(t))


def span(seconds: float) -> str:
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _png(fig) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, facecolor=fig.get_facecolor())
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _smooth(values: np.ndarray, t: np.ndarray, window_s: float) -> np.ndarray:
    if len(t) < 3:
        return values
    step = float(np.median(np.diff(t))) or 1.0
    n = max(1, int(round(window_s / step)))
    if n <= 1:
        return values
    kernel = np.ones(n) / n
    pad = np.pad(values, ((n // 2, n - 1 - n // 2), (0, 0)), mode="edge")
    return np.stack([np.convolve(pad[:, j], kernel, mode="valid") for j in range(values.shape[1])], axis=1)


# --------------------------------------------------------------------------- plots


def _style_axis(ax) -> None:
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.spines["left"].set_color("#999")
    ax.spines["bottom"].set_color("#999")
    ax.tick_params(colors="#444", labelsize=9)


def timeline_figure(show: Show) -> str:
    """Setlist bands, emotion shares, cue colours, interventions and faces on one clock axis."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    t0 = show.start
    total_min = max(show.duration_s / 60.0, 1e-3)
    fig = Figure(figsize=(FIG_WIDTH_IN, 8.6), facecolor="white")
    gs = fig.add_gridspec(5, 1, height_ratios=[0.55, 3.2, 0.45, 0.5, 1.3], hspace=0.12,
                          left=0.075, right=0.985, top=0.93, bottom=0.07)
    ax_set, ax_sh, ax_cue, ax_op, ax_f = (fig.add_subplot(gs[i]) for i in range(5))
    for ax in (ax_sh, ax_cue, ax_op, ax_f):
        ax.sharex(ax_set)
    ax_set.set_xlim(0, total_min)

    # setlist: labelled bands, one per marker
    seg_bounds = [(s.name, (s.start - t0) / 60.0, (s.end - t0) / 60.0) for s in show.segments]
    for i, (name, a, b) in enumerate(seg_bounds):
        shade = "#eef1f6" if i % 2 == 0 else "#dde3ec"
        ax_set.axvspan(a, b, color=shade, lw=0)
        width_frac = (b - a) / total_min
        label = name if len(name) <= max(4, int(width_frac * 150)) else name[: max(3, int(width_frac * 150) - 1)] + "…"
        ax_set.text((a + b) / 2, 0.5, label, ha="center", va="center", fontsize=8.5, color="#223", clip_on=True)
        for ax in (ax_sh, ax_cue, ax_op, ax_f):
            ax.axvline(a, color="#334", lw=0.8, ls=(0, (3, 3)), alpha=0.55, zorder=5)
    ax_set.set_yticks([])
    ax_set.set_ylabel("setlist", rotation=0, ha="right", va="center", fontsize=9, color="#444")
    for side in ax_set.spines.values():
        side.set_visible(False)
    ax_set.tick_params(labelbottom=False, bottom=False)

    # emotion shares (audience, smoothed)
    if len(show.live_t):
        x = (show.live_t - t0) / 60.0
        shares = _smooth(show.live_shares, show.live_t, SMOOTH_S)
        ax_sh.stackplot(x, shares.T, colors=[PLOT_COLOURS[e] for e in EMOTIONS], lw=0, alpha=0.95)
        for a, b in _runs(show.live_faces <= 0):  # stretches where the camera saw nobody
            ax_sh.axvspan(x[a], x[min(b, len(x) - 1)], color=NO_FACES_COLOUR, lw=0, zorder=3)
    elif show.cues:
        x = np.array([(c["wall_time"] - t0) / 60.0 for c in show.cues])
        shares = np.array([[c[e] for e in EMOTIONS] for c in show.cues])
        ax_sh.stackplot(x, shares.T, colors=[PLOT_COLOURS[e] for e in EMOTIONS], lw=0, step="post")
    ax_sh.set_ylim(0, 1)
    ax_sh.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.0%}"))
    ax_sh.set_ylabel("audience\nemotion shares", fontsize=9, color="#444")
    handles = [Patch(color=PLOT_COLOURS[e], label=e) for e in EMOTIONS] + [Patch(color=NO_FACES_COLOUR, label="no faces seen")]
    ax_sh.legend(handles=handles, ncol=6, loc="lower left", bbox_to_anchor=(0, 1.0 + 0.55 / 3.2 + 0.07), frameon=False,
                 fontsize=9, handlelength=1.2, columnspacing=1.4)

    # the stage colour each cue sent
    for i, c in enumerate(show.cues):
        a = (c["wall_time"] - t0) / 60.0
        b = (show.cues[i + 1]["wall_time"] - t0) / 60.0 if i + 1 < len(show.cues) else total_min
        ax_cue.axvspan(a, b, color=c["hex"], lw=0)
    ax_cue.set_facecolor("#111")
    ax_cue.set_yticks([])
    ax_cue.set_ylabel("cue colour", rotation=0, ha="right", va="center", fontsize=9, color="#444")

    # interventions: override spans, intent changes, refused messages
    override_spans = _override_spans(show)
    for a, b, emo in override_spans:
        ax_op.axvspan((a - t0) / 60.0, (b - t0) / 60.0, color=PLOT_COLOURS.get(emo, "#c33"), alpha=0.5, lw=0, hatch="///")
    for c in show.controls:
        name = c["address"].rsplit("/", 1)[-1]
        x = (c["wall_time"] - t0) / 60.0
        if name == "intent" and c["accepted"]:
            emo = (json.loads(c["args"]) or ["?"])[0]
            ax_op.plot([x], [0.5], marker="v", color=PLOT_COLOURS.get(str(emo), "#333"), ms=9, mec="#222", mew=0.6)
        elif not c["accepted"]:
            ax_op.plot([x], [0.5], marker="x", color="#c0392b", ms=7, mew=1.6)
    ax_op.set_ylim(0, 1)
    ax_op.set_yticks([])
    ax_op.set_ylabel("operator", rotation=0, ha="right", va="center", fontsize=9, color="#444")

    # faces
    if len(show.live_t):
        x = (show.live_t - t0) / 60.0
        ax_f.plot(x, show.live_faces, color="#9aa", lw=0.5, alpha=0.7)
        ax_f.plot(x, _smooth(show.live_faces[:, None], show.live_t, 60.0)[:, 0], color="#245", lw=1.6)
    elif show.cues:
        ax_f.step([(c["wall_time"] - t0) / 60.0 for c in show.cues], [c["faces"] for c in show.cues], color="#245", where="post")
    ax_f.set_ylim(bottom=0)
    ax_f.yaxis.set_major_locator(MaxNLocator(4, integer=True))
    ax_f.set_ylabel("faces seen", fontsize=9, color="#444")
    ax_f.xaxis.set_major_locator(MaxNLocator(12))
    ax_f.xaxis.set_major_formatter(FuncFormatter(lambda m, _: clock(t0 + m * 60.0)[:5] if m >= 0 else ""))
    for ax in (ax_sh, ax_cue, ax_op):
        ax.tick_params(labelbottom=False)
    for ax in (ax_sh, ax_f):
        _style_axis(ax)
    for ax in (ax_cue, ax_op):
        for side in ax.spines.values():
            side.set_visible(False)
        ax.tick_params(bottom=False)
    return _png(fig)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) index pairs of the True runs in a boolean array."""
    m = np.concatenate([[False], np.asarray(mask, bool), [False]])
    edges = np.flatnonzero(np.diff(m.astype(np.int8)))
    return list(zip(edges[0::2].tolist(), edges[1::2].tolist()))


def _override_spans(show: Show) -> list[tuple[float, float, str]]:
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


def segments_figure(show: Show) -> str:
    """One bar per marker: the share of its audience time each emotion dominated."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    segs = show.segments
    fig = Figure(figsize=(FIG_WIDTH_IN, 0.9 + 0.42 * len(segs)), facecolor="white")
    ax = fig.add_axes([0.24, 0.9 / (0.9 + 0.42 * len(segs)) * 0.7, 0.74, 1 - 0.9 / (0.9 + 0.42 * len(segs))])
    y = np.arange(len(segs))[::-1]
    for yi, s in zip(y, segs):
        total = s.seconds_by_emotion.sum() + s.no_faces_s
        left = 0.0
        parts = [(PLOT_COLOURS[e], s.seconds_by_emotion[k], e) for k, e in enumerate(EMOTIONS)] + [(NO_FACES_COLOUR, s.no_faces_s, "")]
        for colour, secs, e in parts:
            frac = secs / total if total else 0.0
            if frac <= 0:
                continue
            ax.barh(yi, frac, left=left, color=colour, height=0.72, lw=0)
            if frac > 0.07 and e:
                ax.text(left + frac / 2, yi, f"{frac:.0%}", ha="center", va="center", fontsize=8.5,
                        color="white" if e in ("sadness", "neutral", "anger") else "#222")
            left += frac
    ax.set_yticks(y, [s.name if len(s.name) < 38 else s.name[:36] + "…" for s in segs], fontsize=9.5)
    ax.set_xlim(0, 1)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.0%}"))
    ax.set_xlabel("share of the song's time each emotion led the audience (grey: no faces seen)", fontsize=9, color="#444")
    _style_axis(ax)
    ax.spines["left"].set_visible(False)
    ax.tick_params(left=False)
    return _png(fig)


# --------------------------------------------------------------------------- html

CSS = """
:root { --ink:#1d2430; --muted:#5d6878; --line:#e3e7ee; --card:#f6f8fb; }
* { box-sizing: border-box; }
body { margin:0; font: 15px/1.45 -apple-system, "Segoe UI", Roboto, "Noto Sans", "Helvetica Neue", Arial, sans-serif; color:var(--ink); background:#fff; }
header { background:#141a24; color:#f2f4f8; padding:28px 40px 22px; }
header h1 { margin:0 0 4px; font-size:26px; font-weight:650; letter-spacing:.2px; }
header .sub { color:#aab4c3; font-size:14px; }
main { padding:10px 40px 60px; max-width:1480px; }
h2 { font-size:19px; margin:34px 0 6px; }
p.note { color:var(--muted); margin:2px 0 12px; font-size:13.5px; }
.cards { display:flex; flex-wrap:wrap; gap:12px; margin:18px 0 4px; }
.card { background:var(--card); border:1px solid var(--line); border-radius:10px; padding:10px 16px; min-width:140px; }
.card .k { color:var(--muted); font-size:12px; text-transform:uppercase; letter-spacing:.6px; }
.card .v { font-size:21px; font-weight:600; margin-top:2px; }
.warn { background:#fff6e0; border:1px solid #f0d48a; border-radius:10px; padding:10px 16px; margin:14px 0; }
img.plot { width:100%; height:auto; border:1px solid var(--line); border-radius:8px; }
table { border-collapse:collapse; width:100%; font-size:13.5px; margin-top:8px; }
th, td { text-align:left; padding:6px 10px; border-bottom:1px solid var(--line); vertical-align:top; }
th { background:var(--card); font-weight:600; color:#39424f; position:sticky; top:0; }
td.num, th.num { text-align:right; font-variant-numeric: tabular-nums; }
tr.refused td { color:#a33; }
.chip { display:inline-block; width:11px; height:11px; border-radius:3px; margin-right:6px; vertical-align:-1px; border:1px solid rgba(0,0,0,.15); }
.thumbs { display:grid; grid-template-columns:repeat(auto-fill, minmax(210px, 1fr)); gap:12px; margin-top:10px; }
.thumb { border:1px solid var(--line); border-radius:8px; overflow:hidden; background:var(--card); }
.thumb img { width:100%; display:block; aspect-ratio:16/9; object-fit:cover; }
.thumb div { padding:6px 8px; font-size:12px; color:var(--muted); }
footer { color:var(--muted); font-size:12px; margin-top:40px; }
"""


def _esc(v: Any) -> str:
    return html.escape(str(v), quote=True)


def _chip(emotion: str) -> str:
    return f'<span class="chip" style="background:{PLOT_COLOURS.get(emotion, "#ccc")}"></span>'


def render_html(show: Show, timeline_png: str, segments_png: str) -> str:
    overall = show_mean_shares(show)
    audience_cues = [c for c in show.cues if c["source"] == "audience"]
    counts = np.bincount([int(c["emotion_index"]) for c in audience_cues], minlength=len(EMOTIONS)) if audience_cues else None
    lead = EMOTIONS[int(counts.argmax())] if counts is not None else "—"
    mean_faces = float(show.live_faces.mean()) if len(show.live_faces) else (
        float(np.mean([c["faces"] for c in show.cues])) if show.cues else 0.0)
    overrides = _override_spans(show)
    override_s = sum(b - a for a, b, _ in overrides)
    date = time.strftime("%A %d %B %Y", time.localtime(show.start))
    cards = [
        ("start", clock(show.start)[:5]), ("length", span(show.duration_s)), ("cues", len(show.cues)),
        ("markers", len(show.markers)), ("faces (mean)", f"{mean_faces:.1f}"), ("audience mostly", f"{_chip(lead)}{lead}"),
        ("under override", span(override_s)),
    ]
    out = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<meta name='viewport' content='width=device-width, initial-scale=1'><title>Show report · {_esc(show.name)}</title>",
        f"<style>{CSS}</style></head><body>",
        f"<header><h1>Show report · {_esc(show.name)}</h1>",
        f"<div class='sub'>{_esc(date)} · {clock(show.start)} – {clock(show.end)} · pcp-osc {_esc(show.meta.get('pcp_osc_version', ''))}</div></header><main>",
        "<div class='cards'>" + "".join(f"<div class='card'><div class='k'>{k}</div><div class='v'>{v}</div></div>" for k, v in cards) + "</div>",
    ]
    if not show.clean_end:
        out.append(
            f"<div class='warn'><b>The log ends without a clean stop</b> (the daemon was killed or the machine went down). "
            f"Everything acknowledged up to {clock(show.end)} is here.</div>"
        )
    out += [
        "<h2>The show at a glance</h2>",
        "<p class='note'>Top: the running order (markers). Then the audience's emotion shares (smoothed over "
        f"{SMOOTH_S:.0f} s; grey where no faces were seen), the stage colour each cue sent, the operator's interventions "
        "(hatched: override, ▼ intent change, ✕ refused message) and the faces the camera saw.</p>",
        f"<img class='plot' alt='show timeline: emotion shares, setlist, cue colours, interventions and faces' src='{timeline_png}'>",
        "<h2>Which song moved the audience where</h2>",
        "<p class='note'>Time each emotion led the audience during each marker's stretch of the show, and the emotion "
        "whose share rose most against the whole show's average (percentage points).</p>",
        f"<img class='plot' alt='time per dominant emotion per marker' src='{segments_png}'>",
        _segments_table(show, overall),
        "<h2>Interventions</h2>",
        _controls_table(show),
    ]
    out.append(_backgrounds_html(show))
    out.append(
        f"<footer>From {_esc(show.path.name)} · schema v{_esc(show.meta.get('schema', ''))}"
        f" · {len(show.live_t)} live samples · report made {time.strftime('%Y-%m-%d %H:%M')}. "
        "No audience images are in this report.</footer></main></body></html>"
    )
    return "\n".join(out)


def _segments_table(show: Show, overall: np.ndarray) -> str:
    head = "".join(f"<th class='num'>{_chip(e)}{e}</th>" for e in EMOTIONS)
    rows = []
    for i, s in enumerate(show.segments, 1):
        audience_s = s.seconds_by_emotion.sum()
        dom = EMOTIONS[int(s.seconds_by_emotion.argmax())] if audience_s > 0 else None
        mv = moved_toward(s, overall)
        cells = "".join(f"<td class='num'>{span(v) if v > 0 else '–'}</td>" for v in s.seconds_by_emotion)
        rows.append(
            f"<tr><td class='num'>{i}</td><td>{_esc(s.name)}</td><td class='num'>{clock(s.start)[:5]}</td>"
            f"<td class='num'>{span(s.length_s)}</td>{cells}<td class='num'>{span(s.no_faces_s) if s.no_faces_s > 0.5 else '–'}</td>"
            f"<td>{_chip(dom) + dom if dom else '—'}</td>"
            f"<td>{(_chip(mv[0]) + f'{mv[0]} {mv[1]:+.0f} pp') if mv else '—'}</td></tr>"
        )
    return (
        "<table><thead><tr><th class='num'>#</th><th>marker</th><th class='num'>at</th><th class='num'>length</th>"
        f"{head}<th class='num'>no faces</th><th>led by</th><th>moved toward</th></tr></thead><tbody>"
        + "".join(rows) + "</tbody></table>"
    )


def _controls_table(show: Show) -> str:
    rows = []
    for c in show.controls:
        name = c["address"].rsplit("/", 1)[-1]
        if name not in INTERVENTIONS and c["accepted"]:
            continue  # markers are the setlist above; pings are noise
        args = ", ".join(map(str, json.loads(c["args"]) or []))
        cls = "" if c["accepted"] else " class='refused'"
        result = "done" if c["accepted"] else "refused"
        rows.append(
            f"<tr{cls}><td class='num'>{clock(c['wall_time'])}</td><td>{_esc(name)}</td><td>{_esc(args)}</td>"
            f"<td>{_esc(c['sender'])}</td><td>{result}: {_esc(c['message'])}</td></tr>"
        )
    if not rows:
        return "<p class='note'>Nobody changed the show by hand: every cue came from the audience or the intent.</p>"
    return ("<table><thead><tr><th class='num'>time</th><th>what</th><th>value</th><th>from</th><th>result</th></tr></thead><tbody>"
            + "".join(rows) + "</tbody></table>")


def _backgrounds_html(show: Show) -> str:
    kept = [b for b in show.backgrounds if b["thumb_jpeg"] or (b["file"] and Path(b["file"]).is_file())]
    if not show.backgrounds:
        return ""
    head = f"<h2>Backgrounds</h2><p class='note'>{len(show.backgrounds)} backgrounds generated"
    if not kept:
        return head + "; none was kept (no thumbnails in the log and no files).</p>"
    pick = kept if len(kept) <= MAX_THUMBNAILS else [kept[int(i)] for i in np.linspace(0, len(kept) - 1, MAX_THUMBNAILS)]
    head += f"; {len(pick)} shown{' (evenly over the show)' if len(pick) < len(kept) else ''}.</p>"
    tiles = []
    for b in pick:
        data = b["thumb_jpeg"]
        if not data:
            data = _file_thumbnail(Path(b["file"]))
        if not data:
            continue
        src = "data:image/jpeg;base64," + base64.b64encode(data).decode("ascii")
        tiles.append(
            f"<div class='thumb'><img src='{src}' alt='background {b['bg_id']}'>"
            f"<div>{clock(b['wall_time'])} · cue {b['cue_id']} · {_esc(b['generator'])} · seed {b['seed']}"
            f"<br>{_esc(b['prompt'][:90])}</div></div>"
        )
    return head + "<div class='thumbs'>" + "".join(tiles) + "</div>"


def _file_thumbnail(path: Path) -> bytes | None:
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        return None
    h, w = img.shape[:2]
    small = cv2.resize(img, (320, max(1, int(h * 320 / w))), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 80])
    return bytes(buf) if ok else None


# --------------------------------------------------------------------------- csv


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


# --------------------------------------------------------------------------- entry


def build_report(show_db: str | Path, out_html: str | Path, csv_dir: str | Path | None = None) -> dict[str, Any]:
    """Write the HTML report (and the CSV tables). Returns what was made and how long each step took."""
    t = time.perf_counter()
    show = load_show(show_db)
    timings = {"load_s": time.perf_counter() - t}
    t = time.perf_counter()
    timeline = timeline_figure(show)
    segs = segments_figure(show)
    timings["plots_s"] = time.perf_counter() - t
    t = time.perf_counter()
    page = render_html(show, timeline, segs)
    out = Path(out_html)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".part")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(out)
    csv_files = write_csv(show, csv_dir) if csv_dir else []
    timings["write_s"] = time.perf_counter() - t
    return {"html": out, "csv": csv_files, "show": show, "timings": timings, "bytes": out.stat().st_size}
