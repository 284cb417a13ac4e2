"""Background producers: started with the app, stopped by cancellation, restarted after failure."""

from __future__ import annotations

import asyncio
import logging

import pytest

from graceful_sse import _producers as producers
from graceful_sse._producers import Producer

from asgi import lifecycle


@pytest.mark.anyio
async def test_every_calls_the_function_at_that_interval_until_cancelled() -> None:
    calls = 0

    async def tick() -> None:
        nonlocal calls
        calls += 1

    task = asyncio.create_task(Producer(tick, every=0.05).run())
    await asyncio.sleep(0.27)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert 5 <= calls <= 7


@pytest.mark.anyio
async def test_a_failing_producer_is_logged_and_started_again(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(producers, "FIRST_BACKOFF", 0.02)
    runs = 0

    async def flaky() -> None:
        nonlocal runs
        runs += 1
        if runs < 3:
            raise RuntimeError(f"failure {runs}")
        await asyncio.Event().wait()

    caplog.set_level(logging.ERROR, logger="graceful_sse")
    task = asyncio.create_task(Producer(flaky, name="flaky").run())
    await asyncio.sleep(0.2)
    assert runs == 3 and not task.done()
    task.cancel()
    assert caplog.text.count("producer flaky failed") == 2


@pytest.mark.anyio
async def test_a_plain_producer_that_returns_is_done() -> None:
    async def once() -> None:
        pass

    await asyncio.wait_for(Producer(once).run(), 1)


def test_every_must_be_positive() -> None:
    async def f() -> None:
        pass

    with pytest.raises(ValueError, match="every="):
        Producer(f, every=0)


@pytest.mark.anyio
async def test_the_lifespan_starts_producers_and_its_end_stops_them() -> None:
    events: list[str] = []

    lc = lifecycle()

    @lc.producer(every=0.01, name="ticker")
    async def tick() -> None:
        events.append("tick")

    async with lc.lifespan():
        await asyncio.sleep(0.05)
        assert lc.running_producers == 1
    assert lc.running_producers == 0
    count = len(events)
    await asyncio.sleep(0.05)
    assert len(events) == count > 0
