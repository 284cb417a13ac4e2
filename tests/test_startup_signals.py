"""Signals that come while the app is still starting: the process still ends, within its bound.

Real uvicorn servers in subprocesses (tests/apps/slow_start_app.py: the hub has started, then the
app's own startup takes a while). The signal reaches our handler, which is already chained.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from harness import BIN, RunMode, Server, free_port

pytestmark = pytest.mark.servers


def slow_start(port: int, seconds: float) -> RunMode:
    argv = [str(BIN / "uvicorn"), "slow_start_app:app", "--port", str(port)]
    return RunMode("slow start", argv, env={"SLOW_START": str(seconds), "SSE_TEST_EXIT": "5"})


def wait_for_line(server: Server, text: str, within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while text not in server.log:
        assert server.proc.poll() is None, server.log
        assert time.monotonic() < deadline, server.log
        time.sleep(0.02)


@pytest.mark.parametrize(
    "signals,startup,bound",
    [
        ([signal.SIGINT], 2.0, 6.0),
        ([signal.SIGTERM], 2.0, 6.0),
        ([signal.SIGINT, signal.SIGINT], 2.0, 6.0),
        ([signal.SIGINT], 30.0, 8.0),  # a startup longer than the exit bound: the exit guard ends it
    ],
    ids=["ctrl-c", "sigterm", "ctrl-c twice", "ctrl-c, startup longer than the bound"],
)
def test_a_signal_during_startup_ends_the_process_within_its_bound(
    signals: list[signal.Signals], startup: float, bound: float, tmp_path: Path
) -> None:
    port = free_port()
    server = Server(slow_start(port, startup), port, tmp_path / "server.log")
    try:
        wait_for_line(server, "startup begun")
        start = time.monotonic()
        for sig in signals:
            if sig is signal.SIGINT:
                server.sigint_group()
            else:
                server.sigterm_main()
            time.sleep(0.1)
        seconds = server.wait_exit(bound + 5)
        log = server.log
    finally:
        server.kill()
    assert time.monotonic() - start < bound, log
    assert "graceful-sse: SIG" in log and "telling 0 open stream(s)" in log, log
    assert "Exception in ASGI application" not in log, log
    assert seconds < bound
