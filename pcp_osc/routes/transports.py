"""Sending: every route on its own thread with a small latest-first queue, so a slow or dead
desk delays no other route and never the cue path. UDP is a plain ``sendto``; TCP is
python-osc's ``TCPClient`` (SLIP for OSC 1.1, a size prefix for OSC 1.0)."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections import deque
from typing import Callable, Iterable

from pythonosc.osc_bundle import OscBundle
from pythonosc.osc_message import OscMessage
from pythonosc.osc_tcp_server import MODE_1_0, MODE_1_1
from pythonosc.tcp_client import TCPClient

from ..config import RouteConfig
from ..parts import BasePart
from ..types import Cue
from .presets import Route, compile_route, compile_routes

log = logging.getLogger("pcp_osc.routes")

QUEUE_CUES = 16  # per route: cues waiting while a desk is slow; the oldest goes first
TCP_CONNECT_TIMEOUT_S = 1.0
TCP_RETRY_S = 2.0


class _Link:
    """One route's connection. UDP: sendto, never waits. TCP: python-osc's TCPClient
    (OSC 1.1 SLIP or OSC 1.0 size framing), connected on first use and after a failure
    (at most every TCP_RETRY_S)."""

    def __init__(self, route: Route) -> None:
        self.route = route
        self.sock: socket.socket | None = None  # UDP
        self.client: TCPClient | None = None  # TCP
        self.next_try = 0.0
        self.failing = False

    def send(self, messages: list[OscMessage | OscBundle]) -> bool:
        if self.route.protocol == "udp":
            if self.sock is None:
                self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            for m in messages:
                self.sock.sendto(m.dgram, (self.route.host, self.route.port))
            return True
        now = time.monotonic()
        if self.client is None:
            if now < self.next_try:
                return False
            try:
                mode = MODE_1_1 if self.route.framing == "slip" else MODE_1_0
                self.client = TCPClient(self.route.host, self.route.port, mode=mode, timeout=TCP_CONNECT_TIMEOUT_S)
                if self.failing:
                    log.info("route %s: connected again", self.route.name)
                self.failing = False
            except OSError as e:
                self.next_try = now + TCP_RETRY_S
                self._fail(f"cannot connect ({e.strerror or e})")
                return False
        try:
            for m in messages:
                self.client.send(m)
            return True
        except OSError as e:
            self.close()
            self.next_try = now + TCP_RETRY_S
            self._fail(f"connection lost ({e.strerror or e})")
            return False

    def _fail(self, why: str) -> None:
        if not self.failing:
            log.warning("route %s: %s; retrying every %.0f s, the other routes go on", self.route.name, why, TCP_RETRY_S)
        self.failing = True

    def close(self) -> None:
        for closable in (self.sock, self.client):
            if closable is not None:
                try:
                    closable.close()
                except OSError:
                    pass
        self.sock = self.client = None


class _RouteWorker:
    def __init__(self, route: Route, on_sent: Callable[[Route, Cue], None] | None) -> None:
        self.route = route
        self.on_sent = on_sent
        self.queue: deque[Cue] = deque(maxlen=QUEUE_CUES)
        self.sent = 0
        self.dropped = 0
        self.errors = 0
        self.skipped_same = 0
        self._last_emotion: int | None = None
        self._cond = threading.Condition()
        self._stop = False
        self._link = _Link(route)
        self._thread = threading.Thread(target=self._run, name=f"route-{route.preset}", daemon=True)

    def put(self, cue: Cue) -> None:
        with self._cond:
            if len(self.queue) == self.queue.maxlen:
                self.dropped += 1  # deque drops the oldest
            self.queue.append(cue)
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self.queue and not self._stop:
                    self._cond.wait()
                if self._stop:
                    break
                cue = self.queue.popleft()
            if self.route.only_on_change and cue.emotion == self._last_emotion:
                self.skipped_same += 1
                continue
            try:
                ok = self._link.send(self.route.osc_packets(cue))
            except Exception as e:  # a bad value must not stop the route
                ok = False
                if self.errors == 0:
                    log.warning("route %s: could not send cue %d: %s", self.route.name, cue.id, e)
            if ok:
                self.sent += 1
                self._last_emotion = int(cue.emotion)
                if self.on_sent is not None:
                    self.on_sent(self.route, cue)
            else:
                self.errors += 1
        self._link.close()

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify()
        self._thread.join(TCP_CONNECT_TIMEOUT_S + 2)


class RouteSender(BasePart):
    """Fans each cue out to every route; ``send`` only queues (never blocks the cue path).

    A part of the show: ``start()`` / ``stop()``, each cue through ``on_cue``. ``on_sent(route, cue)`` is called on the
    route's thread after its packets left (for counters and benchmarks)."""

    role = "routes"

    def __init__(self, routes: Iterable[Route | RouteConfig], on_sent: Callable[[Route, Cue], None] | None = None) -> None:
        # Route configs are checked here, so a bad one stops start-up with its message.
        self.routes = [r if isinstance(r, Route) else compile_route(r, f"routes[{i}]") for i, r in enumerate(routes)]
        self._workers = [_RouteWorker(r, on_sent) for r in self.routes]
        self._started = False

    @classmethod
    def from_config(cls, routes: Iterable[RouteConfig], **kwargs) -> "RouteSender":
        return cls(compile_routes(routes), **kwargs)

    def start(self) -> None:
        if self._started:
            return
        for w in self._workers:
            w._thread.start()
            log.info("route %s: %s mode, %d address(es)", w.route.name, w.route.mode, len(w.route.templates))
        self._started = True

    def send(self, cue: Cue) -> None:
        for w in self._workers:
            w.put(cue)

    def on_cue(self, cue: Cue) -> None:
        self.send(cue)

    def stop(self) -> None:
        if self._started:
            for w in self._workers:
                w.stop()
        self._started = False

    def counters(self) -> dict[str, dict[str, int]]:
        return {
            w.route.name: {"sent": w.sent, "dropped": w.dropped, "errors": w.errors, "unchanged": w.skipped_same}
            for w in self._workers
        }
