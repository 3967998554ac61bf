"""The report's plots (matplotlib, drawn off-screen into embedded PNG)."""

from __future__ import annotations

import base64
import io
import json
import logging
import math
import time
from pathlib import Path

import numpy as np

from ..emotions import EMOTIONS
from .analysis import Show, override_spans

log = logging.getLogger("pcp_osc.report")

# Plot colours per emotion. The stage colours (palette) are used for the cue strip;
# these differ where a stage colour would vanish on paper (anxiety is white on stage).
PLOT_COLOURS = {"joy": "#f4c20d", "anxiety": "#8fa3b8", "anger": "#f26b1d", "sadness": "#2f5bea", "neutral": "#8e44c9"}
NO_FACES_COLOUR = "#c9ced6"
FIG_WIDTH_IN = 13.0
DPI = 110
SMOOTH_S = 20.0  # the shares plot is smoothed over this (live samples are noisy second to second)


CLOCK_STEPS_S = (5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800)


def clock_ticks(t0: float, duration_s: float, max_ticks: int = 12) -> tuple[list[float], list[str]]:
    """Time-axis ticks on round wall-clock times (every 5 s .. 3 h, the smallest step that
    gives at most ``max_ticks``): positions in minutes since ``t0`` and distinct labels,
    HH:MM, or HH:MM:SS when the step is under a minute."""
    duration_s = max(float(duration_s), 1.0)
    step = next((s for s in CLOCK_STEPS_S if duration_s / s <= max_ticks), CLOCK_STEPS_S[-1])
    # Round to the local clock: a tick at 20:15:00, not at 20:14:47.
    offset = time.localtime(t0).tm_gmtoff
    first = math.ceil((t0 + offset) / step) * step - offset
    ticks = np.arange(first, t0 + duration_s + 1e-6, step)
    fmt = "%H:%M:%S" if step < 60 else "%H:%M"
    return [float((t - t0) / 60.0) for t in ticks], [time.strftime(fmt, time.localtime(t)) for t in ticks]


# Marker names are often Korean (or Japanese, Chinese): matplotlib falls back glyph by glyph
# through this list, taking the first installed font that has the glyph. Debian's
# fonts-noto-cjk (installed by ./pcp test) and the NanumGothic that the report extra's
# koreanize-matplotlib wheel ships (registered from its folder, without importing it,
# which would change matplotlib's settings for the whole process).
LATIN_FONT = "DejaVu Sans"
CJK_FONTS = ("Noto Sans CJK KR", "Noto Sans KR", "NanumGothic", "Malgun Gothic", "Apple SD Gothic Neo",
             "AppleGothic", "Noto Sans CJK JP", "Noto Sans CJK SC", "Source Han Sans K", "Arial Unicode MS")
_fonts_cache: list[str] | None = None


def report_fonts() -> list[str]:
    """The font family list for the plots: DejaVu Sans, then every installed CJK font."""
    global _fonts_cache
    if _fonts_cache is None:
        import importlib.util

        from matplotlib import font_manager

        spec = importlib.util.find_spec("koreanize_matplotlib")
        for folder in (spec.submodule_search_locations or []) if spec else []:
            for ttf in sorted(Path(folder, "fonts").glob("NanumGothic*.ttf")):
                try:
                    font_manager.fontManager.addfont(str(ttf))
                except (OSError, RuntimeError) as e:
                    log.debug("cannot register %s: %s", ttf, e)
        installed = {f.name for f in font_manager.fontManager.ttflist}
        cjk = [name for name in CJK_FONTS if name in installed]
        if not cjk:
            log.warning("no font for Korean text is installed: Korean marker names will show as boxes in the plots; "
                        "install Debian's fonts-noto-cjk or pip install 'pcp-osc[report]'")
        _fonts_cache = [LATIN_FONT, *cjk]
    return _fonts_cache


def _with_report_fonts(draw):
    """Draw (and save) a figure with the report's font list."""
    import functools

    @functools.wraps(draw)
    def wrapper(*args, **kwargs):
        import matplotlib

        with matplotlib.rc_context({"font.family": report_fonts()}):
            return draw(*args, **kwargs)

    return wrapper



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


def _style_axis(ax) -> None:
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.spines["left"].set_color("#999")
    ax.spines["bottom"].set_color("#999")
    ax.tick_params(colors="#444", labelsize=9)


@_with_report_fonts
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
    for a, b, emo in override_spans(show):
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
    positions, labels = clock_ticks(t0, show.duration_s)
    ax_f.set_xticks(positions, labels)
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




@_with_report_fonts
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
