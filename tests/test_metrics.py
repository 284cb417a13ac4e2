"""What ``hub.metrics()`` and the Prometheus collector count, as an operator would read them.

Each test runs a small Starlette app through ``graceful_sse.testing.SSEClient``: streams opened,
ended by the app, finished through a shutdown; then the counters say so.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from graceful_sse import EventStream, Hub
from graceful_sse.testing import SSEClient


def _app(hub: Hub) -> Starlette:
    async def news(request: Request) -> Response:
        return EventStream(hub.subscribe("news", identity=request.query_params.get("user")))

    async def answer(request: Request) -> Response:
        tokens, every = int(request.query_params["tokens"]), 0.02

        async def tokens_() -> AsyncIterator[str]:
            for n in range(tokens):
                yield f"data: token {n}\n\n"
                await asyncio.sleep(every)

        return EventStream(tokens_(), finish=float(request.query_params["finish"]), lifecycle=hub.lifecycle)

    return Starlette(routes=[Route("/news", news), Route("/answer", answer)], lifespan=hub.lifespan)


@pytest.mark.anyio
async def test_streams_the_app_ends_are_counted() -> None:
    hub = Hub()
    async with (
        SSEClient(_app(hub)) as client,
        client.stream("/news?user=ann") as ann_1,
        client.stream("/news?user=ann") as ann_2,
        client.stream("/news?user=bob") as bob,
    ):
        assert await hub.end(identity="ann", reason="Signed out") == 2
        for stream in (ann_1, ann_2):
            assert (await stream.next_event("shutdown")).event == "shutdown"
        assert bob.open
        assert hub.metrics()["streams_ended"] == 2
        assert await hub.end(topic="news", kind="restart") == 1
        await bob.next_event("restart")
    metrics = hub.metrics()
    assert metrics["streams_ended"] == 3
    assert metrics["connections_opened"] == 3 and metrics["connections"] == 0


@pytest.mark.anyio
async def test_streams_given_time_to_finish_are_counted_as_finished_or_out_of_time() -> None:
    hub = Hub()
    async with (
        SSEClient(_app(hub)) as client,
        client.stream("/answer?tokens=10&finish=5") as short,
        client.stream("/answer?tokens=500&finish=0.3") as long,
    ):
        await short.next_event()
        await long.next_event()
        report = await client.shutdown("restart")
        await short.closed()
        assert (await long.next_event("restart")).event == "restart"
    assert (report.finishing, report.finished, report.out_of_time) == (2, 1, 1)
    metrics = hub.metrics()
    assert (metrics["shutdowns"], metrics["streams_finished"], metrics["streams_out_of_time"]) == (1, 1, 1)


@pytest.mark.anyio
async def test_prometheus_shows_every_counter_of_the_dict() -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from graceful_sse import register_prometheus

    hub = Hub()
    registry = CollectorRegistry()
    register_prometheus(hub, registry=registry)
    async with SSEClient(_app(hub)) as client, client.stream("/news?user=ann") as stream:
        await hub.end(identity="ann")
        await stream.closed()
    text = generate_latest(registry).decode()
    assert 'graceful_sse_streams_ended_total{backend="memory"} 1.0' in text
    for name, value in hub.metrics().items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            assert f"graceful_sse_{name}" in text, f"{name} is in metrics() but not scraped"
