"""Parts: what the configuration adds to a show beside the daemon's own loops (show log,
background generator, sinks, routes to desks, web dashboard, the console status line).

A part is started and stopped with the daemon and hears, through typed hooks, what the
daemon makes: every cue, every live sample, every show-control event, and every
background the generator finishes. ``show.assemble`` is the one place that builds the
parts and wires them (docs: README, "Architecture").

Hooks are called on the daemon's threads (the cue and control hooks under its cue lock),
so a part only hands the value over (a queue, a latest-value slot) and returns at once.
A hook that raises is logged and the show goes on.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable, Iterable, Protocol, TypeVar, runtime_checkable

from .types import Background, ControlEvent, Cue, LiveSample

log = logging.getLogger("pcp_osc.parts")


@runtime_checkable
class Part(Protocol):
    """The interface of a part. ``role`` ("showlog", "generator", "sinks", ...) keys its entry
    in the daemon's status (``status()``; None: no entry)."""

    role: str

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def on_cue(self, cue: Cue) -> None: ...

    def on_live(self, sample: LiveSample) -> None: ...

    def on_control(self, event: ControlEvent) -> None: ...

    def on_background(self, background: Background) -> None: ...

    def status(self) -> dict | None: ...


P = TypeVar("P", bound=Part)
HOOKS = ("on_cue", "on_live", "on_control", "on_background")


class BasePart:
    """A part that does nothing: subclass it and override the hooks you need."""

    role = "part"

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def on_cue(self, cue: Cue) -> None:
        pass

    def on_live(self, sample: LiveSample) -> None:
        pass

    def on_control(self, event: ControlEvent) -> None:
        pass

    def on_background(self, background: Background) -> None:
        pass

    def status(self) -> dict | None:
        return None


class Parts:
    """The show's parts, in order: started in that order, stopped in reverse, and each hook
    goes to every part in that order (the show log first, so a cue a receiver has seen is
    already queued for the log)."""

    def __init__(self, parts: Iterable[Part] = ()) -> None:
        self._parts: list[Part] = []
        self._started = False
        for p in parts:
            self.add(p)

    def add(self, part: P) -> P:
        if not isinstance(part, Part):
            raise TypeError(f"{type(part).__name__} is not a part: it needs role, start, stop, on_cue, on_live, "
                            "on_control, on_background and status (subclass pcp_osc.parts.BasePart)")
        shadowed = [h for h in HOOKS if h in getattr(part, "__dict__", {})]
        if shadowed:  # e.g. a callback stored as self.on_background would take the hook's place
            raise TypeError(f"{type(part).__name__} sets {', '.join(shadowed)} on the instance, hiding the part's hook")
        self._parts.append(part)
        if self._started:
            part.start()
        return part

    def __iter__(self):
        return iter(list(self._parts))

    def __len__(self) -> int:
        return len(self._parts)

    def start(self) -> None:
        """Start every part in order; if one cannot start (a port taken), the parts already
        started are stopped again, in reverse, before the error goes on."""
        started: list[Part] = []
        try:
            for p in self._parts:
                p.start()
                started.append(p)
        except BaseException:
            for p in reversed(started):
                try:
                    p.stop()
                except Exception:
                    log.exception("stopping %s failed", type(p).__name__)
            raise
        self._started = True

    def stop(self) -> None:
        for p in reversed(self._parts):
            try:
                p.stop()
            except Exception:
                log.exception("stopping %s failed", type(p).__name__)
        self._started = False

    def cue(self, cue: Cue) -> None:
        for p in self._parts:
            _safely(p.on_cue, cue, p, "cue")

    def live(self, sample: LiveSample) -> None:
        for p in self._parts:
            _safely(p.on_live, sample, p, "live sample")

    def control(self, event: ControlEvent) -> None:
        for p in self._parts:
            _safely(p.on_control, event, p, "control event")

    def background(self, background: Background) -> None:
        """A finished background for every part (the generator's worker calls this)."""
        for p in self._parts:
            _safely(p.on_background, background, p, "background")

    def status(self) -> dict[str, dict]:
        out: dict[str, dict] = {}
        for p in self._parts:
            try:
                st = p.status()
            except Exception:
                log.exception("%s could not say its status", type(p).__name__)
                continue
            if st is not None:
                out[p.role] = st
        return out


def _safely(hook: Callable[[Any], None], value: Any, part: Part, what: str) -> None:
    try:
        hook(value)
    except Exception:
        log.exception("%s failed on a %s; the show goes on", type(part).__name__, what)


class StatusBoard:
    """What is wrong right now, by key ("source", "perception", "showlog", "generator"):
    the text of /pcp/status and of the dashboard's status ("ok" when nothing is)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reasons: dict[str, str] = {}

    def set(self, key: str, text: str | None) -> bool:
        """Report ``text`` under ``key`` (None or "ok": all well again). True when it changed."""
        with self._lock:
            if text and text != "ok":
                changed = self._reasons.get(key) != text
                self._reasons[key] = text
                return changed
            return self._reasons.pop(key, None) is not None

    def reporter(self, key: str) -> Callable[[str | None], None]:
        """A callback for a part's ``on_status``: what it reports goes under ``key``."""
        return lambda text: self.set(key, text)

    def text(self) -> str:
        with self._lock:
            return "; ".join(self._reasons.values()) or "ok"
