"""Worker recycling is a restart: every stream is told, and the worker goes.

uvicorn's ``--limit-max-requests`` (and gunicorn's ``--max-requests``, which the uvicorn worker
passes on as that) ends the server's main loop with no signal and no flag; the server then
closes its listeners and waits for its connections. Real servers, real request counts.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from harness import (
    FORBIDDEN_LOG_LINES,
    free_port,
    open_streams,
    pass_the_limit,
    recycling,
    run_modes,
    running,
    wait_pid_gone,
    worker_pid,
)

pytestmark = pytest.mark.servers

LIMIT = 20
EXIT_BOUND = 10.0
STREAMS = ["/stream"] * 3 + ["/gen"] * 2  # hub subscriptions and plain generators


@pytest.mark.parametrize("name", ["uvicorn", "gunicorn"])
def test_a_recycled_worker_tells_every_stream_restart_and_goes(name: str, tmp_path: Path) -> None:
    port = free_port()
    mode = recycling(run_modes(port)[name], LIMIT)
    with running(mode, port, tmp_path / "server.log") as server:
        old_pid = worker_pid(server)

        async def scenario() -> tuple[list, float]:  # type: ignore[type-arg]
            async with open_streams([server.url + p for p in STREAMS]) as (streams, tasks):
                start = time.monotonic()
                await pass_the_limit(server, LIMIT)
                await asyncio.wait_for(asyncio.gather(*tasks), EXIT_BOUND)
                return streams, time.monotonic() - start

        streams, seconds = asyncio.run(scenario())
        if name == "uvicorn":
            gone = server.wait_exit(EXIT_BOUND)
        else:
            gone = wait_pid_gone(old_pid, EXIT_BOUND)
            assert worker_pid(server) != old_pid, "gunicorn's new worker answers"
        log = server.log
    print(f"{name}: streams ended {seconds:.2f} s after the requests began; worker gone {gone:.2f} s later")
    assert "Maximum request limit" in log, log[-3000:]
    for stream in streams:
        assert stream.clean_end, (stream.url, stream.error, log[-3000:])
        assert stream.names()[-1] == "restart", (stream.url, stream.names()[-3:], log[-3000:])
    assert "telling 5 open stream(s)" in log and "5 of 5 stream(s) took the notice" in log, log[-3000:]
    for line in (*FORBIDDEN_LOG_LINES, "Traceback", "exiting now"):
        assert line not in log, log[-3000:]
