"""The broadcast hub: topics, bounded per-subscriber queues, ids and replay, connection counts.

A publish gives the event an id, encodes it once and appends the same bytes to each
subscriber's queue without awaiting anything, so a slow or stuck client can never hold up the
publisher or the others. Each queue is bounded: when a client falls ``maxsize`` events behind,
the oldest are dropped and the client gets one ``missed`` event (data ``{"count": n}``) before
the rest, so the page can re-sync. A client that returns with ``Last-Event-ID`` first gets what
it missed from the topic's history, then live events, with no gap and no duplicate between them.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Callable
from types import TracebackType
from typing import Any, TypeVar, overload

from .history import EventId, History, new_epoch
from .lifecycle import Lifecycle, Lifespan
from .limits import Authorize, Limits
from .logs import logger
from .producers import ProducerFn
from .sources import Wakeup
from .wire import Encoded, Event, encode

__all__ = ["Hub", "Subscription"]

F = TypeVar("F", bound=ProducerFn)

DEFAULT_MAXSIZE = 256
DEFAULT_HISTORY = 1000
DEFAULT_HISTORY_AGE = 600.0


class Subscription:
    """One client's subscription to one or more topics: a ``Source`` for ``EventStream``, and an
    async iterator of encoded events for any other consumer.

    It joins the hub when it opens (when iteration starts), so a response that is never sent
    leaks nothing, and leaves on ``aclose()``, which ``EventStream`` calls when the stream ends.
    """

    __slots__ = (
        "_active",
        "_closed",
        "_hub",
        "_queue",
        "_wakeup",
        "dropped",
        "last_event_id",
        "maxsize",
        "position",
        "topics",
    )

    def __init__(self, hub: Hub, topics: tuple[str, ...], maxsize: int) -> None:
        self._hub = hub
        self.topics = topics
        self.maxsize = maxsize
        self.dropped = 0  # dropped since the client last heard of it
        self.last_event_id: str | None = None
        # The id the client can resume from once it has what is queued: the hub's latest when
        # it joined, or its own Last-Event-ID when that was replayed.
        self.position: str | None = None
        self._queue: deque[Encoded] = deque()
        self._wakeup = Wakeup()
        self._active = False
        self._closed = False

    @property
    def lifecycle(self) -> Lifecycle:
        return self._hub.lifecycle

    @property
    def limits(self) -> Limits | None:
        return self._hub.limits

    @property
    def authorize(self) -> Authorize | None:
        return self._hub.authorize

    @property
    def pending(self) -> int:
        return len(self._queue)

    @property
    def finished(self) -> bool:
        return self._closed and not self._queue

    @property
    def failed(self) -> bool:
        return False

    def resume(self, last_event_id: str | None) -> Subscription:
        """Start after ``last_event_id`` (the client's ``Last-Event-ID``); ``EventStream`` calls it."""
        if not self._active:
            self.last_event_id = last_event_id
        return self

    def open(self) -> None:
        """Join the hub (replaying what the client missed, if it resumes)."""
        if not self._active and not self._closed:
            self._active = True
            self._hub._join(self)

    def pop(self) -> Encoded | None:
        """The next event, or ``None``; a ``missed`` notice first after dropped ones."""
        if self.dropped:
            missed, self.dropped = self.dropped, 0
            return encode(Event(event="missed", data={"count": missed}))
        return self._queue.popleft() if self._queue else None

    async def wait(self) -> None:
        """Until ``pop`` may have something (or ``wake`` was called)."""
        await self._wakeup.wait()

    def wake(self) -> None:
        self._wakeup.set()

    def put(self, chunk: Encoded) -> None:
        """Queue one encoded event; never blocks (drops the oldest when full)."""
        if len(self._queue) >= self.maxsize:
            self._queue.popleft()
            self.dropped += 1
        self._queue.append(chunk)
        self._wakeup.set()

    def __aiter__(self) -> Subscription:
        self.open()
        return self

    async def __anext__(self) -> Encoded:
        while True:
            chunk = self.pop()
            if chunk is not None:
                return chunk
            if self._closed:
                raise StopAsyncIteration
            await self.wait()

    async def aclose(self) -> None:
        self.close()

    def close(self) -> None:
        """Leave the hub; a waiting iteration ends."""
        if self._closed:
            return
        self._closed = True
        if self._active:
            self._hub._leave(self)
        self._queue.clear()
        self._wakeup.set()

    async def __aenter__(self) -> Subscription:
        return self.__aiter__()

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class Hub:
    """Publish/subscribe by topic, in this process.

    ``lifecycle`` is the shutdown lifecycle the hub's streams follow (a default one if not
    given); ``hub.lifespan`` starts and stops it with the app and ``@hub.producer`` registers
    background producers on it.
    ``limits`` (``graceful_sse.limits.Limits``) caps the streams of its subscriptions (503 with
    ``Retry-After``); ``authorize(request, topic)`` (sync or async) may refuse a topic (403).
    """

    def __init__(
        self,
        *,
        lifecycle: Lifecycle | None = None,
        maxsize: int = DEFAULT_MAXSIZE,
        history: int = DEFAULT_HISTORY,
        history_age: float | None = DEFAULT_HISTORY_AGE,
        limits: Limits | None = None,
        authorize: Authorize | None = None,
    ) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        if history < 0:
            raise ValueError("history must be 0 or more events")
        self.lifecycle = lifecycle or Lifecycle()
        self.limits = limits
        self.authorize = authorize
        self.maxsize = maxsize
        self.history = history
        self.history_age = history_age
        self._topics: dict[str, set[Subscription]] = {}
        self._histories: dict[str, History] = {}
        self._epoch = new_epoch()
        self._seq = 0
        self._total = 0

    # -- app wiring ----------------------------------------------------------------------------

    def lifespan(self, app: Any = None) -> Lifespan:
        """``fast_app(lifespan=hub.lifespan)``: start and stop the hub's lifecycle with the app."""
        return Lifespan(self._lifespan(app))

    async def _lifespan(self, app: Any) -> AsyncIterator[None]:
        async with self.lifecycle.lifespan(app):
            yield

    @overload
    def producer(self, fn: F) -> F: ...
    @overload
    def producer(self, *, every: float | None = None, name: str | None = None) -> Callable[[F], F]: ...

    def producer(self, fn: Any = None, *, every: float | None = None, name: str | None = None) -> Any:
        """``@hub.producer`` / ``@hub.producer(every=1.0)``: see ``Lifecycle.producer``."""
        if fn is not None:
            return self.lifecycle.producer(fn)
        return self.lifecycle.producer(every=every, name=name)

    # -- pub/sub -------------------------------------------------------------------------------

    def subscribe(self, *topics: str, maxsize: int | None = None) -> Subscription:
        """A subscription to ``topics``; pass it to ``EventStream``."""
        if not topics:
            raise ValueError("subscribe to at least one topic")
        for topic in topics:
            _check_topic(topic)
        return Subscription(self, tuple(dict.fromkeys(topics)), maxsize or self.maxsize)

    async def publish(self, topic: str, data: Any = None, *, event: str | None = None) -> int:
        """Send one event to every subscriber of ``topic``; returns how many it was queued for.

        ``data`` may also be an ``Event`` (for its name, retry or comment); the hub gives every
        event its id.
        """
        return self.publish_nowait(topic, data, event=event)

    def publish_nowait(self, topic: str, data: Any = None, *, event: str | None = None) -> int:
        """``publish`` for synchronous code on the event loop's thread."""
        _check_topic(topic)
        event_id = EventId(self._epoch, self._seq + 1)
        chunk = encode(_with_id(data, event, str(event_id)))
        self._seq += 1
        if self.history:
            history = self._histories.get(topic)
            if history is None:
                history = self._histories[topic] = History(self.history, self.history_age)
            history.append(event_id, chunk)
        subscribers = self._topics.get(topic)
        if not subscribers:
            return 0
        for sub in subscribers:
            sub.put(chunk)
        return len(subscribers)

    @property
    def last_id(self) -> str:
        """The id of the latest event published here."""
        return str(EventId(self._epoch, self._seq))

    def connections(self, topic: str | None = None) -> int:
        """Open subscriptions, to ``topic`` or in total."""
        if topic is None:
            return self._total
        return len(self._topics.get(topic, ()))

    def _join(self, sub: Subscription) -> None:
        # Replay and registration happen with no await between them: nothing published in
        # between can be missed or delivered twice.
        sub.position = self.last_id
        if sub.last_event_id is not None:
            replay = self._replay(sub.topics, sub.last_event_id)
            if isinstance(replay, str):
                sub._queue.append(_reset(sub.last_event_id, replay))
            else:
                sub._queue.extend(replay)
                sub.position = sub.last_event_id
        for topic in sub.topics:
            self._topics.setdefault(topic, set()).add(sub)
        self._total += 1

    def _leave(self, sub: Subscription) -> None:
        for topic in sub.topics:
            subs = self._topics.get(topic)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._topics[topic]
        self._total -= 1

    def _replay(self, topics: tuple[str, ...], last_event_id: str) -> list[Encoded] | str:
        """What the client missed after ``last_event_id``, or why that cannot be told."""
        last = EventId.parse(last_event_id)
        if last is None:
            return "not-ours"
        if last.epoch != self._epoch or last.seq > self._seq:
            return "unknown"  # another process's id (a memory history dies with it), or made up
        if not self.history and last.seq < self._seq:
            return "no-history"
        missed: list[tuple[EventId, Encoded]] = []
        for topic in topics:
            history = self._histories.get(topic)
            if history is None:
                continue  # nothing was ever published to this topic
            since = history.since(last)
            if since is None:
                return "too-old"
            missed.extend(since)
        missed.sort(key=lambda pair: pair[0])
        return [chunk for _, chunk in missed]


def _with_id(data: Any, event: str | None, event_id: str) -> Event:
    if isinstance(data, Event):
        if event is not None:
            raise TypeError("pass event= inside the Event, not next to it")
        if data.id is not None:
            raise ValueError("the hub gives every event its id: publish an Event without id=")
        return Event(data=data.data, event=data.event, id=event_id, retry=data.retry, comment=data.comment)
    return Event(data=data, event=event, id=event_id)


def _reset(last_event_id: str, reason: str) -> Encoded:
    shown = last_event_id if len(last_event_id) <= 40 else last_event_id[:40] + "…"
    logger.info("graceful-sse: cannot replay after Last-Event-ID %r (%s); sending reset", shown, reason)
    return encode(Event(event="reset", data={"reason": reason}))


def _check_topic(topic: str) -> None:
    if not isinstance(topic, str) or not topic:
        raise ValueError(f"a topic is a non-empty str, not {topic!r}")
