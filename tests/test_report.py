"""The post-show report on generated show logs: the HTML is self-contained, holds the
plots and the setlist, the CSV tables add up, and a killed daemon's log reports."""

from __future__ import annotations

import base64
import csv
import io
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pcp_osc.report import PLOT_COLOURS, build_report, load_show
from pcp_osc.showlog import MIGRATIONS, ShowLog
from pcp_bench.showsim import SONGS, write_show

from _browser import launch, screenshot_path

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def hour_log(tmp_path_factory) -> tuple[Path, dict]:
    path = tmp_path_factory.mktemp("show") / "show-hour.db"
    log = ShowLog(path, live_sample_hz=1.0)
    counts = write_show(log, minutes=60)
    log.close()
    return path, counts


def _embedded_pngs(page: str) -> list[Image.Image]:
    return [Image.open(io.BytesIO(base64.b64decode(m))) for m in re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", page)]


def _has_colour(img: Image.Image, hex_colour: str, min_pixels: int = 500) -> bool:
    px = np.asarray(img.convert("RGB")).reshape(-1, 3).astype(int)
    target = np.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)])
    return int((np.abs(px - target).sum(axis=1) < 30).sum()) >= min_pixels


def test_report_of_an_hour_has_the_plots_the_setlist_and_the_tables(hour_log, tmp_path: Path) -> None:
    db, counts = hour_log
    out = tmp_path / "report.html"
    csv_dir = tmp_path / "tables"
    r = subprocess.run([sys.executable, "-m", "pcp_osc", "report", str(db), "--out", str(out), "--csv", str(csv_dir)],
                       capture_output=True, text=True, cwd=REPO, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"{counts['cues']} cues, 7 markers" in r.stdout
    page = out.read_text(encoding="utf-8")
    assert "http://" not in page and "https://" not in page and "<script" not in page, "the report must stand alone"
    pngs = _embedded_pngs(page)
    assert len(pngs) == 2
    timeline, per_song = pngs
    assert timeline.size[0] >= 1200 and timeline.size[1] >= 800
    for emotion in ("joy", "sadness", "anger"):  # the shares plot shows the emotions the songs pulled toward
        assert _has_colour(timeline, PLOT_COLOURS[emotion]), emotion
        assert _has_colour(per_song, PLOT_COLOURS[emotion]), emotion
    for name, _ in SONGS:
        assert name in page
    # which song moved the audience where: each simulated song leads with its intended feeling
    rows = list(csv.DictReader((csv_dir / "markers_emotion_time.csv").open()))
    assert [r["marker"] for r in rows] == [n for n, _ in SONGS]
    for row, (_, feel) in zip(rows, SONGS):
        secs = {e: float(row[f"{e}_s"]) for e in PLOT_COLOURS}
        assert max(secs, key=secs.get) == feel, (row["marker"], secs)
        assert row["moved_toward"] == feel
    assert sum(1 for _ in (csv_dir / "cues.csv").open()) - 1 == counts["cues"]
    assert sum(1 for _ in (csv_dir / "live.csv").open()) - 1 == counts["live"]
    assert "refused" in page and "euphoria" in page  # the refused control message is listed
    assert page.count("data:image/jpeg;base64,") >= 30  # background thumbnails
    assert "without a clean stop" not in page


def test_report_renders_in_a_real_browser(hour_log, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    db, _ = hour_log
    out = tmp_path / "report.html"
    build_report(db, out)
    with sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(out.as_uri())
        sizes = page.eval_on_selector_all("img.plot", "els => els.map(e => [e.naturalWidth, e.clientWidth])")
        assert len(sizes) == 2 and all(n > 0 and w > 600 for n, w in sizes), sizes
        assert page.locator("table").first.locator("tbody tr").count() == len(SONGS)
        page.screenshot(path=str(screenshot_path("report-hour.png")), full_page=True)
        browser.close()


KILLED_CHILD = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, {repo!r})
    from pcp_osc.showlog import ShowLog
    from pcp_bench.showsim import write_show
    log = ShowLog({path!r})
    counts = write_show(log, minutes=10, backgrounds=False)
    log.flush()
    print(counts["cues"], flush=True)
    time.sleep(60)
    """
)


def test_report_of_a_killed_daemons_log(tmp_path: Path) -> None:
    db = tmp_path / "killed.db"
    child = subprocess.Popen([sys.executable, "-c", KILLED_CHILD.format(repo=str(REPO), path=str(db))],
                             stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        cues = int(child.stdout.readline())
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    assert Path(str(db) + "-wal").stat().st_size > 0  # nothing checkpointed: the rows live in the WAL
    made = build_report(db, tmp_path / "killed.html", tmp_path / "csv")
    page = made["html"].read_text(encoding="utf-8")
    assert len(made["show"].cues) == cues
    assert "without a clean stop" in page
    assert len(_embedded_pngs(page)) == 2


def test_report_of_a_v1_log_without_live_samples(tmp_path: Path) -> None:
    db = tmp_path / "v1.db"
    c = sqlite3.connect(db)
    c.executescript(MIGRATIONS[0])
    c.execute("PRAGMA user_version = 1")
    t0 = time.time() - 600
    for i in range(40):
        emo, k = ("sadness", 3) if i < 20 else ("joy", 0)
        shares = [0.1] * 5
        shares[k] = 0.6
        c.execute("INSERT INTO cues (cue_id, wall_time, emotion, emotion_index, confidence, source, faces, intent, window_s, "
                  "r, g, b, hex, joy, anxiety, anger, sadness, neutral) VALUES (?, ?, ?, ?, 0.6, 'audience', 5, 'neutral', 15, "
                  "0.5, 0.5, 0.5, '#808080', ?, ?, ?, ?, ?)", (i, t0 + 15 * i, emo, k, *shares))
    c.execute("INSERT INTO markers (wall_time, name) VALUES (?, 'Slow song')", (t0,))
    c.execute("INSERT INTO markers (wall_time, name) VALUES (?, 'Fast song')", (t0 + 300,))
    c.commit()
    c.close()
    show = load_show(db)
    assert [s.name for s in show.segments] == ["Slow song", "Fast song"]
    assert show.segments[0].seconds_by_emotion.argmax() == 3 and show.segments[1].seconds_by_emotion.argmax() == 0
    made = build_report(db, tmp_path / "v1.html")
    assert "Slow song" in made["html"].read_text(encoding="utf-8")


def test_a_missing_log_is_a_clear_error(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "pcp_osc", "report", str(tmp_path / "nope.db"), "--out", str(tmp_path / "x.html")],
                       capture_output=True, text=True, cwd=REPO, timeout=120)
    assert r.returncode == 2 and "nope.db" in r.stderr and "does not exist" in r.stderr


def test_out_as_a_folder_or_an_unwritable_place(hour_log, tmp_path: Path) -> None:
    """--out FOLDER puts the report inside it, named after the log (it used to write FOLDER.part
    beside the folder and die on replacing the folder); a place that cannot be written gets a
    message naming it, exit 1, no traceback and no .part file left."""
    db, _ = hour_log
    folder = tmp_path / "reports"
    folder.mkdir()
    r = subprocess.run([sys.executable, "-m", "pcp_osc", "report", str(db), "--out", str(folder) + "/"],
                       capture_output=True, text=True, cwd=REPO, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (folder / "show-hour.html").stat().st_size > 10_000
    assert not list(tmp_path.glob("*.part"))
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where a folder should be")
    bad = blocker / "report.html"
    r = subprocess.run([sys.executable, "-m", "pcp_osc", "report", str(db), "--out", str(bad)],
                       capture_output=True, text=True, cwd=REPO, timeout=300)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert f"cannot write the report to '{bad}'" in r.stderr and "choose another --out" in r.stderr
    assert not list(tmp_path.rglob("*.part"))


def test_korean_marker_names_are_drawn_and_the_clock_axis_has_distinct_labels(tmp_path: Path, monkeypatch) -> None:
    """A short show with Korean song names: every glyph is in a font matplotlib has (no
    'Glyph ... missing' boxes), and the time axis labels are distinct round clock times."""
    import warnings

    import pcp_bench.showsim as showsim
    from pcp_osc.report.plots import clock_ticks, report_fonts

    korean = [("봄날의 기쁨", "joy"), ("비 오는 거리", "sadness"), ("분노의 질주", "anger")]
    monkeypatch.setattr(showsim, "SONGS", korean)
    path = tmp_path / "short.db"
    log = ShowLog(path, live_sample_hz=1.0)
    showsim.write_show(log, minutes=3, backgrounds=False)
    log.close()
    assert len(report_fonts()) > 1, f"no CJK font found; fonts: {report_fonts()}"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        build_report(path, tmp_path / "r.html")
    missing = [str(w.message) for w in caught if "missing from" in str(w.message)]
    assert not missing, missing[:3]
    assert "봄날의 기쁨" in (tmp_path / "r.html").read_text(encoding="utf-8")

    t0 = showsim.SHOW_START_WALL + 17.0  # not on a round time
    for duration_s in (40, 180, 900, 3600, 3 * 3600):
        positions, labels = clock_ticks(t0, duration_s)
        assert 2 <= len(labels) <= 12, (duration_s, labels)
        assert len(set(labels)) == len(labels), (duration_s, labels)  # never 08:41 08:41 08:41
        assert all(0 <= p <= duration_s / 60 for p in positions)
        seconds = [time.localtime(t0 + p * 60).tm_sec for p in positions]
        assert all(s % 5 == 0 for s in seconds) and (duration_s < 600 or set(seconds) == {0}), labels
