"""Soak and churn: many clients connecting, reading and leaving for minutes, then Ctrl+C mid-churn.

Starts ``app.py`` under plain uvicorn, and client processes (``client.py``) whose slots connect,
read for a random time, hang up and come back, while the app publishes events. Every
``--sample`` seconds it reads the server's ``/stats`` (resident memory, asyncio tasks, open file
descriptors, open streams). At the end, with the churn still going, it freezes the clients and
sends SIGINT to the server's process group, as a terminal's Ctrl+C does: the process must be gone
within the bound and every stream open at that moment must get the ``shutdown`` notice.

Writes ``results/soak-LABEL.json`` (every sample, every count), ``results/soak-LABEL.png`` (memory,
tasks and descriptors over time) and ``results/soak.md`` (one row per result file). Not in CI.

    .venv/bin/python benchmarks/soak/run.py --quick                         # 200 clients, 30 s
    .venv/bin/python benchmarks/soak/run.py --clients 2000 --duration 120
    .venv/bin/python benchmarks/soak/run.py                                 # 10,000 clients, 10 min
"""

from __future__ import annotations

import argparse
import resource
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the harness, shared by the benchmarks

from measure import SoakConfig, soak
from report import report

from harness.settings import from_args

RESULTS = Path(__file__).resolve().parent / "results"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clients", type=int, default=10_000, help="concurrent churning clients")
    p.add_argument("--duration", type=float, default=600.0, help="seconds of churn before SIGINT")
    p.add_argument("--quick", action="store_true", help="200 clients, 30 s, a sample a second")
    p.add_argument("--sample", type=float, default=5.0, help="seconds between /stats samples")
    p.add_argument("--rate", type=float, default=2.0, help="events published per second")
    p.add_argument("--hold-min", type=float, default=1.0, help="shortest time a client stays")
    p.add_argument("--hold-max", type=float, default=30.0, help="longest time a client stays")
    p.add_argument("--ramp", type=float, default=None, help="seconds to connect every client (default: 20)")
    p.add_argument("--exit-cap", type=float, default=15.0, help="SIGKILL after this long")
    p.add_argument("--label", default=None, help="result file name (default: quick or CLIENTSxSECONDS)")
    p.add_argument("--out", default=str(RESULTS), help="results directory (soak.md lists its result files)")
    return p


def config(args: argparse.Namespace) -> SoakConfig:
    """The run's settings from the command line (``--quick`` first sets its small sizes)."""
    if args.quick:
        args.clients, args.duration, args.sample = 200, 30.0, 1.0
    return from_args(
        SoakConfig,
        args,
        ramp=args.ramp if args.ramp is not None else min(20.0, args.duration / 4),
        label=args.label or ("quick" if args.quick else f"{args.clients}x{args.duration:.0f}s"),
        out=Path(args.out).resolve(),
    )


def main() -> None:
    cfg = config(parser().parse_args())
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the server and clients inherit it
    result = soak(cfg)
    print(report(cfg.out, result))
    c = result["clients"]
    print(f"exit after SIGINT: {result['exit_seconds']}; drain: {result['drain']}; clients: {c}")


if __name__ == "__main__":
    main()
