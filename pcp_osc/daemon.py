"""The daemon: capture -> perception -> mood -> palette -> cue, out over OSC and to the parts.

Threads (none waits on another; hand-offs are latest-value slots):
  capture   -- the source's reader thread keeps only the newest frame
  perception-- newest frame -> Faces -> live mood (OSC live stream, ``Part.on_live``)
  clock     -- every 20 ms: closes windows into cues, expires overrides, heartbeat
  control   -- OSC show control in, through one address -> handler table; the web
               dashboard calls ``control()`` too
The parts (show log, generator worker, sinks, routes, dashboard: pcp_osc/parts.py) own
their threads and hear cues, live samples, control events and backgrounds through typed
hooks; ``show.assemble`` builds and wires them.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict, defaultdict
from typing import Any, Callable, Hashable

from .capture import BrowserSource, FrameSource, open_source
from .config import Config
from .emotions import EMOTIONS, UnknownEmotion, parse_emotion
from .mood import WINDOW_MAX_S, WINDOW_MIN_S, MoodTracker
from .console import RateLimitedReport, shown
from .control import AllowList, ControlLimits, ControlServer, TokenBucket, osc_json
from .osc import CONTROL_NAMES, OscStream
from .palette import colour_for, live_colour
from .parts import Parts, StatusBoard
from .perception import Backend, PerceptionError
from .perception.region import MAX_REGION_POINTS, AudienceRegion, polygon_problem
from .types import ControlEvent, Cue, Faces, Frame, LiveSample, Mood

log = logging.getLogger("pcp_osc.daemon")

CLOCK_PERIOD_S = 0.02
HEARTBEAT_PERIOD_S = 1.0
REGION_UNCHANGED = "audience region unchanged"  # the answer to a region that is the one in use
# after_commit(callback, key): call callback(ok, why) once everything before is recorded
AfterCommit = Callable[[Callable[[bool, str], None], Any], Any]


class Daemon:
    """Runs the loops, makes the cues and applies show control. What it makes goes out over
    ``stream`` and to ``parts``; ``generate`` (the generator's "new background now") and
    ``after_commit`` (the show log's "once this is on disk") are what show control needs
    from the parts; ``problems`` is where parts report what is wrong. All come from
    ``show.assemble``; left out, the daemon runs alone (OSC only)."""

    def __init__(
        self,
        config: Config,
        *,
        source: FrameSource | str | None = None,
        backend: Backend | None = None,
        perception: bool = True,
        stream: OscStream | None = None,
        parts: Parts | None = None,
        problems: StatusBoard | None = None,
        generate: Callable[[], bool] | None = None,
        after_commit: AfterCommit | None = None,
    ) -> None:
        self.config = config
        self.prefix = config.osc.prefix
        self.t0 = time.monotonic()
        self.wall_t0 = time.time()
        self.tracker = MoodTracker(config.mood, self.t0)
        self.blend = config.palette.blend
        self.stream = stream if stream is not None else OscStream.from_config(config.osc)
        self.parts = parts if parts is not None else Parts()
        self.problems = problems if problems is not None else StatusBoard()
        self.stream.out.on_status = self.problems.reporter("osc")  # a target we cannot send to is not "ok"
        self._generate = generate
        self._after_commit = after_commit
        self.source = source if isinstance(source, FrameSource) else open_source(config.capture, source)
        self.browser_source = self.source if isinstance(self.source, BrowserSource) else None
        self._backend = backend
        self._own_backend = backend is None  # loaded here: cancelled at stop (a given one is the caller's)
        self._want_perception = perception
        self.backend_error = ""
        self.control_server: ControlServer | None = None
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.cue_id = 0
        self.last_cue: Cue | None = None
        self.last_live: Mood | None = None
        self.last_faces: Faces = Faces.empty()
        self.last_frame: Frame | None = None
        self.counters: dict[str, int] = defaultdict(int)
        self.perception_ms = 0.0
        self.started = False
        # The audience region (perception/region.py): the config's until show control sets
        # another (``region_set_by`` names the sender); the perception thread takes a new one
        # over between two pictures (``_hand_over_region``), so no picture sees half of it.
        self.region = _config_region(config)
        self.region_set_by: str | None = None
        self._region_lock = threading.Lock()
        self._region_next: list = []  # [region or None] while one waits for the perception thread
        # Show control: the allow list is resolved once, here; limits per docs/OSC.md.
        self.allow_list = AllowList(config.osc.allowed_senders)
        self._controls = self._control_handlers()
        self._accepted_report = RateLimitedReport(log, "accepted show-control messages (all are in the show log)",
                                                  per_key=ACCEPTED_LINES_PER_SENDER, total=2 * ACCEPTED_LINES_PER_SENDER,
                                                  level=logging.INFO)
        self._control_cue_budget = TokenBucket(config.osc.max_control_cues_per_s)
        self._control_cue_owed: str | None = None
        self._pong_lock = threading.Lock()
        self._pong_buckets: OrderedDict[str, TokenBucket] = OrderedDict()
        self._pong_budget_all = TokenBucket(config.osc.max_pongs_per_s * PONGS_ALL_SENDERS_FACTOR)
        self._pongs_owed: OrderedDict[str, None] = OrderedDict()

    # ------------------------------------------------------------------ life cycle
    def start(self) -> None:
        c = self.config
        limits = ControlLimits(max_bundle_messages=c.osc.max_bundle_messages, max_messages_per_s=c.osc.max_messages_per_s)
        self.control_server = ControlServer(c.osc.control_host, c.osc.control_port, self._on_osc_control,
                                            self.allow_list, limits, collapse=self._collapse_slot)
        self.control_server.start()
        log.info(
            "show control on UDP %s:%d; cues to %s", c.osc.control_host, self.control_server.port,
            ", ".join(f"{h}:{p}" for h, p in self.stream.targets),
        )
        try:
            if self._want_perception and self._backend is None:
                self._load_backend()
            self.source.start()
            log.info("source: %s", self.source.name)
            self.parts.start()
        except BaseException:
            # e.g. the dashboard's port is taken: stop what runs already, so the process
            # ends with the message instead of threads left running (an abort at exit).
            self.source.stop()
            self.control_server.stop()
            self.stream.close()
            raise
        self.started = True
        self._spawn(self._clock_loop, "clock")
        if self._want_perception:
            self._spawn(self._perception_loop, "perception")
        self._send_cue(self.tracker.window_mood(), reason="start")

    def _load_backend(self) -> None:
        from .perception import make_backend

        t = time.monotonic()
        log.info("loading perception (%s backend)...", self.config.perception.backend)
        try:
            self._backend = make_backend(self.config.perception)
            log.info("perception ready in %.1f s", time.monotonic() - t)
        except Exception as e:  # missing/corrupt weights: cues go on from the intent
            self.backend_error = str(e)
            self._set_reason("perception", f"perception-failed: {e}")
            log.error("perception cannot start: %s -- cues go on from the intended emotion", e)

    def _spawn(self, fn: Callable, name: str) -> None:
        t = threading.Thread(target=fn, name=name, daemon=True)
        t.start()
        self._threads.append(t)

    def stop(self) -> None:
        if not self.started:
            return
        self._stop.set()
        cancel = getattr(self._backend, "cancel", None)
        if self._own_backend and callable(cancel):
            cancel()  # a long search ends now, not when the interpreter exits under it
        for t in self._threads:
            t.join(timeout=5)
        self.parts.stop()
        self.source.stop()
        if self.control_server:
            self.control_server.stop()
        self._accepted_report.tick(final=True)
        self.stream.close()
        self.started = False

    def run_for(self, seconds: float | None = None) -> None:
        self.start()
        try:
            if seconds is None:
                while not self._stop.wait(1.0):
                    pass
            else:
                self._stop.wait(seconds)
        except KeyboardInterrupt:
            log.info("stopping (Ctrl-C)")
        finally:
            self.stop()

    def request_stop(self) -> None:
        self._stop.set()

    # ------------------------------------------------------------------ loops
    def _perception_loop(self) -> None:
        last_index = -1
        while not self._stop.is_set():
            frame = self.source.latest(last_index, timeout_s=0.1)
            if frame is None:
                continue
            last_index = frame.index
            if self._backend is None:
                continue
            if self._region_next:
                self._hand_over_region()
            t = time.perf_counter()
            try:
                faces = self._backend.detect(frame.image, frame.timestamp)
            except Exception as e:
                if self._stop.is_set():
                    break  # cancelled by stop()
                self.counters["perception_errors"] += 1
                if self.counters["perception_errors"] in (1, 100) or self.counters["perception_errors"] % 1000 == 0:
                    log.error("perception failed on frame %d of %s: %s", frame.index, self.source.name, e)
                continue
            self.perception_ms = (time.perf_counter() - t) * 1000
            self.counters["frames"] += 1
            now = time.monotonic()
            mood = self.tracker.update(faces, now)
            self.last_live, self.last_faces, self.last_frame = mood, faces, frame
            sample = LiveSample(mood, live_colour(mood.distribution, self.config.palette), faces, frame)
            self.stream.on_live(sample)
            self.parts.live(sample)

    def _hand_over_region(self) -> None:
        with self._region_lock:
            if not self._region_next:
                return
            region = self._region_next.pop()
        self._backend.set_region(region)  # type: ignore[union-attr]

    def _clock_loop(self) -> None:
        next_beat = self.t0 + HEARTBEAT_PERIOD_S
        while not self._stop.wait(CLOCK_PERIOD_S):
            now = time.monotonic()
            # Under the cue lock: an operator's cue and a window closing never interleave.
            with self._lock:
                if self.tracker.expire_override(now):
                    log.info("override timed out")
                    self._operator_cue("release", now)
                mood = self.tracker.tick(now)
                if mood is not None:
                    self._send_cue(mood, reason="window")
            self._send_owed_control_cue()
            self._send_owed_pongs()
            if now >= next_beat:
                next_beat += HEARTBEAT_PERIOD_S
                if next_beat <= now:  # stalled (suspend, debugger): one beat, not a burst
                    next_beat = now + HEARTBEAT_PERIOD_S
                self._update_source_status()
                self.stream.heartbeat(now - self.t0)
                self.stream.status(self.status_text())

    # ------------------------------------------------------------------ cues
    def _operator_cue(self, reason: str, now: float) -> Cue:
        """A cue the operator asked for (override, release): it goes out now and the window
        restarts with it, so the next window cue is a full window later."""
        with self._lock:
            mood = self.tracker.window_mood()
            self.tracker.restart_window(now)
            return self._send_cue(mood, reason=reason)

    def _send_cue(self, mood: Mood, reason: str) -> Cue:
        with self._lock:
            colour = colour_for(mood, self.tracker.intent, self.config.palette, self.blend)
            cue = Cue(
                id=self.cue_id, mood=mood, colour=colour, intent=self.tracker.intent,
                window_s=self.tracker.window_s, wall_time=time.time(), timestamp=time.monotonic(), reason=reason,
            )
            self.cue_id += 1
            self.last_cue = cue
            self._control_cue_owed = None  # this cue carries the latest state
            # Parts only enqueue (log, generator, routes), so telling them first costs
            # microseconds and means a cue a receiver has seen is already queued for the log.
            self.parts.cue(cue)
            self.stream.on_cue(cue)
            self.counters["cues"] += 1
        log.info(
            "cue %d: %s %.0f%% (%s, %.1f faces) %s%s", cue.id, cue.emotion_id, cue.confidence * 100,
            cue.source, mood.faces, colour.hex, "" if reason == "window" else f" [{reason}]",
        )
        return cue

    # ------------------------------------------------------------------ status
    def _set_reason(self, key: str, text: str | None) -> None:
        self.problems.set(key, text)

    def _update_source_status(self) -> None:
        st = self.source.state
        if st in ("no-camera", "reconnecting"):
            self._set_reason("source", f"{st}: {self.source.name}")
        elif st == "ended":
            self._set_reason("source", f"source-ended: {self.source.name}")
        else:
            self._set_reason("source", None)

    def status_text(self) -> str:
        return self.problems.text()

    def status(self) -> dict:
        cue = self.last_cue
        live = self.last_live
        ov = self.tracker.override
        cs = self.control_server
        return {
            "status": self.status_text(),
            "uptime_s": round(time.monotonic() - self.t0, 1),
            "source": self.source.name,
            "source_state": self.source.state,
            "faces": len(self.last_faces),
            "perception_ms": round(self.perception_ms, 1),
            "backend": getattr(self._backend, "name", None),
            "intent": EMOTIONS[self.tracker.intent],
            "override": EMOTIONS[ov.emotion] if ov else None,
            "override_timeout_s": self.config.mood.override_timeout_s,  # an override without seconds ends after this (0: on release)
            "window_s": self.tracker.window_s,
            "window_left_s": round(max(0.0, self.tracker.window_start + self.tracker.window_s - time.monotonic()), 1),
            "blend": self.blend,
            # the polygon ([x, y] fractions), a mask image's name, or None: the whole picture
            "audience_region": None if self.region is None else (self.region.polygon_fractions() or self.region.label),
            "audience_region_set_by": self.region_set_by,  # None: from the config
            "cue": None if cue is None else cue.to_json(),
            "live": None if live is None else {
                "faces": int(live.faces),
                "shares": {e: round(float(v), 4) for e, v in zip(EMOTIONS, live.distribution)},
                "valence": round(live.valence, 4), "arousal": round(live.arousal, 4),
                "hex": live_colour(live.distribution, self.config.palette).hex,
            },
            "counters": dict(self.counters) | ({
                "control_received": cs.received, "control_malformed": cs.malformed, "control_refused": cs.refused,
                "control_bundle_dropped": cs.bundle_dropped, "control_rate_dropped": cs.rate_dropped,
                "control_superseded": cs.superseded,
            } if cs else {}) | {"osc_sent": self.stream.sent},
            "control_port": cs.port if cs else None,
            "generator": None,
            "showlog": None,
        } | self.parts.status()

    # ------------------------------------------------------------------ show control
    def _control_handlers(self) -> dict[str, Callable[[str, tuple, float], str]]:
        """The show-control address map (docs/OSC.md, "In"): address -> handler.
        A handler applies its message and returns what it did, or raises ValueError
        saying what was wrong and what is allowed."""
        handlers = {
            "intent": self._ctl_intent,
            "override": self._ctl_override,
            "release": self._ctl_release,
            "generate": self._ctl_generate,
            "marker": self._ctl_marker,
            "window": self._ctl_window,
            "blend": self._ctl_blend,
            "region": self._ctl_region,
            "ping": self._ctl_ping,
        }
        assert tuple(handlers) == CONTROL_NAMES, "osc.CONTROL_NAMES lists every handler, in order"
        return {self.stream.control_address(name): fn for name, fn in handlers.items()}

    def _collapse_slot(self, address: str, sender: str) -> Hashable | None:
        """For a sender over its message rate: messages that only set state wait in one
        slot per kind (the newest replaces the older), so a storm ends in its latest
        state; pings share one slot per sender (one later pong answers them all)."""
        name = address[len(self.prefix) + 1:] if address.startswith(self.prefix + "/") else None
        if name == "ping":
            return ("ping", sender)
        return COLLAPSIBLE_CONTROLS.get(name or "")

    def _on_osc_control(self, address: str, args: list, sender: str) -> None:
        event = self.control(address, args, sender)
        if not event.accepted and self.control_server is not None:
            self.control_server.note_bad(sender, event.message)
        if event.accepted and address == self.stream.control_address("ping") and self.control_server is not None:
            self._ping(sender)

    def control(self, address: str, args: list | tuple, sender: str = "local") -> ControlEvent:
        """Change the show: the one entry for OSC control and the web dashboard alike.
        Never raises for bad input: the returned event says what was wrong. The event's
        args are JSON values (``osc_json``): blobs, timetags and the like included."""
        raw = tuple(args)
        handler = self._controls.get(address)
        try:
            if handler is None:
                allowed = ", ".join(self._controls)
                raise ValueError(f"unknown address {shown(address)}; show control understands {allowed}")
            message = handler(address, raw, time.monotonic())
            accepted = True
            self.counters["control_accepted"] += 1
        except ValueError as e:
            message, accepted = shown(str(e), 300, backslashes=False), False
            self.counters["control_rejected"] += 1
        event = ControlEvent(address, tuple(osc_json(a) for a in raw), sender, accepted, message)
        if accepted and handler == self._ctl_region and message != REGION_UNCHANGED:
            self.region_set_by = sender
            by = "the dashboard" if sender.startswith("web:") else f"show control ({shown(sender)})"
            n = len(raw) // 2
            log.info("audience region %s from %s%s", "set" if n else "cleared", by,
                     f": {n} points" if n else ": the whole picture is the audience")
        elif accepted and handler != self._ctl_ping:
            # Every message is in the show log; the console shows a reader's share of them.
            self._accepted_report.warn(sender.rpartition(":")[0], "show control from %s: %s %s -> %s", shown(sender),
                                       shown(address), " ".join(shown(a, 60) for a in event.args), message)
        self.parts.control(event)
        return event

    def _ctl_intent(self, address: str, args: tuple, now: float) -> str:
        k = _emotion_arg(address, args)
        self.tracker.set_intent(k)
        if self.tracker.window_mood().source == "intent":
            self._control_cue("intent", now)
        return f"intent is {EMOTIONS[k]}"

    def _ctl_override(self, address: str, args: tuple, now: float) -> str:
        if not 1 <= len(args) <= 2:
            raise ValueError(f"{address} takes an emotion and optional seconds, got {len(args)} arguments")
        k = _emotion_arg(address, args[:1])
        seconds = None
        if len(args) == 2:
            seconds = _number(address, args[1], "seconds")
            if not 0 < seconds <= 86400:
                raise ValueError(f"{address} seconds {seconds} out of range; allowed 0 < s <= 86400")
        with self._lock:  # the override and its cue together, never split by a window closing
            self.tracker.set_override(k, now, seconds)
            self._control_cue("override", now)
        if seconds:
            return f"override {EMOTIONS[k]} for {seconds:g} s"
        timeout_s = self.config.mood.override_timeout_s
        if timeout_s > 0:  # no seconds given: the configured timeout ends it, not only a release
            return f"override {EMOTIONS[k]} for {timeout_s:g} s (mood.override_timeout_s) or until release"
        return f"override {EMOTIONS[k]} until release"

    def _ctl_release(self, address: str, args: tuple, now: float) -> str:
        _no_args(address, args)
        with self._lock:
            if self.tracker.release():
                self._control_cue("release", now)
                return "override released"
        return "no override was active"

    def _ctl_generate(self, address: str, args: tuple, now: float) -> str:
        _no_args(address, args)
        if self._generate is None:
            raise ValueError(f"{address}: no background generator is running (generator.kind = off)")
        if not self._generate():
            raise ValueError(f"{address}: no cue yet to make a background for; try again after the first cue")
        return "background requested"

    def _ctl_marker(self, address: str, args: tuple, now: float) -> str:
        if len(args) != 1 or not isinstance(args[0], str) or not args[0].strip():
            raise ValueError(f"{address} takes one non-empty string (a song or cue name), got {_args_text(args)}")
        return f"marker '{shown(args[0].strip())}'"

    def _ctl_window(self, address: str, args: tuple, now: float) -> str:
        if len(args) != 1:
            raise ValueError(f"{address} takes one number of seconds ({WINDOW_MIN_S:g}..{WINDOW_MAX_S:g})")
        seconds = _number(address, args[0], "seconds")
        self.tracker.set_window(seconds, now)
        return f"window is {seconds:g} s"

    def _ctl_blend(self, address: str, args: tuple, now: float) -> str:
        if len(args) != 1:
            raise ValueError(f"{address} takes one number 0..1")
        w = _number(address, args[0], "blend")
        if not 0.0 <= w <= 1.0:
            raise ValueError(f"{address} {w} out of range; allowed 0..1")
        self.blend = w
        return f"blend is {w:g}"

    def _ctl_region(self, address: str, args: tuple, now: float) -> str:
        """x y x y ...: the audience region's corners, fractions of the picture, in order
        around it (the rule of perception.region); no arguments: the whole picture. The
        perception takes it over before its next picture."""
        allowed = (f"allowed: 3..{MAX_REGION_POINTS} x y pairs, fractions 0..1 of the picture's width and height "
                   f"in order around the audience, or no arguments for the whole picture")
        if len(args) % 2:
            raise ValueError(f"{address} got {len(args)} numbers, not x y pairs; {allowed}")
        for i, v in enumerate(args):
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise ValueError(f"{address} argument {i + 1} = {shown(repr(v), 60, backslashes=False)} is not a number; {allowed}")
        # OSC floats are 32-bit (0.3 arrives as 0.30000001...): six decimals are far below a pixel
        points = [[round(float(args[i]), 6), round(float(args[i + 1]), 6)] for i in range(0, len(args), 2)]
        problem = polygon_problem(points)
        if problem:
            raise ValueError(f"{address}: the region {problem}")
        if self._backend is not None and not callable(getattr(self._backend, "set_region", None)):
            raise ValueError(f"{address}: the {getattr(self._backend, 'name', 'running')} perception backend cannot change "
                             f"its audience region while running; set perception.region in the config")
        if points == (self.region.polygon_fractions() if self.region is not None else []):
            # a sender repeating itself (an OSC Out that sends every frame) restarts nothing:
            # a new region ends every track and searches the picture whole
            return REGION_UNCHANGED
        region = AudienceRegion(polygon=points, label=f"polygon of {len(points)} points") if points else None
        with self._region_lock:
            self.region = region
            self._region_next = [region]
        if not points:
            return "audience region cleared: the whole picture is the audience"
        return f"audience region set: {len(points)} points; nothing outside it is searched or counted"

    def _ctl_ping(self, address: str, args: tuple, now: float) -> str:
        _no_args(address, args)
        return "pong"

    # ------------------------------------------------------------------ what control may cause
    def _control_cue(self, reason: str, now: float) -> None:
        """A cue for a change show control made: at once while under
        osc.max_control_cues_per_s (all senders together); over it, the change waits
        and the clock sends one cue with the latest state when the budget allows.
        An override, a release or a new intent (sent only while no faces are seen) is the
        operator's cue: the window restarts with it."""
        with self._lock:
            if self._control_cue_budget.take():
                self._cue_for_control(reason, now)
            else:
                self._control_cue_owed = reason
                self.counters["control_cues_collapsed"] += 1

    def _cue_for_control(self, reason: str, now: float) -> None:
        if reason in ("override", "release", "intent"):
            self._operator_cue(reason, now)
        else:
            self._send_cue(self.tracker.window_mood(), reason=reason)

    def _send_owed_control_cue(self) -> None:
        if self._control_cue_owed is None or not self._control_cue_budget.ready():
            return
        with self._lock:
            reason = self._control_cue_owed
            if reason is not None and self._control_cue_budget.take():
                self._cue_for_control(reason, time.monotonic())

    def _ping(self, sender: str) -> None:
        """Answer a ping with a pong, at most osc.max_pongs_per_s to one sender
        address (faster pings are answered by one later pong) and a few times that to
        everyone together, so a bundle of pings cannot be reflected at a third party."""
        ip = sender.rpartition(":")[0]
        with self._pong_lock:
            bucket = self._pong_buckets.get(ip)
            if bucket is None:
                bucket = self._pong_buckets[ip] = TokenBucket(self.config.osc.max_pongs_per_s)
                while len(self._pong_buckets) > PONG_SENDERS_MAX:
                    self._pong_buckets.popitem(last=False)
            if not self._pongs_owed and bucket.ready() and self._pong_budget_all.ready():
                bucket.take()
                self._pong_budget_all.take()
            else:
                if sender in self._pongs_owed or len(self._pongs_owed) < PONG_SENDERS_MAX:
                    self._pongs_owed[sender] = None
                self.counters["pongs_deferred"] += 1
                return
        self._acknowledge(sender)

    def _send_owed_pongs(self) -> None:
        if not self._pongs_owed:
            return
        due = []
        with self._pong_lock:
            for sender in list(self._pongs_owed):
                bucket = self._pong_buckets.get(sender.rpartition(":")[0])
                if not self._pong_budget_all.ready():
                    break
                if bucket is None or bucket.take():
                    self._pong_budget_all.take()
                    del self._pongs_owed[sender]
                    due.append(sender)
        for sender in due:
            self._acknowledge(sender)

    def _acknowledge(self, sender: str) -> None:
        """/pcp/pong once everything received before is committed to the show log;
        /pcp/pong "why" when that cannot be promised (docs/OSC.md, "Acknowledgement")."""
        server = self.control_server
        if server is None:
            return
        unhandled = server.take_unhandled(sender)

        def answer(ok: bool, why: str = "") -> None:
            problems = [] if ok else [why]
            if unhandled:
                problems.append(f"dropped: {unhandled} of your messages since your last ping were over "
                                f"the show-control limits and are not in the show log")
            self.counters["pongs_failed" if problems else "pongs"] += 1
            address, args = self.stream.pong("; ".join(problems))
            server.reply(sender, address, *args)

        if self._after_commit is None:
            answer(True)
        else:
            self._after_commit(answer, sender)


COLLAPSIBLE_CONTROLS = {"intent": "intent", "override": "override", "release": "override", "window": "window",
                        "blend": "blend", "generate": "generate", "region": "region"}
PONG_SENDERS_MAX = 1024
ACCEPTED_LINES_PER_SENDER = 20  # console lines per sender address per 10 s; the rest are summed
PONGS_ALL_SENDERS_FACTOR = 5  # everyone together: this many times one sender's pong rate


def _config_region(config: Config) -> AudienceRegion | None:
    """The config's audience region (None: the whole picture). A mask image that cannot be
    read is the perception's to report (it refuses to start); here it is the whole picture."""
    try:
        return AudienceRegion.from_config(config.perception)
    except PerceptionError:
        return None


def _args_text(args: tuple) -> str:
    """Arguments as they may appear in a message: JSON (blobs, timetags ... readable), escaped and cut."""
    return shown(json.dumps(osc_json(list(args)), ensure_ascii=False), 80, backslashes=False)


def _emotion_arg(address: str, args: tuple) -> int:
    if len(args) != 1:
        raise ValueError(f"{address} takes one emotion (name or 0..4), got {len(args)} arguments")
    try:
        return parse_emotion(args[0])
    except UnknownEmotion as e:
        raise ValueError(f"{address}: {e}") from None


def _number(address: str, value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{address} {what} must be a number (OSC f or i), got {shown(repr(value), 60, backslashes=False)}")
    v = float(value)
    if v != v:
        raise ValueError(f"{address} {what} is NaN")
    return v


def _no_args(address: str, args: tuple) -> None:
    if args:
        raise ValueError(f"{address} takes no arguments, got {_args_text(args)}")
