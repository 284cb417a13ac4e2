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

from graceful_sse import Lifecycle
from graceful_sse import lifecycle as lifecycle_module
from graceful_sse.lifecycle import StreamHandle

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


def test_the_drain_report_counts_what_each_stream_did() -> None:
    async def main() -> None:
        lc = lifecycle(drain_timeout=0.3)
        async with lc.lifespan():
            took, gone, stuck = lc.open_stream(), lc.open_stream(), lc.open_stream()
            shutdown = asyncio.create_task(lc.shutdown("restart"))
            await asyncio.sleep(0)
            assert lc.draining and took.kind == gone.kind == stuck.kind == "restart"
            late = lc.open_stream()
            assert late.kind == "restart", "a stream opened during the drain is told at once"
            lc.close_stream(took, "took")
            lc.close_stream(gone, "gone")
            lc.close_stream(late, "took")
            report = await shutdown
        assert (report.kind, report.cause, report.told) == ("restart", "explicit call", 3)
        assert (report.took, report.gone, report.missed, report.late) == (1, 1, 1, 1)
        assert 0.25 < report.seconds < 1.0

    asyncio.run(main())


def test_reopen_accepts_streams_normally_again() -> None:
    async def main() -> None:
        lc = lifecycle()
        async with lc.lifespan():
            report = await lc.shutdown("stop")
            assert report.told == 0 and lc.draining
            lc.reopen()
            assert not lc.draining and lc.open_stream().kind is None

    asyncio.run(main())


def test_a_signal_tells_streams_then_reaches_the_servers_handler() -> None:
    calls: list[int] = []

    def server_handler(signum: int, frame: FrameType | None) -> None:
        calls.append(signum)

    async def main() -> None:
        lc = lifecycle()
        async with lc.lifespan():
            handle = lc.open_stream()
            signal.raise_signal(signal.SIGTERM)
            assert calls == [signal.SIGTERM], "the server hears of it at once"
            await asyncio.sleep(0.01)
            assert handle.kind == "restart" and lc.last_report is None
            lc.close_stream(handle, "took")
            await asyncio.sleep(0.01)
            assert lc.last_report is not None and lc.last_report.cause == "SIGTERM"
        assert signal.getsignal(signal.SIGTERM) is server_handler

    before = signal.signal(signal.SIGTERM, server_handler)
    try:
        asyncio.run(main())
    finally:
        signal.signal(signal.SIGTERM, before)


def test_a_second_ctrl_c_abandons_the_drain() -> None:
    abandoned: list[bool] = []

    def server_handler(signum: int, frame: FrameType | None) -> None:
        pass

    class Writing(StreamHandle):
        """A stream stuck writing its farewell."""

        def abandon(self) -> None:
            abandoned.append(True)

    async def main() -> None:
        lc = lifecycle(drain_timeout=30)
        async with lc.lifespan():
            lc.open_stream(Writing())
            signal.raise_signal(signal.SIGINT)
            await asyncio.sleep(0.01)
            signal.raise_signal(signal.SIGINT)
            await asyncio.sleep(0.05)
            assert abandoned == [True]
            assert lc.last_report is not None and lc.last_report.missed == 1

    before = signal.signal(signal.SIGINT, server_handler)
    try:
        asyncio.run(main())
    finally:
        signal.signal(signal.SIGINT, before)


class FakeServer:
    should_exit = False
    force_exit = False


def test_should_exit_on_a_watched_server_starts_the_drain() -> None:
    async def main() -> None:
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

    asyncio.run(main())


def test_a_request_from_another_thread_starts_the_drain() -> None:
    async def main() -> None:
        lc = lifecycle()
        async with lc.lifespan():
            handle = lc.open_stream()
            thread = threading.Thread(target=lc.request_shutdown, args=("restart",))
            thread.start()
            thread.join()
            await asyncio.sleep(0.01)
            assert handle.kind == "restart"

    asyncio.run(main())


def test_producers_are_cancelled_when_the_drain_starts() -> None:
    state: list[str] = []

    async def main() -> None:
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

    asyncio.run(main())


def test_the_exit_guard_ends_a_process_that_outlives_the_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    exits: list[int] = []
    monkeypatch.setattr(lifecycle_module.os, "_exit", exits.append)
    server = FakeServer()
    run = type("Run", (), {"server": server, "streams": {1}, "loop": asyncio.new_event_loop()})()
    try:
        start = time.monotonic()
        lifecycle_module._ExitGuard(1.2, "SIGINT", run)
        while not exits and time.monotonic() - start < 5:
            run.loop.run_until_complete(asyncio.sleep(0.05))
        assert exits == [1]
        assert 1.1 < time.monotonic() - start < 2.5
        assert server.force_exit, "a uvicorn server is first asked to stop waiting"
    finally:
        run.loop.close()


def test_a_disarmed_exit_guard_does_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    exits: list[int] = []
    monkeypatch.setattr(lifecycle_module.os, "_exit", exits.append)
    run = type("Run", (), {"server": None, "streams": set(), "loop": asyncio.new_event_loop()})()
    try:
        guard = lifecycle_module._ExitGuard(0.3, "SIGTERM", run)
        guard.disarm()
        time.sleep(0.5)
        assert exits == []
    finally:
        run.loop.close()


def test_ctrl_c_keeps_its_meaning_when_the_server_watch_sees_the_server_stopping_first() -> None:
    """Under load the server watch's poll can already be due in the loop iteration in which the
    signal arrives: it runs before the callback our handler scheduled and sees ``should_exit``,
    which the server's own handler (chained after ours) has just set. That is still the Ctrl+C
    (stop), not an exit with no signal (restart)."""
    server = FakeServer()

    def server_handler(signum: int, frame: FrameType | None) -> None:
        server.should_exit = True

    async def main() -> None:
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

    before = signal.signal(signal.SIGINT, server_handler)
    try:
        asyncio.run(main())
    finally:
        signal.signal(signal.SIGINT, before)


def _busy(seconds: float) -> None:
    """Keep the event loop's thread busy, as a burst of work under load does."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass
