"""A bounded fuzz against the real `pcp-osc run` process over loopback: 20,000 random and
malformed datagrams, wrong and unknown types, huge, nested and lying bundles and hostile
strings. Window cues keep their time on a receiving socket, the console stays short and
inert (no escape sequences, no forged lines, no tracebacks), and show control still
works afterwards. The corpus is pcp_bench.control.fuzz_datagrams (the bench's too)."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np

from oscutil import send_osc
from pcp_bench.control import flood, fuzz_datagrams
from test_daemon_e2e import free_udp_port

FUZZ_DATAGRAMS = 20_000
FUZZ_RATE_HZ = 4_000  # the kernel would drop most of a faster burst before the daemon saw it
STDERR_MAX_BYTES = 40_000  # the same fuzz wrote 43 MB before the limits


def test_fuzz_flood_keeps_cues_on_time_and_the_console_short_and_inert(tmp_path, receiver):
    port = free_udp_port()
    err_path = tmp_path / "daemon.err"
    proc = subprocess.Popen(
        [sys.executable, "-m", "pcp_osc", "run", "--source", "browser", "--generator", "off", "--no-log", "--quiet",
         "--window", "1", "--control-port", str(port), "--target", receiver.target, "--seconds", "40"],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=open(err_path, "wb"))
    try:
        receiver.wait_for("/pcp/cue/id", lambda m: m.args[0] >= 1, timeout_s=60)  # running, windows closing
        t0 = time.monotonic()
        sent = flood(port, fuzz_datagrams(seed=7, count=FUZZ_DATAGRAMS), FUZZ_RATE_HZ, seconds=30)
        t1 = time.monotonic()
        time.sleep(1.5)
        assert sent == FUZZ_DATAGRAMS
        # window cues during the flood came every second, on time
        window = [c["t"] for c in receiver.cues()  # cue 0 is the start cue, not a window's
                  if c["id"] >= 1 and t0 - 1.0 <= c["t"] <= t1 + 1.0 and c.get("source") == "intent"]
        assert len(window) >= int(t1 - t0), (len(window), t1 - t0)
        gaps = np.diff(window)
        assert np.all(np.abs(gaps - 1.0) < 0.25), np.round(gaps, 3)
        beats = [m.t for m in receiver.all("/pcp/heartbeat") if t0 <= m.t <= t1]
        assert len(beats) >= int(t1 - t0) - 1
        # the show never moved: the fuzz held no valid intent or override
        assert all(c.get("emotion") == "neutral" for c in receiver.cues())
        # show control still answers, from a new sender port on the same address
        n = len(receiver.cues())
        send_osc(port, "/pcp/override", "joy", 5.0)
        receiver.wait_for("/pcp/cue/source", lambda m: m.args[0] == "override", after=n, timeout_s=3)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    err = err_path.read_bytes()
    assert proc.returncode == 0, err[-2000:]
    assert len(err) < STDERR_MAX_BYTES, f"{len(err)} bytes of stderr for one fuzz"
    text = err.decode("utf-8", "replace")
    assert b"\x1b" not in err and b"\x07" not in err and b"\r" not in err, "a control character reached the console"
    assert "Traceback" not in text, text[-3000:]
    lines = text.splitlines()
    assert not any(line.startswith("12:00:00 INFO") for line in lines), "a forged log line"
    assert any("more ignored show-control messages" in line for line in lines), text[-2000:]
    assert any("over its limits in the last" in line for line in lines), text[-2000:]
    assert "\\x1b" in text  # what was sent is shown, escaped


def test_python_osc_warnings_are_throttled_on_the_console():
    """python-osc warns on the root logger for each argument type it does not know (the
    control path refuses those itself; anything else using python-osc goes through this)."""
    script = (
        "import logging\n"
        "from pcp_osc.cli import setup_logging\n"
        "from pythonosc.osc_message import OscMessage\n"
        "listener = setup_logging(logging.INFO)\n"
        "dgram = b'/pcp/x\\x00\\x00,c\\x00\\x00\\x00\\x00\\x00A'\n"
        "for i in range(5000):\n"
        "    OscMessage(dgram)\n"
        "listener.stop()\n"
    )
    p = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr[-2000:]
    lines = [line for line in p.stderr.splitlines() if "Unhandled parameter type" in line]
    assert 1 <= len(lines) <= 5, len(lines)
