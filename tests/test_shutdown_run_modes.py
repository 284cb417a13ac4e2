"""Every run mode, real server, real signals: each stream gets its farewell, the process exits.

Backs the README's run-mode table: SIGINT to the process group is a terminal's Ctrl+C; SIGTERM
to the main pid is what docker, systemd and Kubernetes send.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from harness import FORBIDDEN_LOG_LINES, Server, free_port, open_streams, run_modes, running
from redis_server import RedisServer

pytestmark = pytest.mark.servers

STREAMS = 50
EXIT_BOUND = 10.0
FAREWELL = {"stop": "shutdown", "restart": "restart"}


@pytest.fixture(params=["memory", "redis"])
def broker(request: pytest.FixtureRequest) -> dict[str, str]:
    """The app's hub in memory, or on Redis (``SSE_BROKER_URL``): shutdown is bounded with both."""
    if request.param == "memory":
        return {}
    server: RedisServer = request.getfixturevalue("redis")
    return {"SSE_BROKER_URL": server.url}


async def _signal_and_collect(server: Server, send_signal: str) -> tuple[list, float]:  # type: ignore[type-arg]
    half = STREAMS // 2
    urls = [server.url + "/stream"] * half + [server.url + "/gen"] * (STREAMS - half)
    async with open_streams(urls) as (streams, tasks):
        start = time.monotonic()
        getattr(server, send_signal)()
        await asyncio.wait_for(asyncio.gather(*tasks), EXIT_BOUND)
        exited = await asyncio.to_thread(server.wait_exit, EXIT_BOUND - (time.monotonic() - start))
        return streams, time.monotonic() - start if exited else exited


@pytest.mark.parametrize("send_signal", ["sigint_group", "sigterm_main"])
@pytest.mark.parametrize("mode_name", list(run_modes(0)))
def test_each_stream_gets_its_farewell_then_a_clean_end(
    mode_name: str, send_signal: str, broker: dict[str, str], tmp_path: Path
) -> None:
    port = free_port()
    mode = run_modes(port)[mode_name]
    expected = mode.on_sigint if send_signal == "sigint_group" else mode.on_sigterm
    with running(mode, port, tmp_path / "server.log", env=broker) as server:
        streams, seconds = asyncio.run(_signal_and_collect(server, send_signal))
        log = server.log

    assert seconds < EXIT_BOUND
    for stream in streams:
        assert stream.clean_end, (stream.error, stream.names()[-3:], log[-3000:])
        assert stream.names()[-1] == FAREWELL[expected], (stream.names()[-3:], log[-3000:])
        if expected == "restart":
            assert 1000 <= (stream.parser.retry or 0) <= 5000
    for line in FORBIDDEN_LOG_LINES:
        assert line not in log, log[-3000:]
    assert "took the notice" in log, log[-3000:]
