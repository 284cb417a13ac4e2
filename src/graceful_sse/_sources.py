"""What a stream reads from: ready chunks, and one future to wait on until there may be more.

A stream task waits on a single future, and everything that concerns it (an event the
publisher could not write for it, the client leaving, a heartbeat falling due, the shutdown)
resolves that future from a callback. Nothing is cancelled in the common case, so telling ten
thousand streams to end costs about as much as waking ten thousand tasks. A source offers each
new chunk to its stream first (``Writer``): a stream at rest writes it from the producer's call.
Hub subscriptions are sources themselves; ``Pump`` makes one of an application's generator by
running it in a task of its own, one item ahead. A source may also end its stream before the
lifecycle does (``ending``: the app ended a hub subscription), with the same farewell.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Awaitable, Generator, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, Self

from starlette.concurrency import iterate_in_threadpool

from ._drain import Kind
from ._logs import logger
from ._wire import encode_item

if TYPE_CHECKING:
    from starlette.types import Scope

    from ._lifecycle import Lifecycle
    from ._limits import Limits

__all__ = ["Ending", "Pump", "Source", "Wakeup", "Writer"]

CLOSE_TIMEOUT = 1.0  # how long an app's generator gets to run its clean-up


class Wakeup:
    """A reusable wake-up: ``await wait()`` returns at the next ``set()``, or at once if one came.

    ``wait`` hands out the future itself, not a coroutine: a stream waits through no frames of
    ours, and a future is all that a stream at rest keeps alive.
    """

    __slots__ = ("_future", "_pending")

    def __init__(self) -> None:
        self._future: asyncio.Future[None] | None = None
        self._pending = False

    def wait(self) -> asyncio.Future[None]:
        future = self._future = asyncio.get_running_loop().create_future()
        if self._pending:
            self._pending = False
            future.set_result(None)
        return future

    def set(self) -> None:
        future, self._future = self._future, None
        if future is None or future.done():  # nobody waits (or the waiter was cancelled)
            self._pending = True
        else:
            future.set_result(None)


@dataclass(frozen=True, slots=True)
class Ending:
    """How a source asks its stream to end: the farewell of ``kind``, its status showing ``reason``."""

    kind: Kind
    reason: str | None = None


class Writer(Protocol):
    """A stream that can take a chunk from whoever produced it, without a task switch."""

    def write_now(self, chunk: bytes) -> bool:
        """Write ``chunk`` now if the stream is idle; False: queue it for the stream's task."""
        ...


class Source(abc.ABC):
    """What ``EventStream`` reads from: ready chunks, and one wake-up to wait on.

    ``Pump`` makes one of an app's generator; a hub ``Subscription`` is one. A source may bring
    what decides about its stream (``lifecycle``, ``limits``, ``authorized``); an
    ``EventStream``'s own arguments win over them. ``position``, once open, is the event id the
    client can resume from (``None``: no ids). ``ending``, once set (and ``wake`` called), ends
    the stream with a farewell as a shutdown does.
    """

    __slots__ = ()

    position: str | None

    @property
    def lifecycle(self) -> Lifecycle | None:
        """The lifecycle its stream follows (``None``: the app's)."""
        return None

    @property
    def limits(self) -> Limits | None:
        """The caps its stream is admitted under (``None``: none)."""
        return None

    async def authorized(self, scope: Scope) -> bool:
        """Whether the request may open this stream (403 if not)."""
        return True

    @property
    def finite(self) -> bool:
        """It ends by itself (an app's generator): a shutdown may give it time to (``finish``)."""
        return False

    @property
    def ending(self) -> Ending | None:
        """The farewell the source asks its stream to end with now (``None``: go on)."""
        return None

    def resume(self, last_event_id: str | None) -> Self:
        """Start after the client's ``Last-Event-ID``; ``EventStream`` calls it before ``open``."""
        return self

    @abc.abstractmethod
    def open(self) -> None:
        """The response starts: begin producing."""

    @abc.abstractmethod
    def pop(self) -> bytes | None:
        """The next chunk, or ``None`` for now."""

    @abc.abstractmethod
    def wait(self) -> Awaitable[None]:
        """Until ``pop`` may have something (or ``wake`` was called)."""

    @abc.abstractmethod
    def wake(self) -> None:
        """End a ``wait`` now: the stream has something else to look at."""

    @property
    @abc.abstractmethod
    def finished(self) -> bool:
        """Nothing more will come."""

    @property
    @abc.abstractmethod
    def failed(self) -> bool:
        """It ended by raising."""

    @abc.abstractmethod
    async def aclose(self) -> None:
        """The stream ended: let go of everything (bounded)."""

    async def discard(self) -> None:
        """Close a source that will never be opened (a refused request, a HEAD)."""
        await self.aclose()

    def attach(self, writer: Writer | None) -> None:  # noqa: B027 - optional: a fast path
        """Offer new chunks to ``writer`` first, while it is attached (``None``: no longer)."""


class Pump(Source):
    """An application's generator (sync or async) as a ``Source``."""

    __slots__ = ("_content", "_failed", "_finished", "_items", "_space", "_task", "_wakeup", "position")

    def __init__(self, content: AsyncIterable[Any] | Iterable[Any]) -> None:
        self.position: str | None = None
        self._content = content
        self._items: deque[bytes] = deque()
        self._wakeup = Wakeup()
        self._space: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._finished = False
        self._failed = False

    @property
    def finite(self) -> bool:
        return True

    @property
    def finished(self) -> bool:
        return self._finished and not self._items

    @property
    def failed(self) -> bool:
        return self._failed

    def open(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    def pop(self) -> bytes | None:
        if not self._items:
            return None
        chunk = self._items.popleft()
        space = self._space
        if space is not None and not space.done():
            space.set_result(None)
        return chunk

    def wait(self) -> Awaitable[None]:
        return self._wakeup.wait()

    def wake(self) -> None:
        self._wakeup.set()

    async def _run(self) -> None:
        iterator = _aiter(self._content)
        try:
            async for item in iterator:
                self._items.append(encode_item(item))
                self._wakeup.set()
                if self._items:  # one item ahead: wait until the stream took it
                    self._space = asyncio.get_running_loop().create_future()
                    await self._space
        except Exception:
            logger.exception("graceful-sse: the stream's generator failed; ending the stream")
            self._failed = True
        finally:
            self._finished = True
            self._wakeup.set()
            if isinstance(iterator, AsyncGenerator):
                with contextlib.suppress(Exception):
                    await iterator.aclose()

    async def discard(self) -> None:
        """Close the app's generator without starting it."""
        content = self._content
        if isinstance(content, AsyncGenerator):
            await content.aclose()
        elif isinstance(content, Generator):
            content.close()

    async def aclose(self) -> None:
        """Stop the generator and let its clean-up run (bounded)."""
        task = self._task
        if task is None or task.done():
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(asyncio.shield(task), CLOSE_TIMEOUT)


def _aiter(content: AsyncIterable[Any] | Iterable[Any]) -> AsyncIterator[Any]:
    if isinstance(content, AsyncIterable):
        return aiter(content)
    return aiter(iterate_in_threadpool(iter(content)))
