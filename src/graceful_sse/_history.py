"""Event ids and the per-topic history that lets a returning client replay what it missed.

An id is ``<epoch>-<seq>``: ``epoch`` is the publishing hub's start time in milliseconds, so ids
are never reused after a restart, and ``seq`` counts the hub's publishes, so ids are ordered.
A client that comes back with ``Last-Event-ID`` gets every event after it that the history
still holds, or, when it cannot be served exactly (an id from another process or older than the
history, or not one of ours), a ``reset`` event so that the page re-renders.
"""

from __future__ import annotations

import re
import time
from collections import deque
from dataclasses import dataclass

from ._wire import Encoded

__all__ = ["MAX_ID_LENGTH", "EventId", "History"]

MAX_ID_LENGTH = 64
_ID = re.compile(r"([0-9]{1,20})-([0-9]{1,20})")


@dataclass(frozen=True, order=True, slots=True)
class EventId:
    epoch: int
    seq: int

    def __str__(self) -> str:
        return f"{self.epoch}-{self.seq}"

    @classmethod
    def parse(cls, text: str) -> EventId | None:
        """The id ``text`` names, or ``None`` if it is not one of ours (any length, any junk)."""
        if len(text) > MAX_ID_LENGTH:
            return None
        match = _ID.fullmatch(text.strip())
        if match is None:
            return None
        return cls(int(match[1]), int(match[2]))


def new_epoch() -> int:
    return time.time_ns() // 1_000_000


class History:
    """The last events of one topic, bounded by count and by age."""

    __slots__ = ("_events", "max_age", "maxlen", "trimmed_upto")

    def __init__(self, maxlen: int, max_age: float | None) -> None:
        self.maxlen = maxlen
        self.max_age = max_age
        self._events: deque[tuple[EventId, float, Encoded]] = deque()
        self.trimmed_upto: EventId | None = None  # newest id no longer held

    def __len__(self) -> int:
        return len(self._events)

    def append(self, event_id: EventId, chunk: Encoded, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self._events.append((event_id, now, chunk))
        self.trim(now)

    def trim(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        events = self._events
        while events and (
            len(events) > self.maxlen or (self.max_age is not None and now - events[0][1] > self.max_age)
        ):
            self.trimmed_upto = events.popleft()[0]

    def since(self, last: EventId) -> list[tuple[EventId, Encoded]] | None:
        """Events after ``last``; ``None`` if some of them are no longer held."""
        self.trim()
        if self.trimmed_upto is not None and last < self.trimmed_upto:
            return None
        return [(eid, chunk) for eid, _, chunk in self._events if eid > last]
