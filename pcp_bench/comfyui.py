"""ComfyUI backgrounds: round trip per background (cue -> picture written by the file sink)
through one and two servers, and pcp-osc's own share of it.

    python -m pcp_bench.comfyui --start 2                     # starts ComfyUI servers from .cache/comfyui
    python -m pcp_bench.comfyui --servers http://gpu1:8188,http://gpu2:8188 --workflow my-look.json
    pcp-osc bench --backgrounds --comfyui --start 2           # the same

Per server count and size: ``--count`` cues one after another (each waits for its picture on
the sink), after two warm-up cues, then a stream where a new cue is ready whenever a server is
free (backgrounds per second). pcp-osc's overhead = round trip - the server's part (POST /prompt
to the end of the prompt as the WebSocket tells it); it holds the init image (procedural render,
PNG encode, upload), fetching and decoding the result, scaling it, and the hand-over to the sink.
The default workflow is examples/comfyui/colour-wash.json (model-free: init image washed in the
cue colour), so the server's part is small and pcp-osc's own cost shows. On a CPU-only machine the
servers share its cores: two servers cannot double the throughput there as two GPU machines do.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMFY_DIR = ROOT / ".cache" / "comfyui"
DEFAULT_WORKFLOW = ROOT / "examples" / "comfyui" / "colour-wash.json"
EMOTIONS = ("joy", "anxiety", "anger", "sadness", "neutral")


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def start_servers(n: int, workdir: Path) -> list[tuple[str, subprocess.Popen]]:
    """n ComfyUI servers (loopback, CPU) from the venv tools/make_comfyui_venv.sh makes."""
    import socket
    import urllib.request

    main = COMFY_DIR / "ComfyUI" / "main.py"
    python = COMFY_DIR / "venv" / "bin" / "python"
    if not main.is_file() or not python.exists():
        raise SystemExit("no ComfyUI here: run tools/make_comfyui_venv.sh first (or give --servers)")
    out = []
    for i in range(n):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        d = workdir / f"server{i}"
        for sub in ("input", "output", "temp"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        proc = subprocess.Popen(
            [str(python), str(main), "--cpu", "--listen", "127.0.0.1", "--port", str(port), "--input-directory", str(d / "input"),
             "--output-directory", str(d / "output"), "--temp-directory", str(d / "temp"), "--disable-auto-launch"],
            cwd=str(main.parent), stdout=subprocess.DEVNULL, stderr=open(d / "server.log", "wb"), start_new_session=True,
        )
        out.append((f"http://127.0.0.1:{port}", proc))
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    for url, proc in out:
        deadline = time.monotonic() + 180
        while True:
            try:
                opener.open(url + "/system_stats", timeout=1).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"ComfyUI at {url} did not start; see {workdir}")
                time.sleep(0.2)
    return out


class _Bench:
    """A live ComfyPool whose backgrounds go to a real file sink; times cue -> file written."""

    def __init__(self, servers: list[str], workflow: str, size: tuple[int, int], folder: Path, init_format: str = "jpg") -> None:
        from pcp_osc.backgrounds.comfyui import make_worker
        from pcp_osc.config import config_from_dict
        from pcp_osc.sinks import FileSink

        cfg = config_from_dict({
            "generator": {"kind": "comfyui", "width": size[0], "height": size[1]},
            "comfyui": {"servers": servers, "workflow": workflow, "timeout_s": 600.0, "init_format": init_format},
        })
        self.on_sink: dict[int, float] = {}  # background id -> when the sink had written it
        self.bgs: dict[int, object] = {}
        self.cond = threading.Condition()
        self.sink = FileSink("bench", folder=folder)
        self.sink.on_published = self._published
        self.sink.start()
        self.pool = make_worker(cfg.comfyui, cfg.generator, cfg.palette, on_background=self._on_background)
        self.pool.start()
        if not self.pool.wait_ready(120) or not all(self._wait_state(s) for s in self.pool.servers):
            raise SystemExit(f"a ComfyUI server is not ready: {self.pool.status()['servers']}")
        self.palette = cfg.palette

    def _wait_state(self, s) -> bool:
        deadline = time.monotonic() + 120
        while s.state != "ready" and time.monotonic() < deadline:
            time.sleep(0.05)
        return s.state == "ready"

    def _on_background(self, bg) -> None:
        with self.cond:
            self.bgs[bg.id] = bg
        self.sink.send(bg)

    def _published(self, sink, bg) -> None:  # on the sink's thread, once the file is written
        with self.cond:
            self.on_sink[bg.id] = time.monotonic()
            self.cond.notify_all()

    def one(self, i: int) -> dict:
        """One cue; waits for its picture on the sink."""
        from pcp_osc.backgrounds import cue_for

        cue = cue_for(EMOTIONS[i % 5], 0.5 + 0.1 * (i % 5), palette_cfg=self.palette, cue_id=i)
        with self.cond:
            seen = set(self.on_sink)
        t0 = time.monotonic()
        self.pool.submit(cue)
        with self.cond:
            while not (set(self.on_sink) - seen):
                if not self.cond.wait(600):
                    raise SystemExit("no background in 600 s")
            bg_id = max(set(self.on_sink) - seen)
            bg = self.bgs[bg_id]
            t = self.on_sink[bg_id]
        if bg.note:
            raise SystemExit(f"the procedural generator stood in: {bg.note}")
        tm = bg.info["timings_ms"]
        total = (t - t0) * 1000
        return {"total_ms": total, "server_ms": tm["server_ms"], "overhead_ms": total - tm["server_ms"],
                "prepare_ms": tm.get("prepare_ms", 0.0), "upload_ms": tm.get("upload_ms", 0.0),
                "fetch_decode_ms": tm.get("fetch_ms", 0.0) + tm.get("decode_ms", 0.0),
                "sink_ms": (t - t0) * 1000 - tm["total_ms"]}

    def stream(self, seconds: float, start: int) -> float:
        """Backgrounds per second when a cue is ready whenever a server is free."""
        from pcp_osc.backgrounds import cue_for

        with self.cond:
            n0 = len(self.on_sink)
        t0 = time.monotonic()
        i = start
        while time.monotonic() - t0 < seconds:
            if any(s.job is None and s.state == "ready" for s in self.pool.servers) and self.pool._pending is None:
                self.pool.submit(cue_for(EMOTIONS[i % 5], 0.7, palette_cfg=self.palette, cue_id=i))
                i += 1
            time.sleep(0.005)
        self.pool.wait_idle(600)
        time.sleep(0.2)
        with self.cond:
            n = len(self.on_sink) - n0
        return n / (time.monotonic() - t0)

    def close(self) -> None:
        self.pool.stop()
        self.sink.stop()


def _med(rows: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pcp_bench.comfyui", description=__doc__.split("\n\n")[0])
    ap.add_argument("--servers", default="", help="comma list of ComfyUI servers (default: start --start servers here)")
    ap.add_argument("--start", type=int, default=2, help="servers to start from .cache/comfyui when --servers is not given (default 2)")
    ap.add_argument("--workflow", default=str(DEFAULT_WORKFLOW), help="API-format workflow (default: examples/comfyui/colour-wash.json)")
    ap.add_argument("--sizes", default="512x512,1920x1080", help="comma list of WIDTHxHEIGHT")
    ap.add_argument("--count", type=int, default=8, help="cues one after another per case (default 8)")
    ap.add_argument("--stream-s", type=float, default=15.0, help="seconds of the back-to-back stream per case (0: skip)")
    ap.add_argument("--init-format", choices=("jpg", "png"), default="jpg", help="comfyui.init_format (default jpg)")
    args = ap.parse_args(argv)
    sizes = []
    for text in args.sizes.split(","):
        w, _, h = text.lower().partition("x")
        sizes.append((int(w), int(h)))
    tmp = Path(tempfile.mkdtemp(prefix="pcp-bench-comfyui-"))
    procs = []
    if args.servers:
        urls = [u.strip() for u in args.servers.split(",") if u.strip()]
    else:
        _say(f"[bench] starting {args.start} ComfyUI server(s) on the CPU ...")
        started = start_servers(args.start, tmp)
        procs = [p for _, p in started]
        urls = [u for u, _ in started]
    counts = sorted({1, len(urls)})
    results = []
    try:
        for n in counts:
            for size in sizes:
                _say(f"[bench] {n} server(s), {size[0]}x{size[1]}: warm-up")
                bench = _Bench(urls[:n], args.workflow, size, tmp / f"sink-{n}-{size[0]}", args.init_format)
                try:
                    for i in range(2):
                        bench.one(i)
                    rows = [bench.one(i) for i in range(2, 2 + args.count)]
                    rate = bench.stream(args.stream_s, 1000) if args.stream_s > 0 else float("nan")
                finally:
                    bench.close()
                results.append((n, size, rows, rate))
                _say(f"[bench]   round trip {_med(rows, 'total_ms'):.0f} ms, pcp-osc {_med(rows, 'overhead_ms'):.0f} ms, {rate:.2f} bg/s")
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
    print(f"ComfyUI backgrounds: {Path(args.workflow).name}, init image {args.init_format}, medians of {args.count} cues "
          f"one after another (ms; cue -> picture written by the file sink)")
    print(f"{'servers':>7} {'size':>10} {'round trip':>10} {'server':>8} {'pcp-osc':>8} {'= init':>7} {'upload':>7} "
          f"{'fetch+dec':>9} {'sink':>6} {'stream bg/s':>11}")
    for n, size, rows, rate in results:
        print(f"{n:>7} {size[0]:>5}x{size[1]:<4} {_med(rows, 'total_ms'):>10.0f} {_med(rows, 'server_ms'):>8.0f} "
              f"{_med(rows, 'overhead_ms'):>8.0f} {_med(rows, 'prepare_ms'):>7.0f} {_med(rows, 'upload_ms'):>7.0f} "
              f"{_med(rows, 'fetch_decode_ms'):>9.0f} {_med(rows, 'sink_ms'):>6.0f} {rate:>11.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
