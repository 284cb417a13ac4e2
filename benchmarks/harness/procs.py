"""Child processes of a benchmark run, and what is needed to start them.

Every server and load client runs in a session of its own, so that one ``killpg`` ends it and
whatever it started (uvicorn's workers), and gets the benchmarks folder on ``PYTHONPATH``, so
that the apps (run by uvicorn from their own folders) can import this package.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Mapping
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent  # uvicorn of the same environment as this Python


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """``os.environ`` with the benchmarks folder first on ``PYTHONPATH`` (what is already there,
    e.g. a worktree's ``src``, stays after it), plus ``extra``."""
    path = os.environ.get("PYTHONPATH")
    pythonpath = str(BENCHMARKS) + (os.pathsep + path if path else "")
    return {**os.environ, "PYTHONPATH": pythonpath, **(extra or {})}


def kill_group(pid: int) -> None:
    """SIGKILL the session ``pid`` leads (the process and everything it started), if any is left."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def process_cpu(pid: int) -> float | None:
    """User + system CPU seconds of one process, from /proc (``None`` if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None
