"""Tests that fail, time out or wait to be interrupted while they hold what tests start: a server,
a redis-server, a CPU burner and Chromium. test_no_process_left_behind.py runs them in a pytest
of their own and then looks for what is left. The suite does not collect this module (its name
does not start with ``test_``); it runs only when named.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser

from harness import (
    SESSION_VAR,
    Server,
    busy_machine,
    describe,
    free_port,
    run_modes,
    running,
    session_processes,
)
from redis_server import RedisServer

HOLD = 60.0  # longer than any of the bounds below: only a failure, a timeout or a signal ends it


@pytest.fixture
def holding(redis: RedisServer, tmp_path: Path) -> Iterator[Server]:
    """A server, redis-server and a CPU burner started; then the command lines of the session's
    processes go to a file in LEAKY_READY."""
    port = free_port()
    with (
        running(run_modes(port)["uvicorn"], port, tmp_path / "server.log") as server,
        busy_machine(1, niceness=19),
    ):
        held = [describe(p) for p in session_processes(os.environ[SESSION_VAR])]
        # Written whole, then renamed: the reader never sees a half-written file.
        ready = Path(os.environ["LEAKY_READY"]) / uuid.uuid4().hex
        ready.with_suffix(".part").write_text(json.dumps(held))
        ready.with_suffix(".part").rename(ready)
        yield server


@pytest.fixture
def holding_chromium(browser: Browser, holding: Server) -> Server:
    """Chromium too (``holding`` lists it: the browser starts first)."""
    return holding


def test_fails(holding: Server) -> None:
    raise AssertionError("fails on purpose, holding its processes")


@pytest.mark.timeout(3, method="signal", func_only=True)
def test_times_out_by_signal(holding: Server) -> None:
    time.sleep(HOLD)


@pytest.mark.timeout(3, method="thread", func_only=True)  # pytest-timeout then calls os._exit
def test_times_out_by_thread(holding_chromium: Server) -> None:
    time.sleep(HOLD)


@pytest.mark.parametrize("copy", ["a", "b"])  # one for each of two xdist workers
def test_holds(holding_chromium: Server, copy: str) -> None:
    time.sleep(HOLD)


def test_forgets_a_process() -> None:
    """Passes, but starts a process (in a session of its own) that nothing ends."""
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
