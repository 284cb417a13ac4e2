"""Calling an ASGI response in-process, with a client we control (for fast unit tests)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.datastructures import State

from graceful_sse import Lifecycle

from sse_parser import SSEParser


class App:
    """Stands in for a Starlette app: what ``scope["app"]`` offers (a ``state``)."""

    def __init__(self) -> None:
        self.state = State()


@dataclass
class Client:
    """The far end of one response: records what was sent, can leave or stop reading."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    left: asyncio.Event = field(default_factory=asyncio.Event)
    stuck: bool = False
    request_sent: bool = False
    opened: asyncio.Event = field(default_factory=asyncio.Event)
    parser: SSEParser = field(default_factory=SSEParser)
    reading: asyncio.Event = field(default_factory=asyncio.Event)  # cleared: writes wait (``pause``)
    failing: bool = False  # the server fails every write of the body from now on

    def __post_init__(self) -> None:
        self.reading.set()

    def pause(self) -> None:
        """Stop reading for a while: every write waits until ``resume``."""
        self.reading.clear()

    def resume(self) -> None:
        self.reading.set()

    def data(self, event_type: str = "message") -> list[str]:
        return [e.data for e in self.parser.events if e.type == event_type]

    async def got(self, event_type: str = "message", within: float = 2.0) -> None:
        """Wait until an event of ``event_type`` arrived."""
        deadline = asyncio.get_running_loop().time() + within
        while not any(e.type == event_type for e in self.parser.events):
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"no {event_type!r} event; got {[e.type for e in self.parser.events]}")
            await asyncio.sleep(0.005)

    async def receive(self) -> dict[str, Any]:
        if not self.request_sent:
            self.request_sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await self.left.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        if self.stuck and message["type"] == "http.response.body":
            await asyncio.Event().wait()  # a client that never reads: the write never completes
        if message["type"] == "http.response.body":
            if self.failing:
                raise RuntimeError("the server cannot write this response")
            await self.reading.wait()
        self.messages.append(message)
        if message["type"] == "http.response.body":
            self.parser.feed(message["body"].decode())
            self.opened.set()

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.messages if m["type"] == "http.response.body")

    @property
    def ended(self) -> bool:
        last = self.messages[-1] if self.messages else {}
        return last.get("type") == "http.response.body" and not last.get("more_body", False)

    @property
    def status(self) -> int:
        return int(self.messages[0]["status"])

    @property
    def headers(self) -> dict[str, str]:
        return {k.decode(): v.decode() for k, v in self.messages[0]["headers"]}


def scope(app: Any = None, headers: dict[str, str] | None = None, query: str = "") -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "path": "/stream",
        "query_string": query.encode(),
        "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
        "app": app if app is not None else App(),
    }


def serve(
    response: Callable[[dict[str, Any], Any, Any], Awaitable[None]],
    client: Client,
    app: Any = None,
    headers: dict[str, str] | None = None,
    query: str = "",
) -> asyncio.Task[None]:
    return asyncio.create_task(response(scope(app, headers, query), client.receive, client.send))


def lifecycle(**kwargs: Any) -> Lifecycle:
    """A lifecycle that installs no exit guard (tests call it without a real server)."""
    return Lifecycle(exit_timeout=None, **kwargs)
