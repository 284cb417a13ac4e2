"""graceful_sse in FastHTML, as its README shows: ``fast_app(lifespan=hub.lifespan)``,
``EventStream(hub.subscribe(...))`` and ``await hub.publish(...)``, all defaults."""

import time

from _common import payload, probe, result, rss
from fasthtml.common import JSONResponse, fast_app

from graceful_sse import EventStream, Hub

hub = Hub()
app, rt = fast_app(lifespan=hub.lifespan)


@rt("/stream")
def stream():
    return EventStream(hub.subscribe("bench"))


@rt("/publish", methods=["get", "post"])
async def publish(seq: int = 0, size: int = 64):
    data, stamp = payload(seq, size)
    started = time.perf_counter()
    n = await hub.publish("bench", data)
    return JSONResponse(result(n, stamp, started))


@rt("/rss")
def rss_route(gc: int = 0):
    return JSONResponse(rss(bool(gc)))


@rt("/health")
async def health():
    return JSONResponse(probe())
