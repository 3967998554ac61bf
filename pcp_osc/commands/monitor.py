"""`pcp-osc monitor [--port P] [--json]`: see what pcp-osc (or anything else) sends, without
TouchDesigner.

Listens on a UDP port (default 9011, where pcp-osc sends its cues) and shows a live table:
the latest value of every address, how many messages per second it gets and how long ago
the last one came; the cue's rows light up when a new cue arrives, and a colour swatch shows
the cue's and the live colour. With ``--json``: JSON Lines on stdout, one object per message
as it arrives (bundles are unpacked, in order)::

    {"t": 1767225600.123, "address": "/pcp/cue/emotion", "types": "s", "args": ["joy"], "from": "127.0.0.1:50123"}

A datagram that is not OSC is counted and reported (``{"error": ..., "bytes": n, "from": ...}``
in JSON) and the monitor goes on.

Only one program can listen on a UDP port: to watch beside TouchDesigner, add the monitor as
a second receiver (add ``"127.0.0.1:9013"`` to ``osc.extra_targets``; 9012 is the TouchDesigner patch's
OSC In DAT) and run ``monitor --port 9013``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, TextIO

from pythonosc.osc_packet import OscPacket

DEFAULT_PORT = 9011
RATE_WINDOW_S = 5.0  # messages per second are counted over the last 5 s
CUE_FLASH_S = 2.0  # the cue's rows stay lit this long after a new cue
REDRAW_S = 0.25  # terminal table refresh
SNAPSHOT_S = 5.0  # not a terminal: print the table this often
RECV_BYTES = 65536


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "monitor", help="watch the OSC pcp-osc sends: a live table of every address, or --json lines",
        description="Listen for OSC and show the latest value of every address, its rate and age "
        "(cue rows light up on a new cue). Only one program can listen on a port: beside TouchDesigner, "
        "add 127.0.0.1:9013 to osc.extra_targets (9012 is the TouchDesigner patch's OSC In DAT) and run monitor --port 9013.")
    p.add_argument("--port", "-p", type=int, default=DEFAULT_PORT, help=f"UDP port to listen on (default {DEFAULT_PORT}, pcp-osc's target)")
    p.add_argument("--host", default="0.0.0.0", help="address to listen on (default 0.0.0.0: every interface)")
    p.add_argument("--json", action="store_true", help="JSON Lines: one object per message as it arrives")
    p.add_argument("--seconds", type=float, default=None, metavar="S", help="stop after S seconds (default: until Ctrl-C)")
    p.add_argument("--filter", default="", metavar="TEXT", help="only addresses containing TEXT (e.g. /cue/)")
    p.set_defaults(func=run)


# --------------------------------------------------------------------------- state


@dataclass
class Row:
    address: str
    types: str = ""
    args: list = field(default_factory=list)
    sender: str = ""
    last_t: float = 0.0  # monotonic
    count: int = 0
    recent: deque = field(default_factory=deque)  # arrival times within RATE_WINDOW_S

    def rate_hz(self, now: float, listening_s: float) -> float:
        """Messages per second over the last RATE_WINDOW_S (or since the monitor started)."""
        while self.recent and now - self.recent[0] > RATE_WINDOW_S:
            self.recent.popleft()
        return len(self.recent) / min(RATE_WINDOW_S, max(1.0, listening_s))


@dataclass
class Monitor:
    """What has arrived: the latest value per address and the counts. No sockets here."""

    rows: dict[str, Row] = field(default_factory=dict)
    messages: int = 0
    datagrams: int = 0
    malformed: int = 0
    last_error: str = ""
    last_cue_t: float | None = None  # monotonic
    started: float = field(default_factory=time.monotonic)

    def feed(self, data: bytes, sender: str, now: float) -> list[dict] | str:
        """One datagram: its messages as dicts (for --json), or an error text."""
        self.datagrams += 1
        try:
            packet = OscPacket(data)
        except Exception as e:  # python-osc raises assorted errors on garbage
            self.malformed += 1
            self.last_error = f"{len(data)}-byte datagram from {sender} is not OSC ({e})"
            return self.last_error
        out = []
        for timed in packet.messages:
            m = timed.message
            args = [_jsonable(a) for a in m.params]
            types = _types(m.dgram)
            row = self.rows.get(m.address)
            if row is None:
                row = self.rows[m.address] = Row(m.address)
            row.types, row.args, row.sender, row.last_t = types, args, sender, now
            row.count += 1
            row.recent.append(now)
            self.messages += 1
            if m.address.endswith("/cue/id"):
                self.last_cue_t = now
            out.append({"address": m.address, "types": types, "args": args, "from": sender})
        return out


def _types(dgram: bytes) -> str:
    """The type tag string of an encoded message, without the comma."""
    i = dgram.find(b",")
    if i < 0:
        return ""
    j = dgram.find(b"\0", i)
    return dgram[i + 1 : j].decode("ascii", "replace")


def _jsonable(a: Any) -> Any:
    if isinstance(a, (bytes, bytearray)):
        return f"<blob {len(a)} bytes>"
    if isinstance(a, float) and a != a:
        return "NaN"
    if isinstance(a, (str, int, float, bool)) or a is None:
        return a
    return str(a)


# --------------------------------------------------------------------------- table


BOLD, REVERSE, DIM, RESET = "\033[1m", "\033[7m", "\033[2m", "\033[0m"
HOME_CLEAR = "\033[H\033[2J"


def _value_text(args: list) -> str:
    parts = []
    for a in args:
        if isinstance(a, float):
            parts.append(f"{a:.3f}")
        elif isinstance(a, str):
            parts.append(repr(a) if " " in a or not a else a)
        else:
            parts.append(str(a))
    return " ".join(parts)


def _swatch(row: Row, colour: bool) -> str:
    """Two blocks in the colour of a colour message (#rrggbb, or r g b floats 0..1)."""
    if not colour:
        return ""
    rgb = None
    a = row.args
    if len(a) == 1 and isinstance(a[0], str) and len(a[0]) == 7 and a[0].startswith("#"):
        try:
            rgb = tuple(int(a[0][i : i + 2], 16) for i in (1, 3, 5))
        except ValueError:
            rgb = None
    elif len(a) == 3 and all(isinstance(x, float) for x in a) and row.address.endswith("/color"):
        rgb = tuple(int(round(max(0.0, min(1.0, x)) * 255)) for x in a)
    if rgb is None:
        return ""
    return f" \033[48;2;{rgb[0]};{rgb[1]};{rgb[2]}m    {RESET}"


def render_table(mon: Monitor, now: float, where: str, width: int = 100, colour: bool = False, only: str = "") -> str:
    """The table as text; ``colour`` adds ANSI highlighting (cue rows, swatches)."""
    listening_s = now - mon.started
    total_rate = sum(r.rate_hz(now, listening_s) for r in mon.rows.values())
    cue_age = f"last cue {now - mon.last_cue_t:.1f} s ago" if mon.last_cue_t is not None else "no cue yet"
    head = (f"pcp-osc monitor on UDP {where}: {len(mon.rows)} addresses, {mon.messages} messages "
            f"({total_rate:.1f}/s), {mon.malformed} not OSC; {cue_age}")
    lines = [head[:width]]
    if mon.last_error:
        lines.append(f"  last bad datagram: {mon.last_error}"[:width])
    rows = [r for r in mon.rows.values() if only in r.address]
    if not rows:
        lines.append("  (nothing yet: is pcp-osc sending here? `pcp-osc run --target HOST:PORT` or osc.extra_targets)")
        return "\n".join(lines)
    aw = min(max(len(r.address) for r in rows), max(20, width // 2))
    lines.append(f"{'address':<{aw}}  {'type':<5} {'rate/s':>7} {'age s':>6}  value")
    flash = colour and mon.last_cue_t is not None and now - mon.last_cue_t < CUE_FLASH_S
    for r in sorted(rows, key=lambda r: r.address):
        value = _value_text(r.args)
        room = max(8, width - aw - 24)
        if len(value) > room:
            value = value[: room - 1] + "…"
        line = f"{r.address:<{aw}}  {r.types:<5} {r.rate_hz(now, listening_s):>7.1f} {now - r.last_t:>6.1f}  {value}"
        if colour:
            is_cue = "/cue/" in r.address
            if is_cue and flash:
                line = f"{REVERSE}{BOLD}{line}{RESET}"
            elif is_cue:
                line = f"{BOLD}{line}{RESET}"
            elif now - r.last_t > 3.0:
                line = f"{DIM}{line}{RESET}"
            line += _swatch(r, colour)
        lines.append(line)
    return "\n".join(lines)


# --------------------------------------------------------------------------- command


def _width(tty: bool) -> int:
    """A terminal's width; a log or pipe gets whole lines."""
    return shutil.get_terminal_size((120, 40)).columns if tty else 1000


def run(args: argparse.Namespace) -> int:
    if not 1 <= args.port <= 65535:
        print(f"pcp-osc monitor: --port {args.port} is not a UDP port; allowed 1..65535", file=sys.stderr)
        return 2
    if args.seconds is not None and args.seconds <= 0:
        print(f"pcp-osc monitor: --seconds {args.seconds:g} must be more than 0", file=sys.stderr)
        return 2
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind((args.host, args.port))
    except OSError as e:
        sock.close()
        print(f"pcp-osc monitor: cannot listen on UDP {args.host}:{args.port} ({e.strerror or e}). "
              f"Another program (TouchDesigner, a second monitor) has it: send pcp-osc's messages to a second "
              f"port too: add \"127.0.0.1:9013\" to osc.extra_targets (9012 is the TouchDesigner patch's OSC In DAT) "
              f"and run `pcp-osc monitor --port 9013`.",
              file=sys.stderr)
        return 1
    sock.settimeout(0.05)
    where = f"{args.host}:{args.port}"
    out: TextIO = sys.stdout
    tty = out.isatty() and not args.json
    mon = Monitor()
    if not args.json:
        print(f"listening for OSC on UDP {where} (Ctrl-C to stop)", file=sys.stderr)
    deadline = None if args.seconds is None else time.monotonic() + args.seconds
    next_draw = time.monotonic() + (REDRAW_S if tty else SNAPSHOT_S)
    try:
        while deadline is None or time.monotonic() < deadline:
            try:
                data, addr = sock.recvfrom(RECV_BYTES)
            except socket.timeout:
                data = None
            except OSError:
                continue
            now = time.monotonic()
            if data is not None:
                got = mon.feed(data, f"{addr[0]}:{addr[1]}", now)
                if args.json:
                    wall = round(time.time(), 3)
                    if isinstance(got, str):
                        out.write(json.dumps({"t": wall, "error": got, "bytes": len(data), "from": f"{addr[0]}:{addr[1]}"}) + "\n")
                    else:
                        for m in got:
                            out.write(json.dumps({"t": wall, **m}, ensure_ascii=False) + "\n")
                    out.flush()
            if not args.json and now >= next_draw:
                text = render_table(mon, now, where, _width(tty), colour=tty, only=args.filter)
                out.write((HOME_CLEAR + text + "\n") if tty else (text + "\n\n"))
                out.flush()
                next_draw = now + (REDRAW_S if tty else SNAPSHOT_S)
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
    if not args.json:
        now = time.monotonic()
        out.write(("" if not tty else HOME_CLEAR) + render_table(mon, now, where, _width(tty), colour=tty, only=args.filter) + "\n")
        out.flush()
    return 0
