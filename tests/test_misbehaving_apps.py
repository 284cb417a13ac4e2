"""App code that misbehaves at shutdown cannot stretch the exit bound.

Real uvicorn servers (tests/apps/fh_app.py) and real signals. The app's own code, not a client,
holds the process: a generator that swallows its cancellation, a sync generator blocking its
threadpool thread, an ``async def`` route blocking the event loop when the signal comes, a
background producer that ignores cancellation, native code that holds the GIL. Each time the
process must be gone within ``exit_timeout`` (5 s) of the signal (one second more when no Python
thread can run), and every stream the loop could still serve got its farewell and a clean end.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from harness import Server, free_port, open_streams, run_modes, running

pytestmark = pytest.mark.servers

EXIT_TIMEOUT = 5.0  # fh_app's Lifecycle(exit_timeout=...)
EXIT_BOUND = EXIT_TIMEOUT + 2.5  # the bound, and room for a loaded machine to reap the process
FAREWELL = {"sigint_group": "shutdown", "sigterm_main": "restart"}


@dataclass
class Case:
    """One kind of misbehaving app code, and what the streams it leaves can still expect."""

    paths: list[str]
    env: dict[str, str] = field(default_factory=dict)
    blocks_loop: bool = False  # a route blocks the loop when the signal comes
    ends_by: str | None = None  # the farewells cannot all be written: only the bound, said so in the log


CASES = {
    "generator swallows cancellation": Case(["/stubborn"] * 3 + ["/stream"] * 3),
    "sync generator blocks its thread": Case(["/blocking"] * 3 + ["/stream"] * 3),
    "async route blocks the loop": Case(["/stream"] * 3, blocks_loop=True, ends_by="exiting now"),
    "producer ignores cancellation": Case(["/stream"] * 3, env={"SSE_TEST_STUBBORN_PRODUCER": "1"}),
    # Native code holding the GIL once the drain began (Granian's worker has been seen to):
    # no Python thread runs, faulthandler's watchdog ends the process and says where each was.
    "native code holds the GIL": Case(
        ["/stream"] * 3, env={"SSE_TEST_HOLD_GIL": "1"}, ends_by="most recent call first"
    ),
}


def _block_the_loop(server: Server) -> threading.Thread:
    """GET /block-loop in the background: the route sleeps 20 s on the event loop's thread."""

    def call() -> None:
        with contextlib.suppress(httpx.HTTPError):  # the process is gone before the route returns
            httpx.get(server.url + "/block-loop", params={"seconds": 20}, timeout=30)

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    return thread


async def _signal_and_collect(server: Server, case: Case, send_signal: str) -> tuple[list, float]:  # type: ignore[type-arg]
    async with open_streams([server.url + p for p in case.paths]) as (streams, tasks):
        if case.blocks_loop:
            _block_the_loop(server)
            await asyncio.sleep(0.5)  # the route is running: the loop is blocked
        start = time.monotonic()
        getattr(server, send_signal)()
        seconds = await asyncio.to_thread(server.wait_exit, EXIT_BOUND + 5)
        await asyncio.wait_for(asyncio.gather(*tasks), 5)
        return streams, seconds if seconds else time.monotonic() - start


@pytest.mark.parametrize("send_signal", ["sigint_group", "sigterm_main"])
@pytest.mark.parametrize("case_name", list(CASES))
def test_the_exit_bound_holds_whatever_the_app_code_does(
    case_name: str, send_signal: str, tmp_path: Path
) -> None:
    case = CASES[case_name]
    port = free_port()
    with running(run_modes(port)["uvicorn"], port, tmp_path / "server.log", env=case.env) as server:
        streams, seconds = asyncio.run(_signal_and_collect(server, case, send_signal))
        log = server.log
    print(f"{case_name} / {send_signal}: gone {seconds:.2f} s after the signal")
    assert seconds < EXIT_BOUND, log[-3000:]
    if case.ends_by is not None:
        assert case.ends_by in log, log[-3000:]
        return
    for stream in streams:
        assert stream.clean_end, (stream.url, stream.error, log[-3000:])
        assert stream.names()[-1] == FAREWELL[send_signal], (stream.url, stream.names()[-3:], log[-3000:])
    assert "Application shutdown complete" in log, log[-3000:]


def test_a_failing_generator_logs_what_it_raised(tmp_path: Path) -> None:
    """The package's own log handler (nothing else configured logging) keeps the traceback."""
    port = free_port()
    with running(run_modes(port)["uvicorn"], port, tmp_path / "server.log") as server:
        events = httpx.get(server.url + "/fails", timeout=10).text
        log = server.log
    assert "event: error" in events
    assert "the stream's generator failed" in log, log[-3000:]
    assert "Traceback (most recent call last)" in log and "RuntimeError: boom-detail-42" in log, log[-3000:]
