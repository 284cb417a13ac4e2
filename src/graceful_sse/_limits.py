"""Admission: whether a stream may open at all.

Two answers other than a stream, each a short plain-text response the browser monitor
understands:

- **503 with ``Retry-After``** when the app holds as many streams as ``Limits`` allows, in total
  or from one client address: come back later;
- **403** when the app's ``authorize(request, topic)`` hook refuses one of the subscription's
  topics: do not come back.

A refused request opens nothing: a hub subscription never joins the hub and a generator is
never started. ``Limits`` counts the streams open on the event loop that serves them; the app
owns it (``Hub(limits=...)`` or ``EventStream(..., limits=...)``), nothing here is global.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from starlette.requests import Request
from starlette.types import Scope, Send

__all__ = ["Authorize", "Limits", "Refusal", "Ticket", "authorized", "client_address"]

Authorize = Callable[[Request, str], bool | Awaitable[bool]]


def client_address(scope: Scope) -> str:
    """The peer's IP address as the server saw it (behind a proxy: the proxy's)."""
    client = scope.get("client")
    return str(client[0]) if client else ""


@dataclass(frozen=True, slots=True)
class Refusal:
    """An answer instead of a stream: a status, one line of text, and extra headers."""

    status: int
    text: str
    headers: tuple[tuple[bytes, bytes], ...] = ()

    async def send(self, send: Send, *, head: bool = False) -> None:
        body = f"{self.text}\n".encode()
        headers = [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", str(len(body)).encode()),
            (b"cache-control", b"no-store"),
            *self.headers,
        ]
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if head else body})


FORBIDDEN = Refusal(403, "Not allowed")


async def authorized(authorize: Authorize, scope: Scope, topics: Iterable[str]) -> bool:
    """Whether ``authorize`` (sync or async) allows every one of ``topics`` for this request."""
    request = Request(scope)
    for topic in topics:
        verdict = authorize(request, topic)
        if inspect.isawaitable(verdict):
            verdict = await verdict
        if not verdict:
            return False
    return True


class _Counts:
    """Open streams on one event loop."""

    __slots__ = ("loop", "per_client", "total")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.total = 0
        self.per_client: dict[str, int] = {}


class Ticket:
    """One admitted stream's place in the counts; ``release()`` gives it back (once)."""

    __slots__ = ("_counts", "key")

    def __init__(self, counts: _Counts, key: str) -> None:
        self._counts: _Counts | None = counts
        self.key = key

    def release(self) -> None:
        counts, self._counts = self._counts, None
        if counts is None:
            return
        counts.total -= 1
        left = counts.per_client[self.key] - 1
        if left:
            counts.per_client[self.key] = left
        else:
            del counts.per_client[self.key]  # an address with no stream costs no memory


class Limits:
    """Caps on open streams: ``max_connections`` in all, ``max_per_client`` per client.

    Over a cap a request gets 503 with ``Retry-After: retry_after`` (seconds). A client is what
    ``client_key(scope)`` returns, by default the peer address; behind a reverse proxy every
    client has the proxy's address, so pass a ``client_key`` that reads the header your proxy
    sets (and that a client cannot forge past it), or leave ``max_per_client`` unset.
    """

    def __init__(
        self,
        max_connections: int | None = None,
        max_per_client: int | None = None,
        *,
        retry_after: int = 5,
        client_key: Callable[[Scope], str] = client_address,
    ) -> None:
        for name, value in (("max_connections", max_connections), ("max_per_client", max_per_client)):
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1, or None for no cap")
        if retry_after < 0:
            raise ValueError("retry_after must be 0 or more seconds")
        self.max_connections = max_connections
        self.max_per_client = max_per_client
        self.retry_after = retry_after
        self.client_key = client_key
        self.refused = 0  # requests answered 503 since the app started
        self._counts: _Counts | None = None
        header = ((b"retry-after", str(retry_after).encode()),)
        self._full = Refusal(503, "Too many open streams; retry later", header)
        self._client_full = Refusal(503, "Too many open streams from this client; retry later", header)

    @property
    def open_streams(self) -> int:
        return self._counts.total if self._counts is not None else 0

    def streams_of(self, key: str) -> int:
        return self._counts.per_client.get(key, 0) if self._counts is not None else 0

    def check(self, scope: Scope) -> Refusal | None:
        """Would a stream for this request be refused? (Counts nothing: for a HEAD probe.)"""
        return self._refusal(self._counts_here(), self.client_key(scope))

    def admit(self, scope: Scope) -> Ticket | Refusal:
        """Count a new stream, or say why it cannot open."""
        counts, key = self._counts_here(), self.client_key(scope)
        refusal = self._refusal(counts, key)
        if refusal is not None:
            self.refused += 1
            return refusal
        counts.total += 1
        counts.per_client[key] = counts.per_client.get(key, 0) + 1
        return Ticket(counts, key)

    def _refusal(self, counts: _Counts, key: str) -> Refusal | None:
        if self.max_connections is not None and counts.total >= self.max_connections:
            return self._full
        if self.max_per_client is not None and counts.per_client.get(key, 0) >= self.max_per_client:
            return self._client_full
        return None

    def _counts_here(self) -> _Counts:
        # Streams belong to the loop that serves them: a new loop (a test, a restarted
        # embedded server) starts from zero, and tickets of the old one release into the old.
        loop = asyncio.get_running_loop()
        counts = self._counts
        if counts is None or counts.loop is not loop:
            counts = self._counts = _Counts(loop)
        return counts
