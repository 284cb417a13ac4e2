"""sse-starlette's ``EventSourceResponse`` fed by encode/broadcaster's in-memory backend.

What a user of those two libraries writes, with their defaults: ``Broadcast("memory://")``
connected in the lifespan, one ``broadcast.subscribe(channel)`` per stream (an unbounded
``asyncio.Queue`` per subscriber, filled by broadcaster's listener task), and
``await broadcast.publish(channel, message)``, which only hands the message to that task.
"""

import time
from contextlib import asynccontextmanager

from _common import payload, probe, result, rss
from broadcaster import Broadcast
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

broadcast = Broadcast("memory://")


@asynccontextmanager
async def lifespan(app):
    async with broadcast:
        yield


async def stream(request):
    async def events():
        async with broadcast.subscribe(channel="bench") as subscriber:
            yield ServerSentEvent(comment="connected")
            async for event in subscriber:
                yield ServerSentEvent(data=event.message)

    return EventSourceResponse(events())


async def publish(request):
    q = request.query_params
    data, stamp = payload(int(q.get("seq", 0)), int(q.get("size", 64)))
    started = time.perf_counter()
    await broadcast.publish(channel="bench", message=data)
    return JSONResponse(result(None, stamp, started))


async def rss_route(request):
    return JSONResponse(rss(request.query_params.get("gc") == "1"))


async def health(request):
    return JSONResponse(probe())


app = Starlette(
    routes=[
        Route("/stream", stream),
        Route("/publish", publish, methods=["GET", "POST"]),
        Route("/rss", rss_route),
        Route("/health", health),
    ],
    lifespan=lifespan,
)
