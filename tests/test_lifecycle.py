"""The lifecycle on its own: what each signal means, the farewell, the drain and its report."""

from __future__ import annotations

import asyncio
import json
import signal
import threading
import time
from types import FrameType
from typing import Any

import pytest

from graceful_sse import Lifecycle, _exit_guard
from graceful_sse._drain import Outcome, StreamHandle
from graceful_sse._exit_guard import ExitGuard
from graceful_sse._run import HANDOFF

from asgi import lifecycle
from sse_parser import parse


def test_ctrl_c_means_stop_and_sigterm_means_restart_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SSE_ON_SIGTERM", raising=False)
    monkeypatch.delenv("SSE_ON_SIGINT", raising=False)
    lc = Lifecycle()
    assert lc.kinds == {signal.SIGINT: "stop", signal.SIGTERM: "restart", signal.SIGQUIT: "stop"}
    assert lc.on_server_exit == "restart"


def test_the_environment_can_say_what_sigterm_means(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSE_ON_SIGTERM", "stop")
    lc = Lifecycle()
    assert lc.kinds[signal.SIGTERM] == "stop" and lc.on_server_exit == "stop"
    assert Lifecycle(on_sigterm="restart").kinds[signal.SIGTERM] == "restart"
    monkeypatch.setenv("SSE_ON_SIGTERM", "reboot")
    with pytest.raises(ValueError, match="SSE_ON_SIGTERM must be 'stop' or 'restart'"):
        Lifecycle()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"restart_window": (5, 1)},
        {"drain_timeout": 0},
        {"drain_timeout": 3, "exit_timeout": 1},
        {"on_sigint": "x"},
    ],
)
def test_bad_settings_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Lifecycle(**kwargs)


def test_the_stop_farewell_tells_clients_not_to_come_back() -> None:
    parsed = parse(Lifecycle(stop_message="Bye").farewell("stop").decode())
    assert [e.type for e in parsed.events] == ["shutdown"]
    assert json.loads(parsed.events[0].data) == {"kind": "stop", "message": "Bye"}
    assert parsed.retry == 24 * 60 * 60 * 1000  # a bare EventSource waits a day, not 3 s


def test_each_restart_farewell_has_its_own_delay_within_the_window() -> None:
    lc = Lifecycle(restart_window=(2.0, 4.0))
    delays = []
    for _ in range(200):
        parsed = parse(lc.farewell("restart").decode())
        assert [e.type for e in parsed.events] == ["restart"]
        assert json.loads(parsed.events[0].data)["retry"] == parsed.retry
        delays.append(parsed.retry)
    assert all(2000 <= d <= 4000 for d in delays)
    assert len(set(delays)) > 150  # spread out, not one shared delay
    assert min(delays) < 2500 and max(delays) > 3500


def test_extra_farewell_events_come_before_the_closing_one() -> None:
    lc = Lifecycle(farewell_extra=lambda kind: [f"data: {kind}\n\n"])
    assert [e.type for e in parse(lc.farewell("stop").decode()).events] == ["message", "shutdown"]


@pytest.mark.anyio
async def test_the_drain_report_counts_what_each_stream_did() -> None:
    lc = lifecycle(drain_timeout=0.3)
    async with lc.lifespan():
        took, gone = lc.open_stream(), lc.open_stream()
        stuck = lc.open_stream(StreamHandle("GET /updates from 10.0.0.7:5000"))
        shutdown = asyncio.create_task(lc.shutdown("restart"))
        await asyncio.sleep(0)
        assert lc.draining and took.kind == gone.kind == stuck.kind == "restart"
        late = lc.open_stream()
        assert late.kind == "restart", "a stream opened during the drain is told at once"
        lc.close_stream(took, Outcome.TOOK)
        lc.close_stream(gone, Outcome.GONE)
        lc.close_stream(late, Outcome.TOOK)
        report = await shutdown
    assert (report.kind, report.cause, report.told) == ("restart", "explicit call", 3)
    assert (report.took, report.gone, report.missed, report.late) == (1, 1, 1, 1)
    assert report.cut == ("GET /updates from 10.0.0.7:5000 (did not take the farewell within the bound)",)
    assert 0.25 < report.seconds < 1.0


@pytest.mark.anyio
async def test_the_drain_log_line_names_the_streams_it_closed_and_why() -> None:
    lc = lifecycle(drain_timeout=5)
    async with lc.lifespan():
        handles = [lc.open_stream(StreamHandle(f"GET /s{i} from 10.0.0.{i}:80")) for i in range(7)]
        shutdown = asyncio.create_task(lc.shutdown("stop"))
        await asyncio.sleep(0)
        outcomes = [Outcome.NOT_READING, Outcome.DROPPED] + [Outcome.TOO_SLOW] * 5
        for handle, outcome in zip(handles, outcomes, strict=True):
            lc.close_stream(handle, outcome)
        line = (await shutdown).describe()

    assert "0 of 7 stream(s) took the notice, 0 had gone, 7 did not take it" in line
    assert "GET /s0 from 10.0.0.0:80 (took no data for send_timeout); GET /s1" in line
    assert "GET /s1 from 10.0.0.1:80 (dropped by the server); GET /s2" in line
    assert line.endswith("; and 2 more")


@pytest.mark.anyio
async def test_reopen_accepts_streams_normally_again() -> None:
    lc = lifecycle()
    async with lc.lifespan():
        report = await lc.shutdown("stop")
        assert report.told == 0 and lc.draining
        lc.reopen()
        assert not lc.draining and lc.open_stream().kind is None


async def _signalled_stream(lc: Lifecycle, sig: signal.Signals, seconds: float) -> StreamHandle:
    """A stream of ``lc``, then ``sig`` to this process, then ``seconds`` for the loop to act on it."""
    handle = lc.open_stream()
    signal.raise_signal(sig)
    await asyncio.sleep(seconds)
    return handle


@pytest.fixture
def server_handler() -> list[int]:
    """A server's own handler for SIGINT, SIGTERM and SIGQUIT: the signals it got."""
    calls: list[int] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        calls.append(signum)

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT):
        signal.signal(sig, handler)  # put back by the restore_signals fixture
    return calls


@pytest.mark.anyio
async def test_the_server_hears_of_a_signal_once_the_farewells_are_written(server_handler: list[int]) -> None:
    lc = lifecycle(restart_settle=0)
    async with lc.lifespan():
        handle = await _signalled_stream(lc, signal.SIGTERM, 0.05)
        assert handle.kind == "restart" and server_handler == [], "told first"
        lc.close_stream(handle, Outcome.TOOK)
        await asyncio.sleep(0.01)
        assert server_handler == [signal.SIGTERM]
        assert lc.last_report is not None and lc.last_report.cause == "SIGTERM"
    assert signal.getsignal(signal.SIGTERM) is not None


@pytest.mark.anyio
async def test_a_farewell_that_is_not_taken_holds_the_signal_back_only_briefly(
    server_handler: list[int],
) -> None:
    lc = lifecycle(restart_settle=0, drain_timeout=10)
    async with lc.lifespan():
        lc.open_stream()  # never closes
        signal.raise_signal(signal.SIGINT)
        await asyncio.sleep(HANDOFF - 0.3)
        assert server_handler == []
        await asyncio.sleep(0.6)
        assert server_handler == [signal.SIGINT] and lc.last_report is None


@pytest.mark.parametrize("gap", [0.0, 0.2])
@pytest.mark.anyio
async def test_a_ctrl_c_handled_after_the_reloaders_sigterm_is_still_a_stop(
    gap: float, server_handler: list[int]
) -> None:
    """A terminal's Ctrl+C reaches a reload child as SIGINT, and its reloader's SIGTERM follows;
    on a busy machine the child can handle the SIGTERM first. Either way it is a stop, and the
    server hears the SIGINT first (uvicorn takes a SIGINT after another signal for a forced exit)."""

    lc = lifecycle()
    async with lc.lifespan():
        handle = await _signalled_stream(lc, signal.SIGTERM, gap)
        signal.raise_signal(signal.SIGINT)
        await asyncio.sleep(0.05)
        assert handle.kind == "stop"
        lc.close_stream(handle, Outcome.TOOK)
        await asyncio.sleep(lc.restart_settle + 0.1)
        assert lc.last_report is not None and lc.last_report.kind == "stop"
        assert server_handler == [signal.SIGINT, signal.SIGTERM]


@pytest.mark.anyio
async def test_a_ctrl_c_after_gunicorns_sigquit_still_reaches_the_server(server_handler: list[int]) -> None:
    """gunicorn's master turns a Ctrl+C into SIGQUIT for its workers, and the worker's own SIGINT
    can come second; uvicorn acts only on the SIGINT, so both reach the server, SIGINT first."""

    lc = lifecycle()
    async with lc.lifespan():
        handle = await _signalled_stream(lc, signal.SIGQUIT, 0.05)
        signal.raise_signal(signal.SIGINT)
        await asyncio.sleep(0.05)
        assert handle.kind == "stop" and server_handler == []
        lc.close_stream(handle, Outcome.TOOK)
        await asyncio.sleep(0.05)
        assert server_handler == [signal.SIGINT, signal.SIGQUIT]
        signal.raise_signal(signal.SIGTERM)  # after the drain: straight on
        assert server_handler == [signal.SIGINT, signal.SIGQUIT, signal.SIGTERM]


@pytest.mark.anyio
async def test_a_sigterm_alone_is_a_restart_after_the_settle_time(server_handler: list[int]) -> None:
    lc = lifecycle(restart_settle=0.3)
    async with lc.lifespan():
        handle = await _signalled_stream(lc, signal.SIGTERM, 0.15)
        assert handle.kind is None, "a restart waits for a stop that may follow"
        await asyncio.sleep(0.3)
        assert handle.kind == "restart"


@pytest.mark.anyio
async def test_a_second_ctrl_c_abandons_the_drain_and_reaches_the_server_twice(
    server_handler: list[int],
) -> None:
    abandoned: list[bool] = []

    class Writing(StreamHandle):
        """A stream stuck writing its farewell."""

        def abandon(self) -> None:
            abandoned.append(True)

    lc = lifecycle(drain_timeout=30)
    async with lc.lifespan():
        lc.open_stream(Writing())
        signal.raise_signal(signal.SIGINT)
        await asyncio.sleep(0.01)
        signal.raise_signal(signal.SIGINT)
        await asyncio.sleep(0.05)
        assert abandoned == [True]
        assert lc.last_report is not None and lc.last_report.missed == 1
        assert server_handler == [signal.SIGINT, signal.SIGINT], "uvicorn forces its exit"


class FakeServer:
    should_exit = False
    force_exit = False
    started = False
    servers: list[asyncio.AbstractServer] = []


@pytest.mark.anyio
async def test_should_exit_on_a_watched_server_starts_the_drain() -> None:
    lc = lifecycle(on_server_exit="stop")
    server = FakeServer()
    lc.watch(server)
    async with lc.lifespan():
        handle = lc.open_stream()
        await asyncio.sleep(0.15)
        assert handle.kind is None
        server.should_exit = True
        await asyncio.sleep(0.25)
        assert handle.kind == "stop"


@pytest.mark.anyio
async def test_a_request_from_another_thread_starts_the_drain() -> None:
    lc = lifecycle()
    async with lc.lifespan():
        handle = lc.open_stream()
        thread = threading.Thread(target=lc.request_shutdown, args=("restart",))
        thread.start()
        thread.join()
        await asyncio.sleep(0.01)
        assert handle.kind == "restart"


@pytest.mark.anyio
async def test_producers_are_cancelled_when_the_drain_starts() -> None:
    state: list[str] = []

    lc = lifecycle()

    @lc.producer
    async def forever() -> None:
        state.append("started")
        try:
            await asyncio.Event().wait()
        finally:
            state.append("stopped")

    async with lc.lifespan():
        await asyncio.sleep(0.01)
        assert state == ["started"]
        await lc.shutdown()
        await asyncio.sleep(0.01)
        assert state == ["started", "stopped"]


def test_the_exit_guard_ends_a_process_that_outlives_the_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    exits: list[int] = []
    nudged: list[float] = []
    monkeypatch.setattr(_exit_guard.os, "_exit", exits.append)
    start = time.monotonic()
    ExitGuard(1.2, "SIGINT", nudge=lambda: nudged.append(time.monotonic() - start), open_streams=lambda: 1)
    while not exits and time.monotonic() - start < 5:
        time.sleep(0.05)
    assert exits == [1]
    assert 1.1 < time.monotonic() - start < 2.5
    assert len(nudged) == 1 and nudged[0] < 1.0, "the server is first asked to stop waiting"


def test_a_disarmed_exit_guard_does_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    exits: list[int] = []
    monkeypatch.setattr(_exit_guard.os, "_exit", exits.append)
    guard = ExitGuard(0.3, "SIGTERM", nudge=lambda: None, open_streams=lambda: 0)
    guard.disarm()
    time.sleep(0.5)
    assert exits == []


@pytest.mark.anyio
async def test_ctrl_c_keeps_its_meaning_when_the_server_watch_sees_the_server_stopping_first() -> None:
    """Under load the server watch's poll can already be due in the loop iteration in which the
    signal arrives: it runs before the callback our handler scheduled and sees ``should_exit``,
    which the server's own handler (chained after ours) has just set. That is still the Ctrl+C
    (stop), not an exit with no signal (restart)."""
    server = FakeServer()

    def server_handler(signum: int, frame: FrameType | None) -> None:
        server.should_exit = True

    signal.signal(signal.SIGINT, server_handler)
    lc = lifecycle(on_server_exit="restart")
    lc.watch(server)
    async with lc.lifespan():
        handle = lc.open_stream()
        loop = asyncio.get_running_loop()
        # First among the timers due once the loop is free again, so the poll runs after it.
        loop.call_at(loop.time() - 1000, signal.raise_signal, signal.SIGINT)
        _busy(0.25)  # a loaded loop: the watch's poll (every 0.1 s) falls due meanwhile
        await asyncio.sleep(0.05)
        assert handle.kind == "stop"


def _busy(seconds: float) -> None:
    """Keep the event loop's thread busy, as a burst of work under load does."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass
