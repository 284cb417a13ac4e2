"""What every benchmark runner needs besides its measurement: free ports, enough descriptors,
and a record of what ran (the machine, package versions, and graceful_sse's source, which may be
edited while a long run goes on).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata as md
import os
import platform
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]  # the repository


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def raise_nofile(need: int) -> None:
    """Raise this process's soft descriptor limit to the hard one (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else max(soft, need)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    if want < need:
        print(f"warning: RLIMIT_NOFILE hard limit {hard} is below the {need} descriptors needed", flush=True)


def library_state() -> dict[str, Any]:
    """A fingerprint of src/graceful_sse and the git commit, to take before and after a run."""
    src = ROOT / "src" / "graceful_sse"
    digest = hashlib.sha256()
    for f in sorted(src.rglob("*.py")):
        digest.update(f.relative_to(src).as_posix().encode() + b"\0" + f.read_bytes())
    state: dict[str, Any] = {"src_sha256": digest.hexdigest()[:16]}
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        git = ["git", "-C", str(ROOT)]
        state["git_head"] = subprocess.run(
            [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
        state["uncommitted_src_files"] = len(
            subprocess.run(
                [*git, "status", "--porcelain", "src"], capture_output=True, text=True, timeout=10
            ).stdout.splitlines()
        )
    return state


def machine_info() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "nofile": resource.getrlimit(resource.RLIMIT_NOFILE),
        "somaxconn": Path("/proc/sys/net/core/somaxconn").read_text().strip(),
        "tcp_rmem": Path("/proc/sys/net/ipv4/tcp_rmem").read_text().split(),
        "tcp_wmem": Path("/proc/sys/net/ipv4/tcp_wmem").read_text().split(),
    }


def versions(dists: Iterable[str]) -> dict[str, str | None]:
    """Each distribution's installed version, ``None`` if it is not installed."""
    out: dict[str, str | None] = {}
    for dist in dists:
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            out[dist] = None
    return out


class RunRecord:
    """The part of a results file's ``meta`` that every runner writes the same way: when and how
    it ran, on what, with which versions, and whether graceful_sse's source changed meanwhile.

    Made when the run starts (it takes the source's fingerprint and the clock then);
    :meth:`meta` at the end."""

    def __init__(self) -> None:
        self.started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        self.t0 = time.monotonic()
        self.source_before = library_state()

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def stamp(self) -> str:
        """The seconds since the start, for the progress lines."""
        return f"[{self.elapsed():7.1f}s]"

    def meta(
        self,
        settings: dict[str, Any],
        dists: Iterable[str],
        probes: dict[str, Any],
        after_machine: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """``settings`` (the run's options) between the run's times and the machine;
        ``after_machine`` next; ``probes`` (each app's /health answer) last."""
        total = self.elapsed()
        after = library_state()
        if after != self.source_before:
            print(
                f"warning: src/graceful_sse changed during the run: {self.source_before} -> {after}",
                flush=True,
            )
        first: dict[str, Any] = next(iter(probes.values()), {})
        return {
            "started": self.started,
            "total_seconds": round(total, 1),
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
            **settings,
            "machine": machine_info(),
            **(after_machine or {}),
            "versions": versions(dists),
            "graceful_sse_source": {
                "before": self.source_before,
                "after": after,
                "changed_during_run": after != self.source_before,
            },
            "server": {"loop": first.get("loop"), "http": first.get("http"), "per_app": probes},
        }
