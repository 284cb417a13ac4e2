"""The hub benchmark's control routes for a Starlette (or FastAPI) app: /publish and
/publish_each (through the app's own publish call, timed), /rss and /health; and, for a Starlette
app, its /stream (a FastAPI app declares its own, as a path operation)."""

from __future__ import annotations

from typing import Any

from _common import TOPIC, Publish, probe, rss, timed_publish, timed_publish_each
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


def topic_of(request: Request) -> str:
    """The stream's topic: ``/stream?topic=NAME``, else the benchmark's one topic."""
    return request.query_params.get("topic", TOPIC)


def control_routes(publish: Publish) -> list[Route]:
    async def publish_route(request: Request) -> JSONResponse:
        q = request.query_params
        return JSONResponse(await timed_publish(publish, int(q.get("seq", 0)), int(q.get("size", 64))))

    async def publish_each_route(request: Request) -> JSONResponse:
        q = request.query_params
        count, base, size = int(q.get("count", 1000)), int(q.get("base", 0)), int(q.get("size", 64))
        return JSONResponse(await timed_publish_each(publish, base, count, size))

    async def rss_route(request: Request) -> JSONResponse:
        return JSONResponse(rss(request.query_params.get("gc") == "1"))

    async def health(request: Request) -> JSONResponse:
        return JSONResponse(probe())

    return [
        Route("/publish", publish_route, methods=["GET", "POST"]),
        Route("/publish_each", publish_each_route, methods=["GET", "POST"]),
        Route("/rss", rss_route),
        Route("/health", health),
    ]


def bench_routes(stream: Any, publish: Publish) -> list[Route]:
    return [Route("/stream", stream), *control_routes(publish)]
