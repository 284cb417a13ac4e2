"""Scaffolding for the raw-ASGI apps (the floors, graceful_sse with no framework): the lifespan
handshake and a JSON answer, which are not what those apps measure."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
JSON_HEADERS = [(b"content-type", b"application/json")]


async def lifespan(receive: Receive, send: Send, startup: Callable[[], None] | None = None) -> None:
    """Answer uvicorn's lifespan messages until shutdown, calling ``startup`` on the loop first."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            if startup is not None:
                startup()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def send_json(send: Send, obj: object) -> None:
    """A whole 200 response with ``obj`` as its JSON body."""
    await send({"type": "http.response.start", "status": 200, "headers": JSON_HEADERS})
    await send({"type": "http.response.body", "body": json.dumps(obj).encode()})
