"""EventStream in-process: what a client receives, and how the stream ends in each case.

What a page gets is read as an app author reads it, with ``SSEClient``; what is checked on the
wire (bytes, headers, heartbeats' timing, a client that leaves, stops reading or fails writes)
drives the response with tests/asgi.py's ``Client``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterator

import pytest
from fasthtml.common import P, sse_message
from starlette.applications import Starlette
from starlette.routing import Route

from graceful_sse import Event, EventStream, Hub, Lifecycle
from graceful_sse.testing import SSEClient, Stream

from asgi import App, Client, lifecycle, serve
from harness import until


async def _forever(closed: list[str] | None = None) -> AsyncIterator[str]:
    try:
        yield sse_message(P("hello"))
        await asyncio.Event().wait()
    finally:
        if closed is not None:
            closed.append("closed")


def names(client: Client) -> list[str]:
    """The events the page's content sees (status updates aside)."""
    return [e.type for e in client.parser.events if e.type != "sse-status"]


def received(stream: Stream) -> list[str]:
    """The same for a stream read with ``SSEClient``."""
    return [e.event for e in stream.events if e.event != "sse-status"]


def _app(lc: Lifecycle, response: Callable[[], EventStream]) -> Starlette:
    """An app whose lifespan is ``lc``'s and whose ``/stream`` answers ``response()``."""
    return Starlette(routes=[Route("/stream", lambda request: response())], lifespan=lc.lifespan)


@pytest.mark.anyio
async def test_opens_with_retry_and_a_comment_and_sse_headers() -> None:
    lc, client = lifecycle(), Client()
    async with lc.lifespan():
        task = serve(EventStream(_forever(), retry=2500, lifecycle=lc), client)
        await client.opened.wait()
        await asyncio.sleep(0.01)
        assert client.status == 200
        assert client.headers["content-type"] == "text/event-stream; charset=utf-8"
        assert client.headers["cache-control"] == "no-cache"
        assert client.headers["x-accel-buffering"] == "no"
        assert client.messages[1]["body"].startswith(b": connected\nretry: 2500\n\n")
        assert client.parser.retry == 2500
        assert [e.data for e in client.parser.events if e.type == "message"] == ["<p>hello</p>"]
        client.left.set()
        await task


@pytest.mark.anyio
async def test_accepts_what_fasthtml_generators_yield_sync_or_async() -> None:
    def sync_items() -> Iterator[object]:
        yield sse_message(P("a"), event="one")
        yield P("b")
        yield Event(data={"c": 1}, event="three", id="3")
        yield "plain text"

    app = _app(lifecycle(), lambda: EventStream(sync_items()))
    async with SSEClient(app) as client, client.stream("/stream") as stream:
        events = [(e.event, e.data) async for e in stream]
    assert events == [
        ("one", "<p>a</p>"),
        ("message", "<p>b</p>"),
        ("three", '{"c":1}'),
        ("message", "plain text"),
    ]
    assert stream.ended, "a generator that finishes ends the response cleanly"


@pytest.mark.anyio
async def test_sends_heartbeats_while_idle() -> None:
    """Four heartbeats 40 to 50 ms apart: never sooner than 4 x 40 ms (a busy machine only
    delays them), and well within a generous bound."""
    lc, client = lifecycle(), Client()
    async with lc.lifespan():
        started = asyncio.get_running_loop().time()  # before the stream: the interval is not shortened
        task = serve(EventStream(_forever(), heartbeat=0.05, lifecycle=lc), client)
        await until(lambda: client.parser.comments.count(" heartbeat") >= 4, within=2.0, step=0.005)
        took = asyncio.get_running_loop().time() - started
        client.left.set()
        await task
    assert took >= 4 * 0.05 * 0.8 - 0.01


@pytest.mark.anyio
async def test_a_client_that_leaves_closes_the_generator_and_frees_the_stream() -> None:
    lc, client, closed = lifecycle(), Client(), []
    async with lc.lifespan():
        task = serve(EventStream(_forever(closed), lifecycle=lc), client)
        await client.opened.wait()
        assert lc.open_streams == 1
        client.left.set()
        await asyncio.wait_for(task, 1)
        assert closed == ["closed"] and lc.open_streams == 0
        assert not client.ended, "nothing more is written to a client that left"


@pytest.mark.parametrize("kind,name", [("stop", "shutdown"), ("restart", "restart")])
@pytest.mark.anyio
async def test_shutdown_writes_the_farewell_in_the_same_response_and_ends_it(kind: str, name: str) -> None:
    closed: list[str] = []
    app = _app(lifecycle(), lambda: EventStream(_forever(closed)))
    async with SSEClient(app) as client, client.stream("/stream") as stream:
        assert (await stream.next_event()).event == "message"
        report = await client.shutdown(kind)  # type: ignore[arg-type]
        await stream.closed()
    assert received(stream) == ["message", name]
    assert stream.ended and closed == ["closed"]
    assert (report.told, report.took) == (1, 1)


@pytest.mark.anyio
async def test_a_stream_opened_during_the_drain_gets_the_farewell_at_once_with_status_200() -> None:
    closed: list[str] = []
    async with SSEClient(_app(lifecycle(), lambda: EventStream(_forever(closed)))) as client:
        await client.shutdown("stop")
        async with client.stream("/stream") as stream:
            await stream.closed(timeout=1)
    assert stream.status == 200, "htmx's extension would retry after a 204"
    assert received(stream) == ["shutdown"]
    assert stream.retry is not None and stream.comments == ["connected"]
    assert stream.ended and closed == [], "the generator never started"


@pytest.mark.anyio
async def test_a_client_that_never_reads_cannot_hold_the_drain() -> None:
    lc, reader, stuck = lifecycle(drain_timeout=0.3), Client(), Client()
    async with lc.lifespan():
        tasks = [serve(EventStream(_forever(), lifecycle=lc), c) for c in (reader, stuck)]
        await reader.opened.wait()
        stuck.stuck = True
        report = await lc.shutdown("stop")
        await asyncio.wait_for(asyncio.gather(*tasks), 1)
    assert (report.took, report.missed) == (1, 1)
    assert 0.25 < report.seconds < 0.6


@pytest.mark.anyio
async def test_a_failing_generator_ends_its_stream_with_an_error_event(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken() -> AsyncIterator[str]:
        yield "data: fine\n\n"
        raise RuntimeError("boom")

    caplog.set_level(logging.ERROR, logger="graceful_sse")
    app = _app(lifecycle(), lambda: EventStream(broken()))
    async with SSEClient(app) as client, client.stream("/stream") as stream:
        await stream.closed()
    assert received(stream) == ["message", "error"]
    assert stream.ended
    assert "generator failed" in caplog.text and "boom" in caplog.text


@pytest.mark.anyio
async def test_a_plain_event_stream_finds_the_apps_lifecycle_or_makes_one() -> None:
    app, client = App(), Client()
    lc = lifecycle()
    lc.attach(app)
    async with lc.lifespan():
        task = serve(EventStream(_forever()), client, app=app)
        await client.opened.wait()
        assert lc.open_streams == 1
        await lc.shutdown("stop")
        await task

    other = App()
    task = serve(EventStream(_forever()), Client(), app=other)
    await asyncio.sleep(0.05)
    assert isinstance(other.state.graceful_sse, Lifecycle)
    assert other.state.graceful_sse.open_streams == 1
    await other.state.graceful_sse.shutdown("stop")
    await task
    await other.state.graceful_sse.close()


@pytest.mark.anyio
async def test_an_event_stream_outside_an_app_says_how_to_give_it_a_lifecycle() -> None:
    response = EventStream(_forever())
    with pytest.raises(RuntimeError, match=r"lifecycle=\.\.\."):
        await response({"type": "http", "app": None}, Client().receive, Client().send)


@pytest.mark.anyio
async def test_a_hub_subscription_brings_the_hubs_lifecycle() -> None:
    hub = Hub(lifecycle=lifecycle())
    # No lifespan: the app has no lifecycle of its own to give the stream.
    app = Starlette(routes=[Route("/stream", lambda request: EventStream(hub.subscribe("news")))])
    async with hub.lifespan(), SSEClient(app) as client, client.stream("/stream") as stream:
        assert hub.connections("news") == 1 and hub.lifecycle.open_streams == 1
        await hub.publish("news", P("extra"))
        assert (await stream.next_event()).data == "<p>extra</p>"
        await hub.lifecycle.shutdown("restart")
        await stream.closed()
    assert received(stream) == ["message", "restart"]
    assert hub.connections() == 0


@pytest.mark.parametrize("kind,state", [("stop", "stopped"), ("restart", "restarting")])
@pytest.mark.anyio
async def test_the_status_indicator_is_told_live_on_opening_and_how_it_ended(kind: str, state: str) -> None:
    app = _app(lifecycle(), lambda: EventStream(_forever(), status="my-status"))
    async with SSEClient(app) as client, client.stream("/stream") as stream:
        await stream.next_event("message")
        await client.shutdown(kind)  # type: ignore[arg-type]
        await stream.closed()
    statuses = [e.data for e in stream.events if e.event == "sse-status"]
    assert len(statuses) == 2
    assert 'id="my-status"' in statuses[0] and 'data-state="live"' in statuses[0]
    assert f'data-state="{state}"' in statuses[1] and 'hx-swap-oob="true"' in statuses[1]
    assert [e.event for e in stream.events][-2:] == [
        "sse-status",
        "shutdown" if kind == "stop" else "restart",
    ]


@pytest.mark.anyio
async def test_status_events_can_be_left_out() -> None:
    app = _app(lifecycle(), lambda: EventStream(_forever(), status=None))
    async with SSEClient(app) as client, client.stream("/stream") as stream:
        await stream.next_event("message")
        await client.shutdown("stop")
        await stream.closed()
    assert [e.event for e in stream.events] == ["message", "shutdown"]


@pytest.mark.parametrize("how", ["header", "query"])
@pytest.mark.anyio
async def test_a_returning_client_resumes_after_its_last_event_id(how: str) -> None:
    hub = Hub(lifecycle=lifecycle())
    app = Starlette(routes=[Route("/stream", lambda request: EventStream(hub.subscribe("t")))])
    async with SSEClient(app, lifecycle=hub.lifecycle) as client:
        hub.publish_nowait("t", "seen")
        last = hub.last_id
        hub.publish_nowait("t", "missed")
        header = last if how == "header" else None
        query = {"lastEventId": last} if how == "query" else None
        async with client.stream("/stream", last_event_id=header, params=query) as stream:
            hub.publish_nowait("t", "live")
            assert [(await stream.next_event()).data for _ in range(2)] == ["missed", "live"]


@pytest.mark.anyio
async def test_the_opening_gives_a_subscriber_an_id_to_resume_from() -> None:
    hub, client = Hub(lifecycle=lifecycle()), Client()
    async with hub.lifespan():
        hub.publish_nowait("t", "before")
        task = serve(EventStream(hub.subscribe("t")), client)
        await client.opened.wait()
        assert client.parser.last_event_id == hub.last_id
        client.left.set()
        await task


@pytest.mark.anyio
async def test_events_keep_their_order_whether_the_publisher_or_the_stream_writes_them() -> None:
    """A client that keeps up gets events written by the publish itself; one that pauses gets
    the first waiting in a task of its own and the rest from the queue, then the fast way again."""
    hub = Hub(lifecycle=lifecycle())
    async with hub.lifecycle.lifespan():
        client = Client()
        task = serve(EventStream(hub.subscribe("t"), heartbeat=None), client)
        await client.opened.wait()
        sent = [f"e{i}" for i in range(60)]
        for data in sent[:5]:
            await hub.publish("t", data)
        assert client.data() == sent[:5], "written before publish returned"
        client.pause()
        for data in sent[5:40]:
            await hub.publish("t", data)
        await asyncio.sleep(0.05)
        client.resume()
        await until(lambda: len(client.data()) == 40, within=2.0, step=0.005)
        for data in sent[40:]:
            await hub.publish("t", data)
        await until(lambda: len(client.data()) == 60, within=2.0, step=0.005)
        assert client.data() == sent
        client.left.set()
        await task


@pytest.mark.anyio
async def test_a_stream_told_while_a_publish_waits_on_its_client_still_says_goodbye() -> None:
    hub = Hub(lifecycle=lifecycle())
    async with hub.lifecycle.lifespan():
        client = Client()
        task = serve(EventStream(hub.subscribe("t"), heartbeat=None), client)
        await client.opened.wait()
        client.pause()
        await hub.publish("t", "waits for the client")
        shutdown = asyncio.create_task(hub.lifecycle.shutdown("stop"))
        await asyncio.sleep(0.1)
        client.resume()
        report = await shutdown
        await task
    assert names(client)[-1] == "shutdown" and client.ended
    assert report.took == 1 and report.missed == 0


@pytest.mark.anyio
async def test_a_write_the_server_fails_ends_that_stream_and_the_publish_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    hub = Hub(lifecycle=lifecycle())
    async with hub.lifecycle.lifespan():
        broken, fine = Client(), Client()
        tasks = [serve(EventStream(hub.subscribe("t"), heartbeat=None), c) for c in (broken, fine)]
        await asyncio.gather(broken.opened.wait(), fine.opened.wait())
        broken.failing = True
        await hub.publish("t", "for everyone")
        assert fine.data() == ["for everyone"]
        await asyncio.wait_for(tasks[0], 2)
        assert hub.connections() == 1 and "the server failed a write" in caplog.text
        fine.left.set()
        await tasks[1]


@pytest.mark.anyio
async def test_a_stream_served_by_fast_app_as_a_starlette_route_streams_and_says_goodbye() -> None:
    """The README's way to spare each stream FastHTML's per-request copies (``routes=[...]``)."""
    from fasthtml.common import fast_app

    hub = Hub(lifecycle=lifecycle())

    async def updates(request: object) -> EventStream:
        return EventStream(hub.subscribe("updates"), heartbeat=None)

    app, _ = fast_app(lifespan=hub.lifespan, routes=[Route("/stream", updates)])
    async with SSEClient(app) as client, client.stream("/stream") as stream:
        await hub.publish("updates", "hello")
        assert (await stream.next_event()).data == "hello"
        report = await client.shutdown("stop")
        assert (await stream.next_event()).event == "shutdown"
        await stream.closed()
    assert report.took == 1
