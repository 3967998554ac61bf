"""The report's page: one self-contained HTML file (styles inline, plots embedded)."""

from __future__ import annotations

import base64
import html
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..emotions import EMOTIONS
from .analysis import (
    INTERVENTIONS, Show, audience_mostly, clock, mean_faces_per_frame, moved_toward, override_spans, show_mean_shares, span,
)
from .plots import PLOT_COLOURS, SMOOTH_S

MAX_THUMBNAILS = 60


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
    lead = audience_mostly(show) or "—"
    mean_faces = mean_faces_per_frame(show)
    override_s = sum(b - a for a, b, _ in override_spans(show))
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


def _moved(mv: tuple[str, float] | None) -> str:
    """'joy +6 pp'; a song that moved no emotion by half a point or more is 'as the whole show'
    (it read 'anxiety +0 pp')."""
    if mv is None:
        return "—"
    if mv[1] < 0.5:
        return "as the whole show"
    return _chip(mv[0]) + f"{mv[0]} {mv[1]:+.0f} pp"


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
            f"<td>{_moved(mv)}</td></tr>"
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
