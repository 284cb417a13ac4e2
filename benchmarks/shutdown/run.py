"""Shutdown benchmark: how fast, and how gracefully, does a server with N open SSE streams stop on SIGINT?

For each size N, repeat and app: start ``uvicorn MODULE:app --port P --log-level warning`` (one
process, its own session), wait until it answers, open N idle streams with ``client.py``, send
SIGINT to the server and time how long until its process is gone (a pidfd, so to the
millisecond); the client reports, per stream, whether a farewell event arrived and whether the
chunked body ended cleanly before EOF. An app still running ``--cap`` seconds after SIGINT is
SIGKILLed and recorded as "did not exit".

    .venv/bin/python benchmarks/shutdown/run.py --sizes 100,1000,10000 --repeats 3 --apps all --cap 15
    .venv/bin/python benchmarks/shutdown/run.py --quick

Writes results/shutdown.json (every run, raw), results/shutdown.md (table) and
results/shutdown.png (plot), and each server's output under results/logs/.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the harness, shared by the benchmarks

from contenders import APPS
from measure import ShutdownConfig, run_all
from report import replot, report

from harness.settings import from_args

RESULTS = Path(__file__).resolve().parent / "results"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="100,1000,10000")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--apps", default="all", help=f"comma-separated, or all: {','.join(APPS)}")
    p.add_argument(
        "--cap", type=float, default=15.0, help="SIGKILL a server still running this long after SIGINT"
    )
    p.add_argument(
        "--client-procs", type=int, default=1, help="load-client processes (streams split between them)"
    )
    p.add_argument(
        "--inflight", type=int, default=256, help="streams between connect and first chunk, in total"
    )
    p.add_argument("--quick", action="store_true", help="smoke run: sizes 100,1000, one repeat")
    p.add_argument("--out", default=str(RESULTS), help="results directory")
    p.add_argument(
        "--replot", action="store_true", help="only rewrite shutdown.md and shutdown.png from shutdown.json"
    )
    return p


def config(p: argparse.ArgumentParser, args: argparse.Namespace) -> ShutdownConfig:
    """The run's settings from the command line (``--quick`` first sets its small sizes)."""
    if args.quick:
        args.sizes, args.repeats = "100,1000", 1
    apps = list(APPS) if args.apps == "all" else args.apps.split(",")
    for a in apps:
        if a not in APPS:
            p.error(f"unknown app {a!r}; known: {', '.join(APPS)}")
    if "floor" not in apps:
        print("note: without the floor app there is no × floor column", flush=True)
    sizes = [int(s) for s in args.sizes.split(",")]
    return from_args(ShutdownConfig, args, sizes=sizes, apps=apps, out=Path(args.out).resolve())


def main() -> None:
    p = parser()
    args = p.parse_args()
    if args.replot:
        data = json.loads((Path(args.out) / "shutdown.json").read_text())
        print(replot(Path(args.out), data["meta"], data["summary"]))
        return
    cfg = config(p, args)
    cfg.logs.mkdir(parents=True, exist_ok=True)
    data = run_all(cfg)
    table = report(cfg.out, data)
    print()
    print(table)
    total = data["meta"]["total_seconds"]
    print(f"total {total:.0f} s; wrote {cfg.out / 'shutdown.json'}, shutdown.md, shutdown.png")


if __name__ == "__main__":
    main()
