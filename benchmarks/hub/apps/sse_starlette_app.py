"""sse-starlette's ``EventSourceResponse`` fed by encode/broadcaster's in-memory backend.

What a user of those two libraries writes, with their defaults: ``Broadcast("memory://")``
connected in the lifespan, one ``broadcast.subscribe(channel)`` per stream (an unbounded
``asyncio.Queue`` per subscriber, filled by broadcaster's listener task), and
``await broadcast.publish(channel, message)``, which only hands the message to that task. A
stream's channel is its topic (``/stream?topic=NAME``, else ``bench``).
"""

from contextlib import asynccontextmanager

from _starlette_routes import bench_routes, topic_of
from broadcaster import Broadcast
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.applications import Starlette

broadcast = Broadcast("memory://")


@asynccontextmanager
async def lifespan(app):
    async with broadcast:
        yield


async def stream(request):
    async def events():
        async with broadcast.subscribe(channel=topic_of(request)) as subscriber:
            yield ServerSentEvent(comment="connected")
            async for event in subscriber:
                yield ServerSentEvent(data=event.message)

    return EventSourceResponse(events())


async def publish(topic, data):
    await broadcast.publish(channel=topic, message=data)  # says nothing of who it reached


app = Starlette(routes=bench_routes(stream, publish), lifespan=lifespan)
