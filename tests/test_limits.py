"""Who may open a stream: caps (503 + Retry-After), authorisation (403), HEAD probes, and clients
that stop taking data (send timeout). In-process, then over the wire against a real server."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route

from graceful_sse import EventStream, Hub, Limits
from graceful_sse.testing import SSEClient, StreamRefused

from asgi import Client, lifecycle, scope
from harness import free_port, run_modes, running


def serve_from(
    response: EventStream, client: Client, address: str = "10.0.0.1", method: str = "GET", **kw: Any
) -> asyncio.Task[None]:
    """Serve ``response`` to ``client`` as if it came from ``address``."""
    request = {**scope(**kw), "client": (address, 40000), "method": method}
    return asyncio.create_task(response(request, client.receive, client.send))


async def opened(*clients: Client) -> None:
    await asyncio.wait_for(asyncio.gather(*(c.opened.wait() for c in clients)), 2)


def hub_with(**kw: Any) -> Hub:
    return Hub(lifecycle=lifecycle(drain_timeout=0.5), **kw)


@pytest.mark.anyio
async def test_over_the_total_cap_a_request_gets_503_with_retry_after_and_joins_nothing() -> None:
    hub = hub_with(limits=Limits(max_connections=2, retry_after=7))
    async with hub.lifecycle.lifespan():
        a, b, c = Client(), Client(), Client()
        tasks = [serve_from(EventStream(hub.subscribe("t")), x, f"10.0.0.{i}") for i, x in enumerate((a, b))]
        await opened(a, b)
        refused = hub.subscribe("t")
        await asyncio.wait_for(serve_from(EventStream(refused), c, "10.0.0.9"), 1)
        assert c.status == 503 and c.headers["retry-after"] == "7"
        assert c.headers["content-type"].startswith("text/plain")
        assert c.body == b"Too many open streams; retry later\n" and c.ended
        assert hub.connections() == 2 and refused.finished, "the refused subscription never joined"
        assert hub.limits is not None and hub.limits.refused == 1
        a.left.set()
        await tasks[0]
        again = Client()
        task = serve_from(EventStream(hub.subscribe("t")), again, "10.0.0.9")
        await opened(again)
        assert again.status == 200, "a stream that ended gave its place back"
        for x in (b, again):
            x.left.set()
        await asyncio.gather(tasks[1], task)
        assert hub.limits.open_streams == 0


@pytest.mark.anyio
async def test_the_per_client_cap_counts_each_address_on_its_own() -> None:
    limits = Limits(max_per_client=2)
    hub = hub_with(limits=limits)
    app = Starlette(
        routes=[Route("/stream", lambda request: EventStream(hub.subscribe("t")))], lifespan=hub.lifespan
    )
    async with SSEClient(app, client=("10.0.0.1", 40000)) as client:
        async with client.stream("/stream"), client.stream("/stream"):
            with pytest.raises(StreamRefused) as refused:
                async with client.stream("/stream"):
                    pass
            assert refused.value.status == 503 and b"from this client" in refused.value.body
            client.client = ("10.0.0.2", 40000)  # another machine
            async with client.stream("/stream") as other:
                assert other.status == 200
                assert (limits.streams_of("10.0.0.1"), limits.streams_of("10.0.0.2")) == (2, 1)
        assert limits.open_streams == 0 and limits.streams_of("10.0.0.1") == 0


@pytest.mark.anyio
async def test_a_client_key_can_read_a_proxy_header() -> None:
    def forwarded_for(s: dict[str, Any]) -> str:
        return dict(s["headers"]).get(b"x-forwarded-for", b"").decode()

    limits = Limits(max_per_client=1, client_key=forwarded_for)
    app = Starlette(
        routes=[Route("/stream", lambda request: EventStream(_idle(), limits=limits))],
        lifespan=lifecycle().lifespan,
    )
    one, two = ({"X-Forwarded-For": address} for address in ("1.1.1.1", "2.2.2.2"))
    async with (
        SSEClient(app) as client,
        client.stream("/stream", headers=one) as a,
        client.stream("/stream", headers=two) as b,
    ):
        with pytest.raises(StreamRefused) as refused:
            async with client.stream("/stream", headers=one):
                pass
    assert (a.status, b.status, refused.value.status) == (200, 200, 503)


async def _idle(started: list[str] | None = None) -> AsyncIterator[str]:
    if started is not None:
        started.append("started")
    yield "hello"
    await asyncio.Event().wait()


@pytest.mark.anyio
async def test_a_refused_generator_is_never_started() -> None:
    limits, lc, started = Limits(max_connections=1), lifecycle(), []
    async with lc.lifespan():
        a, b = Client(), Client()
        task = serve_from(EventStream(_idle(), lifecycle=lc, limits=limits), a)
        await opened(a)
        gen = _idle(started)
        await serve_from(EventStream(gen, lifecycle=lc, limits=limits), b)
        assert b.status == 503 and started == [] and lc.open_streams == 1
        with pytest.raises(StopAsyncIteration):
            await anext(gen)  # closed, not merely left for the garbage collector
        a.left.set()
        await task


@pytest.mark.anyio
async def test_head_answers_with_the_status_a_get_would_get_and_opens_nothing() -> None:
    hub = hub_with(limits=Limits(max_connections=1, retry_after=3))
    async with hub.lifecycle.lifespan():
        probe = Client()
        await asyncio.wait_for(serve_from(EventStream(hub.subscribe("t")), probe, method="HEAD"), 1)
        assert probe.status == 200 and probe.body == b"" and probe.ended
        assert probe.headers["content-type"].startswith("text/event-stream")
        assert hub.connections() == 0 and hub.lifecycle.open_streams == 0
        holder = Client()
        task = serve_from(EventStream(hub.subscribe("t")), holder)
        await opened(holder)
        full = Client()
        await asyncio.wait_for(serve_from(EventStream(hub.subscribe("t")), full, method="HEAD"), 1)
        assert full.status == 503 and full.headers["retry-after"] == "3" and full.body == b""
        assert hub.limits is not None and hub.limits.refused == 0, "a probe is not a refused stream"
        holder.left.set()
        await task


@pytest.mark.anyio
async def test_during_the_drain_a_request_over_the_cap_gets_the_farewell_not_503() -> None:
    hub = hub_with(limits=Limits(max_connections=1))
    async with hub.lifecycle.lifespan():
        holder = Client()
        task = serve_from(EventStream(hub.subscribe("t")), holder)
        await opened(holder)
        holder.stuck = True  # keeps the drain open while the late request comes
        drain = asyncio.create_task(hub.lifecycle.shutdown("stop"))
        await asyncio.sleep(0.01)
        late = Client()
        await asyncio.wait_for(serve_from(EventStream(hub.subscribe("t")), late), 2)
        assert late.status == 200 and late.parser.events[-1].type == "shutdown"
        await drain
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync hook", "async hook"])
@pytest.mark.anyio
async def test_authorize_refuses_a_topic_with_403_and_the_subscription_never_joins(
    asynchronous: bool,
) -> None:
    seen: list[tuple[str, str]] = []

    def allow(request: Request, topic: str) -> bool:
        seen.append((request.query_params.get("user", ""), topic))
        return topic != "admin" or request.query_params.get("user") == "root"

    async def allow_async(request: Request, topic: str) -> bool:
        await asyncio.sleep(0)
        return allow(request, topic)

    hub = hub_with(authorize=allow_async if asynchronous else allow)
    async with hub.lifecycle.lifespan():
        refused, sub = Client(), hub.subscribe("news", "admin")
        await asyncio.wait_for(serve_from(EventStream(sub), refused, query="user=bob"), 1)
        assert refused.status == 403 and refused.body == b"Not allowed\n" and refused.ended
        assert hub.connections() == 0 and sub.finished and hub.lifecycle.open_streams == 0
        allowed = Client()
        task = serve_from(EventStream(hub.subscribe("news", "admin")), allowed, query="user=root")
        await opened(allowed)
        assert allowed.status == 200 and hub.connections() == 1
        allowed.left.set()
        await task
    assert seen == [("bob", "news"), ("bob", "admin"), ("root", "news"), ("root", "admin")]


@pytest.mark.anyio
async def test_a_failing_authorize_hook_is_the_apps_error_and_leaks_nothing() -> None:
    def broken(request: Request, topic: str) -> bool:
        raise RuntimeError("the session store is down")

    hub, subscriptions = hub_with(authorize=broken), []

    def stream(request: Request) -> EventStream:
        subscriptions.append(sub := hub.subscribe("t"))
        return EventStream(sub)

    app = Starlette(routes=[Route("/stream", stream)], lifespan=hub.lifespan)
    async with SSEClient(app) as client:
        with pytest.raises(RuntimeError, match="session store"):
            async with client.stream("/stream"):
                pass
        [sub] = subscriptions
        assert sub.finished and hub.connections() == 0


def test_limits_count_per_event_loop() -> None:
    limits = Limits(max_connections=1)

    async def one_stream() -> int:
        lc, client = lifecycle(), Client()
        async with lc.lifespan():
            task = serve_from(EventStream(_idle(), lifecycle=lc, limits=limits), client)
            await opened(client)
            status = client.status
            client.left.set()
            await task
        return status

    assert asyncio.run(one_stream()) == 200
    assert asyncio.run(one_stream()) == 200


@pytest.mark.parametrize(
    "kwargs",
    [{"max_connections": 0}, {"max_per_client": 0}, {"retry_after": -1}],
)
def test_limits_refuse_nonsense(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        Limits(**kwargs)


def test_send_timeout_must_be_positive() -> None:
    with pytest.raises(ValueError, match="send_timeout"):
        EventStream(_idle(), send_timeout=0)


# -- clients that stop taking data ----------------------------------------------------------------


@pytest.mark.parametrize(
    "heartbeat", [15.0, 0.05, None], ids=["rare heartbeats", "frequent heartbeats", "no heartbeats"]
)
@pytest.mark.anyio
async def test_a_client_that_stops_reading_is_cut_after_the_send_timeout_and_freed(
    heartbeat: float | None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="graceful_sse")
    limits = Limits(max_connections=1)
    hub = hub_with(limits=limits)
    async with hub.lifecycle.lifespan():
        client = Client()
        response = EventStream(hub.subscribe("t"), heartbeat=heartbeat, send_timeout=0.2)
        task = serve_from(response, client)
        await opened(client)
        client.stuck = True  # its socket is full from now on
        start = asyncio.get_running_loop().time()
        await hub.publish("t", "one write that never completes")
        await asyncio.wait_for(task, 2)
        took = asyncio.get_running_loop().time() - start
        assert 0.15 < took < 1.0, took
        assert hub.connections() == 0 and hub.lifecycle.open_streams == 0 and limits.open_streams == 0
        assert not client.ended, "no more bytes for a client that takes none"
    assert "took no data for 0.2 s" in caplog.text


@pytest.mark.anyio
async def test_a_slow_client_that_keeps_reading_is_not_cut() -> None:
    class Slow(Client):
        async def send(self, message: dict[str, Any]) -> None:
            await asyncio.sleep(0.05)  # each write takes a while, none takes too long
            await super().send(message)

    hub, client = hub_with(), Slow()
    async with hub.lifecycle.lifespan():
        task = serve_from(EventStream(hub.subscribe("t"), heartbeat=0.02, send_timeout=0.15), client)
        await opened(client)
        for i in range(10):
            await hub.publish("t", f"event {i}")
        await asyncio.sleep(0.8)
        assert not task.done()
        assert [e.data for e in client.parser.events if e.type == "message"] == [
            f"event {i}" for i in range(10)
        ]
        client.left.set()
        await task


@pytest.mark.anyio
async def test_a_stuck_client_under_a_send_timeout_still_cannot_hold_the_drain() -> None:
    hub, client = hub_with(), Client()
    async with hub.lifecycle.lifespan():
        task = serve_from(EventStream(hub.subscribe("t"), send_timeout=30.0), client)
        await opened(client)
        client.stuck = True
        await hub.publish("t", "blocked")
        await asyncio.sleep(0.05)
        report = await asyncio.wait_for(hub.lifecycle.shutdown("stop"), 1.5)
        await asyncio.wait_for(task, 1)
    assert (report.told, report.missed) == (1, 1)


# -- over the wire --------------------------------------------------------------------------------


@pytest.mark.servers
@pytest.mark.anyio
async def test_a_real_server_answers_503_with_retry_after_over_each_cap_and_frees_places(
    tmp_path: Path,
) -> None:
    """tests/apps/fh_app.py's /capped: 4 streams at most, 2 per client (X-Client), Retry-After: 4."""
    port = free_port()
    with running(run_modes(port)["uvicorn"], port, tmp_path / "server.log") as server:

        async def scenario() -> None:
            async with contextlib.AsyncExitStack() as stack:
                client = await stack.enter_async_context(httpx.AsyncClient(base_url=server.url, timeout=10))

                async def open_as(who: str) -> httpx.Response:
                    request = client.build_request("GET", "/capped", headers={"X-Client": who})
                    response = await client.send(request, stream=True)
                    stack.push_async_callback(response.aclose)
                    return response

                held = [await open_as(who) for who in ("a", "a")]
                third_of_a = await open_as("a")
                assert third_of_a.status_code == 503 and third_of_a.headers["retry-after"] == "4"
                assert (await third_of_a.aread()) == b"Too many open streams from this client; retry later\n"
                held += [await open_as(who) for who in ("b", "b")]
                assert [r.status_code for r in held] == [200] * 4
                newcomer = await open_as("c")
                assert newcomer.status_code == 503 and newcomer.headers["retry-after"] == "4"
                assert (await newcomer.aread()) == b"Too many open streams; retry later\n"
                probe = await client.head("/capped", headers={"X-Client": "c"})
                assert probe.status_code == 503 and probe.headers["retry-after"] == "4"
                stats = (await client.get("/stats")).json()
                assert (stats["capped"], stats["refused"]) == (4, 2)
                await held[0].aclose()
                for _ in range(50):
                    if (await client.get("/stats")).json()["capped"] == 3:
                        break
                    await asyncio.sleep(0.1)
                assert (await open_as("c")).status_code == 200, "a closed stream gave its place back"

        await scenario()


@pytest.mark.servers
def test_a_real_server_answers_403_for_a_refused_topic_and_streams_an_allowed_one(tmp_path: Path) -> None:
    """tests/apps/fh_app.py's hub refuses topics named private-* without the header X-Key: sesame."""
    port = free_port()
    with running(run_modes(port)["uvicorn"], port, tmp_path / "server.log") as server:
        url = server.url + "/stream?topic=private-room"
        refused = httpx.get(url, timeout=5)
        assert refused.status_code == 403 and refused.text == "Not allowed\n"
        assert httpx.head(url, timeout=5).status_code == 403
        with httpx.stream("GET", url, headers={"X-Key": "sesame"}, timeout=5) as allowed:
            assert allowed.status_code == 200
            assert allowed.headers["content-type"].startswith("text/event-stream")
            assert httpx.get(server.url + "/stats").json()["hub"] == 1, "only the allowed stream joined"
        assert "Exception in ASGI application" not in server.log
