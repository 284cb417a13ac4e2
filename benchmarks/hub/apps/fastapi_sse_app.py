"""FastAPI's own ``fastapi.sse.EventSourceResponse`` fed by encode/broadcaster's in-memory backend.

As FastAPI's documentation shows it: a path operation that is an async generator, declared with
``response_class=EventSourceResponse``, yielding ``fastapi.sse.ServerSentEvent`` (``raw_data``:
the payload is text, not JSON); FastAPI encodes the events, adds its keep-alive comment every
15 s and runs the generator in a producer task of its own. The feed is the sse_starlette app's:
``Broadcast("memory://")`` connected in the lifespan, one ``broadcast.subscribe(channel)`` per
stream (the stream's topic), ``await broadcast.publish(channel, message)``. Library defaults.
"""

from collections.abc import AsyncIterable
from contextlib import asynccontextmanager

from _common import TOPIC
from _starlette_routes import control_routes
from broadcaster import Broadcast
from fastapi import FastAPI
from fastapi.sse import EventSourceResponse, ServerSentEvent

broadcast = Broadcast("memory://")


@asynccontextmanager
async def lifespan(app):
    async with broadcast:
        yield


async def publish(topic, data):
    await broadcast.publish(channel=topic, message=data)  # says nothing of who it reached


app = FastAPI(lifespan=lifespan, routes=control_routes(publish))


@app.get("/stream", response_class=EventSourceResponse)
async def stream(topic: str = TOPIC) -> AsyncIterable[ServerSentEvent]:
    async with broadcast.subscribe(channel=topic) as subscriber:
        yield ServerSentEvent(comment="connected")
        async for event in subscriber:
            yield ServerSentEvent(raw_data=event.message)
