"""The hub benchmark's control routes for a FastHTML app: /publish and /publish_each (through the
app's own publish call, timed), /rss and /health. The app under test writes only its stream and
publish."""

from __future__ import annotations

from typing import Any

from _common import Publish, probe, rss, timed_publish, timed_publish_each
from fasthtml.common import JSONResponse


def add_bench_routes(rt: Any, publish: Publish) -> None:
    @rt("/publish", methods=["get", "post"])
    async def publish_route(seq: int = 0, size: int = 64):
        return JSONResponse(await timed_publish(publish, seq, size))

    @rt("/publish_each", methods=["get", "post"])
    async def publish_each_route(count: int = 1000, base: int = 0, size: int = 64):
        return JSONResponse(await timed_publish_each(publish, base, count, size))

    @rt("/rss")
    def rss_route(gc: int = 0):
        return JSONResponse(rss(bool(gc)))

    @rt("/health")
    async def health():
        return JSONResponse(probe())
