"""Text from the network on the operator's console and in log files, and reporting
that a flood cannot turn into a flood of log lines.

- ``shown(text)``: a string from the network (an OSC address, a marker name, a
  sender) made safe to print: escape sequences, newlines and other invisible
  characters become backslash escapes, and very long text is cut.
- ``RateLimitedReport``: at most a few lines per key and per interval; the rest is
  counted and summarised once per interval ("... and 3412 more like these").
- ``SafeFormatter`` and ``ThirdPartyFilter``: what ``pcp-osc`` installs on its log
  handler, so that no record (ours or a library's) can move the cursor, clear the
  screen or forge a log line, and python-osc's own warnings are throttled.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, TextIO

from .parts import BasePart

if TYPE_CHECKING:
    from .daemon import Daemon

SHOWN_MAX_CHARS = 120
REPORT_INTERVAL_S = 10.0
REPORT_LINES_PER_KEY = 3  # per interval
REPORT_LINES_TOTAL = 20  # per interval, all keys together
REPORT_KEYS_MAX = 1024  # keys remembered; a flood of distinct keys cannot grow memory

_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\"}


def shown(text: object, max_chars: int = SHOWN_MAX_CHARS, *, backslashes: bool = True) -> str:
    """``text`` as it may appear on a console: every character that is not printable
    (C0/C1 controls, ESC, bidi overrides, zero-width marks) as an escape, backslashes
    doubled (unless ``backslashes=False``, for text that is already escaped, such as
    a message quoting a value with ``repr``), cut to ``max_chars`` with the full
    length said."""
    s = str(text)
    cut = len(s) > max_chars
    out = []
    for ch in s[:max_chars] if cut else s:
        if ch == "\\" and not backslashes:
            out.append(ch)
        elif ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ch.isprintable():
            out.append(ch)
        else:
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
    if cut:
        out.append(f"… ({len(s)} characters)")
    return "".join(out)


class RateLimitedReport:
    """Warnings keyed by (who, what): at most ``per_key`` lines per key and ``total``
    lines overall per interval; the rest are counted, and one summary line per
    interval says how many were held back and from whom. Thread-safe; ``tick()``
    lets a quiet interval end with its summary."""

    def __init__(
        self,
        logger: logging.Logger,
        what: str,
        interval_s: float = REPORT_INTERVAL_S,
        per_key: int = REPORT_LINES_PER_KEY,
        total: int = REPORT_LINES_TOTAL,
        level: int = logging.WARNING,
    ) -> None:
        self.logger = logger
        self.level = level
        self.what = what
        self.interval_s = interval_s
        self.per_key = per_key
        self.total = total
        self._lock = threading.Lock()
        self._start = time.monotonic()
        self._lines = 0
        self._per_key: OrderedDict[str, int] = OrderedDict()
        self._held: dict[str, int] = {}
        self.held_total = 0

    def warn(self, key: str, message: str, *args: object) -> bool:  # at the report's level
        """Log ``message % args`` unless this key or the whole report is over its budget
        for this interval. True when the line was written."""
        now = time.monotonic()
        self.tick(now)
        with self._lock:
            n = self._per_key.get(key, 0)
            if n >= self.per_key or self._lines >= self.total:
                if key in self._held or len(self._held) < REPORT_KEYS_MAX:
                    self._held[key] = self._held.get(key, 0) + 1
                else:
                    self._held["others"] = self._held.get("others", 0) + 1
                self.held_total += 1
                return False
            self._per_key[key] = n + 1
            self._per_key.move_to_end(key)
            while len(self._per_key) > REPORT_KEYS_MAX:
                self._per_key.popitem(last=False)
            self._lines += 1
        self.logger.log(self.level, message, *args, stacklevel=3)
        return True

    def tick(self, now: float | None = None, *, final: bool = False) -> None:
        """End the interval if it is over (or ``final``, at stop): write the summary of
        what was held back."""
        now = time.monotonic() if now is None else now
        with self._lock:
            if now - self._start < self.interval_s and not final:
                return
            held, self._held = self._held, {}
            self._per_key.clear()
            self._lines = 0
            elapsed = now - self._start
            self._start = now
        if held:
            top = sorted(held.items(), key=lambda kv: -kv[1])
            listed = ", ".join(f"{k}: {v}" for k, v in top[:5]) + (f", and {len(top) - 5} more" if len(top) > 5 else "")
            self.logger.log(self.level, "%d more %s in the last %.0f s, not shown one by one (%s)",
                                sum(held.values()), self.what, elapsed, listed)


# --------------------------------------------------------------------------- log handler parts

_CONTROL_CHARS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")


def _escape_controls(text: str) -> str:
    return _CONTROL_CHARS.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100 else f"\\u{ord(m.group()):04x}", text)


class SafeFormatter(logging.Formatter):
    """Formats like ``logging.Formatter``, then makes the record's own text inert:
    control characters (ESC, CR, BEL, ...) are escaped and every continuation line of
    a message is indented, so nothing in a message can look like a new log line.
    The format's own prefix (e.g. the status line's clearing sequence) is kept."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        message = record.message
        safe = _escape_controls(message).replace("\n", "\n    | ")
        if safe is not message:
            record = logging.makeLogRecord(record.__dict__)
            record.message = safe
        return super().formatMessage(record)

    def formatException(self, ei) -> str:  # a traceback keeps its lines, loses its escapes
        return _escape_controls(super().formatException(ei))


class ThirdPartyFilter(logging.Filter):
    """Throttles records that libraries log straight to the root logger (python-osc
    warns there for every argument type it does not know): per message text (digits
    ignored), at most a few lines per interval, then one summary."""

    MODULE_DIRS = (f"{os.sep}pythonosc{os.sep}",)

    def __init__(self, interval_s: float = REPORT_INTERVAL_S, per_key: int = REPORT_LINES_PER_KEY) -> None:
        super().__init__()
        self.report = _FilterBudget(interval_s, per_key)

    def filter(self, record: logging.LogRecord) -> bool:
        path = record.pathname or ""
        if not any(d in path for d in self.MODULE_DIRS):
            return True
        key = re.sub(r"\d+", "#", str(record.msg))[:80]
        allowed, summary = self.report.check(key)
        if summary:
            record.msg = f"{record.msg} ({summary} more like it from python-osc held back)"
            record.args = ()
        return allowed


class _FilterBudget:
    def __init__(self, interval_s: float, per_key: int) -> None:
        self.interval_s = interval_s
        self.per_key = per_key
        self._lock = threading.Lock()
        self._seen: OrderedDict[str, list] = OrderedDict()  # key -> [interval start, lines, held]

    def check(self, key: str) -> tuple[bool, int]:
        now = time.monotonic()
        with self._lock:
            entry = self._seen.get(key)
            if entry is None or now - entry[0] >= self.interval_s:
                held = entry[2] if entry else 0
                self._seen[key] = [now, 1, 0]
                self._seen.move_to_end(key)
                while len(self._seen) > REPORT_KEYS_MAX:
                    self._seen.popitem(last=False)
                return True, held
            if entry[1] < self.per_key:
                entry[1] += 1
                return True, 0
            entry[2] += 1
            return False, 0


status_log = logging.getLogger("pcp_osc.run")  # the status line's name in the log when not on a terminal


class StatusLine(BasePart):
    """One refreshing console line: faces, live mood, last cue (every few seconds as a log line when not a terminal).
    A part of the show (started and stopped with it); it reads the daemon's status."""

    role = "console"

    def __init__(self, daemon: Daemon, stream: TextIO = sys.stderr) -> None:
        self.daemon = daemon
        self.stream = stream
        self.tty = stream.isatty()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="status-line", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        if self.tty:
            self.stream.write("\n")

    def text(self) -> str:
        s = self.daemon.status()
        live = s["live"]
        cue = s["cue"]
        shares = ""
        if live:
            top = sorted(live["shares"].items(), key=lambda kv: -kv[1])[:2]
            shares = " ".join(f"{e} {v * 100:.0f}%" for e, v in top)
        cue_txt = f"cue {cue['id']} {cue['emotion']} {cue['confidence'] * 100:.0f}% {cue['source']} {cue['hex']}" if cue else "no cue yet"
        return (f"faces {s['faces']:2d} | live {shares or '-'} | {cue_txt} | next in {s['window_left_s']:.0f} s"
                f" | {s['perception_ms']:.0f} ms/frame | {s['status']}")

    def _loop(self) -> None:
        period = 0.5 if self.tty else 15.0
        while not self._stop.wait(period):
            try:
                line = self.text()
            except Exception:
                continue
            if self.tty:
                self.stream.write("\r\033[K" + line[: 200])
                self.stream.flush()
            else:
                status_log.info(line)
