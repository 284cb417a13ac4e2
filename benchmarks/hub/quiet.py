"""Measuring on a shared machine: wait until other people's processes leave the CPU alone, and
measure a run again when they did not.

The kernel charges the runner (``RUSAGE_SELF``/``RUSAGE_CHILDREN``) for its reaped children only;
:class:`CpuLedger` adds the CPU of what it does not reap (the workers of a ``--workers`` server,
which their supervisor does not reap when killed; the private redis-server), so that the check
does not blame other people for our own processes.
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.procs import process_cpu


class CpuLedger:
    """CPU seconds of this run's own processes that the kernel does not charge to the runner."""

    def __init__(self) -> None:
        self.unreaped = 0.0  # of processes gone
        self.live: set[int] = set()  # processes running for the whole run (redis-server)

    def charge(self, pids: list[int]) -> None:
        """Count ``pids`` as ours before they are killed unreaped."""
        self.unreaped += sum(process_cpu(pid) or 0.0 for pid in pids)

    def accounting(self) -> tuple[float, float]:
        """(CPU seconds busy on the whole machine, CPU seconds of this run's processes)."""
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        busy = (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")  # minus idle, iowait
        ours = self.unreaped + sum(process_cpu(pid) or 0.0 for pid in self.live)
        for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
            ru = resource.getrusage(who)
            ours += ru.ru_utime + ru.ru_stime
        return busy, ours

    def other_between(self, before: tuple[float, float], after: tuple[float, float]) -> float:
        """CPU seconds other processes used between two :meth:`accounting` readings."""
        return (after[0] - before[0]) - (after[1] - before[1])


def wait_quiet(ledger: CpuLedger, threshold: float, max_wait: float) -> float:
    """Wait until other processes use under ``threshold`` of the machine's CPU over one second
    (we run nothing between runs); returns the seconds waited."""
    cores = os.cpu_count() or 1
    t0 = time.monotonic()
    told = False
    while time.monotonic() - t0 < max_wait:
        before = ledger.accounting()
        time.sleep(1.0)
        if ledger.other_between(before, ledger.accounting()) < threshold * cores:
            break
        if not told:
            print("    the machine is busy with other processes: waiting for it to be quiet", flush=True)
            told = True
    return time.monotonic() - t0


def guarded(
    measure: Callable[[], dict[str, Any]],
    ledger: CpuLedger,
    max_other: float,
    retries: int,
    quiet_wait: float,
) -> dict[str, Any]:
    """One run on a quiet machine: wait for quiet, measure, and measure again (up to ``retries``
    times) when other processes used more than ``max_other`` of the machine's CPU meanwhile
    (other people's benchmarks share these cores)."""
    cores = os.cpu_count() or 1
    discarded: list[float] = []
    waited = 0.0
    while True:
        waited += wait_quiet(ledger, max_other, quiet_wait)
        before, t0 = ledger.accounting(), time.monotonic()
        run = measure()
        after, wall = ledger.accounting(), time.monotonic() - t0
        other = ledger.other_between(before, after) / (wall * cores)
        run["other_cpu_share"] = round(other, 3)
        if other <= max_other or len(discarded) >= retries:
            run["discarded_attempts_other_cpu"] = discarded
            run["waited_for_quiet_s"] = round(waited, 1)
            if other > max_other:
                print(
                    f"    warning: other processes used {other:.0%} of the machine; kept anyway", flush=True
                )
            return run
        discarded.append(round(other, 3))
        print(
            f"    other processes used {other:.0%} of the machine during this run: measuring again",
            flush=True,
        )
