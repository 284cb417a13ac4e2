"""The in-process backend: ids, per-topic history and delivery without leaving this process."""

from __future__ import annotations

import time
from collections import OrderedDict

from .._history import EventId, History, new_epoch
from .._wire import Encoded
from . import KEY_WINDOW, Backend, Deliver, Replay, Reset, ResetReason

MAX_KEYS = 100_000  # publish keys remembered at once; the oldest go first

__all__ = ["MemoryBackend"]


class MemoryBackend(Backend):
    """Ids ``<epoch>-<seq>`` (``epoch``: this process's start, so never reused after a restart)."""

    def __init__(self, url: str = "memory://", *, history: int, history_age: float | None) -> None:
        self.url = url
        self.history = history
        self.history_age = history_age
        self._epoch = new_epoch()
        self._seq = 0
        self._histories: dict[str, History] = {}
        self._deliver: Deliver | None = None
        self._keys: OrderedDict[str, tuple[EventId, float]] = OrderedDict()  # key: (id, expiry)

    async def start(self, deliver: Deliver, reset: Reset) -> None:
        self._deliver = deliver

    async def stop(self) -> None:
        pass

    def bind(self, deliver: Deliver) -> None:
        """Deliver to ``deliver`` without a start (a hub used before its lifespan runs)."""
        self._deliver = deliver

    def last_id(self) -> EventId:
        return EventId(self._epoch, self._seq)

    async def publish(self, topic: str, body: bytes, key: str | None = None) -> EventId:
        return self.publish_nowait(topic, body, key)

    def publish_nowait(self, topic: str, body: bytes, key: str | None = None) -> EventId:
        if key is not None:
            seen = self._seen(key)
            if seen is not None:
                return seen
        event_id = EventId(self._epoch, self._seq + 1)
        chunk = Encoded(b"id: %b\n%b" % (str(event_id).encode(), body))
        self._seq += 1
        if self.history:
            history = self._histories.get(topic)
            if history is None:
                history = self._histories[topic] = History(self.history, self.history_age)
            history.append(event_id, chunk)
        if self._deliver is not None:
            self._deliver(topic, event_id, chunk)
        if key is not None:
            self._keys[key] = (event_id, time.monotonic() + KEY_WINDOW)
            if len(self._keys) > MAX_KEYS:
                self._keys.popitem(last=False)
        return event_id

    def _seen(self, key: str) -> EventId | None:
        """The id published with ``key`` within the window, if any (forgetting expired keys)."""
        now = time.monotonic()
        while self._keys:
            oldest, (_, expiry) = next(iter(self._keys.items()))
            if expiry > now:
                break
            del self._keys[oldest]
        found = self._keys.get(key)
        return found[0] if found is not None else None

    def replay_now(self, topics: tuple[str, ...], last: EventId) -> Replay:
        if last.epoch != self._epoch or last.seq > self._seq:
            return ResetReason.UNKNOWN  # another process's id (a memory history dies with it), or made up
        if not self.history and last.seq < self._seq:
            return ResetReason.NO_HISTORY
        missed: list[tuple[EventId, Encoded]] = []
        for topic in topics:
            history = self._histories.get(topic)
            if history is None:
                continue  # nothing was ever published to this topic
            since = history.since(last)
            if since is None:
                return ResetReason.TOO_OLD
            missed.extend(since)
        missed.sort(key=lambda pair: pair[0])
        return missed

    async def replay(self, topics: tuple[str, ...], last: EventId) -> Replay:
        return self.replay_now(topics, last)
