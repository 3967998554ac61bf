"""Figures for show control under attack: datagrams per second a daemon survives with
its window cues on time, and the most cues one sender can cause a second.

    python -m pcp_bench.control [--rates 1000,5000,20000,0] [--seconds 6]

For each offered rate (0: as fast as one Python sender can), a daemon runs in its own
process (window 1 s, no camera, no perception, no log) while one sender floods its
control port with the fuzz corpus below. The receiver measures every window cue's
gap from the last (it should be 1.000 s) and the daemon reports how many datagrams
it took in. Then one sender floods overrides of alternating emotions for a few
seconds, and the receiver counts the cues that caused.

The fuzz corpus (``fuzz_datagrams``) is also what tests/test_osc_fuzz.py sends.
Absolute rates depend on the machine and its load: compare within one run.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import socket
import statistics
import struct
import subprocess
import sys
import time
from typing import Iterator

PREFIX = "/pcp"


# --------------------------------------------------------------------------- fuzz corpus


def _s(b: bytes) -> bytes:
    b += b"\x00"
    return b + b"\x00" * (-len(b) % 4)


def _msg(address: str | bytes, tags: str = "", payload: bytes = b"") -> bytes:
    a = address.encode("utf-8", "surrogatepass") if isinstance(address, str) else address
    return _s(a) + (_s(b"," + tags.encode()) + payload if tags or payload else b"")


def _bundle(elements: list[bytes], timetag: bytes = b"\x00" * 7 + b"\x01") -> bytes:
    return b"#bundle\x00" + timetag + b"".join(struct.pack(">i", len(e)) + e for e in elements)


HOSTILE_TEXT = [
    "\x1b]0;pwned\x07",  # terminal title
    "\x1b[2J\x1b[H",  # clear screen
    "Song 3\n12:00:00 INFO    pcp_osc.daemon: cue 99: joy 100% (forged)",  # a forged log line
    "\r\x1b[Kovertyped",
    "\u202eevil\u202c",  # right-to-left override
    "x" * 3000,
    "노래\x00hidden",
]


def fuzz_datagrams(seed: int = 0, count: int = 20_000, *, state_changes: bool = False) -> Iterator[bytes]:
    """``count`` hostile or unlucky datagrams, reproducible from ``seed``: random bytes,
    cut-off messages, wrong and unknown argument types, blobs and timetags, huge and
    deeply nested and lying bundles, hostile strings, bad values for every address.
    ``state_changes`` adds valid intents and overrides (which move cues)."""
    rng = random.Random(seed)
    p = PREFIX
    addresses = [f"{p}/{a}" for a in ("intent", "override", "release", "generate", "marker", "window", "blend", "ping")]

    def random_bytes() -> bytes:
        return bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 600)))

    def cut_message() -> bytes:
        m = _msg(rng.choice(addresses), "s", _s(b"joy"))
        return m[: rng.randint(1, len(m) - 1)]

    def wrong_types() -> bytes:
        address = rng.choice(addresses)
        tags, payload = rng.choice([
            ("b", struct.pack(">i", 5) + b"\x01\x02\x03\x04\x05\x00\x00\x00"),
            ("t", struct.pack(">II", rng.getrandbits(32), rng.getrandbits(32))),
            ("m", bytes([0, 0x90, 60, 100])),
            ("TFN", b""),
            ("d", struct.pack(">d", float("nan"))),
            ("f", struct.pack(">f", float("inf"))),
            ("h", struct.pack(">q", -(2**63))),
            ("i", struct.pack(">i", -(2**31))),
            ("[ii]", struct.pack(">ii", 1, 2)),
            ("[[[", b""),
            ("s", _s(rng.choice(HOSTILE_TEXT).encode())),
            ("ss", _s(b"joy") + _s(b"anger")),
            ("sf", _s(b"joy") + struct.pack(">f", -1.0)),
        ])
        if not state_changes and address in (f"{p}/intent", f"{p}/override", f"{p}/release") and tags in ("i", "[ii]", "ss"):
            address = f"{p}/window"  # a valid emotion index would move the show
        return _msg(address, tags, payload)

    def unknown_types() -> bytes:
        return _msg(rng.choice(addresses), rng.choice(["c", "S", "I", "x", "sc", "\x7f"]), b"\x00" * 8)

    def hostile_address() -> bytes:
        return _msg(f"{p}/" + rng.choice(HOSTILE_TEXT), "s", _s(b"joy"))

    def hostile_marker() -> bytes:
        return _msg(f"{p}/marker", "s", _s(rng.choice(HOSTILE_TEXT).encode("utf-8", "surrogatepass")))

    def bad_values() -> bytes:
        return rng.choice([
            _msg(f"{p}/window", "f", struct.pack(">f", rng.choice([0.0, -5.0, 1e9]))),
            _msg(f"{p}/blend", "f", struct.pack(">f", rng.choice([1.5, -0.1]))),
            _msg(f"{p}/intent", "s", _s(rng.choice([b"euphoria", b"", b"99"]))),
            _msg(f"{p}/override", "sf", _s(b"euphoria") + struct.pack(">f", 5.0)),
            _msg(f"{p}/generate", "i", struct.pack(">i", 1)),
            _msg(f"{p}/nonsense"),
            _msg("/", ""),
            _msg(f"{p}/ping"),
        ])

    def huge_bundle() -> bytes:
        inner = _msg(rng.choice([f"{p}/ping", f"{p}/marker", "/"]), *(("s", _s(b"flood")) if rng.random() < 0.5 else ()))
        n = (60_000 - 16) // (len(inner) + 4)
        return _bundle([inner] * n)

    def nested_bundle() -> bytes:
        b = _msg(f"{p}/ping")
        for _ in range(rng.randint(2, 12)):
            b = _bundle([b, _msg(f"{p}/marker", "s", _s(b"deep"))])
        return b

    def lying_bundle() -> bytes:
        good = _msg(f"{p}/marker", "s", _s(b"liar"))
        return b"#bundle\x00" + b"\x00" * 8 + struct.pack(">i", rng.choice([0, -4, 10_000, 3])) + good

    def state_change() -> bytes:
        return rng.choice([
            _msg(f"{p}/override", "s", _s(rng.choice([b"joy", b"anger", b"sadness"]))),
            _msg(f"{p}/release"),
            _msg(f"{p}/intent", "i", struct.pack(">i", rng.randint(0, 4))),
        ])

    makers = [random_bytes, cut_message, wrong_types, wrong_types, unknown_types, hostile_address, hostile_marker,
              bad_values, bad_values, nested_bundle, lying_bundle]
    for i in range(count):
        if i % 500 == 250:
            yield huge_bundle()
        elif state_changes and rng.random() < 0.1:
            yield state_change()
        else:
            yield rng.choice(makers)()


def flood(port: int, datagrams: Iterator[bytes], rate_hz: float, seconds: float, host: str = "127.0.0.1") -> int:
    """Send ``datagrams`` at ``rate_hz`` (0: as fast as possible) for at most ``seconds``; returns how many were sent."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sent = 0
    t0 = time.monotonic()
    try:
        for d in datagrams:
            now = time.monotonic()
            if now - t0 >= seconds:
                break
            if rate_hz > 0:
                due = t0 + sent / rate_hz
                if due > now:
                    time.sleep(due - now)
            try:
                s.sendto(d, (host, port))
            except OSError:  # e.g. a datagram over the loopback MTU limit
                pass
            sent += 1
    finally:
        s.close()
    return sent


# --------------------------------------------------------------------------- the daemon under test


def serve(args: argparse.Namespace) -> int:
    """(child process) A daemon with no camera and no perception for ``--seconds``;
    prints its counters as JSON at the end."""
    from pcp_osc.capture import BrowserSource
    from pcp_osc.config import config_from_dict
    from pcp_osc.show import assemble

    cfg = config_from_dict({
        "osc": {"target": args.target, "control_port": args.port, "control_host": "127.0.0.1"},
        "mood": {"window_s": 1.0}, "log": {"enabled": False}, "generator": {"kind": "off"},
    })
    d = assemble(cfg, source=BrowserSource(), perception=False)
    d.run_for(args.seconds)
    print(json.dumps(d.status()["counters"]), flush=True)
    return 0


def _free_port() -> int:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class _Receiver:
    def __init__(self) -> None:
        from pythonosc.osc_packet import OscPacket

        self._packet = OscPacket
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.target = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.cues: list[tuple[float, str]] = []  # (arrival, source)
        self._pending_t = None

    def drain_until(self, t_end: float) -> None:
        while time.monotonic() < t_end:
            try:
                data, _ = self.sock.recvfrom(65536)
            except socket.timeout:
                continue
            now = time.monotonic()
            for m in self._packet(data).messages:
                if m.message.address == f"{PREFIX}/cue/id":
                    self._pending_t = now
                elif m.message.address == f"{PREFIX}/cue/source" and self._pending_t is not None:
                    self.cues.append((self._pending_t, m.message.params[0]))


def _traffic_process(traffic, port: int, sent) -> None:
    sent.value = traffic(port)


def _run_daemon(seconds: float, traffic) -> tuple[_Receiver, dict, float]:
    rx = _Receiver()
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [os.getcwd(), os.environ.get("PYTHONPATH")])))
    proc = subprocess.Popen([sys.executable, "-m", "pcp_bench.control", "--serve", "--port", str(port),
                             "--target", rx.target, "--seconds", str(seconds + 4)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    rx.drain_until(time.monotonic() + 2.5)  # start-up and the first window cues
    # The sender is a process of its own: in this one it would starve the receiver of
    # the interpreter and the cues' arrival times would be its, not the daemon's.
    ctx = multiprocessing.get_context("fork")
    sent = ctx.Value("q", 0)
    sender = ctx.Process(target=_traffic_process, args=(traffic, port, sent), daemon=True)
    t0 = time.monotonic()
    sender.start()
    rx.drain_until(t0 + seconds)
    sender.join(timeout=seconds + 10)
    duration = time.monotonic() - t0
    result = {"sent": sent.value}
    rx.drain_until(time.monotonic() + 0.5)
    out, _ = proc.communicate(timeout=60)
    counters = json.loads(out.strip().splitlines()[-1])
    counters["sent"] = result.get("sent", 0)
    counters["t0"] = t0
    return rx, counters, duration


def bench_flood(rates: list[float], seconds: float) -> list[dict]:
    rows = []
    for rate in rates:
        rx, c, duration = _run_daemon(seconds, lambda port: flood(port, fuzz_datagrams(seed=1, count=10**7), rate, seconds))
        window = [t for t, src in rx.cues if src != "override" and t >= c["t0"]]
        gaps = [b - a for a, b in zip(window, window[1:])]
        worst_ms = max((abs(g - 1.0) * 1000 for g in gaps), default=float("nan"))
        rows.append({
            "offered_per_s": c["sent"] / duration, "taken_in_per_s": c.get("control_received", 0) / duration,
            "window_cues": len(window), "worst_gap_error_ms": worst_ms,
            "median_gap_ms": statistics.median(gaps) * 1000 if gaps else float("nan"),
        })
    return rows


def bench_cues_per_sender(seconds: float) -> dict:
    def storm(port: int) -> int:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        emotions = [b"joy", b"anger", b"sadness", b"anxiety"]
        msgs = [_msg(f"{PREFIX}/override", "s", _s(e)) for e in emotions]
        big = _bundle(msgs * 250)  # 1000 overrides in one datagram
        n, t0 = 0, time.monotonic()
        while time.monotonic() - t0 < seconds:
            s.sendto(msgs[n % 4] if n % 10 else big, ("127.0.0.1", port))
            n += 1
            if n % 200 == 0:
                time.sleep(0.001)
        s.close()
        return n

    rx, c, duration = _run_daemon(seconds, storm)
    caused = [t for t, src in rx.cues if src == "override" and t >= c["t0"]]
    per_s = [sum(1 for t in caused if c["t0"] + k <= t < c["t0"] + k + 1) for k in range(int(duration))]
    return {"datagrams": c["sent"], "seconds": duration, "cues": len(caused), "max_cues_in_a_second": max(per_s, default=0),
            "mean_cues_per_s": len(caused) / duration, "collapsed": c.get("control_cues_collapsed", 0)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pcp_bench.control", description=__doc__.split("\n\n")[0])
    ap.add_argument("--rates", default="1000,5000,20000,0", help="offered datagrams per second (0: as fast as possible)")
    ap.add_argument("--seconds", type=float, default=6.0, help="flood length per rate")
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--target", default="127.0.0.1:9011", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.serve:
        return serve(args)
    rates = [float(r) for r in args.rates.split(",")]
    print(f"show control under a fuzz flood (window 1 s; {args.seconds:g} s per rate; one sender on loopback):")
    print(f"{'offered dgram/s':>16} {'taken in /s':>12} {'window cues':>12} {'median gap ms':>14} {'worst gap error ms':>19}")
    for r in bench_flood(rates, args.seconds):
        print(f"{r['offered_per_s']:16.0f} {r['taken_in_per_s']:12.0f} {r['window_cues']:12d} "
              f"{r['median_gap_ms']:14.1f} {r['worst_gap_error_ms']:19.1f}")
    c = bench_cues_per_sender(args.seconds)
    print(f"\none sender flooding overrides ({c['datagrams']} datagrams in {c['seconds']:.1f} s, one in ten a bundle of 1000):")
    print(f"  cues caused: {c['cues']} (most in one second: {c['max_cues_in_a_second']}; mean {c['mean_cues_per_s']:.1f}/s); "
          f"{c['collapsed']} control changes collapsed into those")
    return 0


if __name__ == "__main__":
    sys.exit(main())
