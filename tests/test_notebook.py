"""A notebook: FastHTML's ``JupyUvi`` / ``JupyUviAsync`` started, stopped and started again.

Their uvicorn runs on a thread (a new loop each time) or on the kernel's loop (the same loop each
time), with no signal handlers; ``stop()`` sets ``should_exit``. Each stop
must give every stream its farewell (a restart: the cell is usually run again) and a clean end,
the next start must serve streams that stay open, and the process (the kernel) must live on.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from harness import (
    FORBIDDEN_LOG_LINES,
    LIFESPAN_DONE,
    Server,
    busy_machine,
    free_port,
    notebook,
    open_streams,
    running,
)

pytestmark = pytest.mark.servers

STREAMS = ["/stream"] * 3 + ["/gen"] * 2
BOUND = 10.0


async def _stop_with_streams_open(server: Server, stop: Path, stay_open: float) -> tuple[list, float]:  # type: ignore[type-arg]
    async with open_streams([server.url + p for p in STREAMS]) as (streams, tasks):
        await asyncio.sleep(stay_open)
        assert not any(t.done() for t in tasks), "a fresh start's streams stay open"
        async with httpx.AsyncClient() as client:  # the hub still delivers after a stop/start
            (await client.get(server.url + "/publish", params={"size": 7})).raise_for_status()
        await asyncio.sleep(0.3)
        start = time.monotonic()
        await asyncio.to_thread(stop.touch)
        await asyncio.wait_for(asyncio.gather(*tasks), BOUND)
        return streams, time.monotonic() - start


@pytest.mark.parametrize("flavour", ["thread", "async"], ids=["JupyUvi", "JupyUviAsync"])
def test_stop_and_start_again_gives_farewells_each_time(tmp_path: Path, flavour: str) -> None:
    port = free_port()
    mode = notebook(port, tmp_path, flavour)
    # On a busy machine the next start can come before the stopped server's watch looks again.
    with busy_machine(), running(mode, port, tmp_path / "server.log") as server:
        first, first_seconds = asyncio.run(_stop_with_streams_open(server, tmp_path / "stop-1", 0.5))
        server.wait_for_line("notebook: started 2", BOUND)
        server.wait_ready()
        second, second_seconds = asyncio.run(_stop_with_streams_open(server, tmp_path / "stop-2", 3.0))
        server.wait_exit(BOUND)
        log = server.log
    print(f"notebook ({flavour}): streams ended {first_seconds:.2f} s / {second_seconds:.2f} s after stop()")
    for stream in first + second:
        assert stream.clean_end, (stream.url, stream.error, log[-3000:])
        assert stream.names()[-1] == "restart", (stream.url, stream.names()[-3:], log[-3000:])
    for stream in first + second:
        if stream.url.endswith("/stream"):
            assert "x" * 7 in [e.data for e in stream.events], (stream.url, stream.names())
    assert log.count("5 of 5 stream(s) took the notice") == 2, log[-3000:]
    assert log.count(LIFESPAN_DONE) == 2, log[-3000:]
    assert "notebook: the kernel lives on" in log, log[-3000:]
    for line in (*FORBIDDEN_LOG_LINES, "Traceback", "exiting now"):
        assert line not in log, log[-3000:]
