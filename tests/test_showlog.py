"""The show log on real SQLite files: what is acknowledged survives a SIGKILL, old
files migrate, readers read while the show writes, nothing of the audience is
stored unless the operator asks."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from pcp_osc.emotions import EMOTIONS
from pcp_osc.showlog import MIGRATIONS, SCHEMA_VERSION, ShowLog, ShowLogError, connect, default_log_path
from pcp_bench.showsim import background_image, colour_for, write_show
from pcp_osc.types import Background, ControlEvent, Cue, Frame, Mood

REPO = Path(__file__).resolve().parents[1]


def make_cue(cue_id: int, emotion: str = "joy", wall: float | None = None, source: str = "audience") -> Cue:
    k = EMOTIONS.index(emotion)
    dist = np.full(5, 0.1)
    dist[k] = 0.6
    mood = Mood(k, 0.6, dist, 4.0, source)
    return Cue(cue_id, mood, colour_for(k, 0.6), 4, 15.0, time.time() if wall is None else wall, time.monotonic(), "window")


def test_cues_controls_markers_backgrounds_land_in_the_file(tmp_path: Path) -> None:
    path = tmp_path / "show.db"
    log = ShowLog(path, live_sample_hz=2.0)
    log.log_cue(make_cue(1, "sadness"))
    log.log_control(ControlEvent("/pcp/marker", ("Song A",), "10.0.0.5", True, "marker 'Song A'", 100.0))
    log.log_control(ControlEvent("/pcp/intent", ("euphoria",), "10.0.0.77", False, "unknown emotion", 101.0))
    bg = Background(background_image(colour_for(0, 1.0), 640, 360), "a warm stage", 42, 0.5, "procedural", cue_id=1, id=3)
    log.log_background(bg, file="/tmp/bg-3.png")
    mood = make_cue(0).mood
    kept = [log.log_live(mood, 1000.0 + i * 0.1) for i in range(20)]  # 10 Hz offered, 2 Hz kept
    assert log.flush()
    log.close()

    conn = sqlite3.connect(path)
    assert conn.execute("SELECT cue_id, emotion, source, hex FROM cues").fetchall() == [(1, "sadness", "audience", colour_for(3, 0.6).hex)]
    controls = conn.execute("SELECT address, args, sender, accepted FROM controls ORDER BY seq").fetchall()
    assert controls == [("/pcp/marker", '["Song A"]', "10.0.0.5", 1), ("/pcp/intent", '["euphoria"]', "10.0.0.77", 0)]
    assert conn.execute("SELECT wall_time, name FROM markers").fetchall() == [(100.0, "Song A")]
    prompt, seed, file, thumb = conn.execute("SELECT prompt, seed, file, thumb_jpeg FROM backgrounds").fetchone()
    assert (prompt, seed, file) == ("a warm stage", 42, "/tmp/bg-3.png")
    assert thumb[:2] == b"\xff\xd8" and len(thumb) < 40_000  # a small JPEG thumbnail, not the full image
    assert sum(kept) == 4 and conn.execute("SELECT count(*) FROM live").fetchone()[0] == 4
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("SELECT value FROM meta WHERE key='ended_wall'").fetchone() is not None


CHILD = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, {repo!r})
    from tests.test_showlog import make_cue
    from pcp_osc.showlog import ShowLog
    log = ShowLog({path!r}, live_sample_hz=50.0)
    mood = make_cue(0).mood
    i = 0
    while True:
        i += 1
        log.log_cue(make_cue(i, "anger"))
        for _ in range(5):
            log.log_live(mood, time.time())
            time.sleep(0.004)
        if log.flush():
            print(i, flush=True)   # acknowledged: durable from here on
    """
)


def test_sigkill_mid_show_keeps_every_acknowledged_cue_and_the_file_opens(tmp_path: Path) -> None:
    path = tmp_path / "killed.db"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD.format(repo=str(REPO), path=str(path))],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
    )
    acknowledged: list[int] = []
    try:
        deadline = time.monotonic() + 60
        while len(acknowledged) < 40 and time.monotonic() < deadline:
            line = child.stdout.readline()
            if not line:
                break
            acknowledged.append(int(line))
        assert len(acknowledged) >= 40, f"the child logger acknowledged only {acknowledged}: {child.stderr.read()[-2000:]}"
        child.send_signal(signal.SIGKILL)  # mid-show: events keep being queued and written right now
        child.wait(timeout=10)
        acknowledged += [int(x) for x in child.stdout.read().split()]  # acknowledged before the kill, still in the pipe
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == -signal.SIGKILL
    wal = Path(str(path) + "-wal")
    assert wal.exists() and wal.stat().st_size > 0, "the killed show's WAL should hold uncheckpointed commits"

    conn = connect(path)  # a fresh connection replays the WAL
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    logged = {r[0] for r in conn.execute("SELECT cue_id FROM cues")}
    missing = set(acknowledged) - logged
    assert not missing, f"acknowledged cues lost by SIGKILL: {sorted(missing)[:10]}"
    assert conn.execute("SELECT count(*) FROM live").fetchone()[0] > 0
    # a killed daemon never wrote its clean end: the report can tell the show ended abruptly
    assert conn.execute("SELECT value FROM meta WHERE key='ended_wall'").fetchone() is None


def test_a_v1_show_log_migrates_on_open_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    old = sqlite3.connect(path)
    old.executescript(MIGRATIONS[0])  # exactly the schema pcp-osc first shipped
    old.execute("PRAGMA user_version = 1")
    old.execute(
        "INSERT INTO cues (cue_id, wall_time, emotion, emotion_index, confidence, source, faces, intent, window_s, "
        "r, g, b, hex, joy, anxiety, anger, sadness, neutral) "
        "VALUES (7, 5.0, 'joy', 0, 0.8, 'audience', 3, 'neutral', 15, 1, 0.8, 0, '#ffcc00', 0.8, 0.05, 0.05, 0.05, 0.05)"
    )
    old.execute("INSERT INTO live (wall_time, faces, emotion, source, joy, anxiety, anger, sadness, neutral) "
                "VALUES (5.0, 3, 'joy', 'audience', 0.8, 0.05, 0.05, 0.05, 0.05)")
    old.commit()
    old.close()

    log = ShowLog(path)  # the writer opens it, migrates, and appends
    log.log_cue(make_cue(8, "sadness"))
    log.close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 2
    rows = conn.execute("SELECT cue_id, emotion, reason FROM cues ORDER BY cue_id").fetchall()
    assert rows == [(7, "joy", "window"), (8, "sadness", "window")]  # the old cue got v2's default reason
    assert conn.execute("SELECT valence, arousal FROM live").fetchone() == (0.0, 0.0)
    assert conn.execute("SELECT count(*) FROM frames").fetchone()[0] == 0


def test_a_newer_or_foreign_file_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    newer = tmp_path / "newer.db"
    c = sqlite3.connect(newer)
    c.execute("PRAGMA user_version = 9")
    c.commit()
    c.close()
    with pytest.raises(ShowLogError, match=r"schema v9.*newer pcp-osc.*up to v2"):
        connect(newer)
    junk = tmp_path / "notes.db"
    junk.write_text("this is a setlist, not a database\n" * 100)
    with pytest.raises(ShowLogError, match="notes.db.*cannot be read: the file is not an SQLite show log"):
        connect(junk)
    with pytest.raises(ShowLogError, match="does not exist"):
        connect(tmp_path / "missing.db")
    assert not (tmp_path / "missing.db").exists()


def test_readers_read_while_the_show_writes(tmp_path: Path) -> None:
    path = tmp_path / "busy.db"
    log = ShowLog(path, live_sample_hz=1000.0)
    stop = threading.Event()
    seen: list[int] = []
    errors: list[BaseException] = []

    def reader() -> None:
        mine: list[int] = []
        try:
            conn = connect(path)
            while not stop.is_set():
                n = conn.execute("SELECT count(*) FROM cues").fetchone()[0]
                assert not mine or n >= mine[-1], "a reader saw the log shrink"
                mine.append(n)
            seen.extend(mine)
        except BaseException as e:  # surfaced in the main thread below
            errors.append(e)

    readers = [threading.Thread(target=reader) for _ in range(2)]
    for r in readers:
        r.start()
    mood = make_cue(0).mood
    t0 = time.time()
    for i in range(300):
        log.log_cue(make_cue(i))
        log.log_live(mood, t0 + i * 0.01)
        if i % 50 == 0:
            log.flush()
    log.flush()
    time.sleep(0.2)
    stop.set()
    for r in readers:
        r.join()
    log.close()
    assert not errors, errors
    assert len(set(seen)) > 2, "readers should see the log grow while it is written"
    assert max(seen) == 300


def test_no_frames_on_disk_unless_the_operator_turns_it_on(tmp_path: Path) -> None:
    frame = Frame(np.full((120, 160, 3), 128, np.uint8), time.monotonic(), 1)
    mood = make_cue(0).mood

    off = ShowLog(tmp_path / "off.db")
    off.log_live(mood, 10.0, frame=frame)
    off.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["off.db"]

    frames_dir = tmp_path / "consented"
    on = ShowLog(tmp_path / "on.db", store_frames=True, frames_dir=frames_dir, keep_hours=1.0)
    on.log_live(mood, time.time(), frame=frame)
    on.flush()
    stored = list(frames_dir.glob("frame-*.jpg"))
    assert len(stored) == 1
    old = frames_dir / "frame-old.jpg"
    old.write_bytes(stored[0].read_bytes())
    os.utime(old, (time.time() - 2 * 3600, time.time() - 2 * 3600))
    assert on.prune_frames() == 1 and not old.exists() and stored[0].exists()
    on.close()


def test_default_file_name_is_one_per_show() -> None:
    p = default_log_path(time.mktime((2025, 6, 21, 19, 30, 5, 0, 0, -1)))
    assert p == Path("shows/show-20250621-193005.db")


def test_the_assembled_show_logs_the_daemons_events(tmp_path: Path) -> None:
    from pcp_osc.config import Config
    from pcp_osc.show import assemble

    cfg = Config()
    cfg.osc.control_port = 0
    cfg.osc.target = "127.0.0.1:9"  # discard port: nobody listens in this test
    cfg.mood.window_s = 1.0
    cfg.generator.kind = "off"
    cfg.log.path = str(tmp_path / "daemon.db")
    daemon = assemble(cfg, source="demo", perception=False)
    assert [p.role for p in daemon.parts] == ["showlog"]
    daemon.start()
    try:
        daemon.control("/pcp/marker", ["Song B"], sender="test")
        daemon.control("/pcp/override", ["sadness"], sender="test")
        time.sleep(1.3)
    finally:
        daemon.stop()  # stops the log too (it is a part)
    conn = sqlite3.connect(tmp_path / "daemon.db")
    assert conn.execute("SELECT name FROM markers").fetchall() == [("Song B",)]
    assert ("override", "sadness") in conn.execute("SELECT source, emotion FROM cues").fetchall()
    assert conn.execute("SELECT count(*) FROM controls WHERE sender='test'").fetchone()[0] == 2


def test_simulated_hour_fills_every_table(tmp_path: Path) -> None:
    log = ShowLog(tmp_path / "sim.db")
    counts = write_show(log, minutes=20, backgrounds=True)
    log.close()
    conn = sqlite3.connect(tmp_path / "sim.db")
    for table, key in (("cues", "cues"), ("live", "live"), ("markers", "markers"), ("controls", "controls"), ("backgrounds", "backgrounds")):
        assert conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == counts[key] > 0
    args = [json.loads(a) for (a,) in conn.execute("SELECT args FROM controls WHERE address='/pcp/marker'")]
    assert args[0] == ["Opening: Sunrise"]


def test_a_log_that_already_holds_a_show_is_continued_and_says_so(tmp_path: Path, caplog) -> None:
    """Restarting with the same --log (after a crash, or a file name used twice) adds this run to
    the show already in the file; it used to say only `show log: FILE`, so two shows could be
    mixed into one report without anyone noticing."""
    import logging

    path = tmp_path / "tonight.db"
    with caplog.at_level(logging.INFO, logger="pcp_osc.showlog"):
        first = ShowLog(path)
        first.log_cue(make_cue(0, "joy"))
        first.log_cue(make_cue(1, "sadness"))
        first.close()
        assert "already holds a show" not in caplog.text
        caplog.clear()
        second = ShowLog(path)
        second.log_cue(make_cue(0, "anger"))
        second.close()
    warned = [r for r in caplog.records if r.levelno == logging.WARNING and "already holds a show" in r.getMessage()]
    assert warned and "2 cues" in warned[0].getMessage() and "give another --log" in warned[0].getMessage()
    con = sqlite3.connect(path)
    try:
        assert [r[0] for r in con.execute("SELECT emotion FROM cues ORDER BY seq")] == ["joy", "sadness", "anger"]
    finally:
        con.close()
