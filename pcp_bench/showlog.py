"""Figures for the operator's view: show-log write cost, report time, dashboard latency.

    python -m pcp_bench.showlog [--only log,report,web] [--report-minutes 180]

Prints: the cost on the cue path of log_cue/log_live (enqueue only), the durable
write cost per cue when every cue is flushed alone (one fsync each, the worst
case) and per live sample when samples are batched, for synchronous FULL and
NORMAL; the report's time for a simulated 3-hour show; the cue-to-page latency of
the dashboard measured in headless Chromium. Absolute times depend on the disk
and on what else runs: compare within one run.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from pcp_osc.showlog import ShowLog
from .showsim import simulated_mood, write_show
from pcp_osc.types import Cue
from .showsim import colour_for


def _cue(i: int) -> Cue:
    mood = simulated_mood(np.random.default_rng(i), i % 5, float(i), 8.0)
    return Cue(i, mood, colour_for(mood.emotion, mood.confidence), 4, 15.0, time.time(), time.monotonic())


def bench_log(folder: Path, n_cues: int = 200, n_live: int = 5000) -> None:
    print("show log (SQLite, WAL):")
    for sync in ("FULL", "NORMAL"):
        log = ShowLog(folder / f"bench-{sync}.db", live_sample_hz=1e6, synchronous=sync)
        cues = [_cue(i) for i in range(n_cues)]
        enqueue, durable = [], []
        for c in cues:
            t = time.perf_counter()
            log.log_cue(c)
            t1 = time.perf_counter()
            log.flush()
            durable.append(time.perf_counter() - t1)
            enqueue.append(t1 - t)
        mood = cues[0].mood
        t = time.perf_counter()
        wall = time.time()
        for i in range(n_live):
            log.log_live(mood, wall + i * 1e-3)
        t_enq = time.perf_counter() - t
        log.flush()
        t_all = time.perf_counter() - t
        log.close()
        print(f"  synchronous={sync:6s} cue: enqueue {statistics.median(enqueue) * 1e6:6.1f} us on the cue path, "
              f"durable alone {statistics.median(durable) * 1e3:6.2f} ms (median of {n_cues}, one commit each)")
        print(f"  synchronous={sync:6s} live sample: enqueue {t_enq / n_live * 1e6:6.1f} us, "
              f"durable in batches {t_all / n_live * 1e6:6.1f} us per sample ({n_live} samples)")


def bench_report(folder: Path, minutes: float) -> None:
    from pcp_osc.report import build_report

    db = folder / "three-hours.db"
    t = time.perf_counter()
    log = ShowLog(db)
    counts = write_show(log, minutes)
    log.close()
    print(f"report: simulated {minutes:.0f}-minute show ({counts['cues']} cues, {counts['live']} live samples, "
          f"{counts['backgrounds']} backgrounds) written in {time.perf_counter() - t:.1f} s")
    made = build_report(db, folder / "three-hours.html", folder / "csv")
    tm = made["timings"]
    print(f"  report made in {sum(tm.values()):.2f} s (read {tm['load_s']:.2f} s, plots {tm['plots_s']:.2f} s, "
          f"html+csv {tm['write_s']:.2f} s); {made['bytes'] / 1e6:.2f} MB HTML")


def bench_web(n_cues: int = 40) -> None:
    import socket

    from playwright.sync_api import sync_playwright

    from pcp_osc.config import Config
    from pcp_osc.daemon import Daemon
    from pcp_osc.web import WebDashboard

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    cfg = Config()
    cfg.osc.control_port = 0
    cfg.osc.target = "127.0.0.1:9"
    cfg.web.bind = f"127.0.0.1:{port}"
    cfg.osc.max_control_cues_per_s = 100.0  # every override below makes its cue (the default collapses past 4 a second)
    daemon = Daemon(cfg, source="demo", perception=False)
    dash = daemon.parts.add(WebDashboard(daemon, cfg.web))
    daemon.start()
    args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--no-first-run", "--disable-sync"]
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=args)
            page = browser.new_page()
            page.goto(dash.url_with_token())  # the address printed at start-up: the token comes with it
            page.wait_for_function("window.pcpState && window.pcpState.events && window.pcpState.events.readyState === 1")
            page.evaluate("window.pcpState.latencies = []")
            emotions = ["joy", "sadness", "anger", "anxiety"]
            for i in range(n_cues):
                daemon.control("/pcp/override", [emotions[i % 4]], sender="bench")  # each makes a cue at once
                time.sleep(0.1)
            page.wait_for_function(f"window.pcpState.latencies.length >= {n_cues}", timeout=10_000)
            lat = page.evaluate("window.pcpState.latencies")
            browser.close()
    finally:
        daemon.stop()
    lat = sorted(lat)
    print(f"dashboard: cue -> painted on the page (Chromium, SSE), {len(lat)} cues: median {statistics.median(lat):.1f} ms, "
          f"p95 {lat[int(0.95 * (len(lat) - 1))]:.1f} ms, max {lat[-1]:.1f} ms")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pcp_bench.showlog", description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="log,report,web", help="comma list of: log, report, web")
    ap.add_argument("--report-minutes", type=float, default=180.0)
    args = ap.parse_args(argv)
    parts = {p.strip() for p in args.only.split(",")}
    unknown = parts - {"log", "report", "web"}
    if unknown:
        ap.error(f"--only {args.only!r}: unknown {', '.join(sorted(unknown))}; allowed log, report, web")
    with tempfile.TemporaryDirectory(prefix="pcp-bench-") as d:
        folder = Path(d)
        if "log" in parts:
            bench_log(folder)
        if "report" in parts:
            bench_report(folder, args.report_minutes)
        if "web" in parts:
            bench_web()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
