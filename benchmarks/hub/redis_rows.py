"""Fan-out latency and throughput through Redis across 2 workers, next to the in-memory hub.

One run measures, for each size, the raw-ASGI floor, graceful_sse in FastHTML on the in-memory
hub (one process) and the same app with ``SSE_BROKER_URL=redis://…`` under
``uvicorn --workers 2`` (the streams spread over both workers; a publish goes to one of them and
reaches the other's clients through Redis). It reuses ``run.py``'s load clients and phases.

    .venv/bin/python benchmarks/hub/redis_rows.py                      # 1,000 / 5,000 / 10,000, 3 repeats
    .venv/bin/python benchmarks/hub/redis_rows.py --sizes 1000 --repeats 1

Needs a Redis on ``--redis`` (default ``redis://127.0.0.1:6379/0``); writes
results/hub_redis.md, hub_redis.json and hub_redis.png. Memory per connection is not measured
here (RSS of two workers); run.py measures it for one process.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

import run
from run import APPS, App

ROWS = ("floor", "graceful_sse", "graceful_redis")
LABELS = {
    "floor": "floor (raw ASGI, 1 process)",
    "graceful_sse": "graceful_sse, memory, 1 process",
    "graceful_redis": "graceful_sse, Redis, 2 workers",
}


class WorkersServer(run.Server):
    """run.py's server, with an environment of its own; CPU summed over every worker."""

    extra_env: dict[str, str] = {}

    def __init__(self, app: App, tag: str) -> None:
        saved = dict(os.environ)
        os.environ.update(self.extra_env)
        try:
            super().__init__(app, tag)
        finally:
            os.environ.clear()
            os.environ.update(saved)

    def cpu(self) -> float:
        import psutil

        procs = [psutil.Process(self.proc.pid)]
        procs += procs[0].children(recursive=True)
        total = 0.0
        for proc in procs:
            try:
                times = proc.cpu_times()
            except psutil.Error:
                continue
            total += times.user + times.system
        return total


def measure(key: str, n: int, rep: int, args: argparse.Namespace) -> dict[str, Any]:
    app = APPS["graceful_sse" if key == "graceful_redis" else key]
    WorkersServer.extra_env = {}
    if key == "graceful_redis":
        # uvicorn reads its --workers default from WEB_CONCURRENCY; the hub its backend from
        # SSE_BROKER_URL.
        WorkersServer.extra_env = {
            "WEB_CONCURRENCY": "2",
            "SSE_BROKER_URL": f"{args.redis}?prefix=bench{uuid.uuid4().hex[:6]}",
        }
    run.Server = WorkersServer  # type: ignore[misc]
    result = run.one_run(_app_for(key, app), n, rep, args)
    result["row"] = key
    return result


def _app_for(key: str, app: App) -> App:
    return App(key, app.module, LABELS[key], app.what)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="1000,5000,10000")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    p.add_argument("--publishes", type=int, default=20)
    p.add_argument("--spacing", type=float, default=0.2)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--tput-seconds", type=float, default=3.0)
    p.add_argument("--client-procs", type=int, default=2)
    p.add_argument("--inflight", type=int, default=256)
    args = p.parse_args()
    args.sizes = [int(s) for s in args.sizes.split(",")]
    args.tput_sizes = [max(args.sizes)]
    out = run.RESULTS
    run.LOGS = out / "logs"
    run.LOGS.mkdir(parents=True, exist_ok=True)
    run.raise_nofile(max(args.sizes) + 1000)
    runs: list[dict[str, Any]] = []
    for n in args.sizes:
        for rep in range(args.repeats):
            for key in ROWS:
                print(f"{time.strftime('%H:%M:%S')} {key} N={n} repeat {rep + 1}/{args.repeats}", flush=True)
                runs.append(measure(key, n, rep, args))
    (out / "hub_redis.json").write_text(json.dumps({"args": vars(args), "runs": runs}, indent=1))
    table = write_table(out, runs, args)
    write_plot(out, runs, args)
    print(table)


def _cell(runs: list[dict[str, Any]], key: str, n: int, phase: str, field: str) -> float | None:
    values = [r[phase][field] for r in runs if r["row"] == key and r["n"] == n and r.get(phase)]
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def write_table(out: Path, runs: list[dict[str, Any]], args: argparse.Namespace) -> str:
    lines = [
        "| Hub | Streams | fan-out p50 (ms) | x floor | p99 (ms) | x floor | deliveries/s | x floor |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n in args.sizes:
        floor = {f: _cell(runs, "floor", n, "latency", f) for f in ("p50_ms", "p99_ms")}
        floor_tput = _cell(runs, "floor", n, "throughput", "deliveries_per_s")
        for key in ROWS:
            p50, p99 = _cell(runs, key, n, "latency", "p50_ms"), _cell(runs, key, n, "latency", "p99_ms")
            tput = _cell(runs, key, n, "throughput", "deliveries_per_s")
            lines.append(
                f"| {LABELS[key]} | {n:,} | {_f(p50)} | {_x(p50, floor['p50_ms'])} | {_f(p99)} "
                f"| {_x(p99, floor['p99_ms'])} | {_f(tput, ',.0f')} | {_x(tput, floor_tput)} |"
            )
    lines += [
        "",
        f"Median of {args.repeats} runs per cell, one run of `benchmarks/hub/redis_rows.py`; "
        f"{args.publishes} publishes {args.spacing * 1000:.0f} ms apart, {args.size}-byte events; "
        f"throughput at {max(args.sizes):,} streams for {args.tput_seconds:g} s. "
        "The Redis row runs `uvicorn --workers 2` with the streams spread over both workers; a "
        "publish goes to one of them and reaches the other's clients through Redis; the server "
        "and Redis share the machine's 2 cores with the load clients.",
    ]
    text = "\n".join(lines) + "\n"
    (out / "hub_redis.md").write_text(text)
    return text


def write_plot(out: Path, runs: list[dict[str, Any]], args: argparse.Namespace) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for key in ROWS:
        xs = [n for n in args.sizes if _cell(runs, key, n, "latency", "p50_ms") is not None]
        ax.plot(xs, [_cell(runs, key, n, "latency", "p50_ms") for n in xs], marker="o", label=LABELS[key])
    ax.set_xscale("log")
    ax.set_xlabel("idle streams")
    ax.set_ylabel("fan-out latency p50 (ms)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "hub_redis.png", dpi=110)


def _f(x: float | None, spec: str = ".1f") -> str:
    return "—" if x is None else format(x, spec)


def _x(x: float | None, floor: float | None) -> str:
    return "—" if x is None or not floor else f"{x / floor:.2f}x"


if __name__ == "__main__":
    main()
