"""Where a hub's events go between publishers and subscribers, chosen by URL.

``memory://`` (the default) keeps ids and history in this process. ``redis://``, ``rediss://``
and ``unix://`` share them through Redis, so every worker and host reaches every subscriber and
a client can replay after a restart. A backend gives each event its id, keeps the history,
delivers events to the hub with ``deliver(topic, id, chunk)`` in id order, and answers replays;
the hub does the fan-out to its own subscribers.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit

from .._history import EventId
from .._wire import Encoded

__all__ = [
    "ENV_URL",
    "KEY_WINDOW",
    "MAX_KEY",
    "Backend",
    "BackendUnavailable",
    "Deliver",
    "NotPublished",
    "OutcomeUnknown",
    "Replay",
    "Reset",
    "open_backend",
]

ENV_URL = "SSE_BROKER_URL"

Deliver = Callable[[str, EventId, Encoded], None]
Reset = Callable[[Iterable[str], str], None]
# What a client missed after its Last-Event-ID, in order, or why that cannot be told.
Replay = list[tuple[EventId, Encoded]] | str


KEY_WINDOW = 600.0  # seconds a publish key is remembered: a retry within them is not delivered again
MAX_KEY = 200  # characters


class BackendUnavailable(ConnectionError):
    """The backend (Redis) could not take the event; the subclass says what became of it."""


class NotPublished(BackendUnavailable):
    """The event was surely not published (Redis was not reached): publishing again is safe."""


class OutcomeUnknown(BackendUnavailable):
    """Redis was reached but did not answer in time: the event may be published, even later.

    Publish again with the same ``key``: it is delivered at most once.
    """


class Backend(Protocol):
    url: str

    async def start(self, deliver: Deliver, reset: Reset) -> None: ...
    async def stop(self) -> None: ...
    def last_id(self) -> EventId: ...
    # ``body`` is one encoded event without its id: the backend gives the id and prepends it.
    # With a ``key``, an event is published once per key within ``KEY_WINDOW``: a second publish
    # returns the first one's id and delivers nothing.
    async def publish(self, topic: str, body: bytes, key: str | None = None) -> EventId: ...
    def publish_nowait(self, topic: str, body: bytes, key: str | None = None) -> EventId | None: ...
    def replay_now(self, topics: tuple[str, ...], last: EventId) -> Replay | None: ...
    async def replay(self, topics: tuple[str, ...], last: EventId) -> Replay: ...
    async def presence(self, local: dict[str, int]) -> dict[str, int]: ...


def open_backend(url: str | None, *, history: int, history_age: float | None) -> Backend:
    """The backend ``url`` names (``None``: ``$SSE_BROKER_URL``, else ``memory://``)."""
    url = url or os.environ.get(ENV_URL) or "memory://"
    scheme = urlsplit(url).scheme
    if scheme == "memory":
        from .memory import MemoryBackend

        return MemoryBackend(url, history=history, history_age=history_age)
    if scheme in ("redis", "rediss", "unix", "redis+sentinel"):
        try:
            from .redis import RedisBackend
        except ImportError as exc:  # redis-py is the optional extra
            raise ImportError(
                f"the broker URL {_shown(url)} needs redis-py: pip install 'graceful-sse[redis]'"
            ) from exc
        backend: Backend = RedisBackend(url, history=history, history_age=history_age)
        return backend
    raise ValueError(
        f"unknown broker URL {_shown(url)}: use memory://, redis://, rediss://, unix:// or redis+sentinel://"
    )


SECRET_PARAMETERS = frozenset({"password", "username", "sentinel_password"})  # read from the query


def _shown(url: str) -> str:
    """The URL for logs and messages: its user and password masked, in the userinfo or the query."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    query = [
        (name, "***" if name.lower() in SECRET_PARAMETERS else value)
        for name, value in parse_qsl(parts.query, keep_blank_values=True)
    ]
    shown = f"{parts.scheme}://{netloc}{parts.path}"
    return shown + (f"?{urlencode(query, safe='*:/')}" if query else "")
