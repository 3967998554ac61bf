"""`pcp-osc monitor` and `pcp-osc send` against a real daemon on loopback: the daemon runs in
one process, the monitor in another (its --json lines and its table read from its stdout), and
show control goes in through `pcp-osc send`."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

import pytest

from oscutil import send_raw

from pcp_osc.commands.send import BadArgument, build, parse_value

PY = [sys.executable, "-m", "pcp_osc"]


def free_udp_port() -> int:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def pcp(*args, timeout=30) -> subprocess.CompletedProcess:
    return subprocess.run([*PY, *args], capture_output=True, text=True, timeout=timeout)


def wait_for_daemon(control_port: int, timeout_s: float = 60) -> str:
    """Ping until the daemon answers (model loading takes a moment on a busy machine)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        p = pcp("send", "/pcp/ping", "--port", str(control_port), "--reply", "0.5")
        if p.returncode == 0:
            return p.stdout
    raise AssertionError(f"the daemon never answered a ping on {control_port}")


@pytest.fixture
def show(tmp_path):
    """A real daemon (demo crowd) sending to two monitors: one --json, one drawing its table."""
    json_port, table_port, control_port = free_udp_port(), free_udp_port(), free_udp_port()
    cfg = tmp_path / "show.toml"
    cfg.write_text(f'[osc]\ntarget = "127.0.0.1:{json_port}"\nextra_targets = ["127.0.0.1:{table_port}"]\n'
                   f'control_port = {control_port}\ncontrol_host = "127.0.0.1"\n[mood]\nwindow_s = 30\nintent = "sadness"\n'
                   f'[generator]\nkind = "off"\n[log]\nenabled = false\n')
    mon_json = subprocess.Popen([*PY, "monitor", "--port", str(json_port), "--host", "127.0.0.1", "--json", "--seconds", "40"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    mon_table = subprocess.Popen([*PY, "monitor", "--port", str(table_port), "--host", "127.0.0.1", "--seconds", "40"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    daemon = subprocess.Popen([*PY, "run", "--config", str(cfg), "--source", "demo", "--quiet"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    procs = [mon_json, mon_table, daemon]
    try:
        yield {"json_port": json_port, "control_port": control_port, "mon_json": mon_json, "mon_table": mon_table, "daemon": daemon}
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()


def stop(proc: subprocess.Popen) -> tuple[str, str]:
    proc.send_signal(2)  # Ctrl-C: the monitor stops cleanly and (table mode) prints its last table
    out, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err[-2000:]
    return out, err


def test_send_an_override_and_see_the_cue_in_the_monitor(show):
    pong = wait_for_daemon(show["control_port"])
    assert "/pcp/pong" in pong

    p = pcp("send", "/pcp/override", "anger", "20", "--port", str(show["control_port"]))
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("sent /pcp/override ,si anger 20 to 127.0.0.1:")
    p = pcp("send", "/pcp/marker", "Song 3", "--port", str(show["control_port"]))
    assert p.returncode == 0, p.stderr
    send_raw(show["json_port"], b"\x00\x01 not osc")  # the monitor says so and goes on
    time.sleep(2.5)  # a heartbeat, a status, live frames

    out, _ = stop(show["mon_json"])
    lines = [json.loads(line) for line in out.splitlines()]
    errors = [m for m in lines if "error" in m]
    assert len(errors) == 1 and "not OSC" in errors[0]["error"] and errors[0]["bytes"] == 10
    msgs = [m for m in lines if "address" in m]
    assert all(set(m) == {"t", "address", "types", "args", "from"} for m in msgs)
    # The override cue, whole and in order, with its OSC types (live messages, sent from
    # another thread, may come between a cue's messages: look at the cue's alone).
    cue_msgs = [m for m in msgs if m["address"].startswith("/pcp/cue/")]
    sources = [i for i, m in enumerate(cue_msgs) if m["address"] == "/pcp/cue/source" and m["args"] == ["override"]]
    assert sources, [m["address"] for m in cue_msgs][:40]
    i = sources[0]
    assert [m["address"] for m in cue_msgs[i - 4 : i + 7]] == [
        "/pcp/cue/id", "/pcp/cue/emotion", "/pcp/cue/index", "/pcp/cue/confidence", "/pcp/cue/source", "/pcp/cue/faces",
        "/pcp/cue/color", "/pcp/cue/color/r", "/pcp/cue/color/g", "/pcp/cue/color/b", "/pcp/cue/hex"]
    cue = {m["address"]: m for m in cue_msgs[i - 4 : i + 7]}
    assert cue["/pcp/cue/emotion"]["args"] == ["anger"] and cue["/pcp/cue/emotion"]["types"] == "s"
    assert cue["/pcp/cue/confidence"]["args"] == [1.0]
    assert cue["/pcp/cue/color"]["types"] == "fff" and cue["/pcp/cue/hex"]["args"][0].startswith("#")
    assert any(m["address"] == "/pcp/heartbeat" and m["types"] == "i" for m in msgs)

    table, _ = stop(show["mon_table"])
    last = table.strip().split("\n\n")[-1].splitlines()
    assert last[0].startswith("pcp-osc monitor on UDP 127.0.0.1:") and "0 not OSC" in last[0]
    assert last[1].split() == ["address", "type", "rate/s", "age", "s", "value"]
    rows = {r.split()[0]: r.split() for r in last[2:]}
    assert rows["/pcp/cue/emotion"][-1] == "anger" and rows["/pcp/cue/source"][-1] == "override"
    assert rows["/pcp/cue/color"][1] == "fff" and len(rows["/pcp/cue/color"]) == 7  # address, type, rate, age, r g b
    heartbeat = rows["/pcp/heartbeat"]
    assert 0.5 <= float(heartbeat[2]) <= 1.5, heartbeat  # once a second


def test_send_ping_waits_for_the_pong_and_fails_without_a_daemon():
    port = free_udp_port()
    p = pcp("send", "/pcp/ping", "--port", str(port), "--reply", "0.5")
    assert p.returncode == 1
    assert f"no answer from 127.0.0.1:{port} within 0.5 s" in p.stderr


def test_monitor_on_a_taken_port_says_what_to_do():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    try:
        p = pcp("monitor", "--host", "127.0.0.1", "--port", str(s.getsockname()[1]), "--seconds", "1")
    finally:
        s.close()
    assert p.returncode == 1
    assert "cannot listen on UDP" in p.stderr and "extra_targets" in p.stderr and "--port 9013" in p.stderr
    assert "--port 9012" not in p.stderr  # the TouchDesigner patch's OSC In DAT listens there


def test_send_infers_types_and_refuses_bad_input():
    assert parse_value("20") == ("i", 20)
    assert parse_value("-3") == ("i", -3)
    assert parse_value("0.5") == ("f", 0.5)
    assert parse_value("1e3") == ("f", 1000.0)
    assert parse_value("anger") == ("s", "anger")
    assert parse_value("기쁨") == ("s", "기쁨")
    assert parse_value("s:20") == ("s", "20")
    assert parse_value("f:20") == ("f", 20.0)
    assert parse_value("3000000000") == ("f", 3e9)  # past int32
    dgram, tags = build("/pcp/override", ["anger", "20"])
    assert tags == "si" and dgram == b"/pcp/override\x00\x00\x00,si\x00anger\x00\x00\x00\x00\x00\x00\x14"
    for address, values, why in [("pcp/intent", [], "must start with '/'"), ("/pcp/a b", [], "may not contain"),
                                 ("/pcp/x", ["i:zero"], "is not an int"), ("/pcp/x", ["y" * 600], "at most 512")]:
        with pytest.raises(BadArgument, match=why):
            build(address, values)
    p = pcp("send", "pcp/intent", "joy")
    assert p.returncode == 2 and "must start with '/'" in p.stderr


def test_send_ping_fails_when_the_pong_says_the_log_cannot_be_written(tmp_path):
    """A show-control script checks `pcp-osc send /pcp/ping`'s exit code. A real daemon whose show
    log another program has locked answers with a pong that carries the reason: that is not a
    confirmation, so send exits 1 and names it (it used to exit 0). Once the file is free, 0."""
    import sqlite3

    from pcp_osc.capture import BrowserSource
    from pcp_osc.config import config_from_dict
    from pcp_osc.show import assemble

    db = tmp_path / "show.db"
    cfg = config_from_dict({"osc": {"target": f"127.0.0.1:{free_udp_port()}", "control_port": 0,
                                    "control_host": "127.0.0.1"},
                            "log": {"path": str(db)}, "generator": {"kind": "off"}})
    d = assemble(cfg, source=BrowserSource(), perception=False)
    d.start()
    port = str(d.control_server.port)
    other = None
    try:
        assert pcp("send", "/pcp/marker", "Song 1", "--port", port).returncode == 0
        ok = pcp("send", "/pcp/ping", "--port", port)
        assert ok.returncode == 0 and ok.stdout.rstrip().endswith("/pcp/pong"), ok.stdout + ok.stderr
        other = sqlite3.connect(db, timeout=0, isolation_level=None)
        other.execute("BEGIN EXCLUSIVE")  # another program holds the file
        assert pcp("send", "/pcp/marker", "Song 2", "--port", port).returncode == 0
        refused = pcp("send", "/pcp/ping", "--port", port, "--reply", "5")
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert "/pcp/pong showlog-failed: the file is locked" in refused.stdout
        assert "not safely recorded: showlog-failed: the file is locked" in refused.stderr
        other.execute("COMMIT")
        other.close()
        other = None
        deadline = time.monotonic() + 20
        while True:
            again = pcp("send", "/pcp/ping", "--port", port)
            if again.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert again.returncode == 0, again.stdout + again.stderr
    finally:
        if other is not None:
            other.close()
        d.stop()
