"""Quiet defaults: a plain `pcp-osc run` puts nothing on the network it was not asked to
(no NDI source, although cyndilib is installed here), leaves no temporary folder behind,
and lets onnxruntime keep no telemetry store in the home folder.

The run that could announce itself runs in a private network namespace with only
loopback up (`unshare -n`), so nothing can leave the machine even if the check failed.
What the daemon publishes is read from its own sockets (psutil): an NDI sender listens
on TCP (5960 and up), a plain run listens on nothing but its UDP control port.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

PROBE = r'''
import json, subprocess, sys, time
import psutil
proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
time.sleep(float(__import__("os").environ["PROBE_AFTER_S"]))
conns = [[c.type.name, c.laddr.port, c.status] for c in psutil.Process(proc.pid).net_connections(kind="inet")]
out, err = proc.communicate(timeout=120)
print(json.dumps({"conns": conns, "rc": proc.returncode, "log": err}))
'''


def private_network(cmd: list[str], env: dict, tmp_path: Path, after_s: float) -> dict:
    """Run ``cmd`` inside `unshare -n` (only loopback up); return its sockets after ``after_s`` and its log."""
    assert shutil.which("unshare") and shutil.which("ip"), "the quiet-defaults test needs unshare and ip (util-linux, iproute2)"
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE)
    inner = " ".join(map(_quote, [sys.executable, str(probe), *cmd]))
    r = subprocess.run(["unshare", "-n", "sh", "-c", f"ip link set lo up && exec {inner}"],
                       env=dict(env, PROBE_AFTER_S=str(after_s)), capture_output=True, text=True, timeout=180)
    assert r.returncode == 0 and r.stdout.strip(), f"unshare -n failed (the tests run as root here): {r.stderr[-2000:]}"
    return json.loads(r.stdout.strip().splitlines()[-1])


def _quote(s: str) -> str:
    return "'" + s.replace("'", "'\\''") + "'"


def test_a_plain_run_publishes_nothing_and_leaves_nothing_behind(tmp_path) -> None:
    home, tmpdir = tmp_path / "home", tmp_path / "tmp"
    home.mkdir()
    tmpdir.mkdir()
    import os

    env = dict(os.environ, HOME=str(home), TMPDIR=str(tmpdir))
    env.pop("ORT_DISABLE_TELEMETRY", None)  # the daemon must turn it off itself
    cmd = [sys.executable, "-m", "pcp_osc", "run", "--source", "demo", "--window", "1", "--seconds", "9", "--no-log",
           "--quiet", "--control-port", "0", "--target", "127.0.0.1:9"]
    result = private_network(cmd, env, tmp_path, after_s=7.0)
    log = result["log"]
    assert result["rc"] == 0, log[-2000:]
    assert re.search(r"cue [3-9]", log), log[-2000:]  # the show ran: cues, and a background for each
    assert "no texture sink configured" in log and "ndi sink" not in log, log[-2000:]
    listening = [c for c in result["conns"] if c[0] == "SOCK_STREAM"]
    assert not listening, f"a plain run listens on TCP (an NDI sender does, on 5960+): {result['conns']}"
    # after exit: no temporary folder of ours, no onnxruntime telemetry store in the home folder
    assert not [p.name for p in tmpdir.iterdir() if p.name.startswith("pcp-osc")], list(tmpdir.iterdir())
    assert not (home / ".cache" / "Microsoft").exists(), [str(p) for p in home.rglob("*")]


def test_a_file_sink_without_a_folder_cleans_its_temporary_folder_up_at_exit(tmp_path) -> None:
    import os

    env = dict(os.environ, TMPDIR=str(tmp_path))
    proc = subprocess.Popen(
        [sys.executable, "-m", "pcp_osc", "run", "--source", "browser", "--window", "1", "--seconds", "60", "--no-log",
         "--quiet", "--control-port", "0", "--target", "127.0.0.1:9", "--sink", "file"],
        env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        folders: list[Path] = []
        while time.monotonic() < deadline:
            folders = [p for p in tmp_path.glob("pcp-osc-backgrounds-*") if list(p.glob("bg-*.png"))]
            if folders:
                break
            time.sleep(0.2)
        assert folders, "no background was written to the file sink's temporary folder"
    finally:
        proc.terminate()  # SIGTERM, as systemd or a show-control script stops it
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-2000:]
    assert "a temporary folder removed when pcp-osc stops" in err and "--sink file:FOLDER" in err
    assert not list(tmp_path.glob("pcp-osc-*")), list(tmp_path.iterdir())


def test_a_pt_file_from_elsewhere_is_named_as_code_that_runs_when_loaded(tmp_path, caplog) -> None:
    import logging

    from pcp_osc.perception.yolo import _warn_pickle

    lone = tmp_path / "downloads" / "emotions.pt"  # a model someone sent
    run = tmp_path / "runs" / "pcp-osc" / "train" / "weights" / "best.pt"  # what `pcp-osc train` wrote here
    for p in (lone, run):
        p.parent.mkdir(parents=True)
        p.write_bytes(b"")
    (run.parent.parent / "args.yaml").write_text("task: detect\n")
    with caplog.at_level(logging.WARNING, logger="pcp_osc"):
        _warn_pickle(run)
        assert not caplog.records
        _warn_pickle(lone)
    assert "Python pickle: loading it runs any code inside it" in caplog.text and ".onnx" in caplog.text
    assert str(lone) in caplog.text
