"""The address tables of docs/OSC.md, parsed, so tests hold code and contract together."""

from __future__ import annotations

import re
from pathlib import Path

from pcp_osc.emotions import EMOTIONS

OSC_MD = Path(__file__).resolve().parents[1] / "docs" / "OSC.md"


def _expand(cell: str) -> list[str]:
    cell = cell.strip()
    if "…" in cell:  # /pcp/live/joy … /pcp/live/neutral: every emotion, in order
        first, last = (s.strip() for s in cell.split("…"))
        assert first.rsplit("/", 1)[1] == EMOTIONS[0] and last.rsplit("/", 1)[1] == EMOTIONS[-1], cell
        base = first.rsplit("/", 1)[0]
        return [f"{base}/{e}" for e in EMOTIONS]
    parts = [p.strip() for p in cell.split(",")]
    out = [parts[0]]
    base = parts[0].rsplit("/", 1)[0]
    out += [base + p for p in parts[1:]]  # "/pcp/cue/color/r, /g, /b"
    return out


def contract() -> dict[str, dict[str, str]]:
    """{"out": {address: "i"|"s"|"f"|"fff"|...}, "in": {address: args text}}. Rows like
    `/pcp/cue/color/r, /g, /b` and `/pcp/live/joy … /pcp/live/neutral` are expanded."""
    text = OSC_MD.read_text(encoding="utf-8")
    tables = {"out": {}, "in": {}}
    section = None
    for line in text.splitlines():
        if line.startswith("## "):
            section = "in" if line.startswith("## In") else ("out" if line.startswith("## Out") else None)
            continue
        m = re.match(r"\|\s*(/[^|]+?)\s*\|\s*([^|]*?)\s*\|", line)
        if m and section:
            for address in _expand(m.group(1)):
                tables[section][address] = m.group(2).replace(" ", "")
    return tables


def typetags(dgram: bytes) -> tuple[str, str]:
    """(address, type tags without the comma) of one OSC message datagram."""
    end = dgram.index(b"\x00")
    address = dgram[:end].decode()
    start = (end + 4) & ~3
    tend = dgram.index(b"\x00", start)
    return address, dgram[start + 1:tend].decode()
