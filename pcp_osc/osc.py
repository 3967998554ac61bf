"""OSC out: the address map (docs/OSC.md, "Out"), encoding, and ``OscStream``, the one place
every outgoing message is built. The show-control names the daemon accepts ("In") are
listed here too (``CONTROL_NAMES``); receiving them is control.py's.

The address map and argument types live in pure functions (``cue_messages``,
``live_messages``) apart from the sockets, so tests can check them against the
contract and the transport stays thin. Numpy scalars become Python types here.
Wire encoding is python-osc's.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Any, Callable, Iterable

from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder

from .emotions import EMOTIONS
from .parts import BasePart
from .types import Colour, Cue, LiveSample, Mood, plain

log = logging.getLogger("pcp_osc.osc")

MAX_PACKET_BYTES = 512  # ETC Eos splits anything longer

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
            raise ValueError(f"an OSC message of {len(d)} bytes cannot go in a bundle within {MAX_PACKET_BYTES} bytes")
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
        self._failing: dict[tuple[str, int], str] = {}  # target -> why sending to it fails
        # told what is wrong while a target cannot be sent to (None when all work again):
        # /pcp/status and the dashboard must not say "ok" while no cue leaves the machine
        self.on_status: Callable[[str | None], None] | None = None

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
        changed = False
        with self._lock:
            for t in self.targets:
                try:
                    self._sock.sendto(dgram, t)
                    self.sent += 1
                    if self._failing.pop(t, None) is not None:
                        changed = True
                        log.info("sending OSC to %s:%d works again", t[0], t[1])
                except OSError as e:
                    self.errors += 1
                    if t not in self._failing:
                        changed = True
                        self._failing[t] = e.strerror or str(e)
                        log.warning("cannot send OSC to %s:%d (%s); will keep trying", t[0], t[1], e)
            text = ("osc-send-failed: " + ", ".join(f"{h}:{p} ({why})" for (h, p), why in self._failing.items())
                    if self._failing else None)
        if changed and self.on_status is not None:
            self.on_status(text)

    def close(self) -> None:
        self._sock.close()


class OscStream(BasePart):
    """Every message pcp-osc sends to its receivers (docs/OSC.md, "Out"), built here and
    nowhere else: cues, the live stream (at most ``live_rate_hz``), heartbeat and status,
    background announcements, and the pong show control gets back.

    A part with a fixed place: the daemon tells it each cue after the other parts (so a
    cue a receiver has seen is already queued for the show log) and each live sample
    before them; the sinks announce backgrounds through it. Sending never waits on a
    receiver (``OscOut``)."""

    role = "osc"

    def __init__(self, targets: list[tuple[str, int]], *, prefix: str = "/pcp", bundle: bool = False,
                 live_rate_hz: float = 10.0, heartbeat: bool = True) -> None:
        self.out = OscOut(targets, bundle=bundle)
        self.prefix = prefix
        self.live_rate_hz = float(live_rate_hz)
        self.heartbeat_on = bool(heartbeat)
        self._last_live_s = -1e9
        self._live_lock = threading.Lock()

    @classmethod
    def from_config(cls, osc_cfg: Any) -> "OscStream":
        from .config import parse_hostport

        targets = [parse_hostport(osc_cfg.target)] + [parse_hostport(t) for t in osc_cfg.extra_targets]
        return cls(targets, prefix=osc_cfg.prefix, bundle=osc_cfg.bundle, live_rate_hz=osc_cfg.live_rate_hz,
                   heartbeat=osc_cfg.heartbeat)

    @property
    def targets(self) -> list[tuple[str, int]]:
        return self.out.targets

    @property
    def sent(self) -> int:
        return self.out.sent

    def on_cue(self, cue: Cue) -> None:
        self.out.send_many(cue_messages(cue, self.prefix))

    def on_live(self, sample: LiveSample) -> None:
        """The live stream for this sample, unless one went out less than 1/live_rate_hz ago."""
        now_s = time.monotonic()
        with self._live_lock:
            if self.live_rate_hz <= 0 or now_s - self._last_live_s < 1.0 / self.live_rate_hz:
                return
            self._last_live_s = now_s
        self.out.send_many(live_messages(sample.mood, sample.colour, self.prefix))

    def heartbeat(self, uptime_s: float) -> None:
        if self.heartbeat_on:
            self.out.send(f"{self.prefix}/heartbeat", int(uptime_s))

    def status(self, text: str) -> None:
        self.out.send(f"{self.prefix}/status", text)

    def background_id(self, bg_id: int) -> None:
        self.out.send(f"{self.prefix}/background/id", int(bg_id))

    def background_path(self, path: str) -> None:
        self.out.send(f"{self.prefix}/background/path", str(path))

    def background_sender(self, name: str) -> None:
        self.out.send(f"{self.prefix}/background/sender", str(name))

    def pong(self, problems: str = "") -> Message:
        """The answer to /ping (the control server sends it back to the pinger)."""
        return (f"{self.prefix}/pong", [problems] if problems else [])

    def control_address(self, name: str) -> str:
        return f"{self.prefix}/{name}"

    def stop(self) -> None:
        self.close()

    def close(self) -> None:
        self.out.close()


# --------------------------------------------------------------------------- show control in (names)

# Show-control addresses the daemon understands, under the prefix (docs/OSC.md, "In"); the
# daemon's handler table, the dashboard and the report take their names from here.
CONTROL_NAMES = ("intent", "override", "release", "generate", "marker", "window", "blend", "region", "ping")
