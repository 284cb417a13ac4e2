"""The hub benchmark's routes for a Starlette app: the app's /stream, and the control routes
/publish (through the app's own publish call, timed), /rss and /health."""

from __future__ import annotations

from typing import Any

from _common import Publish, probe, rss, timed_publish
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


def bench_routes(stream: Any, publish: Publish) -> list[Route]:
    async def publish_route(request: Request) -> JSONResponse:
        q = request.query_params
        return JSONResponse(await timed_publish(publish, int(q.get("seq", 0)), int(q.get("size", 64))))

    async def rss_route(request: Request) -> JSONResponse:
        return JSONResponse(rss(request.query_params.get("gc") == "1"))

    async def health(request: Request) -> JSONResponse:
        return JSONResponse(probe())

    return [
        Route("/stream", stream),
        Route("/publish", publish_route, methods=["GET", "POST"]),
        Route("/rss", rss_route),
        Route("/health", health),
    ]
