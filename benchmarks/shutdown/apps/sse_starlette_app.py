"""sse-starlette's EventSourceResponse over a generator waiting on an asyncio.Queue, its defaults.

What a user of that library writes: one queue per client, a broadcast set, the library's
defaults (ping every 15 s, no shutdown_event / shutdown_grace_period). At shutdown sse-starlette
(3.7) notices uvicorn's ``should_exit`` (its watcher polls every 0.5 s), cancels the generator
and ends the response with its closing empty body: a clean end of the chunked response, no
farewell event.
"""

import asyncio

from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from harness.probe import probe

subscribers: set[asyncio.Queue] = set()


async def stream(request):
    queue: asyncio.Queue = asyncio.Queue(maxsize=100)

    async def events():
        subscribers.add(queue)
        try:
            yield ServerSentEvent(comment="connected")
            while True:
                item = await queue.get()
                yield ServerSentEvent(data=item, event="update")
        finally:
            subscribers.discard(queue)

    return EventSourceResponse(events())


async def health(request):
    return JSONResponse(probe())


app = Starlette(routes=[Route("/stream", stream), Route("/health", health)])
