"""`pcp-osc report SHOW.db --out REPORT.html [--csv DIR]`: the post-show report."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="write the post-show report (HTML) from a show log",
        description="Turn a show log into one self-contained HTML page: emotion shares over the show with the "
        "markers, cue colours, time per emotion per song, faces, interventions and backgrounds.",
    )
    p.add_argument("show", help="the show log (.db) written by `pcp-osc run --log`")
    p.add_argument("--out", help="HTML file to write, or a folder to write SHOW.html into (default: next to the log, SHOW.html)")
    p.add_argument("--csv", metavar="DIR", help="also write the tables as CSV files into DIR")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..report import build_report
    from ..showlog import ShowLogError

    show = Path(args.show)
    out = Path(args.out) if args.out else show.with_suffix(".html")
    if out.is_dir():  # --out FOLDER: the report goes inside it, named after the log
        out = out / show.with_suffix(".html").name
    try:
        made = build_report(show, out, args.csv)
    except ShowLogError as e:
        print(f"pcp-osc report: {e}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as e:
        if e.name and e.name.startswith("matplotlib"):
            print("pcp-osc report needs matplotlib: pip install 'pcp-osc[report]'", file=sys.stderr)
            return 2
        raise
    except OSError as e:  # the report or a CSV file cannot be written there
        where = str(e.filename or out).removesuffix(".part")
        csv = bool(args.csv) and where.startswith(str(Path(args.csv)))
        what, flag = (f"the CSV tables to {args.csv!r}", "--csv") if csv else (f"the report to {str(out)!r}", "--out")
        detail = (e.strerror or str(e)) + ("" if where in (str(out), str(Path(args.csv or "."))) else f" ({where})")
        print(f"pcp-osc report: cannot write {what}: {detail}; choose another {flag} in a folder you can write to",
              file=sys.stderr)
        return 1
    s = made["show"]
    print(f"report: {made['html']} ({made['bytes'] / 1e6:.1f} MB) -- {len(s.cues)} cues, {len(s.markers)} markers, "
          f"{len(s.live_t)} live samples, made in {sum(made['timings'].values()):.1f} s")
    for f in made["csv"]:
        print(f"  csv: {f}")
    if not s.clean_end:
        print("  note: the log ends without a clean stop (killed daemon); everything acknowledged is in the report")
    return 0
