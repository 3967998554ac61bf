"""Show control attacked on a real daemon over loopback: one datagram cannot become a
thousand cues or a thousand pongs, storms end in their latest state, every OSC argument
type is recorded as JSON, the allow list takes ranges and names, and text from the
network never reaches the console raw. (The fuzz and the stderr volume: test_osc_fuzz.py.)"""

from __future__ import annotations

import json
import socket
import sqlite3
import struct
import subprocess
import sys
import time

import pytest
from pythonosc.osc_message_builder import OscMessageBuilder

from heard import Heard
from oscutil import send_osc
from pcp_osc.capture import BrowserSource
from pcp_osc.config import config_from_dict
from pcp_osc.daemon import Daemon
from pcp_osc.control import AllowList
from pcp_osc.show import assemble


def message(address: str, *args) -> bytes:
    b = OscMessageBuilder(address=address)
    for a in args:
        b.add_arg(a)
    return b.build().dgram


def bundle(messages: list[bytes], timetag: bytes = b"\x00\x00\x00\x00\x00\x00\x00\x01") -> bytes:
    """An OSC bundle ("immediately" unless a timetag is given) of ready datagrams, built by hand."""
    return b"#bundle\x00" + timetag + b"".join(struct.pack(">i", len(m)) + m for m in messages)


def osc_string(s: bytes) -> bytes:
    s += b"\x00"
    return s + b"\x00" * (-len(s) % 4)


def raw_message(address: str, tags: str, payload: bytes) -> bytes:
    return osc_string(address.encode()) + osc_string(b"," + tags.encode()) + payload


def make_daemon(receiver, tmp_path=None, **osc) -> Daemon:
    cfg = config_from_dict({
        "osc": {"target": receiver.target, "control_port": 0, "control_host": "127.0.0.1", **osc},
        "mood": {"window_s": 30.0, "intent": "neutral"},
        "log": {"enabled": tmp_path is not None, "path": str(tmp_path / "show.db") if tmp_path else ""},
        "generator": {"kind": "off"},
    })
    d = assemble(cfg, source=BrowserSource(), perception=False)
    d.start()
    return d


def udp_client() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(0.2)
    return s


def pongs(sock: socket.socket, seconds: float) -> list[list]:
    """Every /pcp/pong that arrives on ``sock`` within ``seconds``, as its argument lists."""
    from pythonosc.osc_message import OscMessage

    out = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            data, _ = sock.recvfrom(65536)
        except socket.timeout:
            continue
        m = OscMessage(data)
        if m.address == "/pcp/pong":
            out.append(list(m.params))
    return out


def test_one_bundle_of_1000_overrides_is_not_1000_cues_and_its_pong_says_what_was_dropped(receiver):
    d = make_daemon(receiver)
    ctl = udp_client()
    try:
        receiver.wait_for("/pcp/cue/id")  # the start cue
        start = len(receiver.cues())
        emotions = ["joy", "anger", "sadness", "anxiety"]
        overrides = [message("/pcp/override", emotions[i % 4]) for i in range(1000)]
        ctl.sendto(bundle(overrides), ("127.0.0.1", d.control_server.port))
        time.sleep(1.5)
        caused = receiver.cues()[start:]
        limit = d.config.osc.max_control_cues_per_s
        # the first cues go at once (the one-second budget), the rest of the 32 handled collapse into one
        assert 1 <= len(caused) <= limit + 1, [c.get("emotion") for c in caused]
        handled_last = emotions[(d.config.osc.max_bundle_messages - 1) % 4]
        assert caused[-1]["emotion"] == handled_last and caused[-1]["source"] == "override"
        st = d.status()
        assert st["override"] == handled_last
        assert st["counters"]["control_bundle_dropped"] == 1000 - d.config.osc.max_bundle_messages
        # a pong from the same address must not claim all it sent was recorded
        ctl.sendto(message("/pcp/ping"), ("127.0.0.1", d.control_server.port))
        got = pongs(ctl, 1.0)
        assert len(got) == 1 and got[0] and got[0][0].startswith("dropped: 968 of your messages"), got
        # and after that, a clean exchange is acknowledged plainly
        ctl.sendto(message("/pcp/ping"), ("127.0.0.1", d.control_server.port))
        assert pongs(ctl, 1.0) == [[]]
    finally:
        ctl.close()
        d.stop()


def test_an_override_storm_collapses_to_its_latest_state(receiver):
    d = make_daemon(receiver)
    ctl = udp_client()
    port = d.control_server.port
    try:
        receiver.wait_for("/pcp/cue/id")
        start = len(receiver.cues())
        t0 = time.monotonic()
        for i in range(600):  # separate datagrams, as fast as the socket takes them
            ctl.sendto(message("/pcp/override", ["joy", "anger", "sadness"][i % 3]), ("127.0.0.1", port))
            if i % 50 == 0:
                ctl.sendto(message("/pcp/release"), ("127.0.0.1", port))
        time.sleep(0.1)  # the kernel may drop a burst's tail on a full socket; the last word comes just after
        ctl.sendto(message("/pcp/override", "anxiety", 60.0), ("127.0.0.1", port))  # the operator's final word
        sent_s = time.monotonic() - t0
        time.sleep(2.0)
        caused = receiver.cues()[start:]
        limit = d.config.osc.max_control_cues_per_s
        elapsed = sent_s + 2.0
        assert len(caused) <= limit * (1 + elapsed) + 1, (len(caused), elapsed)
        assert caused[-1]["emotion"] == "anxiety" and caused[-1]["source"] == "override"
        assert d.status()["override"] == "anxiety"
        c = d.status()["counters"]
        assert c["control_cues_collapsed"] > 0
        assert c["control_received"] > 150, "the storm hardly reached the daemon; nothing was tested"
        assert c["control_superseded"] > 0  # over the message rate, waiting overrides were replaced by newer ones
    finally:
        ctl.close()
        d.stop()


def test_a_bundle_of_pings_is_not_reflected(receiver):
    d = make_daemon(receiver)
    ctl = udp_client()
    try:
        ctl.sendto(bundle([message("/pcp/ping")] * 300), ("127.0.0.1", d.control_server.port))
        got = pongs(ctl, 2.0)
        # no more than the per-sender pong rate over those two seconds, however many pings the bundle held
        assert 1 <= len(got) <= 2 * d.config.osc.max_pongs_per_s + 1, len(got)
        assert d.status()["counters"]["pongs_deferred"] > 0
        # 300 separate pings from many ports of one address: still bounded per address
        socks = [udp_client() for _ in range(20)]
        for _ in range(15):
            for s in socks:
                s.sendto(message("/pcp/ping"), ("127.0.0.1", d.control_server.port))
        answered = sum(len(pongs(s, 0.05)) for s in socks)
        time.sleep(1.5)
        answered += sum(len(pongs(s, 0.05)) for s in socks)
        assert answered <= 3 * d.config.osc.max_pongs_per_s + len(socks), answered
        for s in socks:
            s.close()
    finally:
        ctl.close()
        d.stop()


def test_every_osc_argument_type_is_recorded_as_json(receiver, tmp_path):
    d = make_daemon(receiver, tmp_path)
    events = d.parts.add(Heard()).controls
    ctl = udp_client()
    port = d.control_server.port
    unix = 1_700_000_000.5
    ntp_seconds = int(unix) + 2_208_988_800
    try:
        datagrams = [
            message("/pcp/marker", b"\x00\x01blob\xff"),  # b: refused (not a string) but recorded
            raw_message("/pcp/marker", "t", struct.pack(">II", ntp_seconds, 2**31)),  # timetag
            raw_message("/pcp/marker", "m", bytes([1, 0x90, 60, 127])),  # MIDI note on
            raw_message("/pcp/intent", "TFN", b""),
            raw_message("/pcp/blend", "d", struct.pack(">d", float("nan"))),
            raw_message("/pcp/window", "f", struct.pack(">f", float("inf"))),
            raw_message("/pcp/intent", "h", struct.pack(">q", 2**40)),
            raw_message("/pcp/intent", "[is]", struct.pack(">i", 1) + osc_string(b"joy")),
            message("/pcp/marker", "Song A"),
        ]
        for dg in datagrams:
            ctl.sendto(dg, ("127.0.0.1", port))
        ctl.sendto(message("/pcp/ping"), ("127.0.0.1", port))
        assert pongs(ctl, 3.0) == [[]]  # everything before is in the log
        by_args = [e.args for e in events if e.address != "/pcp/ping"]
        assert len(by_args) == len(datagrams)
        for e in events:  # what the dashboard sends to browsers: strict JSON, no NaN
            json.dumps({"args": list(e.args)}, allow_nan=False)
        assert by_args[0] == ({"blob_bytes": 7, "base64": "AAFibG9i/w=="},)
        assert by_args[1] == ({"timetag": unix},)
        assert by_args[2] == ({"midi": [1, 0x90, 60, 127]},)
        assert by_args[3] == (True, False, None)
        assert by_args[4] == ("NaN",) and by_args[5] == ("Infinity",)
        assert by_args[6] == (2**40,) and by_args[7] == ([1, "joy"],)
        con = sqlite3.connect(tmp_path / "show.db")
        rows = con.execute("SELECT address, args, accepted FROM controls ORDER BY seq").fetchall()
        logged = [json.loads(a) for addr, a, _ in rows if addr != "/pcp/ping"]
        assert logged == [json.loads(json.dumps(list(a))) for a in by_args]
        assert [r[2] for r in rows if r[0] == "/pcp/marker"] == [0, 0, 0, 1]
        assert con.execute("SELECT name FROM markers").fetchall() == [("Song A",)]
        con.close()
        # an argument type python-osc cannot read is refused as malformed, and nothing is logged for it
        ctl.sendto(raw_message("/pcp/marker", "c", struct.pack(">i", 65)), ("127.0.0.1", port))
        time.sleep(0.3)
        assert d.status()["counters"]["control_malformed"] == 1
    finally:
        ctl.close()
        d.stop()


@pytest.mark.parametrize("entries", [["127.0.0.0/8"], ["localhost"], ["10.1.2.3", "127.0.0.1"], ["::ffff:127.0.0.1/128"]])
def test_allow_list_takes_addresses_ranges_and_names(receiver, entries):
    d = make_daemon(receiver, allowed_senders=entries)
    try:
        send_osc(d.control_server.port, "/pcp/intent", "joy")
        receiver.wait_for("/pcp/cue/emotion", lambda m: m.args[0] == "joy", timeout_s=3)
        assert d.status()["counters"]["control_refused"] == 0
        assert d.allow_list.allows("127.0.0.1") and d.allow_list.allows("::ffff:127.0.0.1")
    finally:
        d.stop()


def test_allow_list_refuses_others_and_says_what_it_allows(receiver, caplog):
    caplog.set_level("WARNING")
    d = make_daemon(receiver, allowed_senders=["10.0.0.0/8", "192.168.1.7"])
    try:
        send_osc(d.control_server.port, "/pcp/intent", "joy")
        time.sleep(0.4)
        assert d.status()["intent"] == "neutral" and d.status()["counters"]["control_refused"] == 1
        assert "127.0.0.1 is not in osc.allowed_senders (10.0.0.0/8, 192.168.1.7)" in caplog.text
        assert not d.allow_list.allows("web-client") and d.allow_list.allows("10.200.3.4")
    finally:
        d.stop()


def test_allow_list_entries_that_cannot_match_are_refused_at_start():
    for bad, says in [("10.0.0.300", "'10.0.0.300' is not an IP address or CIDR range"),
                      ("10.0.0.0/33", "'10.0.0.0/33' is not an IP address or CIDR range"),
                      ("stage left", "'stage left' is not an IP address, a CIDR range or a host name")]:
        with pytest.raises(ValueError) as e:
            AllowList([bad])
        assert str(e.value).startswith(f"osc.allowed_senders: {says}"), str(e.value)


def test_an_unresolvable_host_name_stops_the_start_with_a_clear_message(tmp_path):
    # In a private network namespace (no DNS), without the test's network guard: a real lookup that fails.
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(__import__("pathlib").Path(__file__).resolve().parents[1])}
    (tmp_path / "show.toml").write_text('[osc]\nallowed_senders = ["lighting-desk.show.invalid"]\n')
    proc = subprocess.run(
        ["unshare", "-n", sys.executable, "-m", "pcp_osc", "config", "--check", str(tmp_path / "show.toml")],
        capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 2, proc.stderr
    assert "osc.allowed_senders: host name 'lighting-desk.show.invalid' cannot be resolved" in proc.stderr
    assert "Traceback" not in proc.stderr
