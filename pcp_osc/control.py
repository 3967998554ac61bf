"""Show control in: the receiver (``ControlServer``) on its own thread, with its limits
(``ControlLimits``, ``TokenBucket``), the sender allow list (``AllowList``), parsing that
refuses what it cannot read, and ``osc_json`` (an argument as the show log and the
dashboard keep it). Which addresses mean what is the daemon's handler table
(daemon.py) over ``osc.CONTROL_NAMES``. Parsing is python-osc's.
"""

from __future__ import annotations

import logging
import re
import socket
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import numpy as np
from pythonosc.osc_packet import ParseError

from .console import RateLimitedReport, shown
from .osc import encode

log = logging.getLogger("pcp_osc.osc")  # the name operators know from the log

RECV_BUFFER_BYTES = 65536
RECV_SOCKET_BUFFER_BYTES = 1 << 20
RECV_BUSY_SLICE_S = 0.008  # the control thread works at most this long at a stretch ...
RECV_REST_S = 0.002  # ... then rests this long
BAD_MESSAGE_LOG_INTERVAL_S = 10.0

OSC_TYPES_READ = "ihfdsbrmtTFN[]"  # what python-osc parses; anything else is refused, not guessed at
MAX_BUNDLE_DEPTH = 4
BLOB_JSON_MAX_BYTES = 256  # a blob's first bytes go to the show log and dashboard as base64
PENDING_PER_SENDER = 64  # messages over the rate that wait their turn (the rest are dropped)
SENDERS_TRACKED_MAX = 1024


def osc_json(value: Any) -> Any:
    """An OSC argument as python-osc parsed it, as a JSON value (show log, dashboard):
    numbers, strings, true/false and null as they are; a non-finite float as the
    string "NaN"/"Infinity"/"-Infinity"; a blob as {"blob_bytes": n, "base64": ...}
    (the first 256 bytes); a timetag as {"timetag": Unix seconds} ("immediately"
    for 1); a MIDI message as {"midi": [port, status, data1, data2]}; arrays as lists."""
    import base64
    import datetime as _dt
    import math

    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "NaN" if value != value else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, (bytes, bytearray, memoryview)):
        b = bytes(value)
        out: dict[str, Any] = {"blob_bytes": len(b), "base64": base64.b64encode(b[:BLOB_JSON_MAX_BYTES]).decode("ascii")}
        if len(b) > BLOB_JSON_MAX_BYTES:
            out["truncated"] = True
        return out
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], _dt.datetime):
        when, fraction = value
        if when == _dt.datetime(1900, 1, 1) and fraction == 1:
            return {"timetag": "immediately"}
        unix = (when - _dt.datetime(1970, 1, 1)).total_seconds() + float(fraction) / 2**32
        return {"timetag": unix}
    if isinstance(value, tuple) and len(value) == 4 and all(isinstance(v, int) for v in value):
        return {"midi": list(value)}
    if isinstance(value, (list, tuple)):
        return [osc_json(v) for v in value]
    if isinstance(value, dict):  # from the dashboard's JSON
        return {str(k): osc_json(v) for k, v in value.items()}
    return str(value)


_HOST_NAME = re.compile(r"^(?=.{1,253}\.?$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$")


class AllowList:
    """Who may send show control: IP addresses, CIDR ranges (``127.0.0.0/8``,
    ``192.168.1.0/24``, ``fd00::/8``) and host names, which are resolved once, here,
    at start-up. An empty list allows everyone. Raises ValueError naming an entry
    that is neither an address nor a name this machine can resolve.

    ``allows(host)`` takes the sender's address as a socket or a web server reports
    it (IPv4-mapped IPv6 is read as IPv4)."""

    def __init__(self, entries: Iterable[str] = (), where: str = "osc.allowed_senders") -> None:
        import ipaddress

        self.networks: list[Any] = []
        self.described: list[str] = []
        for raw in entries:
            text = str(raw).strip()
            if not text:
                continue
            try:
                net = ipaddress.ip_network(text, strict=False)
            except ValueError:
                pass
            else:
                mapped = net.network_address.ipv4_mapped if net.version == 6 and net.prefixlen >= 96 else None
                if mapped is not None:  # ::ffff:a.b.c.d/1xx is the IPv4 range a.b.c.d/(xx-96)
                    net = ipaddress.ip_network(f"{mapped}/{net.prefixlen - 96}", strict=False)
                self.networks.append(net)
                self.described.append(text)
                continue
            if "/" in text or text.replace(".", "").isdigit():
                raise ValueError(f"{where}: {text!r} is not an IP address or CIDR range "
                                 f"(e.g. 10.0.0.5, 127.0.0.0/8, 192.168.1.0/24)")
            if not _HOST_NAME.match(text):
                raise ValueError(f"{where}: {shown(text)!r} is not an IP address, a CIDR range or a host name "
                                 f"(e.g. 10.0.0.5, 127.0.0.0/8, localhost, desk.local)")
            try:
                infos = socket.getaddrinfo(text, None, type=socket.SOCK_DGRAM)
            except (OSError, UnicodeError) as e:
                raise ValueError(f"{where}: host name {text!r} cannot be resolved on this machine ({e}); "
                                 f"write its IP address, or a range like 192.168.1.0/24") from None
            ips = sorted({info[4][0].split("%")[0] for info in infos})
            self.networks += [ipaddress.ip_network(ip) for ip in ips]
            self.described.append(f"{text} = {', '.join(ips)}")

    def __bool__(self) -> bool:
        return bool(self.networks)

    def __str__(self) -> str:
        return ", ".join(self.described) or "everyone"

    def allows(self, host: str | None) -> bool:
        import ipaddress

        if not self.networks:
            return True
        try:
            ip = ipaddress.ip_address(str(host).split("%")[0].strip("[]"))
        except ValueError:
            return False
        if ip.version == 6 and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip.version == n.version and ip in n for n in self.networks)


class TokenBucket:
    """``rate_per_s`` events a second on average, up to ``burst`` at once."""

    def __init__(self, rate_per_s: float, burst: float | None = None) -> None:
        self.rate = float(rate_per_s)
        self.capacity = max(1.0, float(burst if burst is not None else rate_per_s))
        self.tokens = self.capacity
        self._t = time.monotonic()

    def _refill(self, now: float) -> None:
        if now > self._t:
            self.tokens = min(self.capacity, self.tokens + (now - self._t) * self.rate)
            self._t = now

    def ready(self, now: float | None = None) -> bool:
        self._refill(time.monotonic() if now is None else now)
        return self.tokens >= 1.0

    def take(self, now: float | None = None) -> bool:
        self._refill(time.monotonic() if now is None else now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


def split_packet(data: bytes, max_messages: int) -> tuple[list[bytes], int]:
    """The messages of one datagram (itself, or a bundle's, depth first in order):
    at most ``max_messages`` of them, and how many more it held. A bundle's time
    tag is not honoured (show control acts at once). Raises ParseError for a
    malformed bundle: none of its messages is handled then."""
    out: list[bytes] = []
    beyond = 0

    def walk(chunk: bytes, depth: int) -> None:
        nonlocal beyond
        if not chunk.startswith(b"#bundle\x00"):
            if len(out) < max_messages:
                out.append(chunk)
            else:
                beyond += 1
            return
        if depth > MAX_BUNDLE_DEPTH:
            raise ParseError(f"bundles nested deeper than {MAX_BUNDLE_DEPTH}")
        if len(chunk) < 16:
            raise ParseError("a bundle shorter than its 16-byte header")
        i = 16
        while i < len(chunk):
            if i + 4 > len(chunk):
                raise ParseError("a bundle element's size is cut off")
            size = int.from_bytes(chunk[i:i + 4], "big")
            i += 4
            if size == 0 or i + size > len(chunk):
                raise ParseError(f"a bundle element of {size} bytes does not fit in the datagram")
            walk(chunk[i:i + size], depth + 1)
            i += size

    walk(bytes(data), 0)
    return out, beyond


def parse_message(dgram: bytes) -> tuple[str, list[Any]]:
    """(address, arguments) of one OSC message. Raises ParseError saying what is wrong,
    including argument types python-osc would skip with a warning of its own."""
    from pythonosc.osc_message import OscMessage

    if not dgram.startswith(b"/"):
        raise ParseError("not an OSC message (an address starts with '/')")
    end = dgram.find(b"\x00")
    if end < 0:
        raise ParseError("the address is not terminated")
    tags_at = (end // 4 + 1) * 4
    if tags_at < len(dgram) and dgram[tags_at:tags_at + 1] == b",":
        tags_end = dgram.find(b"\x00", tags_at)
        tags = dgram[tags_at + 1:tags_end if tags_end >= 0 else len(dgram)].decode("latin-1")
        unknown = sorted(set(tags) - set(OSC_TYPES_READ))
        if unknown:
            raise ParseError(f"argument type '{shown(''.join(unknown))}' is not one show control reads "
                             f"(it reads {' '.join(OSC_TYPES_READ)})")
    try:
        msg = OscMessage(dgram)
        return msg.address, list(msg.params)
    except ParseError:
        raise
    except Exception as e:  # python-osc raises assorted errors on garbage
        raise ParseError(f"{type(e).__name__}: {e}") from None


@dataclass(frozen=True)
class ControlLimits:
    """What one sender can cause (osc.* in the config; docs/OSC.md, "Limits")."""

    max_bundle_messages: int = 32
    max_messages_per_s: float = 100.0
    report_interval_s: float = BAD_MESSAGE_LOG_INTERVAL_S


@dataclass
class _Sender:
    bucket: TokenBucket
    pending: "OrderedDict[Any, tuple[str, list[Any], str]]" = field(default_factory=lambda: OrderedDict())
    bundle_dropped: int = 0
    rate_dropped: int = 0
    superseded: int = 0


class ControlServer:
    """Show-control receiver on its own thread. Each datagram from an allowed sender
    is split into its messages (at most ``max_bundle_messages``), each message is
    parsed, and ``(address, args, sender)`` goes to ``handler`` -- which must be quick.

    Per sender address, at most ``max_messages_per_s`` messages a second reach the
    handler. Over that, a message ``collapse(address, sender)`` names a slot for
    (override, intent, ...) waits in that slot, replacing an older one (so a storm
    ends in its latest state); others wait in order up to a small queue, then are
    dropped. What was dropped or replaced is counted, summed per sender in one log
    line per interval, and owed to the sender's next pong (``take_unhandled``).

    Malformed packets and refused senders are reported at most a few lines per
    interval, the rest summarised; the receiver never stops for them.
    """

    def __init__(
        self,
        host: str,
        port: int,
        handler: Callable[[str, list[Any], str], Any],
        allowed_senders: AllowList | Iterable[str] = (),
        limits: ControlLimits | None = None,
        collapse: Callable[[str, str], Any] | None = None,
    ) -> None:
        self.handler = handler
        self.allowed = allowed_senders if isinstance(allowed_senders, AllowList) else AllowList(allowed_senders)
        self.limits = limits or ControlLimits()
        self.collapse = collapse
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self.sock.bind((host, port))
        except OSError as e:
            self.sock.close()
            raise OSError(
                f"cannot listen for show control on UDP {host}:{port} ({e.strerror or e}); "
                f"is another pcp-osc running? choose another with --control-port or osc.control_port"
            ) from None
        self.sock.settimeout(0.2)
        try:  # room for a burst while the thread is busy (the kernel caps it at net.core.rmem_max)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECV_SOCKET_BUFFER_BYTES)
        except OSError:
            pass
        self.port = self.sock.getsockname()[1]
        self.host = host
        self.received = 0  # datagrams
        self.messages = 0  # messages handed to the handler
        self.malformed = 0
        self.refused = 0
        self.bundle_dropped = 0
        self.rate_dropped = 0
        self.superseded = 0
        self.report = RateLimitedReport(log, "ignored show-control messages", self.limits.report_interval_s)
        self._senders: OrderedDict[str, _Sender] = OrderedDict()
        self._waiting: set[str] = set()
        self._unhandled: OrderedDict[str, int] = OrderedDict()
        self._pending_n = 0
        self._last_excess_report = time.monotonic()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="osc-control", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()
        self._report_excess(time.monotonic())  # what the last interval held back is said, not lost
        self.report.tick(final=True)

    def reply(self, sender: str, address: str, *args: Any) -> None:
        """Answer a sender (e.g. /pcp/pong) from the control port."""
        host, _, port = sender.rpartition(":")
        try:
            self.sock.sendto(encode(address, args), (host, int(port)))
        except (OSError, ValueError) as e:
            self.report.warn(f"reply {host}", "cannot answer %s (%s)", sender, e)

    def note_bad(self, sender: str, reason: str) -> None:
        """Report a bad message: a few lines per sender and reason per interval, then a summary."""
        ip = sender.rpartition(":")[0] or sender
        self.report.warn(f"{ip} {reason[:40]}", "show control from %s ignored: %s", shown(sender), reason)

    def take_unhandled(self, sender: str) -> int:
        """Messages from ``sender`` (HOST:PORT) dropped or replaced since the last call."""
        with self._lock:
            return self._unhandled.pop(sender, 0)

    def _mark_unhandled(self, sender: str, n: int = 1) -> None:
        with self._lock:
            self._unhandled[sender] = self._unhandled.get(sender, 0) + n
            self._unhandled.move_to_end(sender)
            while len(self._unhandled) > SENDERS_TRACKED_MAX * 4:
                self._unhandled.popitem(last=False)

    # ----------------------------------------------------------------- receive loop

    def _loop(self) -> None:
        busy_since = None
        while not self._stop.is_set():
            now = time.monotonic()
            # Under a flood this thread would hold the interpreter (and a CPU) without a
            # pause; a short rest now and then keeps the clock's cues on time. What
            # arrives meanwhile waits in the socket, or the kernel drops it.
            if busy_since is None:
                busy_since = now
            elif now - busy_since >= RECV_BUSY_SLICE_S:
                time.sleep(RECV_REST_S)
                busy_since = None
                continue
            if self._waiting:
                self._release_waiting(now)
            if now - self._last_excess_report >= self.limits.report_interval_s:
                self._report_excess(now)
            self.report.tick(now)
            try:
                data, addr = self.sock.recvfrom(RECV_BUFFER_BYTES)
            except socket.timeout:
                busy_since = None
                continue
            except OSError:
                if self._stop.is_set():
                    return
                continue
            try:
                self._datagram(data, addr, time.monotonic())
            except Exception:  # a bug here must not take show control down
                log.exception("show control: a datagram from %s:%s could not be handled", addr[0], addr[1])

    def _datagram(self, data: bytes, addr: tuple, now: float) -> None:
        ip = addr[0]
        sender = f"{ip}:{addr[1]}"
        self.received += 1
        if not self.allowed.allows(ip):
            self.refused += 1
            self.report.warn(f"{ip} refused", "show control from %s refused: %s is not in osc.allowed_senders (%s)",
                             sender, ip, self.allowed)
            return
        try:
            messages, beyond = split_packet(data, self.limits.max_bundle_messages)
        except ParseError as e:
            self.malformed += 1
            self.note_bad(sender, f"malformed OSC packet of {len(data)} bytes ({e})")
            return
        s = self._sender(ip)
        if beyond:
            self.bundle_dropped += beyond
            s.bundle_dropped += beyond
            self._mark_unhandled(sender, beyond)
        for dgram in messages:
            try:
                address, args = parse_message(dgram)
            except ParseError as e:
                self.malformed += 1
                self.note_bad(sender, f"malformed OSC packet ({len(dgram)}-byte message) ({e})")
                continue
            self._admit(s, ip, sender, address, args, now)

    def _sender(self, ip: str) -> _Sender:
        s = self._senders.get(ip)
        if s is None:
            s = self._senders[ip] = _Sender(TokenBucket(self.limits.max_messages_per_s))
            if len(self._senders) > SENDERS_TRACKED_MAX:
                for old in list(self._senders)[: len(self._senders) - SENDERS_TRACKED_MAX]:
                    if old not in self._waiting:
                        del self._senders[old]
        else:
            self._senders.move_to_end(ip)
        return s

    def _admit(self, s: _Sender, ip: str, sender: str, address: str, args: list[Any], now: float) -> None:
        if not s.pending and s.bucket.take(now):
            self._deliver(address, args, sender)
            return
        slot = self.collapse(address, sender) if self.collapse else None
        if slot is None:
            if len(s.pending) >= PENDING_PER_SENDER:
                s.rate_dropped += 1
                self.rate_dropped += 1
                self._mark_unhandled(sender)
                return
            self._pending_n += 1
            slot = ("message", self._pending_n)
        elif slot in s.pending:
            _, _, old_sender = s.pending.pop(slot)
            s.superseded += 1
            self.superseded += 1
            self._mark_unhandled(old_sender)
        s.pending[slot] = (address, args, sender)
        self._waiting.add(ip)

    def _release_waiting(self, now: float) -> None:
        for ip in list(self._waiting):
            s = self._senders.get(ip)
            while s is not None and s.pending and s.bucket.take(now):
                _, (address, args, sender) = s.pending.popitem(last=False)
                self._deliver(address, args, sender)
            if s is None or not s.pending:
                self._waiting.discard(ip)

    def _deliver(self, address: str, args: list[Any], sender: str) -> None:
        self.messages += 1
        try:
            self.handler(address, args, sender)
        except Exception:  # a handler bug must not take show control down
            log.exception("show control handler failed on %s from %s", shown(address), sender)

    def _report_excess(self, now: float) -> None:
        """Once per interval: one line per sender that went over its limits."""
        elapsed = now - self._last_excess_report
        self._last_excess_report = now
        lines = []
        for ip, s in self._senders.items():
            parts = []
            if s.bundle_dropped:
                parts.append(f"{s.bundle_dropped} bundle messages beyond osc.max_bundle_messages = "
                             f"{self.limits.max_bundle_messages} per datagram dropped")
            if s.rate_dropped:
                parts.append(f"{s.rate_dropped} messages beyond osc.max_messages_per_s = "
                             f"{self.limits.max_messages_per_s:g} dropped")
            if s.superseded:
                parts.append(f"{s.superseded} replaced by a newer message of the same kind before their turn")
            if parts:
                lines.append((ip, "; ".join(parts)))
            s.bundle_dropped = s.rate_dropped = s.superseded = 0
        for ip, text in lines[:10]:
            log.warning("show control from %s over its limits in the last %.0f s: %s", ip, elapsed, text)
        if len(lines) > 10:
            log.warning("show control: %d more senders over their limits in the last %.0f s", len(lines) - 10, elapsed)
