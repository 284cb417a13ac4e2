"""Worker recycling is a restart: every stream is told, and the worker goes.

uvicorn's ``--limit-max-requests`` (and gunicorn's ``--max-requests``, which the uvicorn worker
passes on as that) ends the server's main loop with no signal and no flag; the server then
closes its listeners and waits for its connections. Real servers, real request counts.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path

import httpx
import pytest

from harness import FORBIDDEN_LOG_LINES, RunMode, Server, free_port, open_streams, run_modes, running

pytestmark = pytest.mark.servers

LIMIT = 20
EXIT_BOUND = 10.0
STREAMS = ["/stream"] * 3 + ["/gen"] * 2  # hub subscriptions and plain generators


def _recycling(mode: RunMode, name: str) -> RunMode:
    if name == "gunicorn":  # one worker, so that every request counts towards its limit
        head = mode.argv[: mode.argv.index("-w")]
        return dataclasses.replace(mode, argv=[*head, "-w", "1", "--max-requests", str(LIMIT), mode.argv[-1]])
    return dataclasses.replace(mode, argv=[*mode.argv, "--limit-max-requests", str(LIMIT)])


async def _pass_the_limit(server: Server) -> None:
    """Plain requests until the worker stops answering on its current listener."""
    async with httpx.AsyncClient(timeout=2) as client:
        for _ in range(LIMIT * 2):
            try:
                await client.get(server.url + "/stats")
            except httpx.HTTPError:
                return


def _worker_pid(server: Server) -> int:
    return int(httpx.get(server.url + "/stats", timeout=5).json()["pid"])


@pytest.mark.parametrize("name", ["uvicorn", "gunicorn"])
def test_a_recycled_worker_tells_every_stream_restart_and_goes(name: str, tmp_path: Path) -> None:
    port = free_port()
    mode = _recycling(run_modes(port)[name], name)
    with running(mode, port, tmp_path / "server.log") as server:
        old_pid = _worker_pid(server)

        async def scenario() -> tuple[list, float]:  # type: ignore[type-arg]
            async with open_streams([server.url + p for p in STREAMS]) as (streams, tasks):
                start = time.monotonic()
                await _pass_the_limit(server)
                await asyncio.wait_for(asyncio.gather(*tasks), EXIT_BOUND)
                return streams, time.monotonic() - start

        streams, seconds = asyncio.run(scenario())
        if name == "uvicorn":
            gone = server.wait_exit(EXIT_BOUND)
        else:
            gone = _wait_pid_gone(old_pid, EXIT_BOUND)
            assert _worker_pid(server) != old_pid, "gunicorn's new worker answers"
        log = server.log
    print(f"{name}: streams ended {seconds:.2f} s after the requests began; worker gone {gone:.2f} s later")
    assert "Maximum request limit" in log, log[-3000:]
    for stream in streams:
        assert stream.clean_end, (stream.url, stream.error, log[-3000:])
        assert stream.names()[-1] == "restart", (stream.url, stream.names()[-3:], log[-3000:])
    assert "telling 5 open stream(s)" in log and "5 of 5 stream(s) took the notice" in log, log[-3000:]
    for line in (*FORBIDDEN_LOG_LINES, "Traceback", "exiting now"):
        assert line not in log, log[-3000:]


def _wait_pid_gone(pid: int, timeout: float) -> float:
    start = time.monotonic()
    while Path(f"/proc/{pid}").exists() and "Z" not in _state(pid):
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"worker {pid} still alive after {timeout} s")
        time.sleep(0.05)
    return time.monotonic() - start


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"
