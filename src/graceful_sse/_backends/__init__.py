"""Where a hub's events go between publishers and subscribers, chosen by URL.

``memory://`` (the default) keeps ids and history in this process. ``redis://``, ``rediss://``
and ``unix://`` share them through Redis, so every worker and host reaches every subscriber and
a client can replay after a restart. A backend gives each event its id, keeps the history,
delivers events to the hub with ``deliver(topic, id, chunk)`` in id order, and answers replays;
the hub does the fan-out to its own subscribers. It also carries the app's orders to end streams
(``EndOrder``) to every process, beside the events but never in their path.
"""

from __future__ import annotations

import abc
import enum
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
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
    "EndOrder",
    "Ended",
    "NotPublished",
    "OutcomeUnknown",
    "Replay",
    "Reset",
    "ResetReason",
    "open_backend",
]

ENV_URL = "SSE_BROKER_URL"


class ResetReason(enum.StrEnum):
    """Why a client cannot be given what it missed; the page gets a ``reset`` event saying it."""

    UNKNOWN = "unknown"  # an id from another process or epoch, or made up
    NOT_OURS = "not-ours"  # not an id of ours at all
    NO_HISTORY = "no-history"  # the hub keeps none
    TOO_OLD = "too-old"  # older than the history holds
    LOST = "lost"  # the backend lost events it cannot replay (Redis trimmed or flushed them)
    UNAVAILABLE = "unavailable"  # the backend could not be asked


Deliver = Callable[[str, EventId, Encoded], None]


@dataclass(frozen=True, slots=True)
class EndOrder:
    """The app's order to end streams (``Hub.end``): those of ``topic``, of ``identity``, or of
    both at once, told ``kind`` (``"stop"`` or ``"restart"``) with ``reason`` for the page."""

    kind: str
    reason: str | None = None
    topic: str | None = None
    identity: str | None = None

    def to_bytes(self) -> bytes:
        """The order as another process reads it (``from_bytes``)."""
        fields = {"kind": self.kind, "reason": self.reason, "topic": self.topic, "identity": self.identity}
        return json.dumps(fields, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> EndOrder | None:
        """The order, or ``None`` for bytes that are not one (another version, another app)."""
        try:
            fields = json.loads(raw)
            order = cls(fields["kind"], fields["reason"], fields["topic"], fields["identity"])
        except (ValueError, KeyError, TypeError):
            return None
        texts = (order.reason, order.topic, order.identity)
        if not isinstance(order.kind, str) or not all(t is None or isinstance(t, str) for t in texts):
            return None
        return order


Ended = Callable[[EndOrder], int]  # the hub ends its streams the order names; how many
Reset = Callable[[Iterable[str], ResetReason], None]
# What a client missed after its Last-Event-ID, in order, or why that cannot be told.
Replay = list[tuple[EventId, Encoded]] | ResetReason


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


class Backend(abc.ABC):
    """Where a hub's events travel: ids, history, delivery to the hub, replays, presence.

    A backend gives each event its id and delivers it to the hub with ``deliver(topic, id,
    chunk)``, in id order, once per process; the hub does the fan-out to its subscribers.
    ``url`` names it in logs (with secrets masked by the caller).
    """

    url: str
    _ended: Ended | None = None  # the hub's, once it binds itself (``on_end``)

    @abc.abstractmethod
    async def start(self, deliver: Deliver, reset: Reset) -> None:
        """Connect; deliver every event published from now on, and ``reset`` topics that lost some."""

    @abc.abstractmethod
    async def stop(self) -> None: ...

    @abc.abstractmethod
    def last_id(self) -> EventId:
        """The id of the latest event this process has seen."""

    @abc.abstractmethod
    async def publish(self, topic: str, body: bytes, key: str | None = None) -> EventId:
        """Give ``body`` (one encoded event without its id) an id, keep it, deliver it everywhere.

        With a ``key``, an event is published once per key within ``KEY_WINDOW``: a second
        publish returns the first one's id and delivers nothing.
        """

    @abc.abstractmethod
    def publish_nowait(self, topic: str, body: bytes, key: str | None = None) -> EventId | None:
        """``publish`` from synchronous code: the id, or ``None`` when it is queued to be sent."""

    @abc.abstractmethod
    async def replay(self, topics: tuple[str, ...], last: EventId) -> Replay:
        """What a client that last saw ``last`` missed on ``topics``, in id order."""

    def replay_now(self, topics: tuple[str, ...], last: EventId) -> Replay | None:
        """The replay without waiting, where the backend can tell (``None``: ``replay`` must fetch it)."""
        return None

    async def presence(self, local: dict[str, int]) -> dict[str, int]:
        """Open subscriptions by topic (``"*"``: all) across every process; ``local``: this one's."""
        return dict(local)

    def on_end(self, ended: Ended) -> None:
        """The hub's side of ``end``: called with each order, from this process or another."""
        self._ended = ended

    async def end(self, order: EndOrder) -> int:
        """End the streams ``order`` names here and in every other process sharing the backend;
        how many ended here (the others' count is theirs). In-process by default.

        A shared backend ends the local ones first, then sends the order, and raises
        ``BackendUnavailable`` if it could not be sent: ending again is safe (a stream ends once).
        """
        return self._end_here(order)

    def _end_here(self, order: EndOrder) -> int:
        return 0 if self._ended is None else self._ended(order)

    def bind(self, deliver: Deliver) -> None:  # noqa: B027 - optional: most backends deliver once started
        """Deliver to ``deliver`` before ``start`` (an in-process backend needs no connection)."""

    def watch_topics(  # noqa: B027 - optional: only a shared backend needs to know
        self, topics: Callable[[], Iterable[str]], counts: Callable[[], dict[str, int]]
    ) -> None:
        """Learn the hub's topics with local subscribers (to fill gaps for) and its counts (presence)."""


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
                f"the broker URL {_shown(url)} needs redis-py: install the redis extra "
                "(pip install -e '.[redis]' in a clone, or the wheel with [redis])"
            ) from exc
        return RedisBackend(url, history=history, history_age=history_age)
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
