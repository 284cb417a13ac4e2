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
import contextlib
import json
import math
import os
import platform
import re
import resource
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from importlib import metadata
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))  # runinfo, shared by the benchmarks

from runinfo import free_port  # noqa: E402

RESULTS = HERE / "results"
BIN = Path(sys.executable).parent
SLOTS_PER_PROCESS = 2500
DRAIN_LINE = re.compile(
    r"drain took ([\d.]+) s: (\d+) of (\d+) stream\(s\) took the notice, (\d+) had gone, "
    r"(\d+) did not take it; (\d+) opened during the drain"
)
DRAIN_FIELDS = ("seconds", "took", "told", "gone", "missed", "late")


def stats(port: int, timeout: float = 5.0) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats", timeout=timeout) as r:
            return json.loads(r.read())  # type: ignore[no-any-return]
    except (OSError, ValueError):
        return None


class Clients:
    """The client processes, each with its stdout read on a thread."""

    def __init__(self, args: argparse.Namespace, port: int, logs: Path) -> None:
        procs = max(1, math.ceil(args.clients / SLOTS_PER_PROCESS))
        shares = [args.clients // procs + (1 if i < args.clients % procs else 0) for i in range(procs)]
        self.summaries: list[dict[str, Any]] = []
        self.started = threading.Semaphore(0)
        self.procs = []
        for i, slots in enumerate(shares):
            argv = [sys.executable, str(HERE / "client.py"), "--port", str(port), "--slots", str(slots)]
            argv += ["--hold-min", str(args.hold_min), "--hold-max", str(args.hold_max)]
            argv += ["--ramp", str(args.ramp), "--seed", str(i + 1)]
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=(logs / f"client-{i}.log").open("wb"),
                text=True,
            )
            self.procs.append(proc)
            threading.Thread(target=self._read, args=(proc,), daemon=True).start()
        for _ in self.procs:
            self.started.acquire(timeout=30)

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("started"):
                self.started.release()
            elif line.startswith("summary "):
                self.summaries.append(json.loads(line[len("summary ") :]))

    def freeze(self) -> None:
        for proc in self.procs:
            with contextlib.suppress(OSError):
                assert proc.stdin is not None
                proc.stdin.write("freeze\n")
                proc.stdin.flush()

    def wait(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for proc in self.procs:
            try:
                proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                proc.kill()

    def totals(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for summary in self.summaries:
            for key, value in summary.items():
                if isinstance(value, int):
                    out[key] = out.get(key, 0) + value
        return out


def soak(args: argparse.Namespace) -> dict[str, Any]:
    port = free_port()
    logs = RESULTS / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    server_log = logs / f"server-{args.label}.log"
    env = {**os.environ, "SOAK_RATE": str(args.rate), "PYTHONUNBUFFERED": "1"}
    server = subprocess.Popen(
        [str(BIN / "uvicorn"), "app:app", "--port", str(port), "--log-level", "warning", "--backlog", "4096"],
        cwd=HERE,
        env=env,
        stdout=server_log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        return _soak_with(server, port, server_log, args)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGKILL)


def _soak_with(
    server: subprocess.Popen[bytes], port: int, server_log: Path, args: argparse.Namespace
) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while stats(port, 1) is None:
        if time.monotonic() > deadline or server.poll() is not None:
            raise RuntimeError("the soak app did not start:\n" + server_log.read_text()[-2000:])
        time.sleep(0.2)
    clients = Clients(args, port, RESULTS / "logs")
    start = time.monotonic()
    samples = []
    print(f"{args.clients} clients churning for {args.duration:.0f} s", flush=True)
    while (now := time.monotonic()) - start < args.duration:
        sample = stats(port, timeout=30)  # a saturated server answers late: a late sample is a sample
        if sample is not None:
            samples.append({"t": now - start, **sample})
            print(
                f"  t={now - start:6.1f}s streams={sample['streams']:6d} tasks={sample['tasks']:6d} "
                f"fds={sample['fds']:6d} rss={sample['rss'] / 1e6:7.1f} MB",
                flush=True,
            )
        time.sleep(max(0.0, args.sample - (time.monotonic() - now)))
    before = stats(port) or {}
    clients.freeze()
    t_sig = time.monotonic()
    os.killpg(server.pid, signal.SIGINT)  # Ctrl+C, while slots are still connecting and leaving
    exit_seconds = _wait_exit(server, args.exit_cap)
    clients.wait(timeout=60)
    log = server_log.read_text(errors="replace")
    drain = DRAIN_LINE.search(log)
    totals = clients.totals()
    return {
        "label": args.label,
        "args": vars(args),
        "machine": machine(),
        "samples": samples,
        "sigint_at": t_sig - start,
        "before_sigint": before,
        "exit_seconds": exit_seconds,
        "drain": dict(zip(DRAIN_FIELDS, map(float, drain.groups()), strict=True)) if drain else None,
        "clients": totals,
        "log_errors": [line for line in log.splitlines() if "ERROR" in line or "Traceback" in line][:20],
    }


def _wait_exit(server: subprocess.Popen[bytes], cap: float) -> float | None:
    start = time.monotonic()
    try:
        server.wait(timeout=cap)
    except subprocess.TimeoutExpired:
        return None
    return time.monotonic() - start


def machine() -> dict[str, Any]:
    versions = {}
    for name in ("graceful-sse", "uvicorn", "python-fasthtml", "starlette", "uvloop", "httptools"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    return {
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "nofile": resource.getrlimit(resource.RLIMIT_NOFILE),
        "versions": versions,
    }


# -- reporting ------------------------------------------------------------------------------------


def at(samples: list[dict[str, Any]], fraction: float) -> dict[str, Any]:
    """The sample nearest to ``fraction`` of the churn."""
    end = samples[-1]["t"]
    return min(samples, key=lambda s: abs(s["t"] - fraction * end))


def row(result: dict[str, Any]) -> str:
    samples, c, args = result["samples"], result["clients"], result["args"]
    warm, end = at(samples, 0.25), samples[-1]
    peak_rss = max(s["rss"] for s in samples)
    open_at = c.get("open at SIGINT", 0)
    exit_s = result["exit_seconds"]

    def pct(key: str) -> str:
        return f"{100 * c.get(key, 0) / open_at:.1f}%" if open_at else "—"

    def spare(s: dict[str, Any], key: str, per: int) -> int:
        return int(s[key] - per * s["streams"])

    cells = [
        result["label"],
        f"{args['clients']:,}",
        f"{args['duration']:.0f} s",
        f"{c.get('streams', 0):,}",
        f"{c.get('events', 0):,}",
        f"{warm['rss'] / 1e6:.0f} → {end['rss'] / 1e6:.0f} (peak {peak_rss / 1e6:.0f})",
        f"{spare(warm, 'tasks', 2)} → {spare(end, 'tasks', 2)}",
        f"{spare(warm, 'fds', 1)} → {spare(end, 'fds', 1)}",
        f"{exit_s:.2f} s" if exit_s is not None else "did not exit",
        f"{open_at:,}",
        pct("notified"),
        pct("clean end"),
        f"{sum(v for k, v in c.items() if k.startswith('connect ') and 'SIGINT' not in k):,}",
        f"{c.get('no opening', 0):,}",  # hung up before the server answered
    ]
    return "| " + " | ".join(cells) + " |"


def write_markdown() -> str:
    results = [json.loads(p.read_text()) for p in sorted(RESULTS.glob("soak-*.json"))]
    lines = [
        "| Run | Clients | Churn | Streams opened | Events received | RSS MB, ¼ → end (peak) "
        "| Tasks − 2 × streams, ¼ → end | FDs − streams, ¼ → end | Exit after SIGINT "
        "| Open at SIGINT | Got `shutdown` | Clean end | Failed connects | No answer in time |",
        "|---|---:|---:|---:|---:|---|---|---|---:|---:|---:|---:|---:|---:|",
        *(row(r) for r in results),
    ]
    text = "\n".join(lines) + "\n"
    (RESULTS / "soak.md").write_text(text)
    return text


def write_plot(result: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = result["samples"]
    ts = [s["t"] for s in samples]
    fig, axes = plt.subplots(3, 1, figsize=(10, 9), sharex=True)
    axes[0].plot(ts, [s["rss"] / 1e6 for s in samples], color="C0")
    axes[0].set_ylabel("RSS (MB)")
    axes[1].plot(ts, [s["tasks"] for s in samples], color="C1", label="asyncio tasks")
    axes[1].plot(ts, [s["streams"] for s in samples], color="C2", label="open streams")
    axes[1].legend(fontsize=8)
    axes[1].set_ylabel("count")
    axes[2].plot(ts, [s["fds"] for s in samples], color="C3", label="open file descriptors")
    axes[2].plot(ts, [s["streams"] for s in samples], color="C2", ls=":", label="open streams")
    axes[2].legend(fontsize=8)
    axes[2].set_ylabel("count")
    axes[2].set_xlabel("seconds")
    for ax in axes:
        ax.axvline(result["sigint_at"], color="grey", ls="--")
        ax.grid(alpha=0.3)
    exit_s = result["exit_seconds"]
    gone = f"gone {exit_s:.2f} s later" if exit_s is not None else "did not exit"
    args = result["args"]
    title = f"Soak: {args['clients']:,} churning clients, {args['rate']:g} events/s"
    fig.suptitle(f"{title}; SIGINT at the dashed line ({gone})", fontsize=11)
    fig.tight_layout()
    fig.savefig(RESULTS / f"soak-{result['label']}.png", dpi=110)
    plt.close(fig)


def main() -> None:
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
    args = p.parse_args()
    if args.quick:
        args.clients, args.duration, args.sample = 200, 30.0, 1.0
    args.ramp = args.ramp if args.ramp is not None else min(20.0, args.duration / 4)
    args.label = args.label or ("quick" if args.quick else f"{args.clients}x{args.duration:.0f}s")
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the server and clients inherit it
    result = soak(args)
    (RESULTS / f"soak-{args.label}.json").write_text(json.dumps(result, indent=1))
    write_plot(result)
    print(write_markdown())
    c = result["clients"]
    print(f"exit after SIGINT: {result['exit_seconds']}; drain: {result['drain']}; clients: {c}")


if __name__ == "__main__":
    main()
