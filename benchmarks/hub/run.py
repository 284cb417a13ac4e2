"""Hub benchmark: fan-out latency, throughput, memory per connection and one slow client, for
graceful_sse and the alternatives, each as a ratio to a raw-ASGI floor, all in one run.

For each size N, repeat and app (apps alternate, so they share the machine's conditions): start
``uvicorn MODULE:app --loop uvloop --http httptools --log-level warning`` (one process), measure
its RSS (after a gc), connect N idle streams from ``client.py`` processes, measure RSS again
(memory per connection), publish ``--publishes`` events, each ``--spacing`` s after every
stream had the previous one, and time each until the last stream has it (fan-out latency),
then, at the throughput sizes, publish back to back for ``--tput-seconds`` and count the
deliveries that arrive in that window. Then, for each ``--topic-sizes`` N, repeat and app with
topics, the one-event-per-topic scenario: N streams, stream i on topic ``u<i>``, and
``--topic-rounds`` rounds of one publish to each topic (``/publish_each``, a loop inside the app),
each timed from the first publish call until every stream has its own event. Separately, for
each repeat and app, the slow-client scenario: ``--slow-n`` - 1 reading streams, events of
``--slow-size`` bytes at ``--slow-rate`` per second, first with only those, then with one more
connection that sends its request and never reads; publisher latency, the readers' fan-out
latency and the server's RSS over time, in both phases.

The row "graceful_sse in FastHTML, Redis, 2 workers" runs the same app as graceful_sse with
``SSE_BROKER_URL`` pointing at a private ``redis-server`` (started on a free port for the run, or
``--redis URL``) under ``uvicorn --workers 2``: the kernel spreads the streams over both workers,
a publish goes to one of them and reaches the other's streams through Redis. Its CPU is summed
over both workers and its memory is both workers' RSS; it is not in the slow-client scenario
(which samples one process). The row "graceful_sse in FastHTML, Granian" serves the same app with
``granian --interface asgi`` (one worker, its default loop).

    .venv/bin/python benchmarks/hub/run.py            # the full run (about 20 minutes)
    .venv/bin/python benchmarks/hub/run.py --quick    # smoke run (about 6 minutes)
    .venv/bin/python benchmarks/hub/run.py --replot   # table and plots again from results/hub.json

Writes results/hub.json (every run, raw), results/hub.md (tables) and results/hub.png,
results/hub_slow.png (plots), and each server's and client's output under results/logs/.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the harness, shared by the benchmarks

from config import HubConfig
from contenders import APPS
from measure import run_all
from quiet import CpuLedger
from report import report

from harness.runinfo import raise_nofile
from harness.servers import PrivateRedis
from harness.settings import from_args

RESULTS = Path(__file__).resolve().parent / "results"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="1000,5000,10000", help="idle streams per latency/memory run")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--apps", default="all", help=f"comma-separated, or all: {','.join(APPS)}")
    p.add_argument(
        "--scenario-apps",
        default="same",
        help="apps of the topic and slow-client scenarios, comma-separated, or same (those of --apps);"
        " the test suite's smoke run names one, so that every app runs once and each scenario too",
    )
    p.add_argument("--publishes", type=int, default=20, help="events per latency measurement")
    p.add_argument("--spacing", type=float, default=0.2, help="seconds between those publishes")
    p.add_argument("--size", type=int, default=64, help="event data bytes for latency and throughput")
    p.add_argument("--tput-sizes", default="max", help="sizes with a throughput phase ('max': the largest)")
    p.add_argument("--tput-seconds", type=float, default=3.0)
    p.add_argument(
        "--slow-n", type=int, default=1000, help="streams in the slow-client runs, the slow one included"
    )
    p.add_argument(
        "--slow-rate", type=float, default=25.0, help="publishes per second in the slow-client runs"
    )
    p.add_argument("--slow-size", type=int, default=16384, help="event data bytes in the slow-client runs")
    p.add_argument("--slow-seconds", default="3,22", help="readers only, then with the slow client (s)")
    p.add_argument(
        "--topic-sizes",
        default="1000",
        help="streams in the topic scenario, each on a topic of its own ('none': skip it)",
    )
    p.add_argument("--topic-rounds", type=int, default=5, help="rounds of one publish per topic, per run")
    p.add_argument("--no-slow", action="store_true", help="skip the slow-client scenario")
    p.add_argument("--only-slow", action="store_true", help="only the slow-client scenario")
    p.add_argument("--only-topics", action="store_true", help="only the topic scenario")
    p.add_argument("--client-procs", type=int, default=2, help="load-client processes (streams split)")
    p.add_argument("--inflight", type=int, default=256, help="streams between connect and first bytes")
    p.add_argument(
        "--max-other",
        type=float,
        default=0.05,
        help="measure a run again when other processes used more than this share of the machine's CPU",
    )
    p.add_argument("--retries", type=int, default=3, help="at most this many times per run")
    p.add_argument(
        "--quiet-wait", type=float, default=900, help="seconds to wait for a quiet machine, at most"
    )
    p.add_argument("--quick", action="store_true", help="smoke run: small sizes, one repeat, short phases")
    p.add_argument(
        "--redis",
        default="private",
        help="for the Redis row: 'private' (a redis-server of our own on a free port), or a redis:// URL",
    )
    p.add_argument("--out", default=str(RESULTS), help="results directory")
    p.add_argument("--replot", action="store_true", help="rewrite hub.md and the plots from hub.json")
    return p


def config(p: argparse.ArgumentParser, args: argparse.Namespace) -> HubConfig:
    """The run's settings from the command line (``--quick`` first sets its small sizes)."""
    if args.quick:
        args.sizes, args.repeats, args.publishes, args.tput_seconds = "200,1000", 1, 10, 2.0
        args.slow_n, args.slow_seconds, args.topic_rounds = 200, "2,6", 3
    sizes = [int(s) for s in args.sizes.split(",")]
    apps = list(APPS) if args.apps == "all" else args.apps.split(",")
    scenario_apps = apps if args.scenario_apps == "same" else args.scenario_apps.split(",")
    for a in apps + scenario_apps:
        if a not in APPS:
            p.error(f"unknown app {a!r}; known: {', '.join(APPS)}")
    return from_args(
        HubConfig,
        args,
        sizes=sizes,
        apps=apps,
        scenario_apps=scenario_apps,
        tput_sizes=[max(sizes)] if args.tput_sizes == "max" else [int(s) for s in args.tput_sizes.split(",")],
        slow_seconds=[float(s) for s in args.slow_seconds.split(",")],
        topic_sizes=[] if args.topic_sizes == "none" else [int(s) for s in args.topic_sizes.split(",")],
        out=Path(args.out).resolve(),
    )


def measure(cfg: HubConfig, redis: str) -> None:
    """Every run, with a private redis-server for the Redis row if it is in; then the report."""
    cfg.logs.mkdir(parents=True, exist_ok=True)
    raise_nofile(max(cfg.sizes + cfg.topic_sizes) + 1000)
    ledger = CpuLedger()
    redis_server = None
    if any(APPS[a].redis for a in cfg.apps):
        if redis == "private":
            redis_server = PrivateRedis(cfg.logs / "redis-server.log")
            ledger.live.add(redis_server.pid)
            cfg = replace(cfg, redis_url=redis_server.url)
        else:
            cfg = replace(cfg, redis_url=redis)
    try:
        data = run_all(cfg, ledger)
    finally:
        if redis_server is not None:
            ledger.live.discard(redis_server.pid)
            redis_server.stop()
    table = report(cfg.out, data)
    print()
    print(table)
    total = data["meta"]["total_seconds"]
    print(f"total {total:.0f} s; wrote {cfg.out / 'hub.json'}, hub.md, hub.png, hub_slow.png")


def main() -> None:
    p = parser()
    args = p.parse_args()
    if args.replot:
        out = Path(args.out).resolve()
        print(report(out, json.loads((out / "hub.json").read_text())))
        return
    measure(config(p, args), args.redis)


if __name__ == "__main__":
    main()
