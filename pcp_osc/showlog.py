"""The show log: every cue, control message, marker, background and a sampled live
stream of one show, in one SQLite file.

Durability contract
-------------------
Callers on the cue path only *enqueue* (``log_cue`` and friends never touch the
disk and never block: a full queue drops the event and counts it). A writer
thread drains the queue and writes each batch in ONE transaction. ``flush()``
returns once everything queued before the call is committed: that is the
"acknowledged" point. The file is in WAL mode with ``synchronous=FULL``: every
commit fsyncs the WAL, so an acknowledged event survives not only a killed
daemon (SIGKILL: NORMAL would already do) but also a power cut or a kernel panic
of the show machine, which NORMAL does not promise (it may lose the last
commits). Because a batch holds every event that queued up while the previous
one was written, the fsync is paid once per batch, not once per event; at a
show's rates (a cue every 15 s, a live sample a second) that is cheap (see
``python -m pcp_bench.showlog``).

Privacy: nothing of the audience (frames, face crops) is stored unless
``store_frames`` is on; then frames go to ``frames_dir`` as JPEG files, at the
live sample rate, and files older than ``keep_hours`` are deleted.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import sqlite3
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .emotions import EMOTIONS
from .control import osc_json
from .parts import BasePart
from .types import Background, ControlEvent, Cue, LiveSample

log = logging.getLogger("pcp_osc.showlog")

SCHEMA_VERSION = 2
QUEUE_EVENTS = 20_000  # about 5 hours of 1 Hz live samples: a stalled disk never backs up the cue path
BATCH_MAX_EVENTS = 2_000  # one transaction holds at most this many events
THUMB_WIDTH_PX = 320  # background thumbnails kept in the log (generated art, not audience)
FRAME_PRUNE_EVERY_S = 300.0
MARKER_ADDRESS_SUFFIX = "/marker"
WRITER_BUSY_TIMEOUT_S = 1.0  # a locked file fails a batch after this; it is retried, and pongs say why meanwhile
RETRY_FIRST_S = 0.25  # a failed batch is retried after this, doubling up to RETRY_MAX_S
RETRY_MAX_S = 5.0
BACKLOG_MAX_EVENTS = 200_000  # held in memory while the disk fails; past it, live samples and frames go first
CLOSE_RETRY_S = 5.0  # at close, a failing log is retried this long before the rest goes to a rescue file
ACK_KEYS_MAX = 4096

_SHARE_COLS = ", ".join(f"{e} REAL NOT NULL" for e in EMOTIONS)

# Each migration takes a file from version (index) to version (index + 1).
# A new file runs them all, so the v1 -> v2 step is exercised by every show.
MIGRATIONS: list[str] = [
    # 0 -> 1: the first shipped schema.
    f"""
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE cues (
        seq INTEGER PRIMARY KEY,
        cue_id INTEGER NOT NULL, wall_time REAL NOT NULL,
        emotion TEXT NOT NULL, emotion_index INTEGER NOT NULL, confidence REAL NOT NULL,
        source TEXT NOT NULL, faces REAL NOT NULL, intent TEXT NOT NULL, window_s REAL NOT NULL,
        r REAL NOT NULL, g REAL NOT NULL, b REAL NOT NULL, hex TEXT NOT NULL,
        {_SHARE_COLS});
    CREATE TABLE live (
        seq INTEGER PRIMARY KEY, wall_time REAL NOT NULL, faces REAL NOT NULL,
        emotion TEXT NOT NULL, source TEXT NOT NULL, {_SHARE_COLS});
    CREATE TABLE controls (
        seq INTEGER PRIMARY KEY, wall_time REAL NOT NULL, address TEXT NOT NULL, args TEXT NOT NULL,
        sender TEXT NOT NULL, accepted INTEGER NOT NULL, message TEXT NOT NULL);
    CREATE TABLE markers (seq INTEGER PRIMARY KEY, wall_time REAL NOT NULL, name TEXT NOT NULL);
    CREATE TABLE backgrounds (
        seq INTEGER PRIMARY KEY, bg_id INTEGER NOT NULL, cue_id INTEGER NOT NULL, wall_time REAL NOT NULL,
        prompt TEXT NOT NULL, seed INTEGER NOT NULL, seconds REAL NOT NULL, generator TEXT NOT NULL,
        file TEXT);
    CREATE INDEX cues_time ON cues(wall_time);
    CREATE INDEX live_time ON live(wall_time);
    """,
    # 1 -> 2: why a cue was made (window, intent, override, release, start), the live
    # valence/arousal, why a background came from a stand-in generator, its thumbnail,
    # and the frames table for operators who turn frame storage on.
    """
    ALTER TABLE cues ADD COLUMN reason TEXT NOT NULL DEFAULT 'window';
    ALTER TABLE live ADD COLUMN valence REAL NOT NULL DEFAULT 0;
    ALTER TABLE live ADD COLUMN arousal REAL NOT NULL DEFAULT 0;
    ALTER TABLE backgrounds ADD COLUMN note TEXT NOT NULL DEFAULT '';
    ALTER TABLE backgrounds ADD COLUMN thumb_jpeg BLOB;
    CREATE TABLE frames (seq INTEGER PRIMARY KEY, wall_time REAL NOT NULL, file TEXT NOT NULL);
    """,
]
assert len(MIGRATIONS) == SCHEMA_VERSION


class ShowLogError(RuntimeError):
    """A show log file that cannot be opened or written; the message names the file."""


def default_log_path(now: float | None = None, folder: str | Path = "shows") -> Path:
    """shows/show-YYYYmmdd-HHMMSS.db (local time), one file per show."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(time.time() if now is None else now))
    return Path(folder) / f"show-{stamp}.db"


def connect(path: str | Path, *, create: bool = False, timeout_s: float = 10.0, synchronous: str = "FULL") -> sqlite3.Connection:
    """Open a show log (migrating it to the current schema) and return the connection.

    Used by the writer and by readers (the report). A file left by a killed daemon
    opens: SQLite replays its WAL on first open. ``create=False`` refuses a missing
    file instead of silently making an empty one.
    """
    p = Path(path)
    if not create and not p.exists():
        raise ShowLogError(f"show log {str(p)!r} does not exist")
    if p.is_dir():
        raise ShowLogError(f"show log {str(p)!r} is a folder; give a file name such as {str(p / 'show.db')!r}")
    if create:
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ShowLogError(f"show log {str(p)!r}: cannot make its folder {str(p.parent)!r} "
                               f"({e.strerror or e}); choose another --log path or log.path") from None
    if synchronous not in ("FULL", "NORMAL"):
        raise ValueError(f"synchronous = {synchronous!r}; allowed FULL (acknowledged survives power loss) or NORMAL")
    conn = None
    try:
        conn = sqlite3.connect(str(p), timeout=timeout_s, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={synchronous}")
        _migrate(conn, p)
    except sqlite3.DatabaseError as e:
        if conn is not None:
            conn.close()
        raise ShowLogError(f"show log {str(p)!r} cannot be {'written' if create else 'read'}: {explain(e)}; "
                           + ("choose another --log path or log.path" if create else "is it a pcp-osc show log?")) from None
    return conn


_EXPLAINED = (
    ("disk is full", "disk full"),
    ("database is locked", "the file is locked by another program"),
    ("readonly database", "the file or its folder is read-only"),
    ("unable to open database file", "the file cannot be created or opened there (is the folder writable?)"),
    ("file is not a database", "the file is not an SQLite show log (corrupt, or another kind of file)"),
    ("database disk image is malformed", "the file is corrupt"),
    ("disk I/O error", "disk I/O error"),
)


def explain(error: BaseException) -> str:
    """A SQLite or OS error in the show's words ("disk full", "the file is locked ...")."""
    text = str(error)
    for needle, words in _EXPLAINED:
        if needle in text:
            return words
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return text


def schema_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    version = schema_version(conn)
    if version > SCHEMA_VERSION:
        raise ShowLogError(
            f"show log {str(path)!r} has schema v{version}, written by a newer pcp-osc; "
            f"this one reads up to v{SCHEMA_VERSION}"
        )
    created = version == 0  # a new file: its steps up to now are creation, not migration
    while version < SCHEMA_VERSION:
        # One transaction per step: a crash mid-migration leaves the previous version intact.
        conn.execute("BEGIN IMMEDIATE")
        try:
            if schema_version(conn) != version:  # another connection migrated meanwhile
                conn.execute("ROLLBACK")
                version = schema_version(conn)
                continue
            for stmt in MIGRATIONS[version].split(";"):
                if stmt.strip():
                    conn.execute(stmt)
            conn.execute(f"PRAGMA user_version = {version + 1}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        if not created:
            log.info("show log %s migrated from schema v%d to v%d", path, version, version + 1)
        version += 1


# --------------------------------------------------------------------------- rows


def _shares(distribution: Any) -> list[float]:
    d = np.asarray(distribution, dtype=np.float64).reshape(-1)
    if d.shape != (len(EMOTIONS),):
        raise ValueError(f"a distribution over {len(EMOTIONS)} emotions was expected, got shape {d.shape}")
    return [float(v) for v in d]


def _cue_row(cue: Any) -> tuple:
    m = cue.mood
    return (
        int(cue.id), float(cue.wall_time), EMOTIONS[int(m.emotion)], int(m.emotion), float(m.confidence),
        str(m.source), float(m.faces), EMOTIONS[int(cue.intent)], float(cue.window_s),
        float(cue.colour.r), float(cue.colour.g), float(cue.colour.b), cue.colour.hex,
        *_shares(m.distribution), str(getattr(cue, "reason", "window")),
    )


_CUE_SQL = (
    "INSERT INTO cues (cue_id, wall_time, emotion, emotion_index, confidence, source, faces, intent, window_s, "
    f"r, g, b, hex, {', '.join(EMOTIONS)}, reason) VALUES ({', '.join('?' * (14 + len(EMOTIONS)))})"
)
_LIVE_SQL = (
    f"INSERT INTO live (wall_time, faces, emotion, source, {', '.join(EMOTIONS)}, valence, arousal) "
    f"VALUES ({', '.join('?' * (6 + len(EMOTIONS)))})"
)
_CONTROL_SQL = "INSERT INTO controls (wall_time, address, args, sender, accepted, message) VALUES (?, ?, ?, ?, ?, ?)"
_MARKER_SQL = "INSERT INTO markers (wall_time, name) VALUES (?, ?)"
_BG_SQL = (
    "INSERT INTO backgrounds (bg_id, cue_id, wall_time, prompt, seed, seconds, generator, file, note, thumb_jpeg) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_FRAME_SQL = "INSERT INTO frames (wall_time, file) VALUES (?, ?)"


def _thumbnail_jpeg(image_rgb: np.ndarray) -> bytes | None:
    import cv2

    img = np.asarray(image_rgb)
    if img.ndim != 3 or img.shape[2] != 3 or img.size == 0:
        return None
    h, w = img.shape[:2]
    scale = THUMB_WIDTH_PX / float(w)
    small = cv2.resize(img, (THUMB_WIDTH_PX, max(1, int(round(h * scale)))), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(small, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 80])
    return bytes(buf) if ok else None


@dataclass
class ShowLogStats:
    queued: int = 0
    written: int = 0  # committed
    dropped: int = 0  # refused at a full queue, or shed from the backlog
    batches: int = 0
    errors: int = 0  # failed batch attempts and events that could not be encoded
    lost: int = 0  # events that will never be in the file (dropped, unencodable)
    backlog: int = 0  # events waiting for a failing disk


# --------------------------------------------------------------------------- writer


class ShowLog(BasePart):
    """Writes one show to one SQLite file from its own thread; a part of the show (it hears
    every cue, live sample, control event and background).

    Every ``log_*`` method is safe to call from any thread and never blocks;
    ``flush()`` blocks until what was queued before it is durable.

    When a write fails (disk full, the file locked by another program) nothing is
    thrown away: the events stay in memory (up to ``BACKLOG_MAX_EVENTS``) and the
    batch is retried, backing off to every few seconds; ``on_status`` hears
    "showlog-failed: disk full" and, once writing works again, None. A failed batch
    is never counted as committed, and ``after_commit`` callbacks hear False.
    """

    role = "showlog"

    def __init__(
        self,
        path: str | Path | None = None,
        live_sample_hz: float = 1.0,
        store_frames: bool = False,
        *,
        frames_dir: str | Path | None = None,
        keep_hours: float = 24.0,
        queue_events: int = QUEUE_EVENTS,
        synchronous: str = "FULL",
        on_status: Callable[[str | None], None] | None = None,
    ) -> None:
        self.path = Path(path) if path else default_log_path()
        if live_sample_hz < 0:
            raise ValueError(f"live_sample_hz = {live_sample_hz!r} must be >= 0 (0: no live samples)")
        self.live_sample_hz = float(live_sample_hz)
        self.store_frames = bool(store_frames)
        self.frames_dir = Path(frames_dir) if frames_dir else self.path.with_name(self.path.stem + "-frames")
        self.keep_hours = float(keep_hours)
        self.on_status = on_status
        self.stats = ShowLogStats()
        self._conn = connect(self.path, create=True, timeout_s=WRITER_BUSY_TIMEOUT_S, synchronous=synchronous)
        from . import __version__

        try:
            # a log that already holds a show (a restart after a crash, or a file name used twice):
            # this run continues it, and the operator is told so
            earlier = self._conn.execute("SELECT COUNT(*), MAX(wall_time) FROM cues").fetchone()
            self._conn.execute("INSERT OR IGNORE INTO meta VALUES ('started_wall', ?)", (repr(time.time()),))
            self._conn.execute("INSERT OR IGNORE INTO meta VALUES ('name', ?)", (self.path.stem,))
            self._conn.execute("INSERT OR REPLACE INTO meta VALUES ('pcp_osc_version', ?)", (__version__,))
            self._conn.execute(
                "INSERT OR REPLACE INTO meta VALUES ('store_frames', ?)", ("1" if self.store_frames else "0",)
            )
        except sqlite3.Error as e:
            self._conn.close()
            raise ShowLogError(f"show log {str(self.path)!r} cannot be written: {explain(e)}; "
                               "choose another --log path or log.path") from None
        self._queue: queue.Queue = queue.Queue(maxsize=queue_events)
        self._lock = threading.Lock()
        self._done = threading.Condition(self._lock)
        self._enqueued_seq = 0  # every event offered (queued or dropped) has a seq
        self._queued_seq = 0  # the last one queued
        self._committed_seq = 0  # every event up to here is committed or counted lost
        self._lost_ranges: list[list[int]] = []  # [first, last] seqs of lost events, ascending
        self._ack_seq: OrderedDict[Any, int] = OrderedDict()  # after_commit key -> seq of its last answer
        self.failure: str | None = None  # why writing fails now ("disk full"), None when it works
        self._last_live_s = -1e18
        self._last_prune_s = 0.0
        self._closed = False
        self._warned_drop = False
        self._thread = threading.Thread(target=self._run, name="pcp-showlog", daemon=True)
        self._thread.start()
        if earlier and earlier[0]:
            log.warning("show log: %s already holds a show (%d cues, the last at %s): this run is added to it "
                        "(one report for both); give another --log for a new show", self.path, earlier[0],
                        time.strftime("%Y-%m-%d %H:%M", time.localtime(earlier[1])))
        else:
            log.info("show log: %s", self.path)

    @classmethod
    def from_config(cls, config: Any, path: str | Path | None = None, *,
                    on_status: Callable[[str | None], None] | None = None) -> "ShowLog":
        """From a pcp_osc.config.Config: [log] path/live_sample_hz and [privacy]; ``path`` (--log) wins."""
        pv = config.privacy
        return cls(
            path or config.log.path or None,
            live_sample_hz=config.log.live_sample_hz,
            store_frames=pv.store_frames,
            frames_dir=pv.store_dir or None,
            keep_hours=pv.keep_hours,
            on_status=on_status,
        )

    # ----------------------------------------------------------------- enqueue (any thread, never blocks)

    def _put(self, kind: str, payload: Any) -> bool:
        if self._closed:
            if kind == "after":
                payload[0](False, "showlog-closed: the show log is closed")
            return False
        with self._lock:
            seq = self._enqueued_seq = self._enqueued_seq + 1
            try:
                self._queue.put_nowait((seq, kind, payload))
            except queue.Full:
                if kind != "after":
                    self.stats.dropped += 1
                    self._lose(seq)
                warn = not self._warned_drop
                self._warned_drop = True
            else:
                self.stats.queued += 1
                self._queued_seq = seq
                return True
        if kind == "after":
            payload[0](False, f"showlog-busy: {self._queue.maxsize} events are waiting to be written")
        if warn:
            log.warning("show log %s is falling behind the show: events are being dropped", self.path)
        return False

    def after_commit(self, callback: Callable[[bool, str], None], key: Any = None) -> bool:
        """Call ``callback(ok, why)`` on the writer thread once everything queued before
        this call is committed: ``ok`` True. ``ok`` False, with ``why`` in the show's
        words, when that cannot be said: a write failed and is being retried
        ("showlog-failed: disk full"), the queue is full ("showlog-busy: ..."), or
        events queued before were lost since the previous call with the same ``key``
        ("showlog-lost: ..."). Show control's /pcp/ping uses it, keyed by sender, so a
        /pcp/pong means "all you sent before is in the log". Never blocks."""
        return self._put("after", (callback, key))

    def log_cue(self, cue: Any) -> bool:
        return self._put("cue", _cue_row(cue))

    def log_control(self, event: Any) -> bool:
        """A control message, accepted or not; an accepted /…/marker is also a marker."""
        try:
            args = json.dumps(osc_json(list(event.args)), ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError):  # a caller's own event with odd values: keep what it said
            args = json.dumps([repr(a) for a in event.args], ensure_ascii=False)
        row = (
            float(event.wall_time), str(event.address), args,
            str(event.sender), 1 if event.accepted else 0, str(event.message),
        )
        ok = self._put("control", row)
        if event.accepted and str(event.address).endswith(MARKER_ADDRESS_SUFFIX) and event.args:
            self.log_marker(str(event.args[0]), event.wall_time)
        return ok

    def log_marker(self, name: str, wall_time: float | None = None) -> bool:
        return self._put("marker", (time.time() if wall_time is None else float(wall_time), str(name).strip()))

    def log_background(self, bg: Any, file: str | Path | None = None, wall_time: float | None = None) -> bool:
        # The image is encoded to a thumbnail on the writer thread, not here.
        wall = time.time() if wall_time is None else float(wall_time)
        return self._put("background", (bg, wall, None if file is None else str(file)))

    def log_live(self, mood: Any, wall_time: float | None = None, frame: Any = None) -> bool:
        """A live sample, kept at most ``live_sample_hz`` times a second (others are skipped, not queued)."""
        if self.live_sample_hz <= 0:
            return False
        now = time.time() if wall_time is None else float(wall_time)
        if now - self._last_live_s < 1.0 / self.live_sample_hz - 1e-6:
            return False
        self._last_live_s = now
        row = (
            now, float(mood.faces), EMOTIONS[int(mood.emotion)], str(mood.source), *_shares(mood.distribution),
            float(getattr(mood, "valence", 0.0)), float(getattr(mood, "arousal", 0.0)),
        )
        ok = self._put("live", row)
        if ok and self.store_frames and frame is not None:
            image = getattr(frame, "image", frame)
            self._put("frame", (now, np.array(image, copy=True)))
        return ok

    # ----------------------------------------------------------------- as a part of the show

    def start(self) -> None:  # the writer runs from construction
        pass

    def stop(self) -> None:
        self.close()

    def on_cue(self, cue: Cue) -> None:
        self.log_cue(cue)

    def on_live(self, sample: LiveSample) -> None:
        self.log_live(sample.mood, sample.wall_time, sample.frame)

    def on_control(self, event: ControlEvent) -> None:
        self.log_control(event)

    def on_background(self, background: Background) -> None:
        self.log_background(background)

    # ----------------------------------------------------------------- acknowledgement

    def flush(self, timeout_s: float | None = 10.0) -> bool:
        """Block until every event queued before this call is committed (durable).
        False on timeout (e.g. the disk is full and the write is being retried), or
        when one of those events was lost."""
        with self._lock:
            target, called_at = self._queued_seq, self._enqueued_seq
            reached = self._done.wait_for(
                lambda: self._committed_seq >= target or not self._thread.is_alive(), timeout_s)
            return bool(reached) and self._committed_seq >= target and not self._lost_between(0, called_at + 1)

    @property
    def committed(self) -> int:
        """Events committed so far (acknowledged)."""
        return self.stats.written

    def status(self) -> dict:
        """For the daemon's status: the file, how far writing is, and what is wrong."""
        st = self.stats
        return {"path": str(self.path), "state": f"showlog-failed: {self.failure}" if self.failure else "ok",
                "written": st.written, "backlog": st.backlog, "queued": self._queue.qsize(), "lost": st.lost}

    def close(self) -> None:
        """Write what is queued, mark the show as cleanly ended, and close the file.
        If the file cannot be written even now, what is left goes to a rescue file
        beside it (or in the temp folder) and the log says where."""
        if self._closed:
            return
        self._closed = True
        self._queue.put((None, "stop", None))
        self._thread.join(timeout=60.0)
        try:
            self._conn.execute("INSERT OR REPLACE INTO meta VALUES ('ended_wall', ?)", (repr(time.time()),))
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as e:
            log.warning("show log %s: could not mark the show as ended (%s)", self.path, explain(e))
        finally:
            self._conn.close()
        log.info("show log closed: %s (%d events, %d lost)", self.path, self.stats.written, self.stats.lost)

    # ----------------------------------------------------------------- losses (under self._lock)

    def _lose(self, seq: int) -> None:
        self.stats.lost += 1
        r = self._lost_ranges
        if r and r[-1][1] + 1 >= seq:
            r[-1][1] = max(r[-1][1], seq)
        else:
            r.append([seq, seq])
            if len(r) > 10_000:  # merging two old ranges over-reports a loss, never hides one
                r[0:2] = [[r[0][0], r[1][1]]]

    def _lost_between(self, after: int, upto: int) -> int:
        """How many lost events have after < seq < upto (an upper bound)."""
        n = 0
        for first, last in self._lost_ranges:
            lo, hi = max(first, after + 1), min(last, upto - 1)
            if lo <= hi:
                n += hi - lo + 1
        return n

    # ----------------------------------------------------------------- writer thread

    def _run(self) -> None:
        pending: deque = deque()  # events and after-markers in order, not yet committed or answered
        retry_s = RETRY_FIRST_S
        next_try = 0.0
        stopping = False
        while True:
            wait = None if not pending else max(0.0, next_try - time.monotonic())
            try:
                item = self._queue.get(timeout=wait)
                while True:
                    if item[1] == "stop":
                        stopping = True
                    elif item[1] == "after" and self.failure:  # nothing before it can be promised now
                        self._answer(item, False, f"showlog-failed: {self.failure}")
                    else:
                        pending.append(item)
                    if len(pending) >= BATCH_MAX_EVENTS and not self.failure:
                        break
                    item = self._queue.get_nowait()
            except queue.Empty:
                pass
            if self.failure:
                self._shed(pending)
            if stopping or time.monotonic() >= next_try:
                if self._write_pending(pending):
                    retry_s, next_try = RETRY_FIRST_S, 0.0
                else:
                    next_try = time.monotonic() + retry_s
                    retry_s = min(RETRY_MAX_S, retry_s * 2)
            self.stats.backlog = len(pending)
            if stopping:
                deadline = time.monotonic() + CLOSE_RETRY_S
                while pending and self.failure and time.monotonic() < deadline:
                    time.sleep(min(retry_s, 1.0))
                    self._write_pending(pending)
                if pending:
                    self._rescue(pending)
                return

    def _write_pending(self, pending: deque) -> bool:
        """Commit pending events in batches, answering after-markers as their turn
        comes. False when a batch failed (it stays pending for the retry)."""
        while pending:
            while pending and pending[0][1] == "after":
                self._answer(pending.popleft(), True, "")
            if not pending:
                break
            n = 0
            batch = []
            for item in pending:
                if item[1] != "after":
                    if n >= BATCH_MAX_EVENTS:
                        break
                    n += 1
                batch.append(item)
            while batch[-1][1] == "after":  # answered after the next batch commits, in order
                batch.pop()
            error = self._write_batch([b for b in batch if b[1] != "after"])
            if error is not None:
                first_failure = self.failure is None
                self.failure = error
                self.stats.errors += 1
                if first_failure:
                    log.error("show log %s cannot be written (%s): %d events are held and will be retried; "
                              "pings are answered with the reason until it works", self.path, error, len(pending))
                    self._status(f"showlog-failed: {error}")
                self._answer_afters(pending, False, f"showlog-failed: {error}")
                return False
            for _ in range(len(batch)):
                item = pending.popleft()
                if item[1] == "after":
                    self._answer(item, True, "")
            with self._lock:
                self._committed_seq = max(self._committed_seq, batch[-1][0])
                self._done.notify_all()
            if self.failure is not None:
                log.info("show log %s is written again; the events held meanwhile are saved", self.path)
                self.failure = None
                self._status(None)
        return True

    def _write_batch(self, events: list[tuple[int, str, Any]]) -> str | None:
        """One transaction; None when committed, else why not (the show's words)."""
        writers: dict[str, Callable[[Any], None]] = {
            "cue": lambda row: self._conn.execute(_CUE_SQL, row),
            "live": lambda row: self._conn.execute(_LIVE_SQL, row),
            "control": lambda row: self._conn.execute(_CONTROL_SQL, row),
            "marker": lambda row: self._conn.execute(_MARKER_SQL, row),
            "background": self._write_background,
            "frame": self._write_frame,
        }
        bad: list[int] = []
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            for seq, kind, payload in events:
                try:
                    writers[kind](payload)
                except (ValueError, TypeError) as e:  # one unencodable event must not lose the batch
                    bad.append(seq)
                    log.warning("show log: a %s event could not be written: %s", kind, e)
                except OSError as e:  # a frame file on a full disk: the batch is retried
                    raise sqlite3.OperationalError(explain(e)) from None
            self._conn.execute("COMMIT")
        except sqlite3.Error as e:
            try:
                self._conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            return explain(e)
        with self._lock:
            for seq in bad:
                self._lose(seq)
            self.stats.errors += len(bad)
            self.stats.written += len(events) - len(bad)
            self.stats.batches += 1
        if self.store_frames and time.monotonic() - self._last_prune_s > FRAME_PRUNE_EVERY_S:
            self.prune_frames()
        return None

    def _answer_afters(self, pending: deque, ok: bool, why: str) -> None:
        if any(p[1] == "after" for p in pending):
            keep = [p for p in pending if p[1] != "after"]
            for p in pending:
                if p[1] == "after":
                    self._answer(p, ok, why)
            pending.clear()
            pending.extend(keep)

    def _answer(self, item: tuple, ok: bool, why: str) -> None:
        seq, _, (callback, key) = item
        with self._lock:
            if ok:  # everything before it is committed
                self._committed_seq = max(self._committed_seq, seq)
                self._done.notify_all()
            since = self._ack_seq.pop(key, 0)
            self._ack_seq[key] = seq
            while len(self._ack_seq) > ACK_KEYS_MAX:
                self._ack_seq.popitem(last=False)
            lost = self._lost_between(since, seq)
        if lost:
            ok = False
            why = "; ".join(filter(None, [why, f"showlog-lost: {lost} events since your last ping are not in the log"]))
        try:
            callback(ok, why)
        except Exception:
            log.exception("show log: an after-commit callback failed")

    def _shed(self, pending: deque) -> None:
        """A long failure: past BACKLOG_MAX_EVENTS, the oldest live samples and frames
        go first; cues, controls and markers only past twice that."""
        if len(pending) <= BACKLOG_MAX_EVENTS:
            return
        over = len(pending) - BACKLOG_MAX_EVENTS
        hard = len(pending) > 2 * BACKLOG_MAX_EVENTS
        keep: list = []
        shed: list[int] = []
        for item in pending:
            if over > 0 and item[1] != "after" and (hard or item[1] in ("live", "frame")):
                shed.append(item[0])
                over -= 1
            else:
                keep.append(item)
        if shed:
            pending.clear()
            pending.extend(keep)
            with self._lock:
                for seq in shed:
                    self._lose(seq)
                self.stats.dropped += len(shed)
            log.warning("show log %s: still failing (%s); %d held events let go to keep memory bounded",
                        self.path, self.failure, len(shed))

    def _rescue(self, pending: deque) -> None:
        """The file cannot be written at close: what is left goes to a JSON-lines file
        beside the log, else in the temp folder, so nothing the operator recorded is lost."""
        import tempfile

        rows = []
        for seq, kind, payload in pending:
            if kind == "after":
                self._answer((seq, kind, payload), False, f"showlog-failed: {self.failure}")
                continue
            if kind == "frame":
                payload = (payload[0], "frame image not kept")
            elif kind == "background":
                bg, wall, file = payload
                payload = {"bg_id": int(bg.id), "cue_id": int(bg.cue_id), "wall_time": wall,
                           "prompt": str(bg.prompt), "seed": int(bg.seed), "file": file}
            rows.append(json.dumps({"kind": kind, "row": payload}, default=str, ensure_ascii=False))
        name = self.path.name + ".unsaved.jsonl"
        for folder in (self.path.parent, Path(tempfile.gettempdir())):
            target = folder / name
            try:
                with open(target, "a", encoding="utf-8") as f:
                    f.write("\n".join(rows) + "\n")
                    f.flush()
                    os.fsync(f.fileno())
                log.error("show log %s could not be written at the end (%s): %d events saved to %s instead",
                          self.path, self.failure, len(rows), target)
                return
            except OSError:
                continue
        with self._lock:
            for seq, kind, _ in pending:
                if kind != "after":
                    self._lose(seq)
        log.error("show log %s could not be written at the end (%s) and no rescue file could be made: %d events lost",
                  self.path, self.failure, len(rows))

    def _status(self, text: str | None) -> None:
        if self.on_status is not None:
            try:
                self.on_status(text)
            except Exception:
                log.exception("show log: reporting its status failed")

    def _write_background(self, payload: tuple) -> None:
        bg, wall, file = payload
        thumb = _thumbnail_jpeg(bg.image) if getattr(bg, "image", None) is not None else None
        self._conn.execute(
            _BG_SQL,
            (int(bg.id), int(bg.cue_id), wall, str(bg.prompt), int(bg.seed), float(bg.seconds), str(bg.generator),
             file, str(getattr(bg, "note", "")), thumb),
        )

    def _write_frame(self, payload: tuple) -> None:
        import cv2

        wall, image = payload
        self.frames_dir.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(wall)) + f"-{int((wall % 1) * 1000):03d}"
        target = self.frames_dir / f"frame-{stamp}.jpg"
        tmp = target.with_suffix(".part")
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])
        if not ok:
            raise ValueError("the frame could not be encoded as JPEG")
        tmp.write_bytes(bytes(buf))
        tmp.replace(target)
        self._conn.execute(_FRAME_SQL, (wall, str(target)))

    def prune_frames(self, now: float | None = None) -> int:
        """Delete stored frames older than keep_hours; returns how many were removed."""
        self._last_prune_s = time.monotonic()
        if not self.frames_dir.is_dir():
            return 0
        cutoff = (time.time() if now is None else now) - self.keep_hours * 3600.0
        removed = 0
        for f in self.frames_dir.glob("frame-*.jpg"):
            try:
                if f.stat().st_mtime < cutoff:
                    f.unlink()
                    removed += 1
            except OSError:
                pass
        return removed
