"""The app ends streams itself: by topic or by identity, ``stop`` with a reason or ``restart``.

In-process for the contract (the memory backend, the streams read with ``SSEClient``);
over the wire on 2 uvicorn workers sharing a real redis-server (only the named streams end, on
both workers, each with its farewell); in Chromium (the page shows the reason and asks the
stream URL nothing more).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlencode

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route
from test_redis_backend import cut_off_worker

from graceful_sse import (
    BackendUnavailable,
    EventStream,
    Hub,
    InvalidIdentity,
    InvalidTopic,
    Subscription,
    testing,
)
from graceful_sse.testing import SSEClient

from asgi import lifecycle
from harness import RunMode, Stream, free_port, running, until
from redis_server import RedisServer

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext

# -- in-process: the contract ----------------------------------------------------------------


def _app(hub: Hub) -> Starlette:
    """``/stream?topic=...&identity=...``: a stream of the hub's (its lifecycle's) topics."""

    def stream(request: Request) -> EventStream:
        query = request.query_params
        return EventStream(hub.subscribe(*query.getlist("topic"), identity=query.get("identity")))

    return Starlette(routes=[Route("/stream", stream)])


@asynccontextmanager
async def _streams(
    hub: Hub, **subscriptions: tuple[tuple[str, ...], str | None]
) -> AsyncIterator[dict[str, testing.Stream]]:
    """One open stream per name: ``name=((topics...), identity)``; all closed after."""
    async with SSEClient(_app(hub), lifecycle=hub.lifecycle) as client, contextlib.AsyncExitStack() as opened:
        streams: dict[str, testing.Stream] = {}
        for name, (topics, identity) in subscriptions.items():
            # As an htmx page's stream (htmx=1): its status events carry the reason the page shows.
            query = [("topic", topic) for topic in topics] + ([("identity", identity)] if identity else [])
            url = "/stream?" + urlencode([*query, ("htmx", "1")])
            streams[name] = await opened.enter_async_context(client.stream(url))
        yield streams


def _data(stream: testing.Stream, name: str) -> list[str]:
    return [e.data for e in stream.events if e.event == name]


def _status_label(stream: testing.Stream) -> str:
    statuses = _data(stream, "sse-status")
    return statuses[-1] if statuses else ""


@pytest.mark.anyio
async def test_ending_an_identity_stops_only_its_streams_with_the_reason_shown() -> None:
    hub = Hub(lifecycle=lifecycle())
    streams = {
        "alice_feed": (("feed",), "alice"),
        "alice_chat": (("chat",), "alice"),
        "bob": (("feed",), "bob"),
    }
    async with _streams(hub, **streams) as opened:
        ended = await hub.end(identity="alice", kind="stop", reason="Signed out <for now>")
        assert ended == 2
        for name in ("alice_feed", "alice_chat"):
            stream = opened[name]
            shutdown = (await stream.next_event("shutdown")).json()
            await stream.closed()
            assert shutdown == {
                "kind": "stop",
                "message": "Signed out <for now>",
                "reason": "Signed out <for now>",
            }
            assert stream.retry == 24 * 60 * 60 * 1000  # a bare EventSource does not come back soon
            status = _status_label(stream)
            assert 'data-state="stopped"' in status and "Signed out &lt;for now&gt;" in status
            assert "<for now>" not in status  # the app's text is escaped in the page's HTML
        # Bob's stream is untouched: still open, and still getting what is published.
        bob = opened["bob"]
        await hub.publish("feed", "for bob")
        assert (await bob.next_event()).data == "for bob"
        assert bob.open and [(e.event, e.data) for e in bob.events if e.event != "sse-status"] == [
            ("message", "for bob")
        ]
        assert hub.connections() == 1 and hub.connections("chat") == 0


@pytest.mark.anyio
async def test_ending_a_topic_restarts_its_streams_and_leaves_the_others() -> None:
    hub = Hub(lifecycle=lifecycle(restart_window=(1.0, 2.0)))
    streams = {"a": (("closing",), "alice"), "b": (("closing", "other"), None), "c": (("other",), "alice")}
    async with _streams(hub, **streams) as opened:
        assert await hub.end(topic="closing", kind="restart", reason="Room closed") == 2
        for name in ("a", "b"):
            restart = (await opened[name].next_event("restart")).json()
            await opened[name].closed()
            assert restart["kind"] == "restart" and restart["reason"] == "Room closed"
            assert 1000 <= restart["retry"] <= 2000 and opened[name].retry == restart["retry"]
            assert 'data-state="restarting"' in _status_label(opened[name])
        assert opened["c"].open and hub.connections() == 1


@pytest.mark.anyio
async def test_an_identity_on_one_topic_ends_only_there_and_nothing_matching_ends_nothing() -> None:
    hub = Hub(lifecycle=lifecycle())
    streams = {"feed": (("feed",), "alice"), "admin": (("admin",), "alice")}
    async with _streams(hub, **streams) as opened:
        assert await hub.end(identity="carol") == 0
        assert await hub.end(topic="nobody-listens") == 0
        assert await hub.end(identity="alice", topic="admin", reason="Permission revoked") == 1
        await opened["admin"].closed()
        assert "Permission revoked" in _status_label(opened["admin"])
        assert opened["feed"].open
        # Ending again is harmless: the stream ended once.
        assert await hub.end(identity="alice", topic="admin") == 0


@pytest.mark.anyio
async def test_a_stop_without_a_reason_says_what_a_shutdown_says() -> None:
    hub = Hub(lifecycle=lifecycle(stop_message="Gone"))
    async with _streams(hub, one=(("t",), None)) as opened:
        assert await hub.end(topic="t") == 1
        await opened["one"].closed()
        assert json.loads(_data(opened["one"], "shutdown")[-1]) == {"kind": "stop", "message": "Gone"}
        assert "Server stopped" in _status_label(opened["one"])


@pytest.mark.anyio
async def test_a_subscription_iterated_by_the_app_ends_when_its_identity_is_ended() -> None:
    hub = Hub(lifecycle=lifecycle())
    sub = hub.subscribe("t", identity="alice")
    iterating = asyncio.ensure_future(anext(aiter(sub)))
    await asyncio.sleep(0)
    assert await hub.end(identity="alice") == 1
    with pytest.raises(StopAsyncIteration):
        async with asyncio.timeout(1):
            await iterating
    assert sub.ending is not None and sub.ending.kind == "stop" and hub.streams() == []


@pytest.mark.anyio
async def test_ending_takes_only_valid_names_a_kind_and_a_bounded_reason() -> None:
    hub = Hub(lifecycle=lifecycle())
    with pytest.raises(ValueError, match="topic=, identity= or both"):
        await hub.end()
    with pytest.raises(InvalidTopic):
        await hub.end(topic="a\nb")
    with pytest.raises(InvalidIdentity, match="an identity is a str of 1 to 200"):
        await hub.end(identity="")
    with pytest.raises(ValueError, match="kind must be 'stop' or 'restart'"):
        await hub.end(topic="t", kind="later")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="a reason is a str of at most 500"):
        await hub.end(topic="t", reason="x" * 501)


@pytest.mark.anyio
async def test_publishing_costs_nothing_more_for_subscriptions_with_an_identity() -> None:
    # The identity index is touched at join and leave only: a publish reaches the subscribers
    # through the topic's set, as before, and an identity whose streams left is forgotten.
    hub = Hub(lifecycle=lifecycle())
    sub = aiter(hub.subscribe("t", identity="alice"))
    await hub.publish("t", "x")
    assert sub.pending == 1 and hub.streams()[0]["identity"] == "alice"
    await sub.aclose()
    assert hub._identities == {}


# -- two hubs on one real redis-server: what each worker holds --------------------------------


async def _iterating(hub: Hub, topic: str, identity: str) -> tuple[Subscription, asyncio.Future[bytes]]:
    """A subscription being read, as a stream reads it; the read ends when it is ended."""
    sub = hub.subscribe(topic, identity=identity)
    reading = asyncio.ensure_future(anext(aiter(sub)))
    await asyncio.sleep(0)
    return sub, reading


@pytest.mark.anyio
@pytest.mark.redis
async def test_an_order_from_one_hub_ends_the_streams_of_the_other_through_redis(
    redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    async with cut_off_worker(redis, "end") as (a, b, _):
        subs = {(hub, who): await _iterating(hub, "feed", who) for hub in (a, b) for who in ("alice", "bob")}
        # Bytes on the control channel that are no order (another version, a stray publish).
        await a.backend._client.publish(a.backend._keys["control"], b"x\nnot an order")  # type: ignore[attr-defined]
        assert await a.end(identity="alice", reason="Signed out") == 1  # a's own; b's is b's
        await until(lambda: subs[b, "alice"][0].ending is not None)
        for hub in (a, b):
            sub, reading = subs[hub, "alice"]
            assert sub.ending is not None and (sub.ending.kind, sub.ending.reason) == ("stop", "Signed out")
            with pytest.raises(StopAsyncIteration):
                await reading
        await asyncio.sleep(0.2)
        assert [subs[hub, "bob"][0].ending for hub in (a, b)] == [None, None]
        assert "could not be read; ignored" in caplog.text
        await a.publish("feed", "bob still reads")
        for hub in (a, b):
            assert b"bob still reads" in await asyncio.wait_for(subs[hub, "bob"][1], 5)


@pytest.mark.anyio
@pytest.mark.redis
async def test_a_worker_cut_off_from_redis_ends_its_own_streams_and_says_the_others_may_not_know(
    redis: RedisServer,
) -> None:
    async with cut_off_worker(redis, "endcut") as (a, b, proxy):
        here, reading_here = await _iterating(b, "feed", "alice")
        there, reading_there = await _iterating(a, "feed", "alice")
        proxy.refusing = True
        proxy.cut()
        with pytest.raises(BackendUnavailable, match=r"ended \d stream.*end them again"):
            for _ in range(50):  # until b notices the cut
                await b.end(identity="alice")
                await asyncio.sleep(0.05)
        assert here.ending is not None and there.ending is None
        proxy.refusing = False
        for _ in range(100):  # ending again once Redis is back reaches the other worker
            with contextlib.suppress(BackendUnavailable):
                assert await b.end(identity="alice") == 0
                break
            await asyncio.sleep(0.1)
        await until(lambda: there.ending is not None)
        for reading in (reading_here, reading_there):
            with pytest.raises(StopAsyncIteration):
                await reading


# -- over the wire: 2 uvicorn workers on one real redis-server ----------------------------------


def _two_workers(port: int) -> RunMode:
    argv = [sys.executable, "-m", "uvicorn", "ending_app:app", "--port", str(port), "--workers", "2"]
    return RunMode("ending app, 2 workers", argv, on_sigint="stop", on_sigterm="restart")


def _worker(stream: Stream) -> str | None:
    hello = [e.data for e in stream.events if e.type == "hello"]
    return hello[0] if hello else None


@asynccontextmanager
async def _spread_streams(base: str, paths: list[str], spread: list[str]) -> AsyncIterator[list[Stream]]:
    """Streams to ``paths``, opened again until those to ``spread`` (and all) run on both workers."""
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=0)
    async with httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(5.0, read=None)) as client:
        for _ in range(10):
            streams = [Stream(base + path) for path in paths]
            tasks = [asyncio.create_task(stream.run(client)) for stream in streams]
            try:
                await until(lambda streams=streams: all(_worker(s) for s in streams))
                workers = [
                    {_worker(s) for s in streams if s.url.removeprefix(base) in chosen}
                    for chosen in (spread, paths)
                ]
                if all(len(found) == 2 for found in workers):
                    yield streams
                    return
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
            await asyncio.sleep(0.3)
    raise AssertionError("10 tries and the streams never spread over both workers")


def _farewell(stream: Stream) -> str | None:
    names = [e.type for e in stream.events if e.type in ("shutdown", "restart")]
    return names[-1] if names else None


@pytest.mark.anyio
@pytest.mark.servers
@pytest.mark.redis
@pytest.mark.parametrize(
    ("order", "ended", "kind"),
    [
        (
            {"identity": "alice", "kind": "stop", "reason": "Signed out"},
            ["/feed?user=alice&htmx=1"],
            "shutdown",
        ),
        ({"topic": "room", "kind": "restart", "reason": "Room closed"}, ["/room?user=bob&htmx=1"], "restart"),
    ],
    ids=["identity-stop", "topic-restart"],
)
async def test_an_order_on_one_worker_ends_those_streams_on_both_and_no_others(
    redis: RedisServer, tmp_path: Path, order: dict[str, str], ended: list[str], kind: str
) -> None:
    port = free_port()
    env = {"SSE_BROKER_URL": f"{redis.url}?prefix=end{port}"}
    paths = ["/feed?user=alice&htmx=1", "/feed?user=bob&htmx=1", "/room?user=bob&htmx=1"] * 5
    with running(_two_workers(port), port, tmp_path / "server.log", env=env, ready_path="/health") as server:
        async with _spread_streams(server.url, paths, ended) as streams:
            async with httpx.AsyncClient() as client:
                answer = await client.post(server.url + "/end", json=order)
            assert answer.status_code == 200, answer.text
            # This worker's count only: some of the 5 named streams, the others are the other's.
            assert 1 <= answer.json()["ended_here"] <= 4
            named = [s for s in streams if s.url.removeprefix(server.url) in ended]
            await until(lambda: all(_farewell(s) == kind for s in named))
            assert len({_worker(s) for s in named}) == 2
            for stream in named:
                farewell = json.loads([e.data for e in stream.events if e.type == kind][-1])
                assert farewell["reason"] == order["reason"]
                assert order["reason"] in [e.data for e in stream.events if e.type == "sse-status"][-1]
            await asyncio.sleep(0.5)  # the order has reached both workers: nothing else ends
            others = [s for s in streams if s not in named]
            assert [_farewell(s) for s in others] == [None] * len(others)
            # The other streams still get what is published, on both workers.
            async with httpx.AsyncClient() as client:
                assert (
                    await client.post(server.url + "/say", data={"text": "still here"})
                ).status_code == 200
            await until(lambda: all(any("still here" in e.data for e in s.events) for s in others))


# -- in Chromium: signing out in one tab ---------------------------------------------------------


@pytest.mark.browser
@pytest.mark.servers
@pytest.mark.parametrize("htmx", [2, 4], ids=["htmx2", "htmx4"])
def test_signing_out_shows_the_reason_in_every_tab_and_the_page_never_asks_again(
    context: BrowserContext, tmp_path: Path, htmx: int
) -> None:
    from browser import RECONNECT, open_page  # playwright only where a test asks for a browser

    port = free_port()
    argv = [sys.executable, "-m", "uvicorn", "ending_app:app", "--port", str(port)]
    mode = RunMode("ending app", argv, env={"ENDING_HTMX": str(htmx)})
    with running(mode, port, tmp_path / "server.log", ready_path="/health") as server:
        tabs = [open_page(context, server.url + "/login?user=alice") for _ in range(2)]
        for tab in tabs:
            tab.wait_state("live")
        tabs[1].page.click("#logout")
        for tab in tabs:
            tab.wait_state("stopped", timeout=5.0)
            assert tab.page.inner_text("#sse-status .sse-label") == "Signed out"
            assert tab.page.locator(RECONNECT).count() == 1  # the user may come back by choice
        requests = [tab.requests_during(3000) for tab in tabs]
        assert requests == [0, 0], "a stopped page asks the stream URL nothing more"
        assert [tab.problems for tab in tabs] == [[], []]
        assert "Exception" not in server.log
