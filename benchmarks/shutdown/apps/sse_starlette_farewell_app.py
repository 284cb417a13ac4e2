"""sse-starlette with its cooperative shutdown, as its README's "Cooperative Shutdown" shows it.

The same queue-fed stream as ``sse_starlette_app.py``, plus what the README adds: an
``anyio.Event`` per response passed as ``shutdown_event=`` (the library sets it when it detects
the server's shutdown: its watcher polls uvicorn's ``should_exit`` every 0.5 s) and
``shutdown_grace_period=5.0`` (the README's figure; the generator is cancelled if it has not
finished by then); the generator checks the event between iterations, waiting at most 1 s for
the next item (the README's ``anyio.move_on_after(1.0)``), and then yields its farewell,
``event: shutdown``, and returns, so the response ends with its closing empty body.
"""

import asyncio

import anyio
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from harness.probe import probe

subscribers: set[asyncio.Queue] = set()


async def stream(request):
    queue: asyncio.Queue = asyncio.Queue(maxsize=100)
    shutdown_event = anyio.Event()

    async def events():
        subscribers.add(queue)
        try:
            yield ServerSentEvent(comment="connected")
            while not shutdown_event.is_set():
                item = None
                with anyio.move_on_after(1.0):  # check for shutdown between iterations
                    item = await queue.get()
                if item is not None:
                    yield ServerSentEvent(data=item, event="update")
            # Shutdown detected: send the farewell event
            yield ServerSentEvent(data="Server is shutting down", event="shutdown")
        finally:
            subscribers.discard(queue)

    return EventSourceResponse(events(), shutdown_event=shutdown_event, shutdown_grace_period=5.0)


async def health(request):
    return JSONResponse(probe())


app = Starlette(routes=[Route("/stream", stream), Route("/health", health)])
