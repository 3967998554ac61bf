"""The show log of a real daemon process killed with SIGKILL mid-show: everything the
daemon acknowledged (a /pcp/pong answers once what came before the ping is committed,
and every cue a receiver saw before that pong) is in the file, and the file opens."""

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time

from oscutil import send_osc
from test_daemon_e2e import free_udp_port


def test_sigkill_mid_show_loses_nothing_acknowledged(tmp_path, receiver):
    db = tmp_path / "show.db"
    port = free_udp_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "pcp_osc", "run", "--source", "demo", "--target", receiver.target,
         "--control-port", str(port), "--window", "1", "--log", str(db), "--quiet", "--generator", "off"],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=open(tmp_path / "daemon.log", "w"), text=True)
    ctl = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    ctl.bind(("127.0.0.1", 0))
    ctl.settimeout(0.5)
    acked_markers, acked_cue_ids = -1, set()
    try:
        receiver.wait_for("/pcp/cue/id", timeout_s=60)
        # keep marking and pinging until a few windows' cues are acknowledged (bounded)
        t_end = time.monotonic() + 30.0
        i = 0
        while time.monotonic() < t_end and (len(acked_cue_ids) < 4 or acked_markers < 20):
            send_osc(port, "/pcp/marker", f"song {i}", sock=ctl)
            cues_before = {c["id"] for c in receiver.cues()}
            send_osc(port, "/pcp/ping", sock=ctl)
            try:
                data, _ = ctl.recvfrom(1024)
            except socket.timeout:
                i += 1
                continue
            if data.startswith(b"/pcp/pong"):
                acked_markers = i
                acked_cue_ids |= cues_before
            i += 1
        os.kill(proc.pid, signal.SIGKILL)  # mid-show: no clean close, WAL not checkpointed
        proc.wait(timeout=10)
    finally:
        ctl.close()
        if proc.poll() is None:
            proc.kill()
    assert acked_markers >= 10, "too few acknowledgements to mean anything"
    assert len(acked_cue_ids) >= 3
    con = sqlite3.connect(db)
    assert con.execute("pragma integrity_check").fetchone()[0] == "ok"
    markers = {r[0] for r in con.execute("select name from markers")}
    missing = [f"song {k}" for k in range(acked_markers + 1) if f"song {k}" not in markers]
    assert not missing, f"acknowledged markers lost: {missing[:5]}"
    cue_ids = {r[0] for r in con.execute("select cue_id from cues")}
    assert acked_cue_ids <= cue_ids, f"cues seen and acknowledged but not logged: {sorted(acked_cue_ids - cue_ids)}"
    con.close()

