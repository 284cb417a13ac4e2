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
import contextlib
import json
import os
import re
import select
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # runinfo, shared by the benchmarks

import runinfo  # noqa: E402
from runinfo import free_port, library_state, machine_info  # noqa: E402

APPS_DIR = HERE / "apps"
RESULTS = HERE / "results"
LOGS = RESULTS / "logs"
BIN = Path(sys.executable).parent
FAREWELLS = "shutdown,close,restart"  # for apps without a notice of their own: would count anything


@dataclass(frozen=True)
class App:
    key: str
    module: str
    path: str
    notice: str  # event names that count as the farewell notice
    label: str
    what: str
    framework_floor: str = "floor"  # the floor written in the same framework, to compare with


APPS: dict[str, App] = {
    a.key: a
    for a in [
        App(
            "floor",
            "floor_app",
            "/stream",
            "shutdown",
            "floor (raw ASGI)",
            "raw ASGI app: chained signal handler, one asyncio.Event, one pre-encoded farewell",
        ),
        App(
            "floor_fasthtml",
            "floor_fasthtml_app",
            "/stream",
            "shutdown",
            "floor in FastHTML",
            "FastHTML app whose stream response is the floor's: one asyncio.Event, one farewell",
            framework_floor="floor_fasthtml",
        ),
        App(
            "graceful_raw",
            "graceful_raw_app",
            "/stream",
            "shutdown",
            "graceful_sse (raw ASGI)",
            "graceful_sse EventStream(hub.subscribe(...)) as the ASGI app, no framework",
        ),
        App(
            "graceful_sse",
            "graceful_app",
            "/stream",
            "shutdown",
            "graceful_sse in FastHTML",
            "FastHTML app, graceful_sse Hub + EventStream (defaults: drain 3 s, exit bound 5 s)",
            framework_floor="floor_fasthtml",
        ),
        App(
            "seed",
            "seed_app",
            "/stream_updates",
            "close",
            "seed recipe",
            "FastHTML app, the design document's recipe: SSEBroadcastManager + patched "
            "Server.handle_exit with time.sleep(1.0), event: close",
            framework_floor="floor_fasthtml",
        ),
        App(
            "sse_starlette",
            "sse_starlette_app",
            "/stream",
            FAREWELLS,
            "sse-starlette",
            "Starlette app, sse_starlette.EventSourceResponse over an asyncio.Queue generator",
        ),
        App(
            "fasthtml",
            "fasthtml_plain_app",
            "/stream",
            FAREWELLS,
            "FastHTML EventStream",
            "FastHTML app, fasthtml EventStream over a generator that sleeps in a loop",
            framework_floor="floor_fasthtml",
        ),
    ]
}


def http_get(port: int, path: str, timeout: float = 2.0) -> tuple[int, bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    if b"chunked" in head.lower():
        out, rest = b"", body
        while rest:
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line, 16)
            if size == 0:
                break
            out, rest = out + rest[:size], rest[size + 2 :]
        body = out
    return status, body


def wait_until_answers(proc: subprocess.Popen[bytes], port: int, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited at start-up with {proc.returncode}")
        with contextlib.suppress(OSError, ValueError, IndexError):
            status, body = http_get(port, "/health")
            if status == 200:
                return dict(json.loads(body))
        time.sleep(0.05)
    raise RuntimeError("server did not answer in time")


class ClientProc:
    """One client.py process; its stdout lines are read on a thread."""

    def __init__(self, args: list[str], stderr_path: Path) -> None:
        self.stderr = stderr_path.open("wb")
        self.proc = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=self.stderr, cwd=HERE, start_new_session=True
        )
        self.ready: dict[str, Any] | None = None
        self.summary: dict[str, Any] | None = None
        self.ready_event = threading.Event()
        self.done_event = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.decode(errors="replace").strip()
            if line.startswith("ready "):
                self.ready = json.loads(line[6:])
                self.ready_event.set()
            elif line.startswith("summary "):
                self.summary = json.loads(line[8:])
        self.ready_event.set()
        self.done_event.set()

    def kill(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.stderr.close()


def wait_exit(pid: int, cap: float) -> tuple[float | None, Any]:
    """Seconds until ``pid`` is gone (None past ``cap``), and (rusage, exit code) once reaped."""
    t0 = time.monotonic()
    fd = os.pidfd_open(pid)
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        while True:
            left = cap - (time.monotonic() - t0)
            if left <= 0:
                return None, None
            if poller.poll(left * 1000):
                exited = time.monotonic() - t0
                _, status, rusage = os.wait4(pid, 0)
                return exited, (rusage, os.waitstatus_to_exitcode(status))
    finally:
        os.close(fd)


def server_cpu(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        tick = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / tick
    except (OSError, IndexError, ValueError):
        return None


def one_run(app: App, n: int, rep: int, cap: float, client_procs: int, inflight: int) -> dict[str, Any]:
    port = free_port()
    tag = f"{app.key}_n{n}_r{rep}"
    log_path = LOGS / f"{tag}.server.log"
    log = log_path.open("wb")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [str(BIN / "uvicorn"), f"{app.module}:app", "--port", str(port), "--log-level", "warning"]
    server = subprocess.Popen(
        cmd, cwd=APPS_DIR, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
    )
    run: dict[str, Any] = {
        "app": app.key,
        "n": n,
        "repeat": rep,
        "port": port,
        "server_cmd": " ".join(cmd[1:]),
        "server_log": os.path.relpath(log_path, HERE),
    }
    clients: list[ClientProc] = []
    try:
        t_start = time.monotonic()
        run["probe"] = wait_until_answers(server, port)
        run["server_start_s"] = round(time.monotonic() - t_start, 3)
        shares = [n // client_procs + (1 if i < n % client_procs else 0) for i in range(client_procs)]
        for i, share in enumerate(s for s in shares if s):
            cargs = [
                sys.executable,
                str(HERE / "client.py"),
                "--port",
                str(port),
                "--path",
                app.path,
                "-n",
                str(share),
                "--notice",
                app.notice,
                "--inflight",
                str(max(1, inflight // client_procs)),
                "--timeout",
                str(cap + 10),
            ]
            clients.append(ClientProc(cargs, LOGS / f"{tag}.client{i}.log"))
        t_ready0 = time.monotonic()
        for c in clients:
            c.ready_event.wait(180)
        run["connect_s"] = round(time.monotonic() - t_ready0, 3)
        readies = [c.ready or {} for c in clients]
        run["ready"] = readies
        ready_ok = sum(r.get("ok", 0) for r in readies)
        run["ready_ok"] = ready_ok
        if ready_ok < n:
            print(f"    warning: only {ready_ok}/{n} streams ready", flush=True)
        time.sleep(0.2)  # let the last first-chunks settle
        cpu_before = server_cpu(server.pid)
        t_sig = time.monotonic()
        os.kill(server.pid, signal.SIGINT)
        exit_s, reaped = wait_exit(server.pid, cap)
        if exit_s is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.pid, signal.SIGKILL)
            _, status, rusage = os.wait4(server.pid, 0)
            run["killed"] = True
            run["exit_s"] = None
        else:
            rusage, status = reaped
            run["killed"] = False
            run["exit_s"] = round(exit_s, 4)
        # 0: uvicorn's normal exit after SIGINT; -9: SIGKILLed by us; 1: e.g. graceful_sse's exit guard
        run["exit_code"] = status if exit_s is not None else os.waitstatus_to_exitcode(status)
        if rusage is not None and cpu_before is not None:
            run["server_cpu_shutdown_s"] = round(rusage.ru_utime + rusage.ru_stime - cpu_before, 3)
        for c in clients:
            c.done_event.wait(cap + 20)
        summaries = [c.summary for c in clients]
        if any(s is None for s in summaries):
            run["client_error"] = "a client printed no summary"
        summaries = [s for s in summaries if s]
        run["clients"] = summaries
        merge(run, summaries, t_sig, n)
    except Exception as e:  # record and go on with the next run
        run["error"] = repr(e)
        print(f"    error: {e!r}", flush=True)
    finally:
        if server.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        with contextlib.suppress(ProcessLookupError):  # anything left in the server's session
            os.killpg(server.pid, signal.SIGKILL)
        for c in clients:
            c.kill()
        log.close()
    run["log_excerpt"] = log_excerpt(log_path)
    return run


def merge(run: dict[str, Any], summaries: list[dict[str, Any]], t_sig: float, n: int) -> None:
    def total(key: str) -> int:
        return sum(int(s.get(key, 0)) for s in summaries)

    run["notified"] = total("notified")
    run["clean"] = total("clean")
    run["notified_and_clean"] = total("notified_and_clean")
    run["eof"] = total("eof")
    run["pct_notified"] = round(100.0 * run["notified"] / n, 2)
    run["pct_clean"] = round(100.0 * run["clean"] / n, 2)
    errors: dict[str, int] = {}
    names: dict[str, int] = {}
    for s in summaries:
        for k, v in s.get("errors", {}).items():
            errors[k] = errors.get(k, 0) + v
        for k, v in s.get("event_names", {}).items():
            names[k] = names.get(k, 0) + v
    run["client_errors"] = errors
    run["event_names"] = names

    def rel(key: str, stat: str, fn: Any) -> float | None:
        vals = [s[key][stat] for s in summaries if s.get(key)]
        return round(fn(vals) - t_sig, 4) if vals else None

    run["notice_s"] = {"first": rel("notice_time", "min", min), "last": rel("notice_time", "max", max)}
    run["clean_s"] = {"first": rel("clean_time", "min", min), "last": rel("clean_time", "max", max)}
    run["eof_s"] = {"first": rel("eof_time", "min", min), "last": rel("eof_time", "max", max)}
    cpu_drain = sum(s["cpu_after_ready"] for s in summaries)
    cpu_connect = sum(s["cpu_connect"] for s in summaries)
    wall_connect = max(s["wall_connect"] for s in summaries) if summaries else 0.0
    last_eof = run["eof_s"]["last"]
    run["client_cpu"] = {
        "processes": len(summaries),
        "connect_cpu_s": round(cpu_connect, 3),
        "connect_wall_s": round(wall_connect, 3),
        "shutdown_cpu_s": round(cpu_drain, 3),
        # from SIGINT to the last EOF; the client is idle between ready and SIGINT
        "shutdown_wall_s": last_eof,
        "shutdown_share": round(cpu_drain / last_eof, 3) if last_eof else None,
    }


LOG_KEEP = re.compile(
    r"graceful-sse:|Broadcasting|Sent shutdown|Closing \d+|ERROR|Cancel|Waiting|Traceback|exiting"
)


def log_excerpt(path: Path, limit: int = 25) -> dict[str, Any]:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return {}
    kept: list[str] = []
    counts: dict[str, int] = {}
    for line in lines:
        if LOG_KEEP.search(line):
            key = re.sub(r"\d+(\.\d+)?", "#", line)[:100]
            counts[key] = counts.get(key, 0) + 1
            if counts[key] <= 2 and len(kept) < limit:
                kept.append(line)
    return {"lines": len(lines), "kept": kept, "repeated": {k: v for k, v in counts.items() if v > 2}}


# -- aggregation and reports ---------------------------------------------------------------------


def aggregate(
    runs: list[dict[str, Any]], apps: list[str], sizes: list[int], cap: float
) -> list[dict[str, Any]]:
    rows = []
    floor_medians: dict[str, dict[int, float]] = {"floor": {}, "floor_fasthtml": {}}
    for floor_key, floor_median in floor_medians.items():
        for n in sizes:
            fr = [r for r in runs if r["app"] == floor_key and r["n"] == n and not r.get("error")]
            times = [r["exit_s"] for r in fr if r.get("exit_s") is not None and not r.get("killed")]
            if times:
                floor_median[n] = statistics.median(times)
    floor_median = floor_medians["floor"]
    for key in apps:
        for n in sizes:
            rs = [r for r in runs if r["app"] == key and r["n"] == n and not r.get("error")]
            if not rs:
                continue
            killed = sum(1 for r in rs if r.get("killed"))
            exit_times = [r["exit_s"] if r.get("exit_s") is not None else cap for r in rs]
            med = statistics.median(exit_times)
            shares = [
                r["client_cpu"]["shutdown_share"] for r in rs if r.get("client_cpu", {}).get("shutdown_share")
            ]
            rows.append(
                {
                    "app": key,
                    "label": APPS[key].label,
                    "n": n,
                    "repeats": len(rs),
                    "killed": killed,
                    "exit_s_median": round(med, 3),
                    "exit_s_all": [r.get("exit_s") for r in rs],
                    "exit_codes": [r.get("exit_code") for r in rs],
                    "exited_median": killed * 2 < len(rs),
                    "vs_floor": round(med / floor_median[n], 2)
                    if n in floor_median and floor_median[n] > 0
                    else None,
                    "vs_framework_floor": _ratio(med, floor_medians[APPS[key].framework_floor].get(n)),
                    "pct_notified_median": statistics.median(r["pct_notified"] for r in rs),
                    "pct_clean_median": statistics.median(r["pct_clean"] for r in rs),
                    "last_eof_s_median": median_of(rs, "eof_s", "last"),
                    "first_notice_s_median": median_of(rs, "notice_s", "first"),
                    "last_notice_s_median": median_of(rs, "notice_s", "last"),
                    "client_share_median": statistics.median(shares) if shares else None,
                    "server_cpu_shutdown_s_median": statistics.median(
                        [r["server_cpu_shutdown_s"] for r in rs if "server_cpu_shutdown_s" in r] or [0]
                    ),
                }
            )
    return rows


def _ratio(value: float, floor: float | None) -> float | None:
    return round(value / floor, 2) if floor else None


def median_of(rs: list[dict[str, Any]], key: str, stat: str) -> float | None:
    vals = [r[key][stat] for r in rs if r.get(key, {}).get(stat) is not None]
    return round(statistics.median(vals), 4) if vals else None


def fmt_exit(row: dict[str, Any], cap: float) -> str:
    if row["killed"] == row["repeats"]:
        return f"did not exit (killed at {cap:g} s)"
    s = f"{row['exit_s_median']:.2f}"
    if row["killed"]:
        s += f" ({row['killed']}/{row['repeats']} killed at {cap:g} s)"
    return s


def write_markdown(path: Path, rows: list[dict[str, Any]], meta: dict[str, Any], cap: float) -> str:
    out = [
        "| App | Open streams | Exit time after SIGINT (s) | × raw floor | × floor in its framework "
        "| Clients notified | Clean end of response |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        dead = r["killed"] == r["repeats"]
        ratio = "—" if dead or not r["vs_floor"] else f"{r['vs_floor']:.2f}×"
        fw = "—" if dead or not r.get("vs_framework_floor") else f"{r['vs_framework_floor']:.2f}×"
        out.append(
            f"| {r['label']} | {r['n']:,} | {fmt_exit(r, cap)} | {ratio} | {fw} | "
            f"{r['pct_notified_median']:.0f}% | {r['pct_clean_median']:.0f}% |"
        )
    m = meta
    legend = (
        f"Median of {m['repeats']} runs per cell, all in one run of `benchmarks/shutdown/run.py` on a "
        f"{m['machine']['cpu_count']}-core machine ({m['machine']['cpu_model']}), "
        f"Python {m['machine']['python']}, "
        f"uvicorn {m['versions'].get('uvicorn')} with {m['server']['loop']} and {m['server']['http']}; "
        "each app is served by `uvicorn MODULE:app --log-level warning` as one process. "
        "*Exit time* is from sending SIGINT to the server process being gone; an app still running "
        f'{cap:g} s after SIGINT is SIGKILLed ("did not exit"). *× raw floor* divides by the exit time of a '
        "minimal raw-ASGI app that only chains a signal handler and writes one farewell per stream; "
        "*× floor in its framework* divides by the same logic written as a route of the app's framework "
        "(for the FastHTML apps, a FastHTML route with FastHTML's default middleware), which separates "
        "what a library costs from what its framework's request stack costs. "
        "*Clients notified* is the share of streams that received the app's farewell event "
        "(graceful_sse and the floor: `event: shutdown`; the seed recipe: `event: close`; sse-starlette and "
        "FastHTML's EventStream send none); *clean end* is the share whose chunked body ended with its "
        "`0\\r\\n\\r\\n` terminator before the connection closed, rather than being cut off. "
        "All streams are idle; the load client is a separate uvloop process reading raw sockets."
    )
    text = "\n".join(out) + "\n\n" + legend + "\n"
    path.write_text(text)
    return text


def write_plot(path: Path, rows: list[dict[str, Any]], apps: list[str], sizes: list[int], cap: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 5.2), gridspec_kw={"width_ratios": [1.15, 1]})
    markers = {
        "floor": "s",
        "floor_fasthtml": "s",
        "graceful_raw": "o",
        "graceful_sse": "o",
        "seed": "^",
        "sse_starlette": "D",
        "fasthtml": "v",
    }
    colors = {key: f"C{i}" for i, key in enumerate(APPS)}
    for key in apps:
        rs = sorted((r for r in rows if r["app"] == key), key=lambda r: r["n"])
        if not rs:
            continue
        xs = [r["n"] for r in rs]
        ys = [r["exit_s_median"] for r in rs]
        ax1.plot(xs, ys, marker=markers.get(key, "o"), label=APPS[key].label, color=colors[key])
        for r in rs:
            if r["killed"] and r["killed"] * 2 >= r["repeats"]:
                ax1.scatter([r["n"]], [r["exit_s_median"]], marker="x", s=110, color="black", zorder=5)
    ax1.axhline(cap, color="grey", ls=":", lw=1)
    ax1.text(
        sizes[-1],
        cap * 0.78,
        f"× = did not exit: SIGKILLed at the {cap:g} s cap",
        fontsize=8,
        color="dimgrey",
        ha="right",
    )
    ax1.set_xscale("log")
    ax1.set_xticks(sizes)
    ax1.set_xticklabels([f"{s:,}" for s in sizes])
    ax1.set_xlabel("open SSE streams at SIGINT (log scale)")
    ax1.set_yscale("log")
    ax1.set_ylabel("SIGINT → server process gone (s, median)")
    ticks = [t for t in (0.1, 0.2, 0.5, 1, 2, 5, 10, 20) if t <= cap * 1.3]
    ax1.set_yticks(ticks)
    ax1.set_yticklabels([f"{t:g}" for t in ticks])
    ax1.minorticks_off()
    ax1.set_title("Exit time")
    ax1.grid(True, which="major", alpha=0.3)
    ax1.legend(fontsize=8, loc="center left")

    # % notified: grouped bars per N (lines would hide each other at 0% and 100%)
    shown = [k for k in apps if any(r["app"] == k for r in rows)]
    width = 0.8 / max(len(shown), 1)
    for i, key in enumerate(shown):
        by_n = {r["n"]: r for r in rows if r["app"] == key}
        xs = [j + (i - (len(shown) - 1) / 2) * width for j in range(len(sizes))]
        vals = [by_n[n]["pct_notified_median"] if n in by_n else 0 for n in sizes]
        ax2.bar(xs, vals, width * 0.92, label=APPS[key].label, color=colors[key])
        for x, v in zip(xs, vals, strict=True):
            ax2.text(x, v + 1.5, f"{v:.0f}", ha="center", va="bottom", fontsize=7)
    ax2.set_xticks(range(len(sizes)))
    ax2.set_xticklabels([f"{s:,}" for s in sizes])
    ax2.set_xlabel("open SSE streams at SIGINT")
    ax2.set_ylabel("clients that got a farewell event (%, median)")
    ax2.set_ylim(0, 135)
    ax2.set_yticks(range(0, 101, 20))
    ax2.legend(fontsize=7, loc="upper center", ncol=3)
    ax2.set_title("Clients notified")
    ax2.grid(True, axis="y", alpha=0.3)
    fig.suptitle("uvicorn, one process, N idle SSE streams, one SIGINT", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def versions() -> dict[str, str | None]:
    return runinfo.versions(
        [
            "graceful-sse",
            "uvicorn",
            "uvloop",
            "httptools",
            "h11",
            "starlette",
            "python-fasthtml",
            "sse-starlette",
            "cjm-fasthtml-sse",
            "anyio",
        ]
    )


def main() -> None:
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
    args = p.parse_args()
    if args.replot:
        data = json.loads((Path(args.out) / "shutdown.json").read_text())
        meta, rows = data["meta"], data["summary"]
        print(write_markdown(Path(args.out) / "shutdown.md", rows, meta, meta["cap"]))
        write_plot(Path(args.out) / "shutdown.png", rows, meta["apps"], meta["sizes"], meta["cap"])
        return
    if args.quick:
        args.sizes, args.repeats = "100,1000", 1
    sizes = [int(s) for s in args.sizes.split(",")]
    apps = list(APPS) if args.apps == "all" else args.apps.split(",")
    for a in apps:
        if a not in APPS:
            p.error(f"unknown app {a!r}; known: {', '.join(APPS)}")
    if "floor" not in apps:
        print("note: without the floor app there is no × floor column", flush=True)
    global LOGS
    out = Path(args.out).resolve()
    LOGS = out / "logs"
    LOGS.mkdir(parents=True, exist_ok=True)

    subprocess.run([sys.executable, str(HERE / "client.py"), "--selftest"], check=True)
    lib_before = library_state()
    t_all = time.monotonic()
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    runs: list[dict[str, Any]] = []
    for n in sizes:
        for rep in range(args.repeats):
            for key in apps:
                print(
                    f"[{time.monotonic() - t_all:7.1f}s] {key:14s} N={n:<6} repeat {rep + 1}/{args.repeats}",
                    flush=True,
                )
                r = one_run(APPS[key], n, rep, args.cap, args.client_procs, args.inflight)
                runs.append(r)
                ex = "killed" if r.get("killed") else f"{r.get('exit_s')} s"
                print(
                    f"    exit {ex} (code {r.get('exit_code')}); notified {r.get('pct_notified')}%, "
                    f"clean {r.get('pct_clean')}%, "
                    f"last EOF {r.get('eof_s', {}).get('last')} s, client share "
                    f"{r.get('client_cpu', {}).get('shutdown_share')}",
                    flush=True,
                )
                time.sleep(0.5)
    total_s = time.monotonic() - t_all

    lib_after = library_state()
    if lib_after != lib_before:
        print(f"warning: src/graceful_sse changed during the run: {lib_before} -> {lib_after}", flush=True)
    probe = next((r["probe"] for r in runs if r.get("probe")), {})
    meta = {
        "started": started,
        "total_seconds": round(total_s, 1),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "sizes": sizes,
        "repeats": args.repeats,
        "apps": apps,
        "cap": args.cap,
        "client_procs": args.client_procs,
        "inflight": args.inflight,
        "machine": machine_info(),
        "versions": versions(),
        "graceful_sse_source": {
            "before": lib_before,
            "after": lib_after,
            "changed_during_run": lib_after != lib_before,
        },
        "server": {
            "loop": probe.get("loop"),
            "http": probe.get("http"),
            "per_app": {r["app"]: r["probe"] for r in runs if r.get("probe")},
        },
    }
    rows = aggregate(runs, apps, sizes, args.cap)
    (out / "shutdown.json").write_text(json.dumps({"meta": meta, "summary": rows, "runs": runs}, indent=1))
    table = write_markdown(out / "shutdown.md", rows, meta, args.cap)
    write_plot(out / "shutdown.png", rows, apps, sizes, args.cap)
    print()
    print(table)
    print(f"total {total_s:.0f} s; wrote {out / 'shutdown.json'}, shutdown.md, shutdown.png")


if __name__ == "__main__":
    main()
