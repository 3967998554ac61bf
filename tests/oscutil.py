"""Test helpers: a real UDP OSC receiver and sender (no mocks: real sockets on loopback)."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass

from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.osc_packet import OscPacket


@dataclass
class Received:
    address: str
    args: list
    t: float  # time.monotonic() at arrival
    sender: tuple


class OscReceiver:
    """Binds a UDP port on 127.0.0.1 and records every OSC message that arrives.

    A datagram it cannot parse is recorded in ``bad`` (the thread goes on); the ``receiver``
    fixture fails the test if anything sent to it was not OSC, and ``wait_for`` says so."""

    def __init__(self, port: int = 0) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", port))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.messages: list[Received] = []
        self.raw: list[bytes] = []
        self.bad: list[tuple[bytes, str]] = []  # (datagram, why) for anything that is not OSC
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                data, addr = self.sock.recvfrom(65536)
            except (socket.timeout, OSError):
                continue
            now = time.monotonic()
            try:
                parsed = [Received(m.message.address, list(m.message.params), now, addr) for m in OscPacket(data).messages]
            except Exception as e:  # python-osc raises assorted errors on garbage
                with self._lock:
                    self.raw.append(data)
                    self.bad.append((data, f"{type(e).__name__}: {e}"))
                continue
            with self._lock:
                self.raw.append(data)
                self.messages.extend(parsed)

    def all(self, address: str | None = None) -> list[Received]:
        with self._lock:
            return [m for m in self.messages if address is None or m.address == address]

    def values(self, address: str) -> list:
        return [m.args[0] if len(m.args) == 1 else m.args for m in self.all(address)]

    def wait_for(self, address: str, predicate=lambda m: True, timeout_s: float = 10.0, after: int = 0) -> Received:
        """The first message at ``address`` (index >= after among those) matching predicate."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for m in self.all(address)[after:]:
                if predicate(m):
                    return m
            time.sleep(0.01)
        seen = sorted({m.address for m in self.all()})
        raise AssertionError(f"no {address} matching within {timeout_s} s; addresses seen: {seen}{self.bad_text()}")

    def bad_text(self) -> str:
        with self._lock:
            if not self.bad:
                return ""
            data, why = self.bad[0]
            return f"; {len(self.bad)} datagram(s) were not OSC, the first {data[:60]!r} ({why})"

    def assert_all_osc(self) -> None:
        assert not self.bad, f"the receiver got datagrams that are not OSC{self.bad_text()}"

    def cues(self, settle_s: float = 2.0) -> list[dict]:
        """Complete cues reassembled from the one-value messages, in arrival order (a cue starts
        at /pcp/cue/id and ends at /pcp/cue/hex). A cue whose messages are still arriving is
        waited for up to ``settle_s``, then left out."""
        deadline = time.monotonic() + settle_s
        while True:
            cues = self._assemble_cues()
            if not cues or "hex" in cues[-1] or time.monotonic() >= deadline:
                return [c for c in cues if "hex" in c]
            time.sleep(0.01)

    def _assemble_cues(self) -> list[dict]:
        cues: list[dict] = []
        for m in self.all():
            if not m.address.startswith("/pcp/cue/"):
                continue
            key = m.address[len("/pcp/cue/"):]
            if key == "id":
                cues.append({"id": m.args[0], "t": m.t})
            elif cues:
                cues[-1][key] = m.args[0] if len(m.args) == 1 else m.args
        return cues

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=1)
        self.sock.close()


def send_osc(port: int, address: str, *args, host: str = "127.0.0.1", sock: socket.socket | None = None) -> None:
    b = OscMessageBuilder(address=address)
    for a in args:
        b.add_arg(a)
    s = sock or socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(b.build().dgram, (host, port))
    if sock is None:
        s.close()


def send_raw(port: int, data: bytes, host: str = "127.0.0.1") -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(data, (host, port))
    s.close()


def wait_until(cond, timeout_s: float = 10.0) -> bool:
    """Poll ``cond()`` until it is true (True) or ``timeout_s`` passes (False)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.01)
    return False
