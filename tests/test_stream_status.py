"""Which clients get the page's status events, and which lifecycle a stream follows."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route

from graceful_sse import EventStream, Hub
from graceful_sse.testing import SSEClient

from asgi import Client, lifecycle, serve


async def _one_then_wait() -> AsyncIterator[str]:
    yield "data: hello\n\n"
    await asyncio.Event().wait()


@pytest.mark.parametrize(
    "status,headers,params,expected",
    [
        ("default", {}, {}, None),  # curl, a Python client, a plain EventSource: no HTML fragments
        ("default", {"HX-Request": "true"}, {}, "message"),  # htmx 4: unnamed, it swaps only those
        ("default", {}, {"htmx": "1"}, "sse-status"),  # htmx 2 through SSEStream: named
        ("mine", {}, {}, "sse-status"),  # asked for explicitly: every client
        (None, {"HX-Request": "true"}, {}, None),  # None: never
    ],
    ids=["plain client", "htmx 4", "htmx 2", "explicit id", "none"],
)
@pytest.mark.anyio
async def test_status_events_go_to_htmx_clients_unless_asked(
    status: str | None, headers: dict[str, str], params: dict[str, str], expected: str | None
) -> None:
    kwargs = {} if status == "default" else {"status": status}

    def stream(request: Request) -> EventStream:
        return EventStream(_one_then_wait(), **kwargs)

    app = Starlette(routes=[Route("/stream", stream)], lifespan=lifecycle().lifespan)
    async with SSEClient(app) as client, client.stream("/stream", headers=headers, params=params) as stream:
        await stream.next_event("message")
        await client.shutdown("stop")
        await stream.closed()
    got = [(e.event, e.data) for e in stream.events if 'data-state="' in e.data]
    if expected is None:
        assert got == []
    else:
        assert [name for name, _ in got] == [expected, expected], "live on opening, stopped in the farewell"
        assert 'data-state="stopped"' in got[-1][1]
        assert ('id="mine"' in got[0][1]) is (status == "mine")
    assert [e.event for e in stream.events][-1] == "shutdown"


@pytest.mark.anyio
async def test_an_app_without_a_lifespan_has_one_lifecycle_the_first_streams() -> None:
    hub, app = Hub(), Starlette()
    clients = [Client(), Client()]
    async with asyncio.timeout(5):
        tasks = [
            serve(EventStream(hub.subscribe("news")), clients[0], app=app),
            serve(EventStream(_one_then_wait()), clients[1], app=app),
        ]
        for client in clients:
            await client.opened.wait()
        assert app.state.graceful_sse is hub.lifecycle
        assert hub.lifecycle.open_streams == 2, "the plain stream follows the hub's lifecycle too"
        report = await hub.lifecycle.shutdown("stop")
        await asyncio.gather(*tasks)
    assert (report.told, report.took) == (2, 2)
    await hub.stop()


@pytest.mark.anyio
async def test_two_lifecycles_on_one_app_are_named_in_the_log(caplog: pytest.LogCaptureFixture) -> None:
    hub, app = Hub(), Starlette()
    clients = [Client(), Client()]
    with caplog.at_level(logging.INFO, logger="graceful_sse"):
        tasks = [serve(EventStream(_one_then_wait()), clients[0], app=app)]
        await clients[0].opened.wait()
        tasks.append(serve(EventStream(hub.subscribe("news")), clients[1], app=app))
        await clients[1].opened.wait()
        for lc in {id(x): x for x in (app.state.graceful_sse, hub.lifecycle)}.values():
            await lc.shutdown("stop")
        await asyncio.wait_for(asyncio.gather(*tasks), 5)
    await hub.stop()
    messages = [r.getMessage() for r in caplog.records]
    assert any("follow two lifecycles" in m and "lifespan=hub.lifespan" in m for m in messages), messages
    assert any("started by the first stream" in m for m in messages), messages
