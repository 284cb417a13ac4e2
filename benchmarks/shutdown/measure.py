"""The shutdown benchmark's measurements: for each size, repeat and app, one server with N idle
streams, one SIGINT, and the time until its process is gone; the clients' verdicts per stream
(farewell, clean end). The raw results, as ``shutdown.json`` keeps them."""

from __future__ import annotations

import os
import re
import select
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from contenders import APPS, DISTRIBUTIONS, App

from harness.clients import ClientProcess, note_ready, selftest, shares
from harness.procs import kill_group, process_cpu
from harness.runinfo import RunRecord
from harness.servers import GRANIAN_OPTIONS, AppServer
from harness.settings import UNRECORDED, recorded

HERE = Path(__file__).resolve().parent
APPS_DIR = HERE / "apps"
CLIENT = HERE / "client.py"
# Each server's options: its own defaults otherwise (uvicorn picks uvloop and httptools when they
# are installed; Granian its default loop and its own HTTP).
SERVER_OPTIONS = {"uvicorn": ["--log-level", "warning"], "granian": GRANIAN_OPTIONS}
LOG_KEEP = re.compile(
    r"graceful-sse:|Broadcasting|Sent shutdown|Closing \d+|ERROR|Cancel|Waiting|Traceback|exiting"
)


@dataclass(frozen=True)
class ShutdownConfig:
    sizes: list[int]
    repeats: int
    apps: list[str]
    cap: float  # SIGKILL a server still running this long after SIGINT
    client_procs: int  # load-client processes (streams split between them)
    inflight: int  # streams between connect and first chunk, in total
    out: Path = field(metadata=UNRECORDED)  # results directory

    @property
    def logs(self) -> Path:
        return self.out / "logs"

    def settings(self) -> dict[str, Any]:
        """The settings as the results file's ``meta`` records them."""
        return recorded(self)


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


def start_clients(
    clients: list[ClientProcess], app: App, port: int, n: int, cfg: ShutdownConfig, tag: str
) -> None:
    """``client.py`` processes holding ``n`` streams between them, reading until EOF (added to
    ``clients`` one by one, so that the caller can kill those started if one fails)."""
    for i, share in enumerate(shares(n, cfg.client_procs)):
        argv = [sys.executable, str(CLIENT), "--port", str(port), "--path", app.path, "-n", str(share)]
        argv += ["--notice", app.notice, "--inflight", str(max(1, cfg.inflight // cfg.client_procs))]
        argv += ["--timeout", str(cfg.cap + 10)]
        clients.append(ClientProcess(argv, cfg.logs / f"{tag}.client{i}.log", cwd=HERE))


def sigint_and_time(server: AppServer, run: dict[str, Any], cap: float) -> None:
    """SIGINT to the server's process group, as Ctrl+C in its terminal sends it (one process for
    uvicorn; Granian's supervisor and its worker), then the exit time (or SIGKILL at ``cap``),
    exit code and CPU of the shutdown."""
    # every process of the server (Granian: its worker too, which its supervisor reaps, so that
    # the supervisor's rusage below holds it)
    before = [process_cpu(pid) for pid in server.pids()]
    cpu_before = None if None in before else sum(x or 0.0 for x in before)
    os.killpg(server.pid, signal.SIGINT)  # the server leads a session of its own
    exit_s, reaped = wait_exit(server.pid, cap)
    if exit_s is None:
        kill_group(server.pid)
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


def measure(
    server: AppServer,
    app: App,
    n: int,
    cfg: ShutdownConfig,
    run: dict[str, Any],
    clients: list[ClientProcess],
) -> None:
    """Start, connect the streams, SIGINT, and the clients' verdicts, into ``run``."""
    t_start = time.monotonic()
    run["probe"] = server.wait_ready()
    run["server_start_s"] = round(time.monotonic() - t_start, 3)
    start_clients(clients, app, server.port, n, cfg, f"{app.key}_n{n}_r{run['repeat']}")
    t_ready0 = time.monotonic()
    note_ready(run, [c.expect("ready", 180) or {} for c in clients], t_ready0, n)
    time.sleep(0.2)  # let the last first-chunks settle
    t_sig = time.monotonic()
    sigint_and_time(server, run, cfg.cap)
    summaries = [c.expect("summary", cfg.cap + 20) for c in clients]
    if any(s is None for s in summaries):
        run["client_error"] = "a client printed no summary"
    present = [s for s in summaries if s]
    run["clients"] = present
    merge(run, present, t_sig, n)


def one_run(app: App, n: int, rep: int, cfg: ShutdownConfig) -> dict[str, Any]:
    """One server, ``n`` streams, one SIGINT: the run's raw record (an error is recorded, not raised)."""
    tag = f"{app.key}_n{n}_r{rep}"
    log = cfg.logs / f"{tag}.server.log"
    options = SERVER_OPTIONS[app.server]
    server = AppServer(APPS_DIR, app.module, log, options, keep_alive=False, server=app.server)
    run: dict[str, Any] = {
        "app": app.key,
        "n": n,
        "repeat": rep,
        "port": server.port,
        "server_cmd": " ".join(server.cmd[1:]),
        "server_log": os.path.relpath(server.log_path, HERE),
    }
    clients: list[ClientProcess] = []
    try:
        measure(server, app, n, cfg, run, clients)
    except Exception as e:  # record and go on with the next run
        run["error"] = repr(e)
        print(f"    error: {e!r}", flush=True)
    finally:
        server.stop()
        for c in clients:
            c.kill()
    run["log_excerpt"] = log_excerpt(server.log_path)
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


def progress_line(r: dict[str, Any]) -> str:
    ex = "killed" if r.get("killed") else f"{r.get('exit_s')} s"
    return (
        f"    exit {ex} (code {r.get('exit_code')}); notified {r.get('pct_notified')}%, "
        f"clean {r.get('pct_clean')}%, "
        f"last EOF {r.get('eof_s', {}).get('last')} s, client share "
        f"{r.get('client_cpu', {}).get('shutdown_share')}"
    )


def run_all(cfg: ShutdownConfig) -> dict[str, Any]:
    """Every run of the benchmark; the raw results with their ``meta`` (no summary yet)."""
    selftest(CLIENT)
    record = RunRecord()
    runs: list[dict[str, Any]] = []
    for n in cfg.sizes:
        for rep in range(cfg.repeats):
            for key in cfg.apps:
                print(f"{record.stamp()} {key:14s} N={n:<6} repeat {rep + 1}/{cfg.repeats}", flush=True)
                r = one_run(APPS[key], n, rep, cfg)
                runs.append(r)
                print(progress_line(r), flush=True)
                time.sleep(0.5)
    probes = {r["app"]: r["probe"] for r in runs if r.get("probe")}
    return {"meta": record.meta(cfg.settings(), DISTRIBUTIONS, probes), "runs": runs}
