"""Load clients, the runner's side: spawn client processes and talk to them over stdin/stdout
(the clients' own scaffolding is :mod:`harness.loadclient`).

A load client is a script of its benchmark folder; it prints one line per fact the runner waits
for (``ready {json}``, ``summary {json}``, ...) and may take commands on stdin.
"""

from __future__ import annotations

import contextlib
import json
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.procs import child_env, kill_group


def shares(n: int, procs: int) -> list[int]:
    """``n`` streams split as evenly as can be over ``procs`` processes (empty shares left out)."""
    split = [n // procs + (1 if i < n % procs else 0) for i in range(procs)]
    return [s for s in split if s]


def selftest(script: Path) -> None:
    """Run a client's ``--selftest`` (its parser on split responses) before trusting its counts."""
    subprocess.run([sys.executable, str(script), "--selftest"], check=True, env=child_env())


class ClientProcess:
    """One load-client process: commands on its stdin, its stdout lines read on a thread.

    ``new_session`` puts it in a session of its own, so that :meth:`kill` ends it without
    touching the runner's process group.
    """

    def __init__(self, argv: Sequence[str], log: Path, cwd: Path, new_session: bool = True) -> None:
        self.stderr = log.open("wb")
        self.proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            cwd=cwd,
            env=child_env(),
            start_new_session=new_session,
        )
        self.new_session = new_session
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self.lines.put(raw.decode(errors="replace").strip())
        self.lines.put(None)

    def expect(self, prefix: str, timeout: float) -> dict[str, Any] | None:
        """The JSON after the next line that starts with ``prefix`` (``{}`` if none follows), or
        ``None`` if no such line comes within ``timeout`` seconds or the client's output ends."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                return None
            if line is None:
                self.lines.put(None)  # the end stays the end for the next call
                return None
            if line == prefix or line.startswith(prefix + " "):
                rest = line[len(prefix) :].strip()
                return dict(json.loads(rest)) if rest else {}

    def command(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text.encode() + b"\n")
        self.proc.stdin.flush()

    def wait(self, timeout: float) -> bool:
        """Whether the client exited within ``timeout`` seconds."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        return True

    def kill(self) -> None:
        if self.proc.poll() is None:
            if self.new_session:
                kill_group(self.proc.pid)
            else:
                self.proc.kill()
        self.proc.wait()
        self.stderr.close()

    def stop(self, quit_command: str = "quit", grace: float = 5.0) -> None:
        """Ask the client to quit; kill it if it has not within ``grace`` seconds."""
        with contextlib.suppress(OSError, ValueError):
            self.command(quit_command)
        self.wait(grace)
        self.kill()


def note_ready(run: dict[str, Any], readies: list[dict[str, Any]], since: float, n: int) -> int:
    """Record the clients' ``ready`` lines in ``run`` (and the seconds since ``since``, when the
    first client started connecting); the streams ready, with a warning if not all ``n`` are."""
    run["connect_s"] = round(time.monotonic() - since, 3)
    run["ready"] = readies
    ok = int(sum(r.get("ok", 0) for r in readies))
    run["ready_ok"] = ok
    if ok < n:
        print(f"    warning: only {ok}/{n} streams ready", flush=True)
    return ok
