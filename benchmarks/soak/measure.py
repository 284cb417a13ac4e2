"""The soak benchmark's measurement: the app under churn for ``--duration`` seconds, its /stats
sampled, then Ctrl+C (SIGINT to its process group) while the clients are frozen; the raw result,
as ``soak-LABEL.json`` keeps it."""

from __future__ import annotations

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
import time
import urllib.request
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from harness.clients import ClientProcess, shares
from harness.servers import AppServer
from harness.settings import UNRECORDED, recorded

HERE = Path(__file__).resolve().parent
SLOTS_PER_PROCESS = 2500
DRAIN_LINE = re.compile(
    r"drain took ([\d.]+) s: (\d+) of (\d+) stream\(s\) took the notice, (\d+) had gone, "
    r"(\d+) did not take it; (\d+) opened during the drain"
)
DRAIN_FIELDS = ("seconds", "took", "told", "gone", "missed", "late")


@dataclass(frozen=True)
class SoakConfig:
    clients: int  # concurrent churning clients
    duration: float  # seconds of churn before SIGINT
    quick: bool
    sample: float  # seconds between /stats samples
    rate: float  # events published per second
    hold_min: float  # shortest time a client stays
    hold_max: float  # longest time a client stays
    ramp: float  # seconds to connect every client
    exit_cap: float  # SIGKILL after this long
    label: str  # result file name
    out: Path = field(metadata=UNRECORDED)  # results directory

    def record(self) -> dict[str, Any]:
        """The settings as the result file records them (``args``)."""
        return recorded(self)


def stats(port: int, timeout: float = 5.0) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats", timeout=timeout) as r:
            return json.loads(r.read())  # type: ignore[no-any-return]
    except (OSError, ValueError):
        return None


class Churners:
    """The churning client processes (``client.py``, up to 2,500 clients each)."""

    def __init__(self, cfg: SoakConfig, port: int, logs: Path) -> None:
        procs = max(1, math.ceil(cfg.clients / SLOTS_PER_PROCESS))
        self.procs = []
        for i, slots in enumerate(shares(cfg.clients, procs)):
            argv = [sys.executable, str(HERE / "client.py"), "--port", str(port), "--slots", str(slots)]
            argv += ["--hold-min", str(cfg.hold_min), "--hold-max", str(cfg.hold_max)]
            argv += ["--ramp", str(cfg.ramp), "--seed", str(i + 1)]
            # in the runner's process group, as clients started from a terminal would be
            self.procs.append(ClientProcess(argv, logs / f"client-{i}.log", cwd=HERE, new_session=False))
        for proc in self.procs:
            proc.expect("started", 30)

    def freeze(self) -> None:
        for proc in self.procs:
            with contextlib.suppress(OSError):
                proc.command("freeze")

    def wait(self, timeout: float) -> dict[str, int]:
        """Wait for every client to end (kill those still running after ``timeout`` seconds); the
        counts of their summaries, added up."""
        deadline = time.monotonic() + timeout
        for proc in self.procs:
            if not proc.wait(max(deadline - time.monotonic(), 0.1)):
                proc.kill()
        summaries = [proc.expect("summary", 5.0) for proc in self.procs]
        for proc in self.procs:
            proc.kill()
        out: dict[str, int] = {}
        for summary in filter(None, summaries):
            for key, value in summary.items():
                if isinstance(value, int):
                    out[key] = out.get(key, 0) + value
        return out


def soak(cfg: SoakConfig) -> dict[str, Any]:
    logs = cfg.out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    options = ["--log-level", "warning", "--backlog", "4096"]
    server = AppServer(HERE, "app", logs / f"server-{cfg.label}.log", options, {"SOAK_RATE": str(cfg.rate)})
    try:
        return _soak_with(server, cfg, logs)
    finally:
        server.stop()


def wait_started(server: AppServer) -> None:
    deadline = time.monotonic() + 30
    while stats(server.port, 1) is None:
        if time.monotonic() > deadline or server.proc.poll() is not None:
            raise RuntimeError("the soak app did not start:\n" + server.log_path.read_text()[-2000:])
        time.sleep(0.2)


def churn(port: int, cfg: SoakConfig, start: float) -> list[dict[str, Any]]:
    """Sample /stats every ``cfg.sample`` seconds until ``cfg.duration`` seconds after ``start``."""
    samples = []
    while (now := time.monotonic()) - start < cfg.duration:
        sample = stats(port, timeout=30)  # a saturated server answers late: a late sample is a sample
        if sample is not None:
            samples.append({"t": now - start, **sample})
            print(
                f"  t={now - start:6.1f}s streams={sample['streams']:6d} tasks={sample['tasks']:6d} "
                f"fds={sample['fds']:6d} rss={sample['rss'] / 1e6:7.1f} MB",
                flush=True,
            )
        time.sleep(max(0.0, cfg.sample - (time.monotonic() - now)))
    return samples


def _soak_with(server: AppServer, cfg: SoakConfig, logs: Path) -> dict[str, Any]:
    wait_started(server)
    clients = Churners(cfg, server.port, logs)
    start = time.monotonic()
    print(f"{cfg.clients} clients churning for {cfg.duration:.0f} s", flush=True)
    samples = churn(server.port, cfg, start)
    before = stats(server.port) or {}
    clients.freeze()
    t_sig = time.monotonic()
    os.killpg(server.pid, signal.SIGINT)  # Ctrl+C, while slots are still connecting and leaving
    exit_seconds = _wait_exit(server, cfg.exit_cap)
    totals = clients.wait(timeout=60)
    log = server.log_path.read_text(errors="replace")
    drain = DRAIN_LINE.search(log)
    return {
        "label": cfg.label,
        "args": cfg.record(),
        "machine": machine(),
        "samples": samples,
        "sigint_at": t_sig - start,
        "before_sigint": before,
        "exit_seconds": exit_seconds,
        "drain": dict(zip(DRAIN_FIELDS, map(float, drain.groups()), strict=True)) if drain else None,
        "clients": totals,
        "log_errors": [line for line in log.splitlines() if "ERROR" in line or "Traceback" in line][:20],
    }


def _wait_exit(server: AppServer, cap: float) -> float | None:
    start = time.monotonic()
    try:
        server.proc.wait(timeout=cap)
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
