"""The TouchDesigner project's build script, run outside TouchDesigner.

STAND-IN NOTICE: TouchDesigner cannot run here, so touchdesigner/build_pcp_osc.py runs
against tests/td_standin.py, a minimal stand-in of TouchDesigner's Python API that
records the operators, parameters, connections and scripts the build makes (and knows
only the parameters Derivative documents for each operator type). The DAT scripts it
writes (OSC callbacks, button callbacks) are then run against that record with
messages made by the daemon's own OSC code.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from osc_contract import contract  # noqa: E402
from td_standin import Network, OpType, PanelValue  # noqa: E402

from pcp_osc.config import OscConfig, SinksConfig, load_config, parse_hostport  # noqa: E402
from pcp_osc.emotions import EMOTIONS, parse_emotion  # noqa: E402
from pcp_osc.osc import cue_messages, live_messages  # noqa: E402
from pcp_osc.routes import sample_cue  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "touchdesigner" / "build_pcp_osc.py"
TOML = ROOT / "touchdesigner" / "pcp-osc-touchdesigner.toml"


def osc_md_addresses() -> dict[str, set[str]]:
    """docs/OSC.md's tables -> {"out": addresses the daemon sends, "in": addresses it accepts}."""
    return {side: set(table) for side, table in contract().items()}


@pytest.fixture(params=["2023", "2022"])
def built(tmp_path, request):
    """The build run against the stand-in of TouchDesigner 2023 (current names) and 2022."""
    net = Network(str(tmp_path), td=request.param)
    code = BUILD.read_text(encoding="utf-8")
    ns = net.namespace()
    ns["__file__"] = str(BUILD)
    exec(compile(code, str(BUILD), "exec"), ns)
    base = net.op("/project1/pcp_osc")
    assert base is not None and ns["BUILT"] is base
    return net, base, ns


def test_the_contract_in_the_repo_lists_what_the_daemon_sends_with_its_types():
    """docs/OSC.md is the contract the patch is built against (the repository's own copy, no
    file outside it): every cue and live message the daemon builds is in it with its types,
    and every cue and live address it lists is one the daemon sends."""
    from osc_contract import typetags

    from pcp_osc.osc import encode

    md = contract()
    cue = sample_cue(2)
    sent = {}
    for address, args in cue_messages(cue) + live_messages(cue.mood, cue.colour):
        sent[address] = typetags(encode(address, args))[1]
    for address, tags in sent.items():
        assert md["out"].get(address) == tags, f"{address} ,{tags} is sent but docs/OSC.md says {md['out'].get(address)!r}"
    listed = {a for a in md["out"] if a.startswith(("/pcp/cue/", "/pcp/live/"))}
    assert listed == set(sent), f"listed but never sent: {sorted(listed - set(sent))}"
    assert {"/pcp/intent", "/pcp/override", "/pcp/release", "/pcp/generate"} <= set(md["in"])


def test_build_saves_the_toe_next_to_the_script(built):
    net, base, _ = built
    assert net.project.saved == [str(ROOT / "touchdesigner" / "pcp_osc.toe")]


def test_ports_match_the_daemons_defaults(built):
    net, base, ns = built
    assert tuple(ns["EMOTIONS"]) == EMOTIONS  # the script's copy (TouchDesigner cannot import pcp_osc)
    osc = OscConfig()
    assert base.op("osc_numbers").par.port.val == parse_hostport(osc.target)[1] == 9011
    assert base.op("control_out").par.port.val == osc.control_port == 9010
    assert base.op("control_out").par.address.val == "127.0.0.1"
    # The OSC In DAT listens where the shipped config sends the daemon's second copy.
    cfg = load_config(TOML)
    assert cfg.osc.target == osc.target
    assert f"127.0.0.1:{base.op('osc_words').par.port.val}" in cfg.osc.extra_targets
    assert base.op("osc_words").par.port.val != base.op("osc_numbers").par.port.val
    # The texture and NDI sources look for the daemon's default sender name.
    assert base.op("bg_texture").par.sendername.val == SinksConfig().name == cfg.sinks.name


def test_every_osc_address_it_reads_or_sends_is_in_the_contract(built):
    net, base, ns = built
    md = osc_md_addresses()
    read = set()
    for sel in (base.op("live_pick"), base.op("cue_numbers")):
        read |= {"/pcp/" + name for name in sel.par.channames.val.split()}
    words = base.op("osc_words_callbacks").text
    # addresses the callbacks compare against (a trailing "/" is a prefix filter, not an address)
    read |= {"/pcp" + a for a in re.findall(r"PREFIX \+ '(/[a-z/]+)'", words) if not a.endswith("/")}
    read |= set(ns["WORD_ADDRESSES"]) | set(ns["NUMBER_ADDRESSES"])
    assert len(read) >= 20
    assert read - md["out"] == set(), f"read but not in docs/OSC.md: {sorted(read - md['out'])}"
    sent = {"/pcp" + a for a in re.findall(r"PREFIX \+ '(/[a-z/]+)'", base.op("buttons_exec").text)}
    assert sent == set(ns["CONTROL_ADDRESSES"])
    assert sent == {"/pcp/intent", "/pcp/override", "/pcp/release", "/pcp/generate"}
    assert sent <= md["in"]


def test_every_connection_has_both_ends_and_the_stage_output_sees_every_source(built):
    net, base, _ = built
    alive = {id(n) for n in net.alive()}
    assert net.connections
    for src, dst, index in net.connections:
        assert id(src) in alive and id(dst) in alive, f"{src.name} -> {dst.name} has a missing end"
        assert src.parent_op is base and dst.parent_op is base
    inputs: dict[str, set[str]] = {}
    for src, dst, _ in net.connections:
        inputs.setdefault(dst.name, set()).add(src.name)

    def upstream(name, seen=None):
        seen = seen if seen is not None else set()
        for s in inputs.get(name, ()):
            if s not in seen:
                seen.add(s)
                upstream(s, seen)
        return seen

    feeding_out = upstream("out1")
    assert {"bg_texture", "bg_ndi", "bg_file_a", "bg_file_b", "tint", "stage", "bg"} <= feeding_out
    assert base.op("out1").OPType == "outTOP" and base.op("stage").OPType == "nullTOP"
    # each Cross TOP has both inputs
    for name in ("bg_file_fade", "lit"):
        assert sorted(i for s, d, i in net.connections if d.name == name) == [0, 1]


def test_operators_are_the_real_touchdesigner_types_and_parameters_exist(built):
    net, base, _ = built
    types = {n.name: n.OPType for n in net.alive()}
    assert types["osc_numbers"] == "oscinCHOP" and types["osc_words"] == "oscinDAT"
    assert types["bg_texture"] == "syphonspoutinTOP" and types["bg_ndi"] == "ndiinTOP"
    assert types["bg_file_a"] == types["bg_file_b"] == "moviefileinTOP"
    assert types["bg_file_fade"] == types["lit"] == "crossTOP" and types["tint"] == "constantTOP"
    assert types["tinted"] == "multiplyTOP" and types["control_out"] == "oscoutDAT"
    set_count = 0
    for n in net.alive():
        for name in n.par.set_names():
            assert name in net.parameters[n.OPType]
            set_count += 1
    assert set_count >= 40


def test_tint_follows_the_live_colour_and_the_source_switch_follows_settings(built):
    net, base, _ = built

    class Chop(dict):
        def __getitem__(self, k):
            return self.get(k)

    live = Chop({"live/color/r": 0.8, "live/color/g": 0.4, "live/color/b": 0.1})
    settings = base.op("settings")
    env = {"op": lambda name: live if name == "live" else base.op(name)}
    tint = base.op("tint")
    assert [eval(getattr(tint.par, "color" + c).expr, env) for c in "rgb"] == [0.8, 0.4, 0.1]
    bg = base.op("bg")
    for i, source in enumerate(("texture", "ndi", "file")):
        settings["source", 1] = source
        assert eval(bg.par.index.expr, env) == i
    settings["tint", 1] = "0.25"
    assert eval(base.op("lit").par.cross.expr, env) == 0.25


def test_words_callbacks_log_cues_and_reload_the_background_file(built):
    net, base, _ = built
    dat = base.op("osc_words_callbacks")
    ns = net.dat_namespace(dat)
    exec(dat.text, ns)
    receive = ns["onReceiveOSC"]

    def feed(messages):
        for address, args in messages:
            receive(base.op("osc_words"), 1, "", b"", 0.0, address, list(args), "127.0.0.1:9010")

    # The daemon's own cue and live messages, as it sends them.
    for k in (0, 3):
        cue = sample_cue(k)
        feed(live_messages(cue.mood, cue.colour))
        feed(cue_messages(cue))
    log = base.op("cue_log").rows
    assert log[0] == ["time_s", "cue", "emotion", "source", "confidence", "hex"]
    assert [r[2] for r in log[1:]] == ["joy", "sadness"]
    assert log[2][5] == sample_cue(3).colour.hex and log[2][3] == "audience"
    assert base.op("state").row("live/joy") is None  # the live stream is not copied to tables

    a, b, target = base.op("bg_file_a"), base.op("bg_file_b"), base.op("xfade_target")
    new_names = "const0value" in net.parameters["constantCHOP"]
    value = target.par.const0value if new_names else target.par.value0
    assert value.val == 0 and (target.par.const0name if new_names else target.par.name0).val == "cross"
    feed([("/pcp/background/path", ["/shows/bg-000001.png"])])
    assert b.par.file.val == "/shows/bg-000001.png" and b.par.reloadpulse.pulses == 1 and value.val == 1
    feed([("/pcp/background/path", ["/shows/bg-000002.png"])])
    assert a.par.file.val == "/shows/bg-000002.png" and a.par.reloadpulse.pulses == 1 and value.val == 0

    # Before any sender is found the menus list nothing: the name is set as it is.
    feed([("/pcp/background/sender", ["pcp-osc"])])
    assert base.op("bg_texture").par.sendername.val == "pcp-osc"
    base.op("bg_ndi").par.name.menuNames = ["OTHER (obs)", "STAGEPC (pcp-osc)"]
    base.op("bg_texture").par.sendername.menuNames = ["Resolume:Composition", "python:pcp-osc"]
    feed([("/pcp/background/sender", ["pcp-osc"])])
    assert base.op("bg_ndi").par.name.val == "STAGEPC (pcp-osc)"
    assert base.op("bg_texture").par.sendername.val == "python:pcp-osc"
    # A build where the sender parameters are not menus (menuNames is None): no crash.
    base.op("bg_ndi").par.name.menuNames = None
    base.op("bg_texture").par.sendername.menuNames = None
    feed([("/pcp/background/sender", ["other-sender"])])
    assert base.op("bg_texture").par.sendername.val == "other-sender"


def test_show_control_buttons_send_what_the_daemon_accepts(built):
    net, base, _ = built
    dat = base.op("buttons_exec")
    assert dat.par.offtoon.val is True and set(dat.par.panels.val.split()) == {n.name for n in net.alive() if n.OPType == "buttonCOMP"}
    ns = net.dat_namespace(dat)
    exec(dat.text, ns)
    for name in dat.par.panels.val.split():
        ns["onOffToOn"](PanelValue(owner=base.op(name)))
    sent = base.op("control_out").sent
    assert len(sent) == 12
    intents = [args[0] for addr, args in sent if addr == "/pcp/intent"]
    overrides = [args[0] for addr, args in sent if addr == "/pcp/override"]
    assert [parse_emotion(e) for e in intents] == [0, 1, 2, 3, 4]
    assert [parse_emotion(e) for e in overrides] == [0, 1, 2, 3, 4]
    assert ("/pcp/release", []) in sent and ("/pcp/generate", []) in sent


def test_a_misspelt_parameter_fails_the_build_loudly(tmp_path):
    net = Network(str(tmp_path))
    code = BUILD.read_text(encoding="utf-8").replace("setp(texture, 'sendername'", "setp(texture, 'sendrname'")
    with pytest.raises(AttributeError, match="bg_texture.*'sendrname'"):
        exec(compile(code, "build", "exec"), dict(net.namespace(), __file__=str(BUILD)))


def test_the_prefix_is_stripped_by_the_osc_in_chop_where_it_can(built):
    net, base, _ = built
    numbers_in, numbers = base.op("osc_numbers"), base.op("numbers")
    if "stripsegments" in net.parameters["oscinCHOP"]:  # TouchDesigner 2023: Strip Segments
        assert numbers_in.par.stripsegments.val == 1 and numbers.OPType == "nullCHOP"
    else:  # 2022: the Rename CHOP does it
        assert numbers.OPType == "renameCHOP"
        assert (numbers.par.renamefrom.val, numbers.par.renameto.val) == ("pcp/*", "*")
    assert ("osc_numbers", "numbers", 0) in {(s.name, d.name, i) for s, d, i in net.connections}


def test_menu_names_are_none_for_a_parameter_that_is_not_a_menu(tmp_path):
    net = Network(str(tmp_path))
    node = net.project1.create(OpType("moviefileinTOP"), "m")
    assert node.par.file.menuNames is None
    assert net.project1.create(OpType("ndiinTOP"), "n").par.name.menuNames == []


def test_a_save_that_fails_is_an_error_not_a_saved_message(tmp_path, capsys):
    net = Network(str(tmp_path))
    net.project.save_result = False
    with pytest.raises(RuntimeError, match="could not save .*pcp_osc.toe"):
        exec(compile(BUILD.read_text(encoding="utf-8"), str(BUILD), "exec"), dict(net.namespace(), __file__=str(BUILD)))
    assert "saved" not in capsys.readouterr().out
