"""The show's parts (pcp_osc/parts.py) as show.assemble wires them: typed hooks, a part that
fails harms nobody, /pcp/generate reaches the generator part and its background every part.
Real daemons, real UDP on loopback; the browser source stands in for a camera (no frames)."""

from __future__ import annotations

import pytest

from heard import Heard
from oscutil import OscReceiver, wait_until
from pcp_osc.capture import BrowserSource
from pcp_osc.config import config_from_dict
from pcp_osc.daemon import Daemon
from pcp_osc.parts import BasePart, Parts
from pcp_osc.show import assemble


def config(receiver: OscReceiver, **more):
    data = {
        "osc": {"target": receiver.target, "control_port": 0, "control_host": "127.0.0.1", "heartbeat": False},
        "mood": {"window_s": 1.0},
        "log": {"enabled": False},
        "generator": {"kind": "off"},
    }
    for section, values in more.items():
        data.setdefault(section, {}).update(values)
    return config_from_dict(data)


@pytest.fixture()
def receiver():
    rx = OscReceiver()
    yield rx
    rx.assert_all_osc()
    rx.close()


def test_what_is_not_a_part_is_refused_with_what_a_part_needs():
    with pytest.raises(TypeError, match="object is not a part: it needs role, start, stop, on_cue"):
        Parts().add(object())

    class CallbackInPlaceOfHook(BasePart):
        def __init__(self):
            self.on_background = print  # a callback stored under a hook's name would hide the hook

    with pytest.raises(TypeError, match="sets on_background on the instance, hiding the part's hook"):
        Parts().add(CallbackInPlaceOfHook())


def test_a_part_that_fails_stops_neither_the_cue_nor_the_parts_after_it(receiver):
    class Broken(BasePart):
        role = "broken"

        def on_cue(self, cue):
            raise RuntimeError("a bug in a part")

        def on_control(self, event):
            raise RuntimeError("another bug")

    heard = Heard()
    daemon = Daemon(config(receiver), source=BrowserSource(), perception=False, parts=Parts([Broken(), heard]))
    daemon.start()
    try:
        event = daemon.control("/pcp/override", ["anger"], sender="test")
        assert event.accepted, event.message
        receiver.wait_for("/pcp/cue/source", lambda m: m.args == ["override"], timeout_s=5)
    finally:
        daemon.stop()
    assert [c.reason for c in heard.cues][:2] == ["start", "override"]
    assert heard.cues[1].emotion_id == "anger"
    assert [e.address for e in heard.controls] == ["/pcp/override"]


def test_generate_reaches_the_generator_part_and_its_background_every_part(receiver):
    # every_cue off: windows make no backgrounds; /pcp/generate makes one for the latest cue.
    cfg = config(receiver, generator={"kind": "procedural", "every_cue": False, "width": 320, "height": 180})
    daemon = assemble(cfg, source=BrowserSource(), perception=False)
    heard = daemon.parts.add(Heard())
    assert [p.role for p in daemon.parts] == ["sinks", "generator", "heard"]
    daemon.start()
    try:
        receiver.wait_for("/pcp/cue/hex", after=1, timeout_s=5)  # the start cue and a window cue
        assert heard.backgrounds == [], "every_cue = false: no background for a window cue"
        event = daemon.control("/pcp/generate", [], sender="test")
        assert event.accepted and event.message == "background requested"
        assert wait_until(lambda: len(heard.backgrounds) == 1), "the background never reached the parts"
        status = daemon.status()["generator"]
        assert status["generated"] == 1 and status["generator"] == "procedural"
    finally:
        daemon.stop()
    bg = heard.backgrounds[0]
    assert bg.image.shape == (180, 320, 3) and bg.cue_id in [c.id for c in heard.cues]


def test_generate_without_a_generator_says_so(receiver):
    daemon = assemble(config(receiver), source=BrowserSource(), perception=False)
    assert list(daemon.parts) == [] and daemon.status()["generator"] is None
    daemon.start()
    try:
        event = daemon.control("/pcp/generate", [], sender="test")
    finally:
        daemon.stop()
    assert not event.accepted
    assert event.message == "/pcp/generate: no background generator is running (generator.kind = off)"
