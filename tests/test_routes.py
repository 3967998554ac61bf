"""Routes to desks and media servers: every preset's datagrams, captured on real UDP (and
TCP with SLIP / size framing) sockets, match the documented addresses, types and value
ranges for a set of cues; bad routes stop start-up with a clear message."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from pythonosc.osc_message import OscMessage

from pcp_osc.config import ConfigError, RouteConfig, config_from_dict
from pcp_osc.emotions import EMOTIONS
from pcp_osc.routes import (
    PLACEHOLDERS,
    RouteError,
    RouteSender,
    compile_route,
    parse_route_arg,
    routes_markdown,
)
from pcp_osc.types import Colour, Cue, Mood

ROOT = Path(__file__).resolve().parents[1]

# A show's worth of cues: every emotion, one repeated (looks modes fire only on change),
# numpy scalars where the mood tracker would produce them.
CUE_PLAN = [
    (0, (1.0, 0.83, 0.0), 0.91),  # joy, yellow
    (1, (0.7, 0.7, 0.7), 0.55),  # anxiety, white dimmed
    (1, (0.72, 0.72, 0.72), 0.58),  # anxiety again
    (2, (1.0, 0.42, 0.0), 0.66),  # anger, orange
    (3, (0.12, 0.31, 1.0), 0.40),  # sadness, blue
    (4, (0.54, 0.17, 0.89), 0.23),  # neutral, purple
]


def make_cue(i: int, emotion: int, rgb, confidence: float) -> Cue:
    dist = np.full(5, (1 - confidence) / 4, dtype=np.float32)
    dist[emotion] = confidence
    mood = Mood(emotion=np.int64(emotion), confidence=np.float32(confidence), distribution=dist, faces=np.float32(7.4), source="audience")
    return Cue(id=i + 1, mood=mood, colour=Colour(*rgb), intent=4, window_s=15.0, wall_time=time.time(), timestamp=time.monotonic())


CUES = [make_cue(i, *p) for i, p in enumerate(CUE_PLAN)]
CHANGES = [c for i, c in enumerate(CUES) if i == 0 or c.emotion != CUES[i - 1].emotion]


class UdpCapture:
    def __init__(self, port: int = 0):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", port))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]

    def collect(self, n: int, timeout_s: float = 5.0) -> list[bytes]:
        out, deadline = [], time.monotonic() + timeout_s
        while len(out) < n and time.monotonic() < deadline:
            try:
                out.append(self.sock.recv(65536))
            except socket.timeout:
                pass
        # and nothing more arrives
        end = time.monotonic() + 0.3
        while time.monotonic() < end:
            try:
                out.append(self.sock.recv(65536))
            except socket.timeout:
                pass
        return out

    def close(self):
        self.sock.close()


def run_route(rc: RouteConfig, cues: list[Cue], expected_count: int, port: int = 0) -> list[tuple[str, str, list]]:
    cap = UdpCapture(port)
    if not port:
        rc.target = f"127.0.0.1:{cap.port}"
    sender = RouteSender.from_config([rc])
    sender.start()
    try:
        for c in cues:
            sender.send(c)
        dgrams = cap.collect(expected_count)
    finally:
        sender.stop()
        cap.close()
    out = []
    for d in dgrams:
        assert d[:1] == b"/", "a bundle or garbage was sent; routes send plain messages only"
        assert len(d) <= 512
        m = OscMessage(d)
        tags = d[d.index(b",") : d.index(b"\0", d.index(b","))].decode()[1:] if b"," in d else ""
        out.append((m.address, tags, list(m.params)))
    return out


def close(a, b, tol=1e-4):
    return abs(a - b) <= tol


def check_colour_triplet(msgs, cues, addresses, scale):
    assert len(msgs) == 3 * len(cues)
    for i, c in enumerate(cues):
        chunk = msgs[3 * i : 3 * i + 3]
        assert [m[0] for m in chunk] == addresses
        assert [m[1] for m in chunk] == ["f", "f", "f"]
        for m, want in zip(chunk, c.colour.rgb):
            assert close(m[2][0], want * scale, 1e-3 * scale)
            assert 0.0 <= m[2][0] <= scale


# --------------------------------------------------------------------------- presets over UDP


def test_eos_colour_sends_rgb_0_to_100_on_the_channel():
    msgs = run_route(RouteConfig(preset="eos", options={"channel": 7}), CUES, 3 * len(CUES))
    check_colour_triplet(msgs, CUES, ["/eos/chan/7/param/red", "/eos/chan/7/param/green", "/eos/chan/7/param/blue"], 100.0)


def test_eos_user_prefix_keeps_the_preset_off_the_operators_command_line():
    msgs = run_route(RouteConfig(preset="eos", options={"channel": 7, "user": 9}), CUES[:1], 3)
    assert [m[0] for m in msgs] == [f"/eos/user/9/chan/7/param/{c}" for c in ("red", "green", "blue")]
    msgs = run_route(RouteConfig(preset="eos", options={"mode": "looks", "user": 9}), CUES[:1], 1)
    assert msgs[0][0] == "/eos/user/9/cue/1/1/fire"
    with pytest.raises(RouteError, match="an Eos user is a whole number"):
        compile_route(RouteConfig(preset="eos", options={"user": 2.5}))
    with pytest.raises(RouteError, match="out of range; allowed 0..999"):
        compile_route(RouteConfig(preset="eos", options={"user": -1}))


def test_eos_looks_fires_one_cue_per_emotion_change():
    rc = RouteConfig(preset="eos", options={"mode": "looks", "cue_list": 2, "looks": [1, 2, 3.5, 4, 5]})
    msgs = run_route(rc, CUES, len(CHANGES))
    want = [f"/eos/cue/2/{['1', '2', '3.5', '4', '5'][c.emotion]}/fire" for c in CHANGES]
    assert [m[0] for m in msgs] == want
    assert all(m[1] == "" and m[2] == [] for m in msgs)


def test_grandma3_looks_sends_go_sequence_command_strings():
    msgs = run_route(RouteConfig(preset="grandma3"), CUES, len(CHANGES))
    assert [m[0] for m in msgs] == ["/gma3/cmd"] * len(CHANGES)
    assert [m[1] for m in msgs] == ["s"] * len(CHANGES)
    assert [m[2][0] for m in msgs] == [f"Go+ Sequence {101 + c.emotion}" for c in CHANGES]


def test_grandma3_colour_sends_attribute_commands_0_to_100():
    rc = RouteConfig(preset="grandma3", options={"mode": "colour", "group": 3, "prefix": "show"})
    msgs = run_route(rc, CUES, 3 * len(CUES))
    assert {m[0] for m in msgs} == {"/show/cmd"}
    for i, c in enumerate(CUES):
        for j, (ch, v) in enumerate(zip("RGB", c.colour.rgb)):
            assert msgs[3 * i + j][1:] == ("s", [f'Group 3 Attribute "ColorRGB_{ch}" At {round(v * 100)}'])


def test_magicq_colour_levels_and_looks_go():
    msgs = run_route(RouteConfig(preset="magicq"), CUES, 3 * len(CUES))
    check_colour_triplet(msgs, CUES, ["/pb/1", "/pb/2", "/pb/3"], 1.0)
    msgs = run_route(RouteConfig(preset="magicq", options={"mode": "looks", "looks": [6, 7, 8, 9, 10]}), CUES, len(CHANGES))
    assert msgs == [(f"/pb/{6 + c.emotion}/go", "i", [1]) for c in CHANGES]


def test_qlc_dmx_integers_on_simple_addresses_on_its_universe_port(caplog):
    # QLC+ listens on 7700 + universe - 1: universe 5 is port 7704.
    rc = RouteConfig(preset="qlc", target="127.0.0.1:7704", options={"universe": 5})
    msgs = run_route(rc, CUES, 4 * len(CUES), port=7704)
    assert "QLC+ listens" not in caplog.text
    assert len(msgs) == 4 * len(CUES)
    for i, c in enumerate(CUES):
        chunk = msgs[4 * i : 4 * i + 4]
        assert [m[0] for m in chunk] == ["/pcp/red", "/pcp/green", "/pcp/blue", "/pcp/confidence"]
        # QLC+ takes an int as the DMX level as it is; a float 0..1 it would scale and truncate
        assert all(m[1] == "i" and 0 <= m[2][0] <= 255 for m in chunk)
        assert [m[2][0] for m in chunk] == [round(v * 255) for v in (*c.colour.rgb, float(c.confidence))]


def test_qlc_input_channels_are_the_checksums_qlc_gives_the_paths():
    """QLC+ numbers an OSC path with Qt's qChecksum (CRC-16/X.25). These numbers were read
    back from QLC+ 4.12.6 (tools/qlc_check.py: sliders bound to them move); the docs list them."""
    from pcp_osc.routes import qchecksum, qlc_channel

    assert qchecksum(b"123456789") == 0x906E  # the CRC-16/X.25 check value
    assert {a: qlc_channel(a) for a in ("/pcp/red", "/pcp/green", "/pcp/blue", "/pcp/confidence")} == \
        {"/pcp/red": 15687, "/pcp/green": 9106, "/pcp/blue": 8611, "/pcp/confidence": 2477}
    assert [qlc_channel(f"/pcp/look/{e}") for e in EMOTIONS] == [62442, 43986, 23323, 25130, 3788]
    docs = (ROOT / "docs" / "routes.md").read_text(encoding="utf-8")
    for a in ("/pcp/red", "/pcp/look/neutral"):
        assert f"| `{a}` | {qlc_channel(a)} |" in docs
    with pytest.raises(ValueError, match="ASCII"):
        qlc_channel("/pcp/기쁨")


def test_qlc_looks_holds_the_emotions_button_and_releases_the_others():
    rc = RouteConfig(preset="qlc", options={"mode": "looks"})
    msgs = run_route(rc, CUES, 5 * len(CHANGES))
    assert len(msgs) == 5 * len(CHANGES)
    for i, c in enumerate(CHANGES):
        chunk = msgs[5 * i : 5 * i + 5]
        assert [m[0] for m in chunk] == [f"/pcp/look/{e}" for e in EMOTIONS]
        assert [m[2][0] for m in chunk] == [1.0 if k == c.emotion else 0.0 for k in range(5)]


def test_resolume_colour_opacity_and_colorize_and_looks_columns():
    msgs = run_route(RouteConfig(preset="resolume", options={"layer": 2}), CUES, 4 * len(CUES))
    assert len(msgs) == 4 * len(CUES)
    base = "/composition/layers/2/video"
    for i, c in enumerate(CUES):
        chunk = msgs[4 * i : 4 * i + 4]
        assert [m[0] for m in chunk] == [
            f"{base}/opacity",
            f"{base}/effects/colorize/effect/color/red",
            f"{base}/effects/colorize/effect/color/green",
            f"{base}/effects/colorize/effect/color/blue",
        ]
        assert all(m[1] == "f" and 0 <= m[2][0] <= 1 for m in chunk)
        assert close(chunk[0][2][0], float(c.confidence))
    msgs = run_route(RouteConfig(preset="resolume", options={"mode": "looks"}), CUES, 2 * len(CHANGES))
    # each change presses the column's trigger and releases it, as a clicked button does
    assert msgs == [(f"/composition/columns/{c.emotion + 1}/connect", "i", [v]) for c in CHANGES for v in (1, 0)]


def test_looks_preset_and_custom_templates_with_every_placeholder_kind():
    msgs = run_route(RouteConfig(preset="looks"), CUES, len(CHANGES))
    assert [m[0] for m in msgs] == [f"/look/{c.emotion + 1}/go" for c in CHANGES]
    rc = RouteConfig(
        preset="custom",
        addresses=["/stage/rgb255 {r255} {g255} {b255}", "/stage/mood {emotion} {index1} {confidence100:f} {hex}", "/stage/{emotion}/hue {hue360:i} 'cue {cue_id}'"],
    )
    msgs = run_route(rc, CUES[:1], 3)
    c = CUES[0]
    assert msgs[0] == ("/stage/rgb255", "iii", [255, 212, 0])
    assert msgs[1][0] == "/stage/mood" and msgs[1][1] == "sifs"
    assert msgs[1][2][:2] == ["joy", 1] and close(msgs[1][2][2], 91.0, 1e-3) and msgs[1][2][3] == c.colour.hex
    assert msgs[2] == ("/stage/joy/hue", "is", [50, "cue 1"])


# --------------------------------------------------------------------------- TCP


class TcpCapture:
    def __init__(self):
        self.srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(1)
        self.port = self.srv.getsockname()[1]
        self.data = bytearray()
        self._t = threading.Thread(target=self._accept, daemon=True)
        self._t.start()

    def _accept(self):
        self.srv.settimeout(5)
        try:
            conn, _ = self.srv.accept()
        except OSError:
            return
        conn.settimeout(0.2)
        end = time.monotonic() + 3
        while time.monotonic() < end:
            try:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                self.data += chunk
            except socket.timeout:
                pass
        conn.close()

    def join(self):
        self._t.join()
        self.srv.close()


def slip_decode(stream: bytes) -> list[bytes]:
    out = []
    for part in stream.split(b"\xc0"):
        if part:
            out.append(part.replace(b"\xdb\xdc", b"\xc0").replace(b"\xdb\xdd", b"\xdb"))
    return out


def length_decode(stream: bytes) -> list[bytes]:
    out, i = [], 0
    while i + 4 <= len(stream):
        n = int.from_bytes(stream[i : i + 4], "big", signed=True)
        out.append(bytes(stream[i + 4 : i + 4 + n]))
        i += 4 + n
    assert i == len(stream), "trailing bytes in a size-framed stream"
    return out


@pytest.mark.parametrize("port_kind,framing", [(3037, "slip"), (3032, "length")])
def test_eos_over_tcp_with_osc_1_1_slip_and_osc_1_0_size_framing(port_kind, framing):
    rc = parse_route_arg(f"eos:127.0.0.1:{port_kind}")
    assert rc.protocol == "tcp" and rc.options["tcp_framing"] == framing
    cap = TcpCapture()
    rc.target = f"127.0.0.1:{cap.port}"
    rc.options["channel"] = 3
    # A value whose float32 bytes contain SLIP's END (0xC0) and ESC (0xDB) bytes: escaping is exercised.
    green100 = float(np.frombuffer(b"\x42\xc0\xdb\x01", ">f4")[0])  # 96.43
    tricky = make_cue(9, 0, (0.0, green100 / 100, 1.0), 0.9)
    sender = RouteSender.from_config([rc])
    assert any(b"\xc0" in p and b"\xdb" in p for p in sender.routes[0].packets(tricky))
    sender.start()
    for c in CUES + [tricky]:
        sender.send(c)
    time.sleep(0.5)
    sender.stop()
    cap.join()
    packets = slip_decode(bytes(cap.data)) if framing == "slip" else length_decode(bytes(cap.data))
    msgs = [OscMessage(p) for p in packets]
    assert len(msgs) == 3 * (len(CUES) + 1)
    assert [m.address for m in msgs[:3]] == ["/eos/chan/3/param/red", "/eos/chan/3/param/green", "/eos/chan/3/param/blue"]
    for i, c in enumerate(CUES + [tricky]):
        for m, want in zip(msgs[3 * i : 3 * i + 3], c.colour.rgb):
            assert close(m.params[0], want * 100, 1e-3)


def test_a_dead_tcp_desk_delays_no_other_route():
    dead = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    dead.bind(("127.0.0.1", 0))
    dead_port = dead.getsockname()[1]
    dead.close()  # nothing listens here: connections are refused
    cap = UdpCapture()
    sender = RouteSender.from_config(
        [RouteConfig(preset="eos", target=f"127.0.0.1:{dead_port}", protocol="tcp"), RouteConfig(preset="magicq", target=f"127.0.0.1:{cap.port}")]
    )
    sender.start()
    t0 = time.monotonic()
    for c in CUES:
        sender.send(c)
    handed_s = time.monotonic() - t0
    got = cap.collect(3 * len(CUES), timeout_s=3)
    sender.stop()
    cap.close()
    assert handed_s < 0.2
    assert len(got) == 3 * len(CUES)
    counters = sender.counters()
    dead_name = next(k for k in counters if str(dead_port) in k)
    assert counters[dead_name]["sent"] == 0 and counters[dead_name]["errors"] >= 1


# --------------------------------------------------------------------------- checks at start-up


def test_unknown_placeholder_names_it_and_lists_the_allowed():
    with pytest.raises(RouteError) as e:
        compile_route(RouteConfig(preset="custom", target="10.0.0.5:8000", addresses=["/x/{chanel}/red {r100}"]))
    msg = str(e.value)
    assert "unknown placeholder {chanel}" in msg and "10.0.0.5:8000" in msg
    assert "allowed:" in msg and "r100" in msg and "index1" in msg and "hex" in msg


@pytest.mark.parametrize(
    "rc,fragment",
    [
        (RouteConfig(preset="eos", options={"channel": 0}), "options.channel = 0: 0 is out of range; allowed 1..99999"),
        (RouteConfig(preset="magicq", options={"mode": "looks", "looks": [1, 2, 3, 4, 11]}), "allowed 1..10"),
        (RouteConfig(preset="eos", options={"mode": "looks", "looks": [1, 2, 3]}), "has 3 entries; give one per emotion (joy, anxiety, anger, sadness, neutral)"),
        (RouteConfig(preset="eos", options={"mode": "party"}), "not a mode of the eos preset; choose one of: colour, looks"),
        (RouteConfig(preset="eos", options={"chanel": 3}), "unknown option 'chanel' for the eos preset"),
        (RouteConfig(preset="grandma3", options={"prefix": "/gma3"}), "without slashes"),
        (RouteConfig(preset="dmx"), "is not a preset; choose one of: eos, grandma3, magicq, qlc, resolume, looks, custom"),
        (RouteConfig(preset="custom"), "sends nothing until you give `addresses`"),
        (RouteConfig(preset="custom", addresses=["/x {r:d}"]), "type ':d' of {r} is not allowed"),
        (RouteConfig(preset="custom", addresses=["x/y {r}"]), "must start with an OSC address"),
        (RouteConfig(preset="custom", addresses=["/x 'never closed"]), "no closing '"),
        (RouteConfig(preset="custom", addresses=["/x " + "'" + "y" * 600 + "'"]), "byte packet; the limit is 512"),
        (RouteConfig(preset="custom", addresses=["/x/{emotion} {r}"], options={"r": 1}), "the name is a cue value"),
    ],
)
def test_bad_routes_stop_start_up_with_a_clear_message(rc, fragment):
    with pytest.raises(RouteError, match=None) as e:
        compile_route(rc)
    assert fragment in str(e.value)


def test_routes_from_a_config_file_table():
    cfg = config_from_dict({"routes": [{"preset": "eos", "target": "10.1.1.1:3037", "protocol": "tcp", "options": {"channel": 4}}]})
    sender = RouteSender.from_config(cfg.routes)
    assert [r.name for r in sender.routes] == ["eos 10.1.1.1:3037/tcp"]
    assert sender.routes[0].framing == "slip"


def test_parse_route_arg():
    assert parse_route_arg("eos:10.0.0.5:3032") == RouteConfig(preset="eos", target="10.0.0.5:3032", protocol="tcp", options={"tcp_framing": "length"})
    assert parse_route_arg("qlc:127.0.0.1").target == "127.0.0.1:7700"
    assert parse_route_arg("resolume:10.0.0.7").target == "10.0.0.7:7000"
    assert parse_route_arg("magicq:10.0.0.9:9000:tcp").protocol == "tcp"
    assert parse_route_arg("eos:10.0.0.5:3032:udp").protocol == "udp"
    for bad, frag in [("eos", "PRESET:HOST"), ("hog:1.2.3.4", "unknown preset 'hog'"), ("eos:1.2.3.4:99999", "not 1..65535"), ("eos:h:1:2", "too many")]:
        with pytest.raises(ConfigError, match=None) as e:
            parse_route_arg(bad)
        assert frag in str(e.value)


def test_docs_routes_md_is_generated_from_the_presets():
    assert (ROOT / "docs" / "routes.md").read_text(encoding="utf-8") == routes_markdown(), (
        "docs/routes.md is stale: python -m pcp_osc.routes --markdown > docs/routes.md"
    )
    text = routes_markdown()
    for name in PLACEHOLDERS:
        assert f"`{name}`" in text


def test_a_bundled_route_sends_each_cue_as_bundles_within_512_bytes():
    from pythonosc.osc_bundle import OscBundle

    cap = UdpCapture()
    long = "x" * 60
    rc = RouteConfig(preset="custom", target=f"127.0.0.1:{cap.port}", options={"bundle": True},
                     addresses=[f"/{long}/{c} {{{c}:f}}" for c in ("r", "g", "b", "confidence", "hue", "saturation", "brightness")])
    sender = RouteSender.from_config([rc])
    sender.start()
    try:
        sender.send(CUES[0])
        dgrams = cap.collect(2)
    finally:
        sender.stop()
        cap.close()
    assert len(dgrams) == 2 and all(d.startswith(b"#bundle") and len(d) <= 512 for d in dgrams), [len(d) for d in dgrams]
    addresses = [m.address for d in dgrams for m in OscBundle(d)]
    assert addresses == [f"/{long}/{c}" for c in ("r", "g", "b", "confidence", "hue", "saturation", "brightness")]


def test_grandma3_refuses_a_bundled_route():
    with pytest.raises(RouteError, match="grandMA3 refuses OSC bundles"):
        compile_route(RouteConfig(preset="grandma3", options={"bundle": True}))
    with pytest.raises(RouteError, match="bundle = 'yes' must be true or false"):
        compile_route(RouteConfig(preset="qlc", options={"bundle": "yes"}))
