"""A pong is a promise: /pcp/pong (no arguments) only once everything received before the
ping is committed to the show log. Tried on a real daemon over loopback with the log
file locked by another SQLite connection and on a real full disk (a 1 MiB tmpfs in a
private mount namespace): every acknowledged marker is in the file, a failed write
is retried and reported (/pcp/status, the pong's reason), and nothing is lost.
Also: a full queue answers at once with the reason, and a bad --log path or file
stops the start with a clear message, not a traceback."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

from oscutil import send_osc
from pcp_osc.capture import BrowserSource
from pcp_osc.config import config_from_dict
from pcp_osc.show import assemble
from pcp_osc.showlog import ShowLog
from test_daemon_e2e import free_udp_port

REPO = Path(__file__).resolve().parents[1]


class Operator:
    """Show control from one socket: a marker, then a ping, and what the pong said."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.sent: list[str] = []
        self.acked: list[str] = []  # markers a plain pong acknowledged
        self.refusals: list[str] = []  # the reasons of pongs that did not

    def mark_and_ping(self, name: str, wait_s: float = 3.0) -> str | None:
        """Send a marker and a ping; None for a plain pong, the reason for a refusal."""
        from pythonosc.osc_message import OscMessage

        send_osc(self.port, "/pcp/marker", name, sock=self.sock)
        self.sent.append(name)
        send_osc(self.port, "/pcp/ping", sock=self.sock)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            try:
                data, _ = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            m = OscMessage(data)
            if m.address != "/pcp/pong":
                continue
            if not m.params:
                self.acked = list(self.sent)
                return None
            self.refusals.append(m.params[0])
            return m.params[0]
        raise AssertionError(f"no /pcp/pong within {wait_s} s after marker {name!r}")

    def close(self) -> None:
        self.sock.close()


def markers_in(db: Path) -> set[str]:
    con = sqlite3.connect(db)
    try:
        return {r[0] for r in con.execute("SELECT name FROM markers")}
    finally:
        con.close()


def test_a_locked_log_is_never_acknowledged_and_nothing_is_lost(tmp_path, receiver):
    db = tmp_path / "show.db"
    cfg = config_from_dict({"osc": {"target": receiver.target, "control_port": 0, "control_host": "127.0.0.1"},
                            "log": {"path": str(db)}, "generator": {"kind": "off"}})
    d = assemble(cfg, source=BrowserSource(), perception=False)
    d.start()
    op = Operator(d.control_server.port)
    other = None
    try:
        assert op.mark_and_ping("song 1") is None
        other = sqlite3.connect(db, timeout=0, isolation_level=None)
        other.execute("BEGIN EXCLUSIVE")  # another program holds the file
        reasons = [op.mark_and_ping(f"locked {i}") for i in range(4)]
        assert all(r and r.startswith("showlog-failed: the file is locked by another program") for r in reasons), reasons
        assert op.acked == ["song 1"]
        receiver.wait_for("/pcp/status", lambda m: "showlog-failed: the file is locked" in m.args[0], timeout_s=3)
        st = d.status()  # what the dashboard shows (/api/status)
        assert st["status"].count("showlog-failed: the file is locked") == 1 and st["showlog"]["backlog"] > 0
        assert st["showlog"]["state"].startswith("showlog-failed")
        other.execute("COMMIT")
        other.close()
        other = None
        deadline = time.monotonic() + 15
        i = 0
        while op.mark_and_ping(f"after {i}") is not None:  # retried with back-off: acknowledged once written
            assert time.monotonic() < deadline, op.refusals[-3:]
            i += 1
        assert "showlog-failed" not in d.status()["status"] and d.status()["showlog"]["backlog"] == 0
        n = len(receiver.all("/pcp/status"))
        receiver.wait_for("/pcp/status", lambda m: "showlog" not in m.args[0], after=n, timeout_s=3)
    finally:
        if other is not None:
            other.close()
        op.close()
        d.stop()
    in_file = markers_in(db)
    assert set(op.acked) <= in_file
    assert set(op.sent) == in_file, "a marker sent while the file was locked was lost"


FULL_DISK_SCRIPT = textwrap.dedent("""\
    set -e
    mount -t tmpfs -o size=1m tmpfs "$DISK"
    head -c 600k /dev/zero > "$DISK/filler"
    "$PY" -m pcp_osc run --source browser --generator off --quiet --log "$DISK/show.db" \\
        --control-port "$PORT" --target "$TARGET" 2> "$CTL/daemon.err" &
    pid=$!
    while [ ! -e "$CTL/free" ]; do sleep 0.05; kill -0 $pid; done
    rm "$DISK/filler"
    while [ ! -e "$CTL/stop" ]; do sleep 0.05; done
    kill -TERM $pid
    wait $pid || echo "daemon exit $?" > "$CTL/exit"
    cp "$DISK"/show.db* "$CTL/"
    ls -la "$DISK" > "$CTL/ls"
""")


def test_a_full_disk_is_never_acknowledged_is_retried_and_nothing_is_lost(tmp_path, receiver):
    disk, ctl = tmp_path / "disk", tmp_path / "ctl"
    disk.mkdir()
    ctl.mkdir()
    port = free_udp_port()
    env = dict(os.environ, DISK=str(disk), CTL=str(ctl), PY=sys.executable, PORT=str(port), TARGET=receiver.target)
    shell = subprocess.Popen(["unshare", "-m", "--propagation", "private", "sh", "-c", FULL_DISK_SCRIPT],
                             env=env, cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    op = Operator(port)
    try:
        receiver.wait_for("/pcp/cue/id", timeout_s=60)
        i = 0
        while True:  # long names fill the 1 MiB disk within a few dozen markers
            reason = op.mark_and_ping(f"song {i} " + "la " * 300)
            i += 1
            if reason is not None:
                break
            assert i < 400, "the disk never filled"
        assert reason.startswith("showlog-failed: disk full"), reason
        assert len(op.acked) >= 3, "the disk filled before anything was acknowledged: nothing to check"
        for k in range(3):  # while full: every ping refused, with the reason
            assert op.mark_and_ping(f"while full {k}").startswith("showlog-failed: disk full")
        receiver.wait_for("/pcp/status", lambda m: "showlog-failed: disk full" in m.args[0], timeout_s=3)
        acked_before = list(op.acked)
        (ctl / "free").touch()  # the operator makes room
        deadline = time.monotonic() + 20
        k = 0
        while op.mark_and_ping(f"room again {k}") is not None:
            assert time.monotonic() < deadline, op.refusals[-3:]
            k += 1
        assert len(op.acked) > len(acked_before)
        n = len(receiver.all("/pcp/status"))
        receiver.wait_for("/pcp/status", lambda m: "showlog" not in m.args[0], after=n, timeout_s=3)
    finally:
        (ctl / "stop").touch()
        (ctl / "free").touch()
        op.close()
        try:
            _, err = shell.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            shell.kill()
            _, err = shell.communicate()
    assert shell.returncode == 0, err
    assert not (ctl / "exit").exists(), (ctl / "exit").read_text()
    daemon_err = (ctl / "daemon.err").read_text()
    assert "cannot be written (disk full)" in daemon_err and "is written again" in daemon_err, daemon_err[-2000:]
    assert "Traceback" not in daemon_err
    in_file = markers_in(ctl / "show.db")
    assert {m.strip() for m in op.acked} <= in_file
    assert {m.strip() for m in op.sent} == in_file, "a marker sent while the disk was full was lost"


def test_a_full_queue_answers_at_once_and_a_later_pong_owns_up_to_the_loss(tmp_path):
    path = tmp_path / "show.db"
    log = ShowLog(path, queue_events=4)
    answers: list[tuple[str, bool, str]] = []
    lock = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        lock.execute("BEGIN EXCLUSIVE")
        log.log_marker("first")  # the writer takes it and waits on the lock
        time.sleep(0.2)
        accepted = [log.log_marker(f"m{i}") for i in range(8)]
        assert accepted[:4] == [True] * 4 and not any(accepted[4:])  # the queue holds 4
        t = time.monotonic()
        log.after_commit(lambda ok, why: answers.append(("busy", ok, why)), key="desk")
        assert answers and time.monotonic() - t < 0.1  # at once, not after the lock
        assert answers[0][1] is False and answers[0][2].startswith("showlog-busy:")
    finally:
        lock.execute("COMMIT")
        lock.close()
    assert log.flush(15) is False  # all queued is written now, but not all offered: 4 were lost
    done = threading.Event()
    log.after_commit(lambda ok, why: (answers.append(("next", ok, why)), done.set()), key="desk")
    assert done.wait(15)
    assert answers[-1][1] is False and "showlog-lost: 4 events" in answers[-1][2], answers[-1]
    done.clear()
    log.after_commit(lambda ok, why: (answers.append(("clean", ok, why)), done.set()), key="desk")
    assert done.wait(5) and answers[-1] == ("clean", True, "")
    log.close()
    assert markers_in(path) == {"first", "m0", "m1", "m2", "m3"}
    assert log.stats.lost == 4


def run_cli(*args: str, cwd: Path, wrap: list[str] | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "pcp_osc", "run", "--source", "browser", "--generator", "off", "--quiet",
           "--control-port", "0", "--seconds", "1", *args]
    return subprocess.run((wrap or []) + cmd, capture_output=True, text=True, timeout=120, cwd=cwd)


def test_a_bad_log_path_or_file_is_a_clear_start_up_message(tmp_path):
    junk = tmp_path / "setlist.db"
    junk.write_text("Song 1\nSong 2\n" * 200)
    p = run_cli("--log", str(junk), cwd=tmp_path)
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr[-2000:]
    assert "show log" in p.stderr and "setlist.db" in p.stderr and "not an SQLite show log" in p.stderr
    assert junk.read_text().startswith("Song 1")  # the operator's file is untouched

    (tmp_path / "notes").write_text("a file, not a folder")
    p = run_cli("--log", str(tmp_path / "notes" / "show.db"), cwd=tmp_path)
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr[-2000:]
    assert "cannot make its folder" in p.stderr

    ro = tmp_path / "readonly"
    ro.mkdir()
    # Root ignores file modes: a read-only bind mount in a private mount namespace is really read-only.
    wrap = ["unshare", "-m", "--propagation", "private", "sh", "-c",
            f'mount --bind "{ro}" "{ro}" && mount -o remount,bind,ro "{ro}" && exec "$@"', "sh"]
    p = run_cli("--log", str(ro / "show.db"), cwd=tmp_path, wrap=wrap)
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr[-2000:]
    assert "cannot be written" in p.stderr and ("read-only" in p.stderr or "is the folder writable" in p.stderr), p.stderr


def test_what_cannot_be_written_by_the_end_of_the_show_goes_to_a_rescue_file(tmp_path):
    import json

    path = tmp_path / "show.db"
    log = ShowLog(path)
    lock = sqlite3.connect(path, timeout=0, isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")  # held past the end of the show
    try:
        for name in ("Song 1", "Encore", "노래 3"):
            log.log_marker(name)
        t = time.monotonic()
        log.close()  # retries for a few seconds, then rescues
        assert time.monotonic() - t < 30
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    rescue = tmp_path / "show.db.unsaved.jsonl"
    rows = [json.loads(line) for line in rescue.read_text(encoding="utf-8").splitlines()]
    assert [r["row"][1] for r in rows if r["kind"] == "marker"] == ["Song 1", "Encore", "노래 3"]
    assert log.stats.lost == 0
