"""Route presets (pcp_osc/presets/routes.toml) and the start-up check that turns a route's
config into a :class:`Route` ready to send, or stops with a message naming the route, the
template and what is allowed. Also ``--route PRESET:HOST[:PORT][:udp|tcp]``."""

from __future__ import annotations

import logging
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from pythonosc.osc_bundle import OscBundle
from pythonosc.osc_message import OscMessage

from ..config import ConfigError, RouteConfig, parse_hostport
from ..emotions import EMOTIONS
from ..osc import MAX_PACKET_BYTES, pack_bundles
from ..types import Cue
from .templates import ADDRESS_FORBIDDEN, RouteError, Template, build_message, encode_message, parse_template, render
from .values import PLACEHOLDERS, as_text, cue_values, sample_cue

log = logging.getLogger("pcp_osc.routes")

PRESETS_PATH = Path(__file__).resolve().parent.parent / "presets" / "routes.toml"
CONTROL_OPTIONS = ("mode", "only_on_change", "tcp_framing", "bundle")  # options that steer, not placeholders
TCP_FRAMINGS = ("slip", "length")  # OSC 1.1 SLIP (Eos 3037, most TCP receivers) or OSC 1.0 size prefix (Eos 3032)


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
    bundle: bool = False  # a cue's messages in bundles, each within MAX_PACKET_BYTES

    def values(self, cue: Cue) -> dict[str, Any]:
        out = dict(cue_values(cue))
        k = int(cue.emotion)
        for name, v in self.options.items():
            if name in CONTROL_OPTIONS:
                continue
            if isinstance(v, list):
                out[_singular(name)] = v[k]
                out[name] = " ".join(as_text(x) for x in v)
            elif isinstance(v, dict):
                out[_singular(name)] = v[EMOTIONS[k]]
            else:
                out[name] = v
        return out

    def messages(self, cue: Cue) -> list[tuple[str, list[tuple[str, Any]]]]:
        values = self.values(cue)
        return [render(t, values, self.where) for t in self.templates]

    def osc_messages(self, cue: Cue) -> list[OscMessage]:
        return [build_message(a, args) for a, args in self.messages(cue)]

    def osc_packets(self, cue: Cue) -> list[OscMessage | OscBundle]:
        """What goes on the wire for this cue: one message per template, or, with the
        route's ``bundle`` option, the messages in bundles within MAX_PACKET_BYTES."""
        messages = self.osc_messages(cue)
        if not self.bundle:
            return list(messages)
        return [OscBundle(b) for b in pack_bundles([m.dgram for m in messages])]

    def packets(self, cue: Cue) -> list[bytes]:
        return [p.dgram for p in self.osc_packets(cue)]


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
    bundle = options.get("bundle", False)
    if not isinstance(bundle, bool):
        raise RouteError(f"{where}.options.bundle = {bundle!r} must be true or false")
    if bundle and preset_name == "grandma3":
        raise RouteError(f"{where}.options.bundle = true: grandMA3 refuses OSC bundles; leave bundle off for this route")

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
    if preset_name == "eos":
        user = options.get("user", 0)
        if float(user) != int(user):
            raise RouteError(f"{where}.options.user = {user!r}: an Eos user is a whole number (0: plain /eos/...)")
        # {eos}: "eos", or "eos/user/N" to keep the commands off the operator's command line
        options["eos"] = "eos" if not user else f"eos/user/{int(user)}"
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
        framing=framing, templates=[], options=options, only_on_change=only_on_change, where=where, bundle=bundle,
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
