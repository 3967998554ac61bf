"""`pcp-osc send ADDRESS [ARG ...]`: send one OSC message by hand (show control, tests of a desk).

    pcp-osc send /pcp/override anger 20      # ,si: "anger", 20
    pcp-osc send /pcp/marker "Song 3"
    pcp-osc send /pcp/blend 0.5 --host 10.0.0.20
    pcp-osc send /pcp/ping                   # waits for /pcp/pong and says how long it took

Argument types are inferred: ``20`` is an int, ``0.5`` or ``1e-3`` a float,
anything else a string; force one with a prefix: ``s:20`` (the string "20"), ``f:20`` (20.0),
``i:3``. The default target is pcp-osc's show control, 127.0.0.1:9010. With ``--reply S`` (and
always for an address ending in /ping) it waits S seconds for an answer and prints it. A ping
exits 0 only on a plain pong (everything sent before it is in the show log); a pong with a
reason (``showlog-failed: disk full``) or none at all exits 1.
"""

from __future__ import annotations

import argparse
import re
import socket
import sys
import time
from typing import Any

from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.osc_packet import OscPacket

DEFAULT_PORT = 9010
PING_WAIT_S = 2.0
MAX_PACKET_BYTES = 512
_INT = re.compile(r"[-+]?\d+")
_FLOAT = re.compile(r"[-+]?(\d+\.\d*|\.\d+|\d+)([eE][-+]?\d+)?")
ADDRESS_FORBIDDEN = set(" #*,?[]{}")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "send", help="send one OSC message by hand, e.g. pcp-osc send /pcp/override anger 20",
        description="Send one OSC message (default: to pcp-osc's show control on 127.0.0.1:9010). "
        "Types are inferred (20 int, 0.5 float, else string); force one with s:, f: or i:, e.g. s:20.")
    p.add_argument("address", help="OSC address, e.g. /pcp/override")
    p.add_argument("values", nargs="*", metavar="ARG", help="arguments: 20 (int), 0.5 (float), joy (string); s:20 f:1 i:3 force a type")
    p.add_argument("--host", default="127.0.0.1", help="receiver's host (default 127.0.0.1)")
    p.add_argument("--port", "-p", type=int, default=DEFAULT_PORT, help=f"receiver's UDP port (default {DEFAULT_PORT}, pcp-osc's show control)")
    p.add_argument("--reply", type=float, default=None, metavar="S",
                   help=f"wait S seconds for an answer and print it (default: {PING_WAIT_S:g} s for /ping, else none)")
    p.set_defaults(func=run)


class BadArgument(ValueError):
    pass


def parse_value(text: str) -> tuple[str, Any]:
    """'20' -> ('i', 20); '0.5' -> ('f', 0.5); 'joy' -> ('s', 'joy'); 's:20' -> ('s', '20')."""
    if len(text) >= 2 and text[1] == ":" and text[0] in "sfi":
        kind, rest = text[0], text[2:]
        if kind == "s":
            return "s", rest
        try:
            v = float(rest) if kind == "f" else int(rest)
        except ValueError:
            raise BadArgument(f"{text!r}: {rest!r} is not {'a float' if kind == 'f' else 'an int'}") from None
        if kind == "i" and not -(2**31) <= v < 2**31:
            raise BadArgument(f"{text!r}: {v} does not fit an OSC int32; write f:{rest} for a float")
        return kind, v
    if _INT.fullmatch(text):
        v = int(text)
        if -(2**31) <= v < 2**31:
            return "i", v
        return "f", float(v)
    if _FLOAT.fullmatch(text):
        return "f", float(text)
    return "s", text


def build(address: str, values: list[str]) -> tuple[bytes, str]:
    """(datagram, type tags) for the message, or BadArgument naming what is wrong."""
    if not address.startswith("/"):
        raise BadArgument(f"address {address!r} must start with '/', e.g. /pcp/override")
    bad = sorted(set(address) & ADDRESS_FORBIDDEN)
    if bad:
        raise BadArgument(f"address {address!r} contains {''.join(bad)!r}, which OSC addresses may not contain")
    b = OscMessageBuilder(address=address)
    tags = ""
    for text in values:
        kind, v = parse_value(text)
        b.add_arg(v, kind)
        tags += kind
    dgram = b.build().dgram
    if len(dgram) > MAX_PACKET_BYTES:
        raise BadArgument(f"the message is {len(dgram)} bytes; pcp-osc and desks take at most {MAX_PACKET_BYTES}")
    return dgram, tags


def run(args: argparse.Namespace) -> int:
    try:
        dgram, tags = build(args.address, args.values)
    except BadArgument as e:
        print(f"pcp-osc send: {e}", file=sys.stderr)
        return 2
    if not 1 <= args.port <= 65535:
        print(f"pcp-osc send: --port {args.port} is not a UDP port; allowed 1..65535", file=sys.stderr)
        return 2
    wait_s = args.reply if args.reply is not None else (PING_WAIT_S if args.address.endswith("/ping") else 0.0)
    try:
        infos = socket.getaddrinfo(args.host, args.port, socket.AF_INET, socket.SOCK_DGRAM)
    except socket.gaierror as e:
        print(f"pcp-osc send: cannot find host {args.host!r} ({e.strerror})", file=sys.stderr)
        return 2
    target = infos[0][4]
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        t0 = time.monotonic()
        try:
            sock.sendto(dgram, target)
        except OSError as e:
            print(f"pcp-osc send: cannot send to {args.host}:{args.port} ({e.strerror or e})", file=sys.stderr)
            return 1
        shown = f" ,{tags} " + " ".join(args.values) if tags else ""
        print(f"sent {args.address}{shown} to {target[0]}:{target[1]}")
        if wait_s <= 0:
            return 0
        sock.settimeout(0.1)
        deadline = t0 + wait_s
        while time.monotonic() < deadline:
            try:
                data, addr = sock.recvfrom(65536)
            except socket.timeout:
                continue
            except ConnectionRefusedError:
                break  # ICMP port unreachable: nothing listens there
            try:
                messages = [m.message for m in OscPacket(data).messages]
            except Exception:
                print(f"answer from {addr[0]}:{addr[1]} is not OSC ({len(data)} bytes)")
                return 1
            ms = (time.monotonic() - t0) * 1000
            for m in messages:
                print(f"answer from {addr[0]}:{addr[1]} after {ms:.0f} ms: {m.address} {' '.join(map(str, m.params))}".rstrip())
            # A pong with a reason is pcp-osc saying it cannot promise that what came before the
            # ping is recorded (showlog-failed: ..., dropped: ...): a script must not read it as done.
            refusals = [m for m in messages if m.address.endswith("/pong") and m.params]
            if args.address.endswith("/ping") and refusals:
                print(f"pcp-osc send: the pong says what was sent before the ping is not safely recorded: "
                      f"{refusals[0].params[0]}", file=sys.stderr)
                return 1
            return 0
        print(f"pcp-osc send: no answer from {args.host}:{args.port} within {wait_s:g} s "
              f"(is pcp-osc running with show control on that port, and is its osc.prefix the start of "
              f"{args.address}? osc.allowed_senders may refuse this machine)",
              file=sys.stderr)
        return 1
    finally:
        sock.close()
