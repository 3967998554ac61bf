"""OSC at the show boundary: the address map (docs/OSC.md), the sender, and the control receiver.

The address map and argument types live in pure functions (``cue_messages``,
``live_messages``) apart from the sockets, so tests can check them against the
contract and the transport stays thin. Numpy scalars become Python types here.
Wire encoding and parsing are python-osc's.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.osc_packet import OscPacket, ParseError

from .emotions import EMOTIONS
from .types import Colour, Cue, Mood, plain

log = logging.getLogger("pcp_osc.osc")

MAX_PACKET_BYTES = 512  # ETC Eos splits anything longer
RECV_BUFFER_BYTES = 65536
BAD_MESSAGE_LOG_INTERVAL_S = 10.0

Message = tuple[str, list[Any]]


def osc_arg(value: Any) -> Any:
    """A value as the int/float/str python-osc encodes as i/f/s: numpy scalars made plain,
    bools sent as 0/1 (OSC 1.0 receivers know no boolean type)."""
    value = plain(value)
    return int(value) if isinstance(value, bool) else value


def encode(address: str, args: Iterable[Any] = ()) -> bytes:
    b = OscMessageBuilder(address=address)
    for a in args:
        a = osc_arg(a)
        if isinstance(a, float):
            b.add_arg(a, "f")
        elif isinstance(a, int):
            b.add_arg(a, "i")
        else:
            b.add_arg(str(a), "s")
    dgram = b.build().dgram
    if len(dgram) > MAX_PACKET_BYTES:
        raise ValueError(f"OSC message {address} is {len(dgram)} bytes; the limit is {MAX_PACKET_BYTES}")
    return dgram


BUNDLE_HEADER_BYTES = 16  # "#bundle\0" and the time tag
BUNDLE_ELEMENT_BYTES = 4  # each element's int32 size


def pack_bundles(datagrams: list[bytes]) -> list[bytes]:
    """Encoded messages packed, in order, into as few immediate bundles as keep every
    packet within MAX_PACKET_BYTES (a cue with a long prefix takes two)."""
    out: list[bytes] = []
    current: list[bytes] = []
    size = BUNDLE_HEADER_BYTES
    for d in datagrams:
        need = BUNDLE_ELEMENT_BYTES + len(d)
        if BUNDLE_HEADER_BYTES + need > MAX_PACKET_BYTES:
            raise ValueError(f"an OSC message of {len(d)} bytes cannot go in a bundle under {MAX_PACKET_BYTES} bytes")
        if current and size + need > MAX_PACKET_BYTES:
            out.append(_bundle(current))
            current, size = [], BUNDLE_HEADER_BYTES
        current.append(d)
        size += need
    if current:
        out.append(_bundle(current))
    return out


def _bundle(datagrams: list[bytes]) -> bytes:
    bb = OscBundleBuilder(IMMEDIATELY)
    for d in datagrams:
        bb.add_content(OscMessage(d))
    return bb.build().dgram


def encode_bundles(messages: list[Message]) -> list[bytes]:
    """The messages as immediate bundles, each within MAX_PACKET_BYTES (see pack_bundles)."""
    return pack_bundles([encode(address, args) for address, args in messages])


# --------------------------------------------------------------------------- address map


def cue_messages(cue: Cue, prefix: str = "/pcp") -> list[Message]:
    """The cue's messages, in the order of the OSC.md table (id first, so a receiver can
    treat /cue/id as "a new cue starts")."""
    p = prefix + "/cue"
    c = cue.colour
    return [
        (f"{p}/id", [int(cue.id)]),
        (f"{p}/emotion", [cue.emotion_id]),
        (f"{p}/index", [int(cue.emotion)]),
        (f"{p}/confidence", [float(cue.confidence)]),
        (f"{p}/source", [cue.source]),
        (f"{p}/faces", [int(round(cue.mood.faces))]),
        (f"{p}/color", [float(c.r), float(c.g), float(c.b)]),
        (f"{p}/color/r", [float(c.r)]),
        (f"{p}/color/g", [float(c.g)]),
        (f"{p}/color/b", [float(c.b)]),
        (f"{p}/hex", [c.hex]),
    ]


def live_messages(mood: Mood, colour: Colour, prefix: str = "/pcp") -> list[Message]:
    p = prefix + "/live"
    out: list[Message] = [(f"{p}/faces", [int(round(mood.faces))])]
    out += [(f"{p}/{e}", [float(v)]) for e, v in zip(EMOTIONS, mood.distribution)]
    out += [
        (f"{p}/color/r", [float(colour.r)]),
        (f"{p}/color/g", [float(colour.g)]),
        (f"{p}/color/b", [float(colour.b)]),
        (f"{p}/valence", [float(mood.valence)]),
        (f"{p}/arousal", [float(mood.arousal)]),
    ]
    return out


# --------------------------------------------------------------------------- sending


class OscOut:
    """Sends to TouchDesigner and any extra full-map receivers over one UDP socket.

    ``sendto`` on a UDP socket never waits on the receiver, so this is safe on the
    cue path; a send error (receiver's host unreachable) is logged once per target
    and the show goes on.
    """

    def __init__(self, targets: list[tuple[str, int]], bundle: bool = False) -> None:
        self.targets = list(targets)
        self.bundle = bundle
        self.sent = 0
        self.errors = 0
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.setblocking(False)
        self._lock = threading.Lock()
        self._failing: set[tuple[str, int]] = set()

    def send(self, address: str, *args: Any) -> None:
        self._send_dgram(encode(address, args))

    def send_many(self, messages: list[Message]) -> None:
        if self.bundle:
            for dgram in encode_bundles(messages):
                self._send_dgram(dgram)
        else:
            for address, args in messages:
                self._send_dgram(encode(address, args))

    def _send_dgram(self, dgram: bytes) -> None:
        with self._lock:
            for t in self.targets:
                try:
                    self._sock.sendto(dgram, t)
                    self.sent += 1
                    self._failing.discard(t)
                except OSError as e:
                    self.errors += 1
                    if t not in self._failing:
                        self._failing.add(t)
                        log.warning("cannot send OSC to %s:%d (%s); will keep trying", t[0], t[1], e)

    def close(self) -> None:
        self._sock.close()


# --------------------------------------------------------------------------- show control in


@dataclass
class BadMessage:
    sender: str
    reason: str


class ControlServer:
    """Show-control receiver on its own thread. Parses each datagram (a bundle's
    messages are handled in order), checks the sender against the allow list, and
    hands ``(address, args, sender)`` to ``handler`` -- which must be quick.

    A malformed packet or refused sender is logged (once per sender and reason per
    10 s, with a count of the repeats) and counted; the receiver never stops for it.
    """

    def __init__(
        self,
        host: str,
        port: int,
        handler: Callable[[str, list[Any], str], Any],
        allowed_senders: Iterable[str] = (),
    ) -> None:
        self.handler = handler
        self.allowed = {s.strip() for s in allowed_senders if s.strip()}
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
        self.port = self.sock.getsockname()[1]
        self.host = host
        self.received = 0
        self.malformed = 0
        self.refused = 0
        self._seen_bad: dict[tuple[str, str], list[float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="osc-control", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()

    def reply(self, sender: str, address: str, *args: Any) -> None:
        """Answer a sender (e.g. /pcp/pong) from the control port."""
        host, _, port = sender.rpartition(":")
        try:
            self.sock.sendto(encode(address, args), (host, int(port)))
        except (OSError, ValueError) as e:
            log.warning("cannot answer %s (%s)", sender, e)

    def note_bad(self, sender: str, reason: str) -> None:
        """Log a bad message once per (sender, reason) per interval, counting repeats."""
        now = time.monotonic()
        key = (sender.rpartition(":")[0], reason)
        seen = self._seen_bad.get(key)
        if seen is None or now - seen[0] >= BAD_MESSAGE_LOG_INTERVAL_S:
            repeats = f" ({int(seen[1])} more like it since)" if seen and seen[1] else ""
            log.warning("show control from %s ignored: %s%s", sender, reason, repeats)
            self._seen_bad[key] = [now, 0]
        else:
            seen[1] += 1

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                data, addr = self.sock.recvfrom(RECV_BUFFER_BYTES)
            except socket.timeout:
                continue
            except OSError:
                if self._stop.is_set():
                    return
                continue
            sender = f"{addr[0]}:{addr[1]}"
            self.received += 1
            if self.allowed and addr[0] not in self.allowed:
                self.refused += 1
                self.note_bad(sender, f"sender {addr[0]} is not in osc.allowed_senders ({', '.join(sorted(self.allowed))})")
                continue
            try:
                packet = OscPacket(data)
            except (ParseError, Exception) as e:  # python-osc raises assorted errors on garbage
                self.malformed += 1
                self.note_bad(sender, f"malformed OSC packet of {len(data)} bytes ({e})")
                continue
            for timed in packet.messages:
                msg = timed.message
                try:
                    self.handler(msg.address, list(msg.params), sender)
                except Exception:  # a handler bug must not take show control down
                    log.exception("show control handler failed on %s from %s", msg.address, sender)
