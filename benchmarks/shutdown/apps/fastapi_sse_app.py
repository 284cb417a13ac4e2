"""FastAPI's own EventSourceResponse (``fastapi.sse``, FastAPI 0.16x) over a generator waiting
on an asyncio.Queue, as FastAPI's documentation shows it: a path operation that is an async
generator, ``response_class=EventSourceResponse``, yielding ``ServerSentEvent``; FastAPI's
defaults (a keep-alive comment every 15 s). FastAPI has no shutdown handling of its own for
these streams: nothing ends them when the server stops.
"""

import asyncio
from collections.abc import AsyncIterable

from fastapi import FastAPI
from fastapi.sse import EventSourceResponse, ServerSentEvent

from harness.probe import probe

subscribers: set[asyncio.Queue] = set()
app = FastAPI()


@app.get("/stream", response_class=EventSourceResponse)
async def stream() -> AsyncIterable[ServerSentEvent]:
    queue: asyncio.Queue = asyncio.Queue(maxsize=100)
    subscribers.add(queue)
    try:
        yield ServerSentEvent(comment="connected")
        while True:
            item = await queue.get()
            yield ServerSentEvent(raw_data=item, event="update")
    finally:
        subscribers.discard(queue)


@app.get("/health")
async def health():
    return probe()
