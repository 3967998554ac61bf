"""Routes: each cue, as OSC, to lighting desks and media servers (OSC.md, "Routes").

A route is a target (host, port, UDP or TCP) and a list of address templates filled
from the cue. Presets (pcp_osc/presets/routes.toml, docs/routes.md) ship templates
for ETC Eos, grandMA3, ChamSys MagicQ, QLC+, Resolume and a one-look-per-emotion mode.

    values.py      the cue's values a template can use (``PLACEHOLDERS``, ``cue_values``)
    templates.py   the template language: ``ADDRESS [ARG ...]`` parsed and filled
    presets.py     the presets and the start-up check (``compile_route``), ``--route`` parsing
    transports.py  ``RouteSender``: a thread and a latest-first queue per route; UDP, or TCP
                   through python-osc's client (SLIP or size framing)
    qlc.py         QLC+'s input channel numbers for OSC paths (a checksum of the path)
    docs.py        docs/routes.md and ``pcp-osc routes`` (``python -m pcp_osc.routes --markdown``)

Routes are checked when the daemon starts (``compile_route``): an unknown name, a
bad type, an option out of its limits or a packet over 512 bytes stops start-up
with a message naming the route, the template and what is allowed. Sending never
blocks the cue path: a dead TCP desk delays nobody else.
"""

from .docs import main, preset_markdown, routes_markdown
from .presets import (
    CONTROL_OPTIONS,
    PRESETS,
    PRESETS_PATH,
    TCP_FRAMINGS,
    Route,
    compile_route,
    compile_routes,
    load_presets,
    parse_route_arg,
    preset_names,
)
from .qlc import qchecksum, qlc_channel
from .templates import Arg, RouteError, Template, build_message, encode_message, parse_template, render
from .transports import QUEUE_CUES, TCP_CONNECT_TIMEOUT_S, TCP_RETRY_S, RouteSender
from .values import PLACEHOLDERS, as_text, cue_values, sample_cue

__all__ = [
    "CONTROL_OPTIONS", "PRESETS", "PRESETS_PATH", "TCP_FRAMINGS", "Route", "compile_route", "compile_routes",
    "load_presets", "parse_route_arg", "preset_names", "Arg", "RouteError", "Template", "build_message",
    "encode_message", "parse_template", "render", "QUEUE_CUES", "TCP_CONNECT_TIMEOUT_S", "TCP_RETRY_S",
    "RouteSender", "PLACEHOLDERS", "as_text", "cue_values", "sample_cue", "main", "preset_markdown", "routes_markdown",
    "qchecksum", "qlc_channel",
]
