"""The route template language: ``ADDRESS [ARG ...]``, parsed once, filled per cue.

Syntax (docs/routes.md, "Templates")::

    /eos/chan/{channel}/param/red {r100:f}
    /gma3/cmd 'Go+ Sequence {look}'
    /pb/{look}/go 1

* ADDRESS starts with ``/``; ``{name}`` in it is replaced by the value as text.
* An ARG is ``{name}`` (sent as the value's own type), ``{name:f}`` float32,
  ``{name:i}`` int32 (rounded) or ``{name:s}`` string; a number literal (``1`` int,
  ``1.0`` float); or a quoted string ``'...'`` / ``"..."`` sent as a string, in which
  ``{name}`` and Python format specs (``{r100:.0f}``) are filled in.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from typing import Any

from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder

from ..config import ConfigError
from ..osc import osc_arg
from .values import as_text

OSC_TYPES = ("f", "i", "s")
ADDRESS_FORBIDDEN = set(" #*,?[]{}")


class RouteError(ConfigError):
    """A route that cannot be built; the message names the route, the template and what is allowed."""


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
    value = osc_arg(value)
    if code == "":
        code = "f" if isinstance(value, float) else "i" if isinstance(value, int) else "s"
    if code == "f":
        return "f", float(value)
    if code == "i":
        return "i", int(round(float(value)))
    return "s", as_text(value)


def render(template: Template, values: dict[str, Any], where: str = "route") -> tuple[str, list[tuple[str, Any]]]:
    """(address, [(osc type, value), ...]) for these values."""
    text_values = {k: as_text(v) if not isinstance(v, (int, float)) or isinstance(v, bool) else v for k, v in values.items()}
    address = template.address.format(**{k: as_text(v) for k, v in values.items()})
    args = []
    for a in template.args:
        if a.kind == "literal":
            args.append((a.osc_type, a.value))
        elif a.kind == "placeholder":
            args.append(_typed(values[a.value], a.osc_type, where))
        else:
            args.append(("s", a.value.format(**text_values)))
    return address, args


def build_message(address: str, args: list[tuple[str, Any]]) -> OscMessage:
    """One rendered template as python-osc's message (its ``dgram`` is the packet)."""
    b = OscMessageBuilder(address=address)
    for code, value in args:
        b.add_arg(value, code)
    return b.build()


def encode_message(address: str, args: list[tuple[str, Any]]) -> bytes:
    return build_message(address, args).dgram
