"""The OSC contract over real UDP sockets: cues out, show control in, bad input survived."""

import socket
import time

import numpy as np
import pytest

from oscutil import OscReceiver, send_osc, send_raw
from pcp_osc.capture import BrowserSource
from pcp_osc.config import Config, config_from_dict
from pcp_osc.daemon import Daemon
from pcp_osc.osc import MAX_PACKET_BYTES, cue_messages, encode, live_messages
from pcp_osc.types import Colour, Cue, Mood

CUE_ADDRESSES = ["/pcp/cue/id", "/pcp/cue/emotion", "/pcp/cue/index", "/pcp/cue/confidence", "/pcp/cue/source",
                 "/pcp/cue/faces", "/pcp/cue/color", "/pcp/cue/color/r", "/pcp/cue/color/g", "/pcp/cue/color/b",
                 "/pcp/cue/hex"]


def a_cue(**kw):
    mood = Mood(kw.get("emotion", 0), np.float32(0.75), np.eye(5, dtype=np.float32)[0], np.float64(4.4), "audience")
    return Cue(id=np.int64(7), mood=mood, colour=Colour(1.0, 0.5, 0.0), intent=4, window_s=15, wall_time=0, timestamp=0)


def test_cue_messages_follow_the_contract_with_plain_types():
    msgs = cue_messages(a_cue())
    assert [a for a, _ in msgs] == CUE_ADDRESSES
    d = dict(msgs)
    assert d["/pcp/cue/id"] == [7] and type(d["/pcp/cue/id"][0]) is int
    assert d["/pcp/cue/emotion"] == ["joy"] and d["/pcp/cue/index"] == [0]
    assert type(d["/pcp/cue/confidence"][0]) is float and d["/pcp/cue/faces"] == [4]
    assert d["/pcp/cue/color"] == [1.0, 0.5, 0.0] and d["/pcp/cue/hex"] == ["#ff8000"]
    for address, args in msgs + live_messages(a_cue().mood, Colour(0, 0, 1)):
        assert len(encode(address, args)) <= MAX_PACKET_BYTES


def test_golden_datagram_for_a_cue_emotion():
    # /pcp/cue/emotion ,s "joy" -- padded to 4 bytes as OSC 1.0 says
    assert encode("/pcp/cue/emotion", ["joy"]) == b"/pcp/cue/emotion\x00\x00\x00\x00,s\x00\x00joy\x00"
    assert encode("/pcp/cue/index", [np.int64(3)]) == b"/pcp/cue/index\x00\x00,i\x00\x00\x00\x00\x00\x03"


@pytest.fixture
def show(receiver):
    """A daemon on a browser source (nothing pushed: no faces) with real sockets."""
    cfg = config_from_dict({"osc": {"target": receiver.target, "control_port": 0, "control_host": "127.0.0.1"},
                            "mood": {"window_s": 1.0, "intent": "sadness"}, "log": {"enabled": False}})
    d = Daemon(cfg, source=BrowserSource(), perception=False)
    d.start()
    yield d, receiver
    d.stop()


def control(d, address, *args):
    send_osc(d.control_server.port, address, *args)


def test_faceless_show_sends_the_intent_every_window(show):
    d, rx = show
    rx.wait_for("/pcp/cue/id", lambda m: m.args[0] >= 2, timeout_s=5)
    cues = rx.cues()
    assert all(c["emotion"] == "sadness" and c["source"] == "intent" for c in cues[:3])
    gaps = np.diff([c["t"] for c in cues[1:4]])  # after the start cue
    assert np.all((gaps > 0.8) & (gaps < 1.3)), gaps


def test_intent_override_release_and_window_over_osc(show):
    d, rx = show
    control(d, "/pcp/intent", "기쁨")
    rx.wait_for("/pcp/cue/emotion", lambda m: m.args[0] == "joy")
    control(d, "/pcp/override", "anger", 30.0)
    m = rx.wait_for("/pcp/cue/source", lambda m: m.args[0] == "override")
    assert rx.cues()[-1]["emotion"] == "anger"
    n = len(rx.cues())
    control(d, "/pcp/release")
    rx.wait_for("/pcp/cue/id", lambda m: True, after=n)
    time.sleep(0.1)
    assert rx.cues()[n]["source"] == "intent" and rx.cues()[n]["emotion"] == "joy"
    control(d, "/pcp/window", 3.0)
    time.sleep(0.2)
    assert d.status()["window_s"] == 3.0
    start = len(rx.cues())
    rx.wait_for("/pcp/cue/id", after=start + 1, timeout_s=8)
    c = rx.cues()
    assert 2.7 < c[start + 1]["t"] - c[start]["t"] < 3.4


def test_timed_override_ends_by_itself(show):
    d, rx = show
    control(d, "/pcp/window", 30.0)
    control(d, "/pcp/override", 0, 0.5)
    rx.wait_for("/pcp/cue/source", lambda m: m.args[0] == "override")
    rx.wait_for("/pcp/cue/source", lambda m: m.args[0] == "intent", after=len(rx.all("/pcp/cue/source")) - 1, timeout_s=3)


def test_ping_answers_pong_to_the_sender(show):
    d, rx = show
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(3)
    send_osc(d.control_server.port, "/pcp/ping", sock=s)
    data, addr = s.recvfrom(1024)
    assert data.startswith(b"/pcp/pong") and addr[1] == d.control_server.port
    s.close()


def test_bad_messages_change_nothing_are_logged_with_sender_and_counted(show, caplog):
    d, rx = show
    caplog.set_level("WARNING")
    port = d.control_server.port
    send_raw(port, b"\x00\x01garbage")
    send_raw(port, b"/pcp/intent\x00,s\x00\x00jo")  # truncated string
    control(d, "/pcp/intent", "elation")
    control(d, "/pcp/intent", 9)
    control(d, "/pcp/window", "fast")
    control(d, "/pcp/window", 0.2)
    control(d, "/pcp/blend", 1.5)
    control(d, "/pcp/override")
    control(d, "/pcp/nonsense", 1)
    time.sleep(0.5)
    st = d.status()
    assert st["intent"] == "sadness" and st["window_s"] == 1.0 and st["override"] is None and st["blend"] == 0.0
    assert st["counters"]["control_malformed"] == 2
    assert st["counters"]["control_rejected"] == 7
    text = caplog.text
    assert "malformed OSC packet" in text and "127.0.0.1:" in text
    assert "unknown emotion 'elation'" in text and "allowed 1..300" in text
    assert "unknown address /pcp/nonsense" in text
    # still alive and listening
    control(d, "/pcp/intent", "joy")
    rx.wait_for("/pcp/cue/emotion", lambda m: m.args[0] == "joy")


def test_only_listed_senders_may_control(receiver):
    cfg = config_from_dict({"osc": {"target": receiver.target, "control_port": 0, "control_host": "127.0.0.1",
                                    "allowed_senders": ["10.9.8.7"]}, "log": {"enabled": False}})
    d = Daemon(cfg, source=BrowserSource(), perception=False)
    d.start()
    try:
        send_osc(d.control_server.port, "/pcp/intent", "joy")
        time.sleep(0.4)
        assert d.status()["intent"] == "neutral"
        assert d.status()["counters"]["control_refused"] == 1
    finally:
        d.stop()


def test_heartbeat_and_status_once_a_second(show):
    d, rx = show
    rx.wait_for("/pcp/heartbeat", lambda m: m.args[0] >= 1, timeout_s=4)
    assert rx.values("/pcp/status")[0] == "no-camera: browser camera"  # nothing posted yet


def test_every_message_the_daemon_sends_is_in_the_contract_with_its_types(tmp_path, receiver):
    """A real show (demo crowd, procedural backgrounds, file sink) for a few seconds: every
    address and type tag that arrives is one docs/OSC.md documents."""
    import subprocess
    import sys

    from osc_contract import contract, typetags

    out = contract()["out"]
    proc = subprocess.run(
        [sys.executable, "-m", "pcp_osc", "run", "--source", "demo", "--target", receiver.target,
         "--control-port", "0", "--window", "1", "--seconds", "5", "--no-log", "--quiet",
         "--sink", f"file:{tmp_path / 'bg'}"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-1500:]
    time.sleep(0.2)
    seen = {}
    for d in receiver.raw:
        address, tags = typetags(d)
        seen.setdefault(address, set()).add(tags)
    undocumented = sorted(a for a in seen if a not in out)
    assert not undocumented, f"sent but not in docs/OSC.md: {undocumented}"
    for address, tags in seen.items():
        assert tags == {out[address]}, (address, tags, out[address])
    for needed in ("/pcp/cue/id", "/pcp/live/joy", "/pcp/live/valence", "/pcp/heartbeat", "/pcp/status",
                   "/pcp/background/id", "/pcp/background/path"):
        assert needed in seen, f"{needed} never arrived; seen {sorted(seen)}"


def _next_cue_after(rx, n, timeout_s=6.0):
    rx.wait_for("/pcp/cue/hex", after=n, timeout_s=timeout_s)  # hex is a cue's last message
    return rx.cues()[n]


@pytest.mark.parametrize("action", ["override", "release", "intent"])
def test_an_operator_cue_restarts_the_window(receiver, action):
    """After an override, a release or a new intent (no faces seen) the next window cue is a
    whole window later, not at the old schedule (which would follow the operator's cue within
    a moment with the same look)."""
    rx = receiver
    cfg = config_from_dict({"osc": {"target": rx.target, "control_port": 0, "control_host": "127.0.0.1", "heartbeat": False},
                            "mood": {"window_s": 2.0, "intent": "sadness"}, "log": {"enabled": False}})
    d = Daemon(cfg, source=BrowserSource(), perception=False)
    d.start()
    try:
        if action == "release":
            control(d, "/pcp/override", "anger")
            rx.wait_for("/pcp/cue/source", lambda m: m.args[0] == "override")
        # Line up 1.4 s into a window: the old schedule would close it 0.6 s from now.
        n = len(rx.cues())
        window_cue = _next_cue_after(rx, n)
        time.sleep(1.4 - (time.monotonic() - window_cue["t"]))
        n = len(rx.cues())
        if action == "override":
            control(d, "/pcp/override", "joy")
        elif action == "release":
            control(d, "/pcp/release")
        else:
            control(d, "/pcp/intent", "anger")
        operator_cue = _next_cue_after(rx, n, timeout_s=2)
        assert operator_cue["source"] == ("override" if action == "override" else "intent")
        assert action != "intent" or operator_cue["emotion"] == "anger"
        following = _next_cue_after(rx, n + 1, timeout_s=4)
        gap = following["t"] - operator_cue["t"]
        assert 1.8 < gap < 2.4, f"the window cue came {gap:.2f} s after the {action} cue; a window is 2 s"
        assert following["emotion"] == operator_cue["emotion"]
    finally:
        d.stop()


LONG_PREFIX = "/venue-main-hall/stage-left/pcp-osc-audience-camera"


def test_bundles_stay_within_the_packet_limit_and_keep_the_order(receiver):
    """osc.bundle with a long prefix: a cue does not fit one 512-byte bundle, so it goes out
    as two; every packet that arrives is a bundle within the limit and the cue is whole, in order."""
    cfg = config_from_dict({"osc": {"target": receiver.target, "control_port": 0, "control_host": "127.0.0.1",
                                    "bundle": True, "prefix": LONG_PREFIX, "heartbeat": False},
                            "mood": {"window_s": 1.0}, "log": {"enabled": False}})
    d = Daemon(cfg, source=BrowserSource(), perception=False)
    d.start()
    try:
        receiver.wait_for(f"{LONG_PREFIX}/cue/hex", timeout_s=5)
    finally:
        d.stop()
    cue_packets = [p for p in receiver.raw if LONG_PREFIX.encode() + b"/cue/" in p]
    assert len(cue_packets) >= 2
    assert all(p.startswith(b"#bundle\x00") for p in cue_packets)
    assert all(len(p) <= MAX_PACKET_BYTES for p in receiver.raw), sorted(len(p) for p in receiver.raw)
    first_cue = [m.address[len(LONG_PREFIX):] for m in receiver.all() if "/cue/" in m.address][:len(CUE_ADDRESSES)]
    assert first_cue == [a[len("/pcp"):] for a in CUE_ADDRESSES]


def test_a_message_too_long_for_any_bundle_is_refused():
    from pcp_osc.osc import encode_bundles, pack_bundles

    with pytest.raises(ValueError, match="512"):
        encode_bundles([("/x", ["y" * 600])])
    with pytest.raises(ValueError, match="cannot go in a bundle"):
        pack_bundles([b"/" + b"x" * 499])  # a message may be 512 bytes; a bundle of it may not
    assert [len(b) for b in encode_bundles(cue_messages(a_cue()))] == [364]  # /pcp fits one bundle


def test_an_override_without_seconds_says_when_the_configured_timeout_ends_it(receiver):
    """With mood.override_timeout_s set, `/pcp/override joy` ends by itself; the answer (console,
    show log, dashboard) said 'until release', which was not true."""
    cfg = config_from_dict({"osc": {"target": receiver.target, "control_port": 0, "control_host": "127.0.0.1"},
                            "mood": {"window_s": 30.0, "override_timeout_s": 0.5}, "log": {"enabled": False}})
    d = Daemon(cfg, source=BrowserSource(), perception=False)
    d.start()
    try:
        ev = d.control("/pcp/override", ["joy"], sender="test")
        assert ev.accepted and ev.message == "override joy for 0.5 s (mood.override_timeout_s) or until release"
        receiver.wait_for("/pcp/cue/source", lambda m: m.args[0] == "intent",
                          after=len(receiver.all("/pcp/cue/source")), timeout_s=3)  # and it does end
        assert d.control("/pcp/override", ["joy", 20.0], sender="test").message == "override joy for 20 s"
    finally:
        d.stop()
