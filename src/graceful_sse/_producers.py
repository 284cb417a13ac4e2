"""Background producers: the app's long-running publishers, started and stopped with the app.

A producer is an async function. Plain ones run once (usually a loop); ``every=`` ones are
called at that interval. Cancellation is how they stop, so user code never polls a
``should_exit`` flag. One that raises is logged and started again after a capped, growing pause.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from ._logs import logger

__all__ = ["Producer", "ProducerFn", "ProducerTasks", "Producers"]


ProducerFn = Callable[[], Awaitable[object]]

FIRST_BACKOFF = 0.5
MAX_BACKOFF = 30.0
HEALTHY_AFTER = 60.0  # a run this long resets the backoff


class Producer:
    """One producer function and how to run it."""

    def __init__(self, fn: ProducerFn, *, every: float | None = None, name: str | None = None):
        if every is not None and every <= 0:
            raise ValueError(f"every= must be a positive number of seconds, not {every!r}")
        self.fn = fn
        self.every = every
        self.name = name or getattr(fn, "__qualname__", repr(fn))

    async def run(self) -> None:
        """Run until cancelled, restarting after failures."""
        backoff = FIRST_BACKOFF
        while True:
            started = time.monotonic()
            try:
                await self._run_once()
                if self.every is None:
                    return  # a plain producer that returns is done
            except Exception:
                if time.monotonic() - started > HEALTHY_AFTER:
                    backoff = FIRST_BACKOFF
                logger.exception(
                    "graceful-sse: producer %s failed; starting it again in %.1f s",
                    self.name,
                    backoff,
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)

    async def _run_once(self) -> None:
        if self.every is None:
            await self.fn()
            return
        next_at = time.monotonic()
        while True:
            await self.fn()
            # Keep the cadence steady however long fn() took, without bursts after a stall.
            next_at = max(next_at + self.every, time.monotonic())
            await asyncio.sleep(next_at - time.monotonic())


class Producers:
    """The producers an app registered."""

    def __init__(self) -> None:
        self._registered: list[Producer] = []

    def __len__(self) -> int:
        return len(self._registered)

    def add(self, producer: Producer) -> None:
        self._registered.append(producer)

    def start(self) -> ProducerTasks:
        """Start every registered producer on the running loop."""
        loop = asyncio.get_running_loop()
        return ProducerTasks([loop.create_task(p.run(), name=f"producer {p.name}") for p in self._registered])


class ProducerTasks:
    """The producers running on one event loop."""

    def __init__(self, tasks: list[asyncio.Task[None]] | None = None) -> None:
        self._tasks = tasks or []

    @property
    def running(self) -> int:
        return sum(not t.done() for t in self._tasks)

    def cancel(self) -> int:
        """Cancel the running producers; returns how many were running."""
        running = [t for t in self._tasks if not t.done()]
        for task in running:
            task.cancel()
        return len(running)

    async def wait(self, seconds: float) -> None:
        """Wait up to ``seconds`` for cancelled producers to finish their clean-up."""
        tasks = [t for t in self._tasks if not t.done()]
        if tasks:
            await asyncio.wait(tasks, timeout=seconds)
        self._tasks = [t for t in self._tasks if not t.done()]
