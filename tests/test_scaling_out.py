"""Several workers on one Redis: broadcasts reach every worker's clients, replay survives restarts.

Real servers in subprocesses, a private real redis-server.
"""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

import httpx
import pytest

from graceful_sse import Hub

from asgi import lifecycle
from harness import RunMode, Stream, free_port, open_streams, running, until
from redis_server import RedisServer

pytestmark = [pytest.mark.servers, pytest.mark.redis]

PID = re.compile(r"Process</span><span class=\"v\">(\d+)<")


def _demo_with_workers(port: int) -> RunMode:
    argv = [sys.executable, "-m", "uvicorn", "graceful_sse.demo:app", "--port", str(port), "--workers", "2"]
    return RunMode("demo, 2 workers", argv, on_sigint="stop", on_sigterm="restart")


def _worker_of(stream: Stream) -> str | None:
    for event in stream.events:
        found = PID.search(event.data) if event.type == "stats" else None
        if found:
            return found[1]
    return None


@pytest.mark.anyio
async def test_a_message_posted_to_one_worker_reaches_the_clients_of_both(
    redis: RedisServer, tmp_path: Path
) -> None:
    port = free_port()
    env = {"SSE_BROKER_URL": f"{redis.url}?prefix=demo{port}"}
    mode = _demo_with_workers(port)
    with running(mode, port, tmp_path / "server.log", env=env, ready_path="/") as server:

        async def scenario() -> None:
            # The kernel hands connections to whichever worker accepts first (one may still be
            # starting): open streams until they are spread over both.
            for _ in range(10):
                async with open_streams([server.url + "/stream"] * 16) as (streams, _):
                    await until(lambda: all(_worker_of(s) for s in streams))
                    if len({_worker_of(s) for s in streams}) == 2:
                        await post_and_check(streams)
                        return
                await asyncio.sleep(0.5)
            raise AssertionError("10 times 16 streams all landed on one worker")

        async def post_and_check(streams: list[Stream]) -> None:
            # Sent three times with the form's key, as a user resubmits when no answer came;
            # each on a connection of its own, so to either worker.
            for _ in range(3):
                async with httpx.AsyncClient() as client:
                    form = {"text": "to every worker", "key": "form-key-1"}
                    posted = await client.post(server.url + "/messages", data=form)
                assert posted.status_code == 204

            def copies(stream: Stream) -> int:
                return sum(e.type == "chat" and "to every worker" in e.data for e in stream.events)

            await until(lambda: all(copies(s) for s in streams))
            await asyncio.sleep(0.5)
            assert [copies(s) for s in streams] == [1] * len(streams), "once per key, on every worker"

        await scenario()
        log = server.log
    assert "Exception in ASGI application" not in log, log[-3000:]


@pytest.mark.anyio
async def test_a_restarted_server_replays_what_its_clients_missed_exactly_once(
    redis: RedisServer, tmp_path: Path
) -> None:
    url = f"{redis.url}?prefix=restart{free_port()}"
    env = {"SSE_BROKER_URL": url}

    def fh_app(port: int) -> RunMode:
        argv = [sys.executable, "-m", "uvicorn", "fh_app:app", "--port", str(port)]
        return RunMode("uvicorn", argv, on_sigint="stop", on_sigterm="restart")

    async def say(server_url: str, text: str) -> str:
        async with httpx.AsyncClient() as client:
            response = await client.post(server_url + "/say", params={"text": text, "topic": "news"})
            return str(response.json()["id"])

    async def scenario() -> None:
        port = free_port()
        with running(fh_app(port), port, tmp_path / "first.log", env=env) as first:
            async with open_streams([first.url + "/stream?topic=news"] * 5) as (streams, tasks):
                for i in range(3):
                    await say(first.url, f"before {i}")
                await until(
                    lambda: all(len([e for e in s.events if e.type == "message"]) == 3 for s in streams)
                )
                first.sigterm_main()
                await asyncio.wait_for(asyncio.gather(*tasks), 10)
            assert all(s.names()[-1] == "restart" for s in streams)
            last_ids = [s.parser.last_event_id for s in streams]
        # While no server runs, another worker (this test) goes on publishing.
        other = Hub(url, lifecycle=lifecycle())
        await other.start()
        for i in range(2):
            await other.publish("news", f"during {i}")
        await other.stop()
        port = free_port()
        with running(fh_app(port), port, tmp_path / "second.log", env=env) as second:
            headers = [{"Last-Event-ID": last} for last in last_ids]
            async with httpx.AsyncClient() as client:
                back = [_Resumed(second.url + "/stream?topic=news", h) for h in headers]
                tasks = [asyncio.create_task(b.run(client)) for b in back]
                await until(lambda: all(len(b.datas) >= 2 for b in back))
                await say(second.url, "after")
                await until(lambda: all(len(b.datas) >= 3 for b in back))
                await asyncio.sleep(0.3)
                for task in tasks:
                    task.cancel()
            for b in back:
                assert b.datas == ["during 0", "during 1", "after"], b.datas

    await scenario()


def _messages(stream: Stream) -> list[str]:
    return [e.data for e in stream.events if e.type == "message"]


class _Resumed:
    """A client coming back with its Last-Event-ID, as the browser does."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        self.url, self.headers = url, headers
        self.stream = Stream(url)

    @property
    def datas(self) -> list[str]:
        return [e.data for e in self.stream.events if e.type == "message"]

    async def run(self, client: httpx.AsyncClient) -> None:
        async with client.stream("GET", self.url, headers=self.headers) as response:
            async for text in response.aiter_text():
                self.stream.parser.feed(text)
