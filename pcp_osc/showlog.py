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
import queue
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .emotions import EMOTIONS
from .types import plain

log = logging.getLogger("pcp_osc.showlog")

SCHEMA_VERSION = 2
QUEUE_EVENTS = 20_000  # about 5 hours of 1 Hz live samples: a stalled disk never backs up the cue path
BATCH_MAX_EVENTS = 2_000  # one transaction holds at most this many events
THUMB_WIDTH_PX = 320  # background thumbnails kept in the log (generated art, not audience)
FRAME_PRUNE_EVERY_S = 300.0
MARKER_ADDRESS_SUFFIX = "/marker"

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
    if create:
        p.parent.mkdir(parents=True, exist_ok=True)
    try:
        conn = sqlite3.connect(str(p), timeout=timeout_s, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        if synchronous not in ("FULL", "NORMAL"):
            raise ValueError(f"synchronous = {synchronous!r}; allowed FULL (acknowledged survives power loss) or NORMAL")
        conn.execute(f"PRAGMA synchronous={synchronous}")
        _migrate(conn, p)
    except sqlite3.DatabaseError as e:
        raise ShowLogError(f"show log {str(p)!r} cannot be opened as SQLite: {e}") from None
    return conn


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
    written: int = 0
    dropped: int = 0
    batches: int = 0
    errors: int = 0


# --------------------------------------------------------------------------- writer


class ShowLog:
    """Writes one show to one SQLite file from its own thread.

    Every ``log_*`` method is safe to call from any thread and never blocks;
    ``flush()`` blocks until what was queued before it is durable.
    """

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
    ) -> None:
        self.path = Path(path) if path else default_log_path()
        if live_sample_hz < 0:
            raise ValueError(f"live_sample_hz = {live_sample_hz!r} must be >= 0 (0: no live samples)")
        self.live_sample_hz = float(live_sample_hz)
        self.store_frames = bool(store_frames)
        self.frames_dir = Path(frames_dir) if frames_dir else self.path.with_name(self.path.stem + "-frames")
        self.keep_hours = float(keep_hours)
        self.stats = ShowLogStats()
        self._conn = connect(self.path, create=True, synchronous=synchronous)
        started = time.time()
        self._conn.execute("INSERT OR IGNORE INTO meta VALUES ('started_wall', ?)", (repr(started),))
        self._conn.execute("INSERT OR IGNORE INTO meta VALUES ('name', ?)", (self.path.stem,))
        from . import __version__

        self._conn.execute("INSERT OR REPLACE INTO meta VALUES ('pcp_osc_version', ?)", (__version__,))
        self._conn.execute(
            "INSERT OR REPLACE INTO meta VALUES ('store_frames', ?)", ("1" if self.store_frames else "0",)
        )
        self._queue: queue.Queue = queue.Queue(maxsize=queue_events)
        self._lock = threading.Lock()
        self._done = threading.Condition(self._lock)
        self._enqueued_seq = 0
        self._committed_seq = 0
        self._last_live_s = -1e18
        self._last_prune_s = 0.0
        self._closed = False
        self._warned_drop = False
        self._thread = threading.Thread(target=self._run, name="pcp-showlog", daemon=True)
        self._thread.start()
        log.info("show log: %s", self.path)

    @classmethod
    def from_config(cls, config: Any, path: str | Path | None = None) -> "ShowLog":
        """From a pcp_osc.config.Config: [log] path/live_sample_hz and [privacy]; ``path`` (--log) wins."""
        pv = config.privacy
        return cls(
            path or config.log.path or None,
            live_sample_hz=config.log.live_sample_hz,
            store_frames=pv.store_frames,
            frames_dir=pv.store_dir or None,
            keep_hours=pv.keep_hours,
        )

    # ----------------------------------------------------------------- enqueue (any thread, never blocks)

    def _put(self, kind: str, payload: Any) -> bool:
        if self._closed:
            return False
        with self._lock:
            seq = self._enqueued_seq + 1
            try:
                self._queue.put_nowait((seq, kind, payload))
            except queue.Full:
                self.stats.dropped += 1
                if not self._warned_drop:
                    self._warned_drop = True
                    log.warning("show log %s is falling behind the show: events are being dropped", self.path)
                return False
            self._enqueued_seq = seq
            self.stats.queued += 1
        return True

    def after_commit(self, callback: Callable[[], None]) -> bool:
        """Call ``callback`` on the writer thread once everything queued before this call
        is committed -- without waiting here (show control's /pcp/ping uses it, so a
        /pcp/pong means "all you sent before is in the log")."""
        return self._put("after", callback)

    def log_cue(self, cue: Any) -> bool:
        return self._put("cue", _cue_row(cue))

    def log_control(self, event: Any) -> bool:
        """A control message, accepted or not; an accepted /…/marker is also a marker."""
        row = (
            float(event.wall_time), str(event.address), json.dumps(plain(list(event.args)), ensure_ascii=False),
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

    # ----------------------------------------------------------------- daemon wiring

    def attach(self, daemon: Any) -> None:
        """Subscribe to a Daemon's events; the daemon also closes the log when it stops."""
        daemon.subscribe("cue", self.log_cue)
        daemon.subscribe("control", self.log_control)
        daemon.subscribe("background", lambda bg: self.log_background(bg))
        daemon.subscribe("live", lambda mood, faces, frame: self.log_live(mood, None, frame))
        if hasattr(daemon, "add_part"):
            daemon.add_part(self)

    def start(self) -> None:  # a daemon part; the writer runs from construction
        pass

    def stop(self) -> None:
        self.close()

    # ----------------------------------------------------------------- acknowledgement

    def flush(self, timeout_s: float | None = 10.0) -> bool:
        """Block until every event queued before this call is committed (durable). False on timeout."""
        with self._lock:
            target = self._enqueued_seq
            return self._done.wait_for(lambda: self._committed_seq >= target or not self._thread.is_alive(), timeout_s) and (
                self._committed_seq >= target
            )

    @property
    def committed(self) -> int:
        """Events committed so far (acknowledged)."""
        return self._committed_seq

    def close(self) -> None:
        """Write what is queued, mark the show as cleanly ended, and close the file."""
        if self._closed:
            return
        self.flush(timeout_s=30.0)
        self._closed = True
        self._queue.put((None, "stop", None))
        self._thread.join(timeout=30.0)
        try:
            self._conn.execute("INSERT OR REPLACE INTO meta VALUES ('ended_wall', ?)", (repr(time.time()),))
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            self._conn.close()
        log.info("show log closed: %s (%d events, %d dropped)", self.path, self.stats.written, self.stats.dropped)

    # ----------------------------------------------------------------- writer thread

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            batch = [item]
            while len(batch) < BATCH_MAX_EVENTS:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stop = any(kind == "stop" for _, kind, _ in batch)
            events = [b for b in batch if b[1] not in ("stop", "after")]
            if events:
                self._write_batch(events)
            afters = [b for b in batch if b[1] == "after"]
            for _, _, callback in afters:  # everything queued before each is committed now
                try:
                    callback()
                except Exception:
                    log.exception("show log: an after-commit callback failed")
            if afters:
                with self._lock:
                    self._committed_seq = max(self._committed_seq, afters[-1][0])
                    self._done.notify_all()
            if stop:
                return

    def _write_batch(self, events: list[tuple[int, str, Any]]) -> None:
        writers: dict[str, Callable[[Any], None]] = {
            "cue": lambda row: self._conn.execute(_CUE_SQL, row),
            "live": lambda row: self._conn.execute(_LIVE_SQL, row),
            "control": lambda row: self._conn.execute(_CONTROL_SQL, row),
            "marker": lambda row: self._conn.execute(_MARKER_SQL, row),
            "background": self._write_background,
            "frame": self._write_frame,
        }
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            for _, kind, payload in events:
                try:
                    writers[kind](payload)
                except (ValueError, TypeError, OSError) as e:  # one bad event must not lose the batch
                    self.stats.errors += 1
                    log.warning("show log: a %s event could not be written: %s", kind, e)
            self._conn.execute("COMMIT")
        except sqlite3.Error as e:
            self.stats.errors += 1
            log.error("show log %s: a batch of %d events was lost: %s", self.path, len(events), e)
            try:
                self._conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
        with self._lock:
            self._committed_seq = max(self._committed_seq, events[-1][0])
            self.stats.written += len(events)
            self.stats.batches += 1
            self._done.notify_all()
        if self.store_frames and time.monotonic() - self._last_prune_s > FRAME_PRUNE_EVERY_S:
            self.prune_frames()

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
