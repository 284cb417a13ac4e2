"""The broadcast hub: topics, bounded per-subscriber queues, ids and replay, presence, metrics.

A publish gives the event an id, encodes it once and hands the same bytes to each subscriber
without awaiting anything, so a slow or stuck client can never hold up the publisher or the
others. A stream at rest writes them at once, from the publisher's call (the server's send
completes without waiting when its client keeps up, and no stream task is woken); the others
queue them. Each queue is bounded, and what happens when a client falls ``maxsize`` events
behind is a policy, per hub, per topic or per subscription:

- ``"drop-oldest"``: the oldest are dropped and the client first gets one ``missed`` event
  (data ``{"count": n}``), so the page can re-sync;
- ``"restart"``: the stream ends with restart advice (``retry:`` and a ``restart`` event), so
  the client comes back with ``Last-Event-ID`` and replays what it missed from the history.

A client that returns with ``Last-Event-ID`` first gets what it missed from the history of its
topics, then live events, with no gap and no duplicate between them. Where the events travel
between publishers and subscribers is the backend's business: this process (``memory://``) or
Redis (``redis://``), chosen by URL.

The app can end streams itself (``await hub.end(topic=...)`` or ``identity=``, the identity a
subscription was given at ``subscribe``): on every worker, through the backend, each ends with
the farewell of a shutdown (``stop``: do not come back, the page showing the app's reason;
``restart``). Only subscriptions with an identity are indexed by it; publishing pays nothing.
"""

from __future__ import annotations

import asyncio
import enum
import inspect
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, ClassVar, Literal, Self, TypeVar, overload

from starlette.exceptions import HTTPException
from starlette.types import Scope

from ._backends import MAX_KEY, Backend, BackendUnavailable, EndOrder, Replay, ResetReason, open_backend
from ._drain import Kind, KindName, as_kind
from ._history import EventId
from ._lifecycle import Lifecycle, Lifespan
from ._limits import Authorize, Limits, authorized
from ._logs import Summary, logger
from ._metrics import HubMetrics
from ._producers import ProducerFn
from ._sources import Ending, Source, Wakeup, Writer
from ._wire import Encoded, Event, encode

__all__ = ["Hub", "InvalidIdentity", "InvalidTopic", "Overflow", "Subscription", "TopicPolicy"]

F = TypeVar("F", bound=ProducerFn)
Hook = Callable[["Subscription"], Awaitable[None] | None]

DEFAULT_MAXSIZE = 256
DEFAULT_HISTORY = 1000
DEFAULT_HISTORY_AGE = 600.0
DEFAULT_MAX_EVENT_BYTES = 1 << 20
MAX_TOPIC_LENGTH = 200  # characters of a topic, and of an identity
MAX_REASON_LENGTH = 500  # characters of the reason ``Hub.end`` shows the page
# Unicode's control characters (C0, DEL, C1): topics and identities often come from requests, and
# name Redis keys and log lines.
_NAME = re.compile(rf"[^\x00-\x1f\x7f-\x9f]{{1,{MAX_TOPIC_LENGTH}}}")


class _InvalidName(ValueError, HTTPException):
    """A name that cannot be used: a ``ValueError`` for the code that passed it, and, raised
    while a route handles a request, a 400 with this message (Starlette's exception handling,
    which FastHTML and FastAPI share)."""

    def __init__(self, message: str) -> None:
        ValueError.__init__(self, message)
        HTTPException.__init__(self, 400, message)

    def __str__(self) -> str:
        return self.detail


class InvalidTopic(_InvalidName):
    """A topic that is not 1 to ``Hub.MAX_TOPIC_LENGTH`` characters without control characters."""


class InvalidIdentity(_InvalidName):
    """An identity (``subscribe(identity=)``, ``end(identity=)``) that breaks the topics' rules."""


class Overflow(enum.StrEnum):
    """What happens when a client falls ``maxsize`` events behind."""

    DROP_OLDEST = "drop-oldest"  # drop the oldest; the client first gets a ``missed`` event
    RESTART = "restart"  # end the stream with restart advice; it replays from the history


OverflowName = Overflow | Literal["drop-oldest", "restart"]  # what the public API accepts


@dataclass(frozen=True, slots=True)
class TopicPolicy:
    """How subscribers of a topic are buffered (``None``: the hub's setting)."""

    maxsize: int | None = None
    overflow: OverflowName | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "overflow", _check_policy(self.maxsize, self.overflow))


class Subscription(Source):
    """One client's subscription to one or more topics: a ``Source`` for ``EventStream``, and an
    async iterator of encoded events for any other consumer.

    It joins the hub when it opens (when iteration starts), so a response that is never sent
    leaks nothing, and leaves on ``aclose()``, which ``EventStream`` calls when the stream ends.
    """

    __slots__ = (
        "_active",
        "_closed",
        "_ending",
        "_farewell",
        "_floor",
        "_held",
        "_hub",
        "_queue",
        "_wakeup",
        "_writer",
        "delivered",
        "dropped",
        "dropped_total",
        "identity",
        "last_event_id",
        "maxsize",
        "overflow",
        "position",
        "topics",
    )

    def __init__(
        self,
        hub: Hub,
        topics: tuple[str, ...],
        maxsize: int,
        overflow: Overflow,
        identity: str | None = None,
    ) -> None:
        self._hub = hub
        self.topics = topics
        self.identity = identity  # whom the app says it belongs to (``Hub.end(identity=)``)
        self.maxsize = maxsize
        self.overflow: Overflow = overflow
        self.dropped = 0  # dropped since the client last heard of it
        self.dropped_total = 0
        self.delivered = 0
        self.last_event_id: str | None = None
        # The id the client can resume from once it has what is queued: the hub's latest when
        # it joined, or its own Last-Event-ID when that is replayed.
        self.position: str | None = None
        # A list, not a deque: most streams never queue (the publisher writes for them), and an
        # empty deque holds a 64-slot block (0.76 KB a stream at rest).
        self._queue: list[Encoded] = []
        # While a replay is fetched, live events wait here with their ids, to be merged after it.
        self._held: list[tuple[EventId | None, Encoded]] | None = None
        self._farewell: bytes | None = None
        self._ending: Ending | None = None  # the app ended it (``Hub.end``)
        # Live events up to this id were replayed (or the client had them from another worker).
        self._floor: EventId | None = None
        self._wakeup = Wakeup()
        self._writer: Writer | None = None  # the stream, while it can take events straight away
        self._active = False
        self._closed = False

    @property
    def lifecycle(self) -> Lifecycle:
        return self._hub.lifecycle

    @property
    def limits(self) -> Limits | None:
        return self._hub.limits

    async def authorized(self, scope: Scope) -> bool:
        """The hub's ``authorize`` hook, asked for each topic."""
        check = self._hub.authorize
        return check is None or await authorized(check, scope, self.topics)

    @property
    def pending(self) -> int:
        return len(self._queue)

    @property
    def finished(self) -> bool:
        return self._closed and not self._queue and self._farewell is None

    @property
    def failed(self) -> bool:
        return False

    @property
    def ending(self) -> Ending | None:
        return self._ending

    def end(self, kind: KindName = Kind.STOP, reason: str | None = None) -> None:
        """End this stream with the farewell of ``kind``, its status showing ``reason``.

        ``Hub.end`` does it for every stream of a topic or identity, on every worker.
        """
        if self._closed:
            return
        self._ending = Ending(as_kind(kind), _check_reason(reason))
        self.close()  # leaves the hub and wakes the stream, which writes the farewell

    def stats(self) -> dict[str, Any]:
        """This stream's buffering: its policy in force, what waits, what it lost."""
        return {
            "topics": list(self.topics),
            "identity": self.identity,
            "maxsize": self.maxsize,
            "overflow": self.overflow,
            "pending": len(self._queue),
            "delivered": self.delivered,
            "dropped": self.dropped_total,
            "position": self.position,
        }

    def resume(self, last_event_id: str | None) -> Self:
        """Start after ``last_event_id`` (the client's ``Last-Event-ID``); ``EventStream`` calls it."""
        if not self._active:
            self.last_event_id = last_event_id
        return self

    def open(self) -> None:
        """Join the hub, then catch up on what the client missed if it resumes."""
        if self._active or self._closed:
            return
        self._active = True
        # Registration and the position are taken with no await in between; a replay that has
        # to be fetched holds the live events meanwhile and is merged by id.
        self.position = self._hub._join(self)
        if self.last_event_id is not None:
            self._catch_up(self.last_event_id)
        self._hub._joined(self)

    def attach(self, writer: Writer | None) -> None:
        self._writer = writer

    def pop(self) -> bytes | None:
        """The next event, or ``None``; a ``missed`` notice first after dropped ones."""
        if self._farewell is not None:
            farewell, self._farewell = self._farewell, None
            return farewell
        if self.dropped:
            missed, self.dropped = self.dropped, 0
            return encode(Event(event="missed", data={"count": missed}))
        if not self._queue:
            return None
        self.delivered += 1
        self._hub.counters.events_delivered += 1
        return self._queue.pop(0)

    def wait(self) -> Awaitable[None]:
        """Until ``pop`` may have something (or ``wake`` was called)."""
        return self._wakeup.wait()

    def wake(self) -> None:
        self._wakeup.set()

    def put(self, chunk: Encoded, event_id: EventId | None = None) -> None:
        """Queue one encoded event; never blocks (the overflow policy decides when full)."""
        if self._floor is not None and event_id is not None:
            if event_id <= self._floor:
                return
            self._floor = None
        if self._held is not None:
            self._held.append((event_id, chunk))
            if len(self._held) > self.maxsize:
                self._overflowed(self._held)
            return
        # The fast path: nothing waits before this event, so the stream writes it now, from the
        # publisher, without waking its task (the write completes at once unless the client is
        # slow to read, and then it finishes in a task of its own).
        writer = self._writer
        if writer is not None and not self._queue and not self.dropped and writer.write_now(chunk):
            self.delivered += 1
            self._hub.counters.events_delivered += 1
            return
        if len(self._queue) >= self.maxsize:
            self._overflowed(self._queue)
            if self._closed:
                return
        self._queue.append(chunk)
        self._wakeup.set()

    def _overflowed(self, queue: list[Encoded] | list[tuple[EventId | None, Encoded]]) -> None:
        if self.overflow is Overflow.RESTART:
            self._restart_slow()
            return
        del queue[0]
        self.dropped += 1
        self.dropped_total += 1
        self._hub.counters.events_dropped += 1

    def _restart_slow(self) -> None:
        # The client is too far behind to be worth buffering for: free what waits, leave the
        # hub, and tell it to come back; its Last-Event-ID replays the rest from the history.
        self._hub.counters.slow_client_restarts += 1
        self._farewell = self._hub._slow_farewell()
        self._queue.clear()
        self._held = None
        self.close(keep_farewell=True)

    def _catch_up(self, last_event_id: str) -> None:
        """Queue what the client missed after ``last_event_id``, or a reset saying why it cannot."""
        self._held = []  # live events wait here until the replay is in the queue
        last = EventId.parse(last_event_id)
        if last is None:
            self._replayed(ResetReason.NOT_OURS)
            return
        self.position = last_event_id
        replay = self._hub.backend.replay_now(self.topics, last)
        if replay is not None:
            self._replayed(replay)
        else:
            self._hub._spawn(self._fetch_replay(last))

    async def _fetch_replay(self, last: EventId) -> None:
        # Whatever happens the stream is told: a replay that cannot be fetched is a reset, and
        # the live events held meanwhile follow it.
        replay: Replay
        try:
            replay = await self._hub.backend.replay(self.topics, last)
        except BackendUnavailable:
            replay = ResetReason.UNAVAILABLE
        except Exception:
            logger.exception("graceful-sse: the replay after %s failed; sending reset", last)
            replay = ResetReason.UNAVAILABLE
        self._replayed(replay)

    def _replayed(self, replay: Replay) -> None:
        """Put the replay before the live events held meanwhile, dropping those it already holds."""
        held, self._held = self._held or [], None
        if self._closed:
            return
        newest = EventId.parse(self.last_event_id or "")
        if isinstance(replay, ResetReason):
            newest = None  # an id we cannot place says nothing about what the client holds
            self._queue.append(self._hub._reset(self.last_event_id or "", replay))
        else:
            self._hub.counters.replays += 1
            for replayed_id, replayed in replay:
                self._queue.append(replayed)
                newest = replayed_id
        # The replay may exceed maxsize (it is bounded by the history): the bound applies to
        # what comes after it.
        for event_id, chunk in held:
            if newest is None or event_id is None or event_id > newest:
                self._queue.append(chunk)
        self._floor = newest
        self._wakeup.set()

    def __aiter__(self) -> Subscription:
        self.open()
        return self

    async def __anext__(self) -> bytes:
        while True:
            chunk = self.pop()
            if chunk is not None:
                return chunk
            if self.finished:
                raise StopAsyncIteration
            await self.wait()

    async def aclose(self) -> None:
        self.close()

    def close(self, *, keep_farewell: bool = False) -> None:
        """Leave the hub; a waiting iteration ends."""
        if self._closed:
            return
        self._closed = True
        self._writer = None
        if self._active:
            self._hub._leave(self)
        self._queue.clear()
        self._held = None
        if not keep_farewell:
            self._farewell = None
        self._wakeup.set()

    async def __aenter__(self) -> Subscription:
        return self.__aiter__()

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class Hub:
    """Publish/subscribe by topic.

    ``url`` chooses the backend: ``memory://`` (default; this process only) or ``redis://...``
    (every worker and host; needs the ``redis`` extra); ``None`` reads ``$SSE_BROKER_URL``.
    ``lifecycle`` is the shutdown lifecycle the hub's streams follow (a default one if not
    given); ``hub.lifespan`` starts and stops it and the backend with the app, and
    ``@hub.producer`` registers background producers on it. ``maxsize`` and ``overflow`` are the
    default buffering of each subscriber, ``topics`` overrides them per topic, and
    ``subscribe(..., maxsize=, overflow=)`` per subscription.
    ``limits`` (a ``graceful_sse.Limits``) caps the streams of its subscriptions (503 with
    ``Retry-After``); ``authorize(request, topic)`` (sync or async) may refuse a topic (403).
    ``max_event_bytes`` (1 MiB; ``None``: no limit) refuses bigger events at the publisher with a
    ``ValueError``.
    """

    MAX_KEY_LENGTH: ClassVar[int] = MAX_KEY  # characters of a publish ``key``
    MAX_TOPIC_LENGTH: ClassVar[int] = MAX_TOPIC_LENGTH  # characters of a topic or an identity

    def __init__(
        self,
        url: str | None = None,
        *,
        backend: Backend | None = None,
        lifecycle: Lifecycle | None = None,
        maxsize: int = DEFAULT_MAXSIZE,
        overflow: OverflowName = Overflow.DROP_OLDEST,
        history: int = DEFAULT_HISTORY,
        history_age: float | None = DEFAULT_HISTORY_AGE,
        topics: Mapping[str, TopicPolicy] | None = None,
        max_event_bytes: int | None = DEFAULT_MAX_EVENT_BYTES,
        limits: Limits | None = None,
        authorize: Authorize | None = None,
    ) -> None:
        if history < 0:
            raise ValueError("history must be 0 or more events")
        self.lifecycle = lifecycle or Lifecycle()
        self.limits = limits
        self.authorize = authorize
        self.maxsize = maxsize
        self.overflow = _check_policy(maxsize, overflow) or Overflow.DROP_OLDEST
        self.history = history
        self.history_age = history_age
        self.policies: dict[str, TopicPolicy] = dict(topics or {})
        self.max_event_bytes = max_event_bytes
        self.counters = HubMetrics()
        if url is not None and backend is not None:
            raise ValueError("pass the backend as url= or as backend=, not both")
        self.backend = backend or open_backend(url, history=history, history_age=history_age)
        self.backend.bind(self._deliver)  # in-process: delivering needs no start
        self.backend.watch_topics(lambda: tuple(self._topics), self._local_counts)
        self.backend.on_end(self._end_here)
        self._topics: dict[str, set[Subscription]] = {}
        self._identities: dict[str, set[Subscription]] = {}
        self._total = 0
        self._connect_hooks: list[Hook] = []
        self._disconnect_hooks: list[Hook] = []
        self._hook_tasks: set[asyncio.Future[Any]] = set()
        self._start: asyncio.Task[None] | None = None
        self._lifespans = 0  # apps whose lifespan is running with this hub
        self._resets_log = Summary("unusable Last-Event-IDs")  # clients choose what they send

    # -- app wiring ----------------------------------------------------------------------------

    def lifespan(self, app: Any = None) -> Lifespan:
        """``fast_app(lifespan=hub.lifespan)``: start and stop the lifecycle and backend with the app."""
        return Lifespan(self._lifespan(app))

    async def _lifespan(self, app: Any) -> AsyncIterator[None]:
        async with self.lifecycle.lifespan(app):
            await self.start()
            self._lifespans += 1
            try:
                yield
            finally:
                self._lifespans -= 1
                # A notebook's next server can start before the last one has finished: the
                # backend stops with the last app using it.
                if not self._lifespans:
                    await self.stop()

    async def start(self) -> None:
        """Connect the backend (the lifespan does it; publishing and subscribing do it lazily)."""
        await asyncio.shield(self._starting(asyncio.get_running_loop()))

    async def stop(self) -> None:
        """Disconnect the backend; open subscriptions stay open until their streams end."""
        start = self._start
        # A notebook's stopped server can finish after the next one started the backend on its
        # own loop: only the loop that started it stops it.
        if start is not None and start.get_loop() is asyncio.get_running_loop():
            self._start = None
            await self.backend.stop()

    def _starting(self, loop: asyncio.AbstractEventLoop) -> asyncio.Task[None]:
        # One start per event loop: a backend's connections belong to the loop that made them.
        start = self._start
        if start is None or start.get_loop() is not loop:
            start = self._start = loop.create_task(self.backend.start(self._deliver, self._gap))
        return start

    def _ensure_started(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # a sync caller outside the loop: the first async use starts it
        self._starting(loop)

    @overload
    def producer(self, fn: F) -> F: ...
    @overload
    def producer(self, *, every: float | None = None, name: str | None = None) -> Callable[[F], F]: ...

    def producer(self, fn: Any = None, *, every: float | None = None, name: str | None = None) -> Any:
        """``@hub.producer`` / ``@hub.producer(every=1.0)``: see ``Lifecycle.producer``."""
        if fn is not None:
            return self.lifecycle.producer(fn)
        return self.lifecycle.producer(every=every, name=name)

    def on_connect(self, hook: Hook) -> Hook:
        """``@hub.on_connect``: called with each subscription as it joins (sync or async)."""
        self._connect_hooks.append(hook)
        return hook

    def on_disconnect(self, hook: Hook) -> Hook:
        """``@hub.on_disconnect``: called with each subscription as it leaves (sync or async)."""
        self._disconnect_hooks.append(hook)
        return hook

    # -- pub/sub -------------------------------------------------------------------------------

    def subscribe(
        self,
        *topics: str,
        maxsize: int | None = None,
        overflow: OverflowName | None = None,
        identity: str | None = None,
    ) -> Subscription:
        """A subscription to ``topics``; pass it to ``EventStream``.

        Its buffering: ``maxsize`` and ``overflow`` if given, else those of the first of its
        topics that has a policy, else the hub's. ``identity`` says whom it belongs to (the
        session's user, say), so that ``end(identity=...)`` can end it.

        A topic or identity that breaks the rules (see ``InvalidTopic``) raises a ``ValueError``
        that a route answers with 400.
        """
        if not topics:
            raise InvalidTopic("subscribe to at least one topic")
        for topic in topics:
            _check_topic(topic)
        if identity is not None:
            _check_identity(identity)
        overflow = _check_policy(maxsize, overflow)
        policy = next((self.policies[t] for t in topics if t in self.policies), TopicPolicy())
        return Subscription(
            self,
            tuple(dict.fromkeys(topics)),
            maxsize or policy.maxsize or self.maxsize,
            Overflow(overflow or policy.overflow or self.overflow),
            identity,
        )

    async def end(
        self,
        *,
        topic: str | None = None,
        identity: str | None = None,
        kind: KindName = Kind.STOP,
        reason: str | None = None,
    ) -> int:
        """End the streams of ``topic``, of ``identity``, or of that identity on that topic, on
        every worker sharing the backend; the number ended in this process.

        ``kind="stop"``: the client does not come back, and the page's status shows ``reason``
        (escaped; the server's stop label if ``None``); ``"restart"``: it comes back after a
        random delay, as after a restart. Other streams are untouched. The other workers end
        theirs when the order reaches them; their count is not known here. Nothing stops a
        client from opening a new stream: the route decides that (a signed-out session, say).

        With Redis, raises ``BackendUnavailable`` when the order could not be sent (this
        process's streams are ended): ending again is safe.
        """
        if topic is None and identity is None:
            raise ValueError("end needs topic=, identity= or both")
        if topic is not None:
            _check_topic(topic)
        if identity is not None:
            _check_identity(identity)
        order = EndOrder(str(as_kind(kind)), _check_reason(reason), topic, identity)
        await self.start()
        return await self.backend.end(order)

    async def publish(
        self, topic: str, data: Any = None, *, event: str | None = None, key: str | None = None
    ) -> str:
        """Send one event to every subscriber of ``topic``; returns the id it was given.

        ``data`` may also be an ``Event`` (for its name, retry or comment); the hub gives every
        event its id. With a ``key`` (a form's token, an order number) the event is published at
        most once per key within ten minutes, on every worker: publishing it again returns the
        first one's id and delivers nothing, so a retry is always safe.

        With Redis, raises ``NotPublished`` when Redis could not be reached (publish again) or
        ``OutcomeUnknown`` when it did not answer in time (it may still publish the event:
        publish again with the same key); both are ``BackendUnavailable``.
        """
        body = self._body(topic, data, event)
        _check_key(key)
        await self.start()
        try:
            event_id = await self.backend.publish(topic, body, key)
        except BackendUnavailable:
            self.counters.publish_failures += 1
            raise
        self.counters.events_published += 1
        return str(event_id)

    def publish_nowait(
        self, topic: str, data: Any = None, *, event: str | None = None, key: str | None = None
    ) -> str | None:
        """``publish`` for synchronous code on the event loop's thread.

        In memory it is delivered before this returns (the id is returned); with Redis it is
        queued in order behind earlier ones (``None``), sent again until Redis takes it (at most
        once), and raises ``NotPublished`` when that queue is full.
        """
        body = self._body(topic, data, event)
        _check_key(key)
        self._ensure_started()
        event_id = self.backend.publish_nowait(topic, body, key)
        self.counters.events_published += 1
        return None if event_id is None else str(event_id)

    def _body(self, topic: str, data: Any, event: str | None) -> bytes:
        """The event encoded once, without its id (the backend gives it); refused if too big."""
        _check_topic(topic)
        body = _without_id(data, event).encode()
        limit = self.max_event_bytes
        if limit is not None and len(body) > limit:
            raise ValueError(
                f"an event of {len(body):,} bytes is over the hub's max_event_bytes ({limit:,}): "
                "nothing was published"
            )
        return body

    @property
    def last_id(self) -> str:
        """The id of the latest event this process has seen."""
        return str(self.backend.last_id())

    def connections(self, topic: str | None = None) -> int:
        """Open subscriptions in this process, to ``topic`` or in total."""
        if topic is None:
            return self._total
        return len(self._topics.get(topic, ()))

    async def presence(self) -> dict[str, Any]:
        """Open subscriptions in the whole deployment (every worker sharing the backend):
        ``{"total": n, "topics": {topic: n}}``."""
        await self.start()
        counts = await self.backend.presence(self._local_counts())
        total = counts.pop("*", 0)
        return {"total": total, "topics": counts}

    def streams(self) -> list[dict[str, Any]]:
        """Each open subscription's ``stats()`` in this process."""
        seen: dict[int, Subscription] = {}
        for subs in self._topics.values():
            for sub in subs:
                seen[id(sub)] = sub
        return [sub.stats() for sub in seen.values()]

    def metrics(self) -> dict[str, Any]:
        """Counters for this process (``HubMetrics`` and the current gauges), as a plain dict."""
        values: dict[str, Any] = self.counters.as_dict()
        values["connections"] = self._total
        values["topics"] = {topic: len(subs) for topic, subs in self._topics.items()}
        values["backend"] = self.backend.url.split(":", 1)[0]
        values["shutdowns"] = self.lifecycle.shutdowns
        values["shutdown_seconds_last"] = self.lifecycle.last_shutdown_seconds
        values["streams_finished"] = self.lifecycle.streams_finished
        values["streams_out_of_time"] = self.lifecycle.streams_out_of_time
        return values

    # -- the subscribers' side -----------------------------------------------------------------

    def _deliver(self, topic: str, event_id: EventId, chunk: Encoded) -> None:
        subscribers = self._topics.get(topic)
        if subscribers:
            # A copy: the restart policy makes a subscriber leave the set while it is served.
            for sub in tuple(subscribers):
                sub.put(chunk, event_id)

    def _gap(self, topics: Iterable[str], reason: ResetReason) -> None:
        """The backend lost events it cannot replay: tell the subscribers of ``topics``."""
        chunk = _reset_event(reason)
        for topic in topics:
            for sub in self._topics.get(topic, ()):
                sub.put(chunk)

    def _end_here(self, order: EndOrder) -> int:
        """End this process's subscriptions that ``order`` names; how many."""
        if order.identity is not None:
            chosen = set(self._identities.get(order.identity, ()))
            if order.topic is not None:
                chosen = {sub for sub in chosen if order.topic in sub.topics}
        else:
            assert order.topic is not None
            chosen = set(self._topics.get(order.topic, ()))
        try:
            kind = as_kind(order.kind)
        except ValueError:  # from a process that knows more kinds than this one
            logger.warning("graceful-sse: an order to end streams with kind %r ignored", order.kind)
            return 0
        for sub in chosen:
            sub.end(kind, order.reason)
        self.counters.streams_ended += len(chosen)
        if chosen:
            named = (("topic", order.topic), ("identity", order.identity))
            what = " and ".join(f"{name} {value!r}" for name, value in named if value is not None)
            logger.info("graceful-sse: ended %d stream(s) of %s (%s)", len(chosen), what, kind)
        return len(chosen)

    def _join(self, sub: Subscription) -> str:
        """Register ``sub`` for its topics; the id of the latest event, where it starts."""
        self._ensure_started()
        position = str(self.backend.last_id())
        for topic in sub.topics:
            self._topics.setdefault(topic, set()).add(sub)
        if sub.identity is not None:
            self._identities.setdefault(sub.identity, set()).add(sub)
        self._total += 1
        self.counters.connections_opened += 1
        return position

    def _joined(self, sub: Subscription) -> None:
        self._run_hooks(self._connect_hooks, sub)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._hook_tasks.add(task)
        task.add_done_callback(self._hook_tasks.discard)

    def _leave(self, sub: Subscription) -> None:
        for topic in sub.topics:
            subs = self._topics.get(topic)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._topics[topic]
        if sub.identity is not None:
            owned = self._identities.get(sub.identity)
            if owned is not None:
                owned.discard(sub)
                if not owned:
                    del self._identities[sub.identity]
        self._total -= 1
        self.counters.connections_closed += 1
        self._run_hooks(self._disconnect_hooks, sub)

    def _local_counts(self) -> dict[str, int]:
        counts = {topic: len(subs) for topic, subs in self._topics.items()}
        counts["*"] = self._total
        return counts

    def _run_hooks(self, hooks: list[Hook], sub: Subscription) -> None:
        for hook in hooks:
            try:
                result = hook(sub)
            except Exception:
                logger.exception("graceful-sse: hook %r failed", hook)
                continue
            if inspect.isawaitable(result):
                task = asyncio.ensure_future(result)
                self._hook_tasks.add(task)
                task.add_done_callback(self._hook_done)

    def _hook_done(self, task: asyncio.Future[Any]) -> None:
        self._hook_tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("graceful-sse: hook failed", exc_info=task.exception())

    def _reset(self, last_event_id: str, reason: ResetReason) -> Encoded:
        self.counters.resets += 1
        shown = last_event_id if len(last_event_id) <= 40 else last_event_id[:40] + "…"
        self._resets_log.log(
            reason, "graceful-sse: cannot replay after Last-Event-ID %r (%s); sending reset", shown, reason
        )
        return _reset_event(reason)

    def _slow_farewell(self) -> bytes:
        return self.lifecycle.farewells.restart_event(
            {"reason": "slow", "message": "You fell behind; reconnecting to catch up."}
        )


def _check_key(key: str | None) -> None:
    if key is not None and not (isinstance(key, str) and 0 < len(key) <= MAX_KEY):
        raise ValueError(f"a publish key is a string of 1 to {MAX_KEY} characters, not {key!r:.60}")


def _reset_event(reason: ResetReason) -> Encoded:
    """Tells a page that events it should have had cannot be given: re-render from scratch."""
    return encode(Event(event="reset", data={"reason": reason}))


def _without_id(data: Any, event: str | None) -> Event:
    if isinstance(data, Event):
        if event is not None:
            raise TypeError("pass event= inside the Event, not next to it")
        if data.id is not None:
            raise ValueError("the hub gives every event its id: publish an Event without id=")
        return data
    return Event(data=data, event=event)


def _check_topic(topic: str) -> None:
    if not _valid_name(topic):
        raise InvalidTopic(_name_rule("a topic", topic))


def _check_identity(identity: str) -> None:
    if not _valid_name(identity):
        raise InvalidIdentity(_name_rule("an identity", identity))


def _valid_name(name: object) -> bool:
    return isinstance(name, str) and _NAME.fullmatch(name) is not None


def _name_rule(what: str, name: object) -> str:
    if isinstance(name, str) and len(name) > 40:
        shown = f"{name[:40]!r}… ({len(name):,} characters)"
    else:
        shown = repr(name)
    return f"{what} is a str of 1 to {MAX_TOPIC_LENGTH} characters without control characters, not {shown}"


def _check_reason(reason: str | None) -> str | None:
    if reason is not None and not (isinstance(reason, str) and len(reason) <= MAX_REASON_LENGTH):
        raise ValueError(f"a reason is a str of at most {MAX_REASON_LENGTH} characters, not {reason!r:.60}")
    return reason


def _check_policy(maxsize: int | None, overflow: str | None) -> Overflow | None:
    if maxsize is not None and maxsize < 1:
        raise ValueError("maxsize must be at least 1")
    if overflow is None:
        return None
    try:
        return Overflow(overflow)
    except ValueError:
        names = ", ".join(Overflow)
        raise ValueError(f"overflow must be one of {names}, not {overflow!r}") from None
