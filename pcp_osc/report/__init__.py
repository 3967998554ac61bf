"""The post-show report: one show log in, one self-contained HTML file out.

``build_report(show_db, out_html, csv_dir=None)``. The page needs nothing beside
itself (plots are PNG embedded as base64, styles inline) so it can be mailed to
the artist. It answers what the original project promised: which songs moved the
audience toward which emotion. It reads logs of killed daemons too (SQLite
replays their WAL on open).

    analysis.py   the log read back (load_show), segments per marker, moved-toward, CSV tables
    plots.py      the timeline and per-marker figures (matplotlib)
    page.py       the HTML page and its CSS
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from .analysis import INTERVENTIONS, Segment, Show, load_show, moved_toward, segments, show_mean_shares, write_csv
from .page import render_html
from .plots import PLOT_COLOURS, segments_figure, timeline_figure

__all__ = [
    "INTERVENTIONS", "PLOT_COLOURS", "Segment", "Show", "build_report", "load_show", "moved_toward", "render_html",
    "segments", "segments_figure", "show_mean_shares", "timeline_figure", "write_csv",
]


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
    try:
        tmp.write_text(page, encoding="utf-8")
        tmp.replace(out)
    except OSError:
        tmp.unlink(missing_ok=True)  # no half-written .part left beside it
        raise
    csv_files = write_csv(show, csv_dir) if csv_dir else []
    timings["write_s"] = time.perf_counter() - t
    return {"html": out, "csv": csv_files, "show": show, "timings": timings, "bytes": out.stat().st_size}
