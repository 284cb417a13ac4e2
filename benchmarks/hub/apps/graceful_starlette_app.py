"""graceful_sse with no FastHTML: the same hub and ``EventStream`` in a plain Starlette app."""

import time

from _common import payload, probe, result, rss
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from graceful_sse import EventStream, Hub

hub = Hub()


async def stream(request):
    return EventStream(hub.subscribe("bench"))


async def publish(request):
    q = request.query_params
    data, stamp = payload(int(q.get("seq", 0)), int(q.get("size", 64)))
    started = time.perf_counter()
    n = await hub.publish("bench", data)
    return JSONResponse(result(n, stamp, started))


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
    lifespan=hub.lifespan,
)
