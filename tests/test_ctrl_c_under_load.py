"""A Ctrl+C is a stop, every time, on a busy machine.

A terminal's Ctrl+C reaches every process of the foreground group. Under a reloader (``serve()``,
``uvicorn --reload``) or uvicorn's ``--workers`` supervisor the child gets its own SIGINT and,
moments later, its parent's SIGTERM; on a busy machine the SIGTERM can be handled first. Whatever
the order, every stream must end with ``shutdown`` (never ``restart``) and the browser must never
ask again.

The three modes run side by side, each ``RUNS`` times in a row (the environment's
``SSE_STRESS_RUNS``, 20 by default; ``scripts/soak-ctrl-c`` runs 200), while CPU burners keep
every core busy: each mode's servers start and stop among the others'. ``serve()`` is the demo
(``python -m graceful_sse.demo``) with a real Chromium page, the case a user first meets.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from harness import (
    FORBIDDEN_LOG_LINES,
    Server,
    Stream,
    busy_machine,
    free_port,
    open_streams,
    run_modes,
    running,
)

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext

    from browser import Watched

pytestmark = [pytest.mark.servers, pytest.mark.browser]

RUNS = int(os.environ.get("SSE_STRESS_RUNS", "20"))
BOUND = 10.0  # a generous upper bound on "the process group is gone"
STREAMS = ["/stream"] * 2 + ["/gen"] * 2
OVER_HTTP = ["uvicorn --reload", "uvicorn --workers 2"]


@pytest.fixture
def busy() -> Iterator[int]:
    with busy_machine() as burners:
        yield burners


# 60 server runs side by side on a loaded machine take about 75 s here; a soak scales it.
@pytest.mark.timeout(max(600, RUNS * 15))
def test_ctrl_c_is_a_stop_every_time_on_a_busy_machine(
    busy: int, context: BrowserContext, tmp_path: Path
) -> None:
    with ThreadPoolExecutor(len(OVER_HTTP)) as pool:
        over_http = {name: pool.submit(_stops_over_http, name, tmp_path) for name in OVER_HTTP}
        exits = {"serve() (the demo, in Chromium)": _stops_in_chromium(context, tmp_path)}
        exits |= {name: future.result() for name, future in over_http.items()}
    for name, seconds in exits.items():
        seconds.sort()
        median, worst = seconds[len(seconds) // 2], seconds[-1]
        print(
            f"{name}: {RUNS} stops of {RUNS}, {busy} burners; gone {median:.2f} s median, {worst:.2f} s max"
        )


def _stops_over_http(mode_name: str, tmp_path: Path) -> list[float]:
    """``RUNS`` Ctrl+Cs with streams open; each must be a stop with a clean end."""
    exits = []
    for run in range(RUNS):
        port = free_port()
        log_path = tmp_path / f"{mode_name.replace(' ', '_')}-{run}.log"
        with running(run_modes(port)[mode_name], port, log_path) as server:
            streams = asyncio.run(_ctrl_c_with_streams_open(server))
            start = time.monotonic()
            server.wait_exit(BOUND)
            exits.append(time.monotonic() - start)
            log = server.log
        where = f"{mode_name}, run {run + 1} of {RUNS}: {log[-2500:]}"
        for stream in streams:
            assert stream.clean_end, (stream.url, stream.error, where)
            assert stream.names()[-1] == "shutdown", (stream.url, stream.names()[-3:], where)
        assert "restarting" not in log, where
        for line in (*FORBIDDEN_LOG_LINES, "Traceback", "exiting now"):
            assert line not in log, where
    return exits


async def _ctrl_c_with_streams_open(server: Server) -> list[Stream]:
    async with open_streams([server.url + p for p in STREAMS], within=30.0) as (streams, tasks):
        server.sigint_group()
        await asyncio.wait_for(asyncio.gather(*tasks), BOUND)
        return streams


def _stops_in_chromium(context: BrowserContext, tmp_path: Path) -> list[float]:
    """``RUNS`` Ctrl+Cs on the demo with a page open; every page stays open to the end, and
    none may ask again, however long after its stop."""
    from browser import open_demo, running_demo

    exits = []
    stopped: list[tuple[Watched, int, int]] = []
    for run in range(RUNS):
        with running_demo(tmp_path / f"demo-{run}.log") as server:
            page = open_demo(context, server)
            page.wait_state("live", timeout=30)
            server.sigint_group()
            page.wait_state("stopped", timeout=BOUND)
            start = time.monotonic()
            server.wait_exit(BOUND)
            exits.append(time.monotonic() - start)
            log = server.log
        assert "restarting" not in log and "restarting" not in page.states, (run, page.states, log[-2500:])
        stopped.append((page, len(page.stream_requests), len(page.problems)))
    time.sleep(3.0)  # longer than the shortest restart delay a page could have been given
    for run, (page, requests, problems) in enumerate(stopped):
        assert page.status() == "stopped", (run, page.states)
        assert len(page.stream_requests) == requests, f"run {run + 1}: the page asked again after its stop"
        assert len(page.problems) == problems, (run, page.problems[problems:])
    return exits
