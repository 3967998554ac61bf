"""Routes: each cue, as OSC, to lighting desks and media servers (OSC.md, "Routes").

A route is a target (host, port, UDP or TCP) and a list of address templates filled
from the cue. Presets (pcp_osc/presets/routes.toml, docs/routes.md) ship templates
for ETC Eos, grandMA3, ChamSys MagicQ, QLC+, Resolume and a one-look-per-emotion mode.

Template syntax, one OSC message per template::

    ADDRESS [ARG ...]
    /eos/chan/{channel}/param/red {r100:f}
    /gma3/cmd 'Go+ Sequence {look}'
    /pb/{look}/go 1

* ADDRESS starts with ``/``; ``{name}`` in it is replaced by the value as text.
* An ARG is ``{name}`` (sent as the value's own type), ``{name:f}`` float32,
  ``{name:i}`` int32 (rounded) or ``{name:s}`` string; a number literal (``1`` int,
  ``1.0`` float); or a quoted string ``'...'`` / ``"..."`` sent as a string, in which
  ``{name}`` and Python format specs (``{r100:.0f}``) are filled in.
* Names: the cue's values (see ``PLACEHOLDERS``) and the route's options. An option
  that is a list of five (or a table keyed by emotion) is picked by the cue's
  emotion, e.g. ``looks = [1, 2, 3, 4, 5]`` gives ``{look}``.

Routes are checked when the daemon starts (``compile_route``): an unknown name, a
bad type, an option out of its limits or a packet over 512 bytes stops start-up
with a message naming the route, the template and what is allowed. Sending never
blocks the cue path: ``RouteSender`` gives every route its own thread and a small
latest-first queue, so a dead TCP desk delays nobody else.
"""

from __future__ import annotations

import colorsys
import dataclasses
import logging
import math
import re
import socket
import string
import struct
import threading
import time
import tomllib
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
from pythonosc.osc_message_builder import OscMessageBuilder

from .config import ConfigError, RouteConfig, parse_hostport
from .emotions import EMOTIONS
from .types import Colour, Cue, Mood

log = logging.getLogger("pcp_osc.routes")

PRESETS_PATH = Path(__file__).parent / "presets" / "routes.toml"
MAX_PACKET_BYTES = 512  # ETC Eos splits anything longer; OSC.md keeps every packet under it
QUEUE_CUES = 16  # per route: cues waiting while a desk is slow; the oldest goes first
TCP_CONNECT_TIMEOUT_S = 1.0
TCP_RETRY_S = 2.0
CONTROL_OPTIONS = ("mode", "only_on_change", "tcp_framing")  # options that steer, not placeholders
TCP_FRAMINGS = ("slip", "length")  # OSC 1.1 SLIP (Eos 3037, most TCP receivers) or OSC 1.0 size prefix (Eos 3032)
OSC_TYPES = ("f", "i", "s")
ADDRESS_FORBIDDEN = set(" #*,?[]{}")

# name: (OSC type, (lo, hi) or None, meaning). The value ranges are the contract tests check.
PLACEHOLDERS: dict[str, tuple[str, tuple[float, float] | None, str]] = {
    "emotion": ("s", None, "joy, anxiety, anger, sadness or neutral"),
    "index": ("i", (0, 4), "emotion index, 0-based"),
    "index1": ("i", (1, 5), "emotion index, 1-based (cue and playback numbers)"),
    "confidence": ("f", (0.0, 1.0), "confidence of the emotion over the window"),
    "confidence100": ("f", (0.0, 100.0), "the same, 0..100"),
    "r": ("f", (0.0, 1.0), "stage colour red, brightness applied"),
    "g": ("f", (0.0, 1.0), "stage colour green"),
    "b": ("f", (0.0, 1.0), "stage colour blue"),
    "r100": ("f", (0.0, 100.0), "red 0..100 (Eos, grandMA3 levels)"),
    "g100": ("f", (0.0, 100.0), "green 0..100"),
    "b100": ("f", (0.0, 100.0), "blue 0..100"),
    "r255": ("i", (0, 255), "red 0..255 (DMX)"),
    "g255": ("i", (0, 255), "green 0..255"),
    "b255": ("i", (0, 255), "blue 0..255"),
    "hue": ("f", (0.0, 1.0), "hue of the stage colour, 0..1"),
    "hue360": ("f", (0.0, 360.0), "hue in degrees"),
    "saturation": ("f", (0.0, 1.0), "saturation of the stage colour"),
    "brightness": ("f", (0.0, 1.0), "brightness (HSV value) of the stage colour"),
    "hex": ("s", None, "the stage colour as #rrggbb"),
    "source": ("s", None, "audience, intent or override"),
    "faces": ("i", (0, 100000), "faces per frame over the window"),
    "cue_id": ("i", (0, 2**31 - 1), "cue counter since start"),
    "intent": ("s", None, "the performance's intended emotion"),
    **{f"is_{e}": ("i", (0, 1), f"1 when the cue's emotion is {e}, else 0") for e in EMOTIONS},
}


class RouteError(ConfigError):
    """A route that cannot be built; the message names the route, the template and what is allowed."""


# --------------------------------------------------------------------------- values


def cue_values(cue: Cue) -> dict[str, Any]:
    """Every placeholder's value for this cue, as plain Python types."""
    c = cue.colour
    r, g, b = (float(v) for v in c.rgb)
    h, s, v = colorsys.rgb_to_hsv(r, g, b)
    k = int(cue.emotion)
    values: dict[str, Any] = {
        "emotion": EMOTIONS[k],
        "index": k,
        "index1": k + 1,
        "confidence": float(cue.confidence),
        "confidence100": float(cue.confidence) * 100.0,
        "r": r, "g": g, "b": b,
        "r100": r * 100.0, "g100": g * 100.0, "b100": b * 100.0,
        "r255": int(round(r * 255)), "g255": int(round(g * 255)), "b255": int(round(b * 255)),
        "hue": float(h), "hue360": float(h) * 360.0, "saturation": float(s), "brightness": float(v),
        "hex": c.hex,
        "source": str(cue.source),
        "faces": int(round(float(cue.mood.faces))),
        "cue_id": int(cue.id),
        "intent": EMOTIONS[int(cue.intent)],
    }
    for i, e in enumerate(EMOTIONS):
        values[f"is_{e}"] = int(i == k)
    return values


def _plain(v: Any) -> Any:
    if isinstance(v, (bool, np.bool_)):
        return int(v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    return v


def _as_text(v: Any) -> str:
    v = _plain(v)
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


# --------------------------------------------------------------------------- templates


@dataclass(frozen=True)
class Arg:
    kind: str  # "literal" | "placeholder" | "text"
    osc_type: str  # f, i, s, or "" (the value's own type)
    value: Any = None  # literal value, placeholder name, or format string


@dataclass(frozen=True)
class Template:
    text: str
    address: str  # a format string
    args: tuple[Arg, ...]

    def names(self) -> set[str]:
        out = set(_format_names(self.address))
        for a in self.args:
            if a.kind == "placeholder":
                out.add(a.value)
            elif a.kind == "text":
                out |= set(_format_names(a.value))
        return out


def _format_names(fmt: str) -> list[str]:
    names = []
    for _, field_name, _, _ in string.Formatter().parse(fmt):
        if field_name is not None:
            names.append(field_name)
    return names


def _tokens(text: str, where: str) -> list[tuple[str, bool]]:
    """Split on whitespace; '...' and "..." are one token each. (token, was_quoted)."""
    out, i, n = [], 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        if text[i] in "'\"":
            q = text[i]
            j = text.find(q, i + 1)
            if j < 0:
                raise RouteError(f"{where}: the string starting at {text[i:]!r} has no closing {q}")
            out.append((text[i + 1 : j], True))
            i = j + 1
            continue
        j = i
        while j < n and not text[j].isspace():
            j += 1
        out.append((text[i:j], False))
        i = j
    return out


_PLACEHOLDER_ARG = re.compile(r"^\{([A-Za-z_][A-Za-z0-9_]*)(?::([A-Za-z]*))?\}$")


def parse_template(text: str, where: str = "route") -> Template:
    """Parse one template line (syntax in the module docstring)."""
    toks = _tokens(text.strip(), where)
    if not toks:
        raise RouteError(f"{where}: empty address template")
    address, quoted = toks[0]
    if quoted or not address.startswith("/"):
        raise RouteError(f"{where}: template {text!r} must start with an OSC address like /eos/chan/1/param/red")
    args = []
    for tok, was_quoted in toks[1:]:
        if was_quoted:
            args.append(Arg("text", "s", tok))
            continue
        m = _PLACEHOLDER_ARG.match(tok)
        if m:
            name, code = m.group(1), m.group(2)
            if code is not None and code not in OSC_TYPES:
                raise RouteError(
                    f"{where}: template {text!r}: type ':{code}' of {{{name}}} is not allowed; "
                    "use :f (float), :i (int) or :s (string), or a quoted string for a format like '{r100:.0f}'"
                )
            args.append(Arg("placeholder", code or "", name))
            continue
        if "{" in tok or "}" in tok:
            raise RouteError(f"{where}: template {text!r}: argument {tok!r} is not {{name}} or {{name:f|i|s}}; quote it to format text")
        if re.fullmatch(r"[-+]?\d+", tok):
            args.append(Arg("literal", "i", int(tok)))
        elif re.fullmatch(r"[-+]?(\d+\.\d*|\.\d+|\d+)([eE][-+]?\d+)?", tok):
            args.append(Arg("literal", "f", float(tok)))
        else:
            args.append(Arg("literal", "s", tok))
    try:
        _format_names(address)
        for a in args:
            if a.kind == "text":
                _format_names(a.value)
    except ValueError as e:
        raise RouteError(f"{where}: template {text!r}: {e}") from None
    return Template(text=text, address=address, args=tuple(args))


def _typed(value: Any, code: str, where: str) -> tuple[str, Any]:
    value = _plain(value)
    if code == "":
        code = "f" if isinstance(value, float) else "i" if isinstance(value, int) else "s"
    if code == "f":
        return "f", float(value)
    if code == "i":
        return "i", int(round(float(value)))
    return "s", _as_text(value)


def render(template: Template, values: dict[str, Any], where: str = "route") -> tuple[str, list[tuple[str, Any]]]:
    """(address, [(osc type, value), ...]) for these values."""
    text_values = {k: _as_text(v) if not isinstance(v, (int, float)) or isinstance(v, bool) else v for k, v in values.items()}
    address = template.address.format(**{k: _as_text(v) for k, v in values.items()})
    args = []
    for a in template.args:
        if a.kind == "literal":
            args.append((a.osc_type, a.value))
        elif a.kind == "placeholder":
            args.append(_typed(values[a.value], a.osc_type, where))
        else:
            args.append(("s", a.value.format(**text_values)))
    return address, args


def encode_message(address: str, args: list[tuple[str, Any]]) -> bytes:
    b = OscMessageBuilder(address=address)
    for code, value in args:
        b.add_arg(value, code)
    return b.build().dgram


def slip_frame(packet: bytes) -> bytes:
    """OSC 1.1 stream framing (SLIP, RFC 1055, double END)."""
    body = packet.replace(b"\xdb", b"\xdb\xdd").replace(b"\xc0", b"\xdb\xdc")
    return b"\xc0" + body + b"\xc0"


def length_frame(packet: bytes) -> bytes:
    """OSC 1.0 stream framing: int32 size, then the packet."""
    return struct.pack(">i", len(packet)) + packet


# --------------------------------------------------------------------------- presets


def load_presets(path: Path = PRESETS_PATH) -> dict[str, dict[str, Any]]:
    with open(path, "rb") as f:
        return tomllib.load(f)


PRESETS = load_presets()


@dataclass
class Route:
    """A checked route, ready to send."""

    name: str  # e.g. "eos 10.0.0.5:8000/udp"
    preset: str
    mode: str
    host: str
    port: int
    protocol: str
    framing: str
    templates: list[Template]
    options: dict[str, Any]
    only_on_change: bool
    where: str = "route"

    def values(self, cue: Cue) -> dict[str, Any]:
        out = dict(cue_values(cue))
        k = int(cue.emotion)
        for name, v in self.options.items():
            if name in CONTROL_OPTIONS:
                continue
            if isinstance(v, list):
                out[_singular(name)] = v[k]
                out[name] = " ".join(_as_text(x) for x in v)
            elif isinstance(v, dict):
                out[_singular(name)] = v[EMOTIONS[k]]
            else:
                out[name] = v
        return out

    def messages(self, cue: Cue) -> list[tuple[str, list[tuple[str, Any]]]]:
        values = self.values(cue)
        return [render(t, values, self.where) for t in self.templates]

    def packets(self, cue: Cue) -> list[bytes]:
        return [encode_message(a, args) for a, args in self.messages(cue)]


def _singular(name: str) -> str:
    """looks -> look, cues -> cue: the per-emotion pick of a list option."""
    return name[:-1] if name.endswith("s") and len(name) > 1 else name + "_pick"


def preset_names() -> list[str]:
    return list(PRESETS)


def compile_route(rc: RouteConfig, where: str = "routes") -> Route:
    """Check a route config against its preset and return a Route, or raise RouteError
    naming the route, the template and what is allowed."""
    preset_name = str(rc.preset).strip().lower()
    if preset_name not in PRESETS:
        raise RouteError(f"{where}.preset = {rc.preset!r} is not a preset; choose one of: {', '.join(PRESETS)}")
    preset = PRESETS[preset_name]
    try:
        host, port = parse_hostport(rc.target)
    except ValueError as e:
        raise RouteError(f"{where}.target: {e}") from None
    label = f"{preset_name} {host}:{port}"
    where = f"{where} ({label})"
    if rc.protocol not in ("udp", "tcp"):
        raise RouteError(f"{where}.protocol = {rc.protocol!r}; choose udp or tcp")

    options = dict(preset.get("options", {}))
    unknown_opts = [k for k in rc.options if k not in options and k not in CONTROL_OPTIONS and rc.preset != "custom" and not rc.addresses]
    if unknown_opts:
        allowed = ", ".join(list(options) + list(CONTROL_OPTIONS))
        raise RouteError(f"{where}.options: unknown option {unknown_opts[0]!r} for the {preset_name} preset; allowed: {allowed}")
    options.update(rc.options)

    mode = str(options.get("mode", preset["mode"]))
    modes = preset.get("modes", {})
    if not rc.addresses and mode not in modes:
        raise RouteError(f"{where}.options.mode = {mode!r} is not a mode of the {preset_name} preset; choose one of: {', '.join(modes)}")
    texts = list(rc.addresses) if rc.addresses else list(modes[mode])
    if not texts:
        raise RouteError(f"{where}: the {preset_name} preset sends nothing until you give `addresses` (templates like \"/stage/colour {{r:f}} {{g:f}} {{b:f}}\")")

    framing = str(options.get("tcp_framing", "slip"))
    if framing not in TCP_FRAMINGS:
        raise RouteError(f"{where}.options.tcp_framing = {framing!r}; choose slip (OSC 1.1) or length (OSC 1.0)")
    default_change = preset.get("only_on_change", {}).get(mode, False)
    only_on_change = options.get("only_on_change", default_change)
    if not isinstance(only_on_change, bool):
        raise RouteError(f"{where}.options.only_on_change = {only_on_change!r} must be true or false")

    # Options: per-emotion lists have five entries, numbers stay within the preset's limits.
    for name, v in options.items():
        if name in CONTROL_OPTIONS:
            continue
        if name in PLACEHOLDERS:
            raise RouteError(f"{where}.options.{name}: the name is a cue value; rename the option")
        if isinstance(v, list) and len(v) != len(EMOTIONS):
            raise RouteError(f"{where}.options.{name} has {len(v)} entries; give one per emotion ({', '.join(EMOTIONS)})")
        if isinstance(v, dict):
            missing = [e for e in EMOTIONS if e not in v]
            if missing:
                raise RouteError(f"{where}.options.{name} lacks {', '.join(missing)}; give one entry per emotion ({', '.join(EMOTIONS)})")
        lim = preset.get("limits", {}).get(name)
        if lim:
            lo, hi = lim
            for x in v if isinstance(v, list) else list(v.values()) if isinstance(v, dict) else [v]:
                if isinstance(x, bool) or not isinstance(x, (int, float)) or not lo <= x <= hi:
                    raise RouteError(f"{where}.options.{name} = {v!r}: {x!r} is out of range; allowed {lo:g}..{hi:g}")
    if preset_name == "grandma3" and not rc.addresses:
        p = str(options.get("prefix", ""))
        if not p or "/" in p or " " in p:
            raise RouteError(f"{where}.options.prefix = {p!r}: grandMA3 needs the OSC line's prefix, without slashes (e.g. \"gma3\")")
    if preset_name == "qlc":
        expected = 7700 + int(options.get("universe", 1)) - 1
        if port != expected:
            log.warning("%s: QLC+ listens on 7700 + universe - 1 = %d for universe %s, not %d", where, expected, options.get("universe", 1), port)

    route = Route(
        name=f"{label}/{rc.protocol}", preset=preset_name, mode=mode, host=host, port=port, protocol=rc.protocol,
        framing=framing, templates=[], options=options, only_on_change=only_on_change, where=where,
    )
    allowed = sorted(set(PLACEHOLDERS) | set(_option_placeholders(options)))
    for text in texts:
        t = parse_template(text, where)
        unknown = sorted(t.names() - set(allowed))
        if unknown:
            raise RouteError(f"{where}: template {text!r} uses unknown placeholder {{{unknown[0]}}}; allowed: {', '.join(allowed)}")
        route.templates.append(t)
    _check_render(route)
    return route


def _option_placeholders(options: dict[str, Any]) -> list[str]:
    out = []
    for name, v in options.items():
        if name in CONTROL_OPTIONS:
            continue
        out.append(name)
        if isinstance(v, (list, dict)):
            out.append(_singular(name))
    return out


def sample_cue(emotion: int, colour: Colour | None = None, confidence: float = 0.87, cue_id: int = 123456) -> Cue:
    dist = np.full(len(EMOTIONS), (1 - confidence) / (len(EMOTIONS) - 1))
    dist[emotion] = confidence
    mood = Mood(emotion=emotion, confidence=confidence, distribution=dist, faces=12.0, source="audience")
    return Cue(id=cue_id, mood=mood, colour=colour or Colour(0.81, 0.333, 0.05), intent=4, window_s=15.0,
               wall_time=0.0, timestamp=0.0)


def _check_render(route: Route) -> None:
    """Render every template for every emotion: formats work, addresses are valid, packets fit."""
    for k in range(len(EMOTIONS)):
        cue = sample_cue(k)
        values = route.values(cue)
        for t in route.templates:
            try:
                address, args = render(t, values, route.where)
            except (ValueError, KeyError, IndexError, TypeError) as e:
                raise RouteError(f"{route.where}: template {t.text!r} cannot be filled: {e}") from None
            bad = sorted(set(address) & ADDRESS_FORBIDDEN)
            if bad:
                raise RouteError(f"{route.where}: template {t.text!r} gives address {address!r} with {''.join(bad)!r}, which OSC addresses may not contain")
            size = len(encode_message(address, args))
            if size > MAX_PACKET_BYTES:
                raise RouteError(f"{route.where}: template {t.text!r} makes a {size}-byte packet; the limit is {MAX_PACKET_BYTES}")


def compile_routes(routes: Iterable[RouteConfig]) -> list[Route]:
    return [compile_route(rc, f"routes[{i}]") for i, rc in enumerate(routes)]


# --------------------------------------------------------------------------- command line


def parse_route_arg(text: str) -> RouteConfig:
    """``--route PRESET:HOST[:PORT][:udp|tcp]`` -> RouteConfig. Without a port, the preset's
    (QLC+: 7700). Eos on 3032 or 3037 is TCP (3032 OSC 1.0 sizes, 3037 SLIP) unless said."""
    parts = [p.strip() for p in str(text).strip().split(":")]
    if len(parts) < 2 or not parts[0] or not parts[1]:
        raise ConfigError(f"--route {text!r}: write PRESET:HOST[:PORT][:udp|tcp], e.g. eos:10.0.0.5:3032; presets: {', '.join(PRESETS)}")
    preset = parts[0].lower()
    if preset not in PRESETS:
        raise ConfigError(f"--route {text!r}: unknown preset {parts[0]!r}; choose one of: {', '.join(PRESETS)}")
    host, rest = parts[1], parts[2:]
    protocol = None
    if rest and rest[-1].lower() in ("udp", "tcp"):
        protocol = rest.pop().lower()
    if len(rest) > 1:
        raise ConfigError(f"--route {text!r}: too many ':' parts; write PRESET:HOST[:PORT][:udp|tcp]")
    if rest:
        if not rest[0].isdigit() or not 1 <= int(rest[0]) <= 65535:
            raise ConfigError(f"--route {text!r}: port {rest[0]!r} is not 1..65535")
        port = int(rest[0])
    else:
        port = int(PRESETS[preset]["port"])
    options: dict[str, Any] = {}
    if preset == "eos" and port in (3032, 3037) and protocol != "udp":
        protocol = "tcp"
        options["tcp_framing"] = "length" if port == 3032 else "slip"
    return RouteConfig(preset=preset, target=f"{host}:{port}", protocol=protocol or PRESETS[preset]["protocol"], options=options)


# --------------------------------------------------------------------------- sending


class _Link:
    """One route's socket. UDP: sendto, never waits. TCP: connects on first use and
    after a failure (at most every TCP_RETRY_S), frames each packet."""

    def __init__(self, route: Route) -> None:
        self.route = route
        self.sock: socket.socket | None = None
        self.next_try = 0.0
        self.failing = False

    def send(self, packets: list[bytes]) -> bool:
        if self.route.protocol == "udp":
            if self.sock is None:
                self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            for p in packets:
                self.sock.sendto(p, (self.route.host, self.route.port))
            return True
        now = time.monotonic()
        if self.sock is None:
            if now < self.next_try:
                return False
            try:
                self.sock = socket.create_connection((self.route.host, self.route.port), timeout=TCP_CONNECT_TIMEOUT_S)
                self.sock.settimeout(TCP_CONNECT_TIMEOUT_S)
                if self.failing:
                    log.info("route %s: connected again", self.route.name)
                self.failing = False
            except OSError as e:
                self.next_try = now + TCP_RETRY_S
                self._fail(f"cannot connect ({e.strerror or e})")
                return False
        frame = slip_frame if self.route.framing == "slip" else length_frame
        try:
            self.sock.sendall(b"".join(frame(p) for p in packets))
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
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
            self.sock = None


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
                ok = self._link.send(self.route.packets(cue))
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


class RouteSender:
    """Fans each cue out to every route; ``send`` only queues (never blocks the cue path).

    A daemon part: ``start()`` / ``stop()``. ``on_sent(route, cue)`` is called on the
    route's thread after its packets left (for counters and benchmarks)."""

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

    send_cue = send  # the name the daemon's assembly (pcp_osc/show.py) subscribes

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


def attach_routes(daemon: Any, route_args: Iterable[str] = ()) -> RouteSender | None:
    """Wire config routes plus ``--route`` arguments into a daemon (the lead's hook).
    Raises RouteError at start-up for a bad route; returns None when there are none."""
    configs = list(daemon.config.routes) + [parse_route_arg(a) for a in route_args]
    if not configs:
        return None
    sender = RouteSender.from_config(configs)
    daemon.add_part(sender)
    daemon.subscribe("cue", sender.send)
    return sender


# --------------------------------------------------------------------------- docs


def preset_markdown(name: str) -> str:
    p = PRESETS[name]
    lines = [f"## `{name}`: {p['title']}", ""]
    lines.append(f"Default target port **{p['port']}** ({p['protocol'].upper()}); default mode **{p['mode']}**.")
    opts = p.get("options", {})
    if opts:
        lim = p.get("limits", {})
        lines.append("")
        lines.append("| option | default | allowed |")
        lines.append("|---|---|---|")
        for k, v in opts.items():
            allowed = f"{lim[k][0]:g}..{lim[k][1]:g}" if k in lim else ""
            if isinstance(v, list):
                allowed = (allowed + ", " if allowed else "") + "one per emotion"
            lines.append(f"| `{k}` | `{v}` | {allowed} |")
    lines.append("")
    lines.append("What to program on the desk:")
    lines.append("")
    lines += [ln for ln in p["program"].strip().splitlines()]
    for mode, templates in p.get("modes", {}).items():
        if not templates:
            continue
        lines.append("")
        on_change = " (sent when the emotion changes)" if p.get("only_on_change", {}).get(mode) else " (sent with every cue)"
        lines.append(f"Mode `{mode}`{on_change}:")
        lines.append("")
        lines.append("```")
        lines += list(templates)
        lines.append("```")
    return "\n".join(lines)


def routes_markdown() -> str:
    head = [
        "# Routes to lighting desks and media servers",
        "",
        "<!-- generated by `python -m pcp_osc.routes --markdown`; edit pcp_osc/presets/routes.toml -->",
        "",
        "Besides TouchDesigner, pcp-osc sends each cue to any number of routes (OSC.md, \"Routes\").",
        "On the command line: `pcp-osc run --route PRESET:HOST[:PORT][:udp|tcp]` (repeatable), e.g.",
        "`--route eos:10.0.0.5:3037`, `--route qlc:127.0.0.1`, `--route resolume:10.0.0.7:7000`.",
        "In the config file:",
        "",
        "```toml",
        "[[routes]]",
        'preset = "eos"',
        'target = "10.0.0.5:8000"',
        'protocol = "udp"            # or "tcp": SLIP framing (OSC 1.1); options.tcp_framing = "length" for OSC 1.0',
        'options = { channel = 12 }  # mode = "looks" for one cue per emotion',
        "# addresses = [...]          # your own templates replace the preset's",
        "```",
        "",
        "Routes are checked at start-up: a wrong placeholder, option or packet size stops the daemon",
        "with a message naming the route and what is allowed. Packets stay under 512 bytes; route",
        "messages are never bundled (grandMA3 refuses bundles, QLC+ ignores them). Each route has",
        "its own thread: a desk that is off or slow delays no other route and never the cues.",
        "",
        "## Templates",
        "",
        "One OSC message per template: `ADDRESS [ARG ...]`.",
        "",
        "- `{name}` in the address is replaced by the value as text: `/eos/chan/{channel}/param/red`.",
        "- An argument `{name}` is sent with the value's own type; `{name:f}` float32, `{name:i}` int32",
        "  (rounded), `{name:s}` string.",
        "- `1` is an int, `1.0` a float, `'text'` or `\"text\"` a string in which `{name}` and Python",
        "  format specs are filled in: `'Go+ Sequence {look}'`, `'At {r100:.0f}'`.",
        "- An option that is a list of five (one per emotion: joy, anxiety, anger, sadness, neutral) is",
        "  picked by the cue's emotion under its singular name: `looks = [1, 2, 3, 4, 5]` gives `{look}`.",
        "",
        "| placeholder | OSC type | range | meaning |",
        "|---|---|---|---|",
    ]
    for k, (t, rng, doc) in PLACEHOLDERS.items():
        r = f"{rng[0]:g}..{rng[1]:g}" if rng else ""
        head.append(f"| `{k}` | {t} | {r} | {doc} |")
    head.append("")
    body = [preset_markdown(n) for n in PRESETS]
    return "\n".join(head) + "\n" + "\n\n".join(body) + "\n"


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m pcp_osc.routes", description="route presets: list them, or print docs/routes.md")
    ap.add_argument("--markdown", action="store_true", help="print docs/routes.md")
    ap.add_argument("preset", nargs="?", help="print what to program on the desk for this preset")
    a = ap.parse_args(argv)
    if a.markdown:
        print(routes_markdown(), end="")
    elif a.preset:
        if a.preset not in PRESETS:
            print(f"unknown preset {a.preset!r}; choose one of: {', '.join(PRESETS)}")
            return 2
        print(preset_markdown(a.preset))
    else:
        for n, p in PRESETS.items():
            print(f"{n:10s} {p['title']} (port {p['port']}, {p['mode']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
