"""The Redis backend against a real redis-server: every hub sharing it is one more worker."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from graceful_sse import Hub, NotPublished, OutcomeUnknown
from graceful_sse._backends import BackendUnavailable, open_backend

from asgi import lifecycle
from harness import free_port
from redis_server import RedisServer, SentinelServer
from sse_parser import ParsedEvent, parse
from tcp_proxy import Proxy

pytestmark = pytest.mark.redis


@pytest.fixture
def url(redis: RedisServer) -> str:
    """A key prefix of its own per test: tests share the server, never their keys."""
    return f"{redis.url}?prefix=t{uuid.uuid4().hex[:8]}"


@asynccontextmanager
async def cut_off_worker(
    redis: RedisServer, name: str, **kwargs: object
) -> AsyncIterator[tuple[Hub, Hub, Proxy]]:
    """Two workers on one Redis, keys of their own: ``a`` direct, ``b`` through a proxy the test cuts."""
    prefix = f"{name}{uuid.uuid4().hex[:6]}"
    proxy = Proxy(free_port(), redis.port)
    try:
        async with (
            worker(f"{redis.url}?prefix={prefix}", **kwargs) as a,
            worker(f"redis://127.0.0.1:{proxy.listen_port}/0?prefix={prefix}", **kwargs) as b,
        ):
            yield a, b, proxy
    finally:
        proxy.close()


@asynccontextmanager
async def worker(url: str, **kwargs: object) -> AsyncIterator[Hub]:
    """One hub on the shared backend: what each worker process of an app holds."""
    hub = Hub(url, lifecycle=lifecycle(), **kwargs)  # type: ignore[arg-type]
    await hub.start()
    try:
        yield hub
    finally:
        await hub.stop()


async def take(sub: object, count: int, within: float = 5.0) -> list[ParsedEvent]:
    """The next ``count`` events of a subscription (fails if they do not come in time)."""
    text = ""
    async with asyncio.timeout(within):
        while len(parse(text).events) < count:
            text += (await sub.__anext__()).decode()  # type: ignore[attr-defined]
    return parse(text).events


async def quiet(sub: object, wait: float = 0.3) -> list[ParsedEvent]:
    """Whatever else arrives within ``wait`` seconds (to check nothing more came)."""
    text = ""
    try:
        async with asyncio.timeout(wait):
            while True:
                text += (await sub.__anext__()).decode()  # type: ignore[attr-defined]
    except TimeoutError:
        pass
    return parse(text).events


@pytest.mark.anyio
async def test_a_publish_on_one_worker_reaches_subscribers_on_every_worker_in_order(url: str) -> None:
    async with worker(url) as a, worker(url) as b:
        on_a, on_b = aiter(a.subscribe("news")), aiter(b.subscribe("news", "chat"))
        ids = [await a.publish("news", f"n{i}") for i in range(5)] + [await b.publish("chat", "c")]
        got_a, got_b = await take(on_a, 5), await take(on_b, 6)
        assert [e.data for e in got_a] == [f"n{i}" for i in range(5)]
        assert [e.data for e in got_b] == [*(f"n{i}" for i in range(5)), "c"]
        assert [e.last_event_id for e in got_b] == ids  # the same ids on every worker
        assert await quiet(on_a) == []


@pytest.mark.anyio
async def test_last_event_id_on_another_worker_replays_exactly_what_was_missed(url: str) -> None:
    async with worker(url) as a, worker(url) as b:
        first = aiter(a.subscribe("t"))
        await a.publish("t", "seen")
        last = (await take(first, 1))[-1].last_event_id
        await first.aclose()
        for i in range(3):
            await a.publish("t", f"missed {i}")
            await a.publish("other", "not for it")
        back = aiter(b.subscribe("t").resume(last))
        await b.publish("t", "live")
        events = await take(back, 4)
        assert [e.data for e in events] == ["missed 0", "missed 1", "missed 2", "live"]
        assert await quiet(back) == []


@pytest.mark.anyio
async def test_replay_and_live_events_meet_with_no_gap_and_no_duplicate(url: str) -> None:
    async with worker(url) as a, worker(url) as b:
        start = await a.publish("t", "0")
        for round_ in range(5):
            publishing = asyncio.ensure_future(_publish_many(a, "t", round_, 30))
            await asyncio.sleep(0.002 * round_)
            back = aiter(b.subscribe("t").resume(start))  # resumes while events keep coming
            await publishing
            events = await take(back, 30 * (round_ + 1))
            datas = [e.data for e in events]
            assert len(datas) == len(set(datas)), "a duplicate"
            assert [int(d.split()[1]) for d in datas if d.startswith(f"r{round_} ")] == list(range(30))
            await back.aclose()


async def _publish_many(hub: Hub, topic: str, round_: int, count: int) -> None:
    for i in range(count):
        await hub.publish(topic, f"r{round_} {i}")


@pytest.mark.anyio
async def test_a_new_process_replays_what_the_old_one_published(url: str) -> None:
    async with worker(url) as old:
        sub = aiter(old.subscribe("t"))
        await old.publish("t", "before the restart")
        last = (await take(sub, 1))[-1].last_event_id
        await old.publish("t", "during the restart")
    async with worker(url) as new:
        await new.publish("t", "after the restart")
        back = aiter(new.subscribe("t").resume(last))
        events = await take(back, 2)
        assert [e.data for e in events] == ["during the restart", "after the restart"]


@pytest.mark.anyio
async def test_a_worker_cut_off_from_redis_catches_up_when_it_returns(redis: RedisServer) -> None:
    async with cut_off_worker(redis, "cut") as (a, b, proxy):
        sub = aiter(b.subscribe("t"))
        await a.publish("t", "before")
        assert [e.data for e in await take(sub, 1)] == ["before"]
        proxy.refusing = True
        proxy.cut()
        with pytest.raises(BackendUnavailable):
            for _ in range(50):  # until b notices the cut
                await b.publish("t", "from the cut-off worker")
                await asyncio.sleep(0.05)
        for i in range(5):
            await a.publish("t", f"while cut {i}")
        proxy.refusing = False
        events = await take(sub, 5, within=15)
        assert [e.data for e in events] == [f"while cut {i}" for i in range(5)]
        await b.publish("t", "after")  # publishing recovers
        assert [e.data for e in await take(sub, 1)] == ["after"]


@pytest.mark.anyio
async def test_events_lost_beyond_the_history_send_a_reset_then_live_ones(redis: RedisServer) -> None:
    async with cut_off_worker(redis, "lost", history=3) as (a, b, proxy):
        sub = aiter(b.subscribe("t"))
        proxy.refusing = True
        proxy.cut()
        await asyncio.sleep(0.3)
        for i in range(10):
            await a.publish("t", f"gone {i}")
        proxy.refusing = False
        events = await take(sub, 1, within=15)
        assert events[0].type == "reset"
        await a.publish("t", "live")
        assert [e.data for e in await take(sub, 1)] == ["live"]


@pytest.mark.anyio
async def test_redis_killed_and_started_again_streams_survive_and_publishing_recovers(tmp_path: Path) -> None:
    server = RedisServer(tmp_path)
    try:
        async with worker(server.url) as hub:
            sub = aiter(hub.subscribe("t"))
            await hub.publish("t", "before")
            await take(sub, 1)
            server.kill()
            with pytest.raises(BackendUnavailable):
                await hub.publish("t", "while down")
            assert hub.metrics()["publish_failures"] == 1
            server.start()
            for _ in range(100):  # the reader reconnects with backoff
                try:
                    await hub.publish("t", "back")
                    break
                except BackendUnavailable:
                    await asyncio.sleep(0.1)
            events = await take(sub, 1, within=15)
            assert [e.data for e in events] == ["back"]
            assert not sub.finished  # the stream survived the outage
    finally:
        server.kill()


@pytest.mark.anyio
async def test_presence_counts_every_workers_connections(url: str) -> None:
    async with worker(url) as a, worker(url) as b:
        subs = [aiter(a.subscribe("x")), aiter(a.subscribe("x", "y")), aiter(b.subscribe("y"))]
        for _ in range(50):  # presence is written every 2 s
            seen = await a.presence()
            if seen["total"] == 3:
                break
            await asyncio.sleep(0.1)
        assert seen == {"total": 3, "topics": {"x": 2, "y": 2}}
        for sub in subs:
            await sub.aclose()


@pytest.mark.anyio
async def test_publish_nowait_keeps_order(url: str) -> None:
    async with worker(url) as a:
        sub = aiter(a.subscribe("t"))
        for i in range(20):
            assert a.publish_nowait("t", str(i)) is None
        assert [e.data for e in await take(sub, 20)] == [str(i) for i in range(20)]


def test_the_backend_is_chosen_by_url_and_redis_is_imported_only_when_used(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert Hub(lifecycle=lifecycle()).backend.url == "memory://"
    monkeypatch.setenv("SSE_BROKER_URL", "redis://127.0.0.1:1/0")
    assert Hub(lifecycle=lifecycle()).backend.url.startswith("redis://")
    with pytest.raises(ValueError, match="unknown broker URL kafka://\\*\\*\\*@h"):  # user too
        open_backend("kafka://u:secret@h", history=1, history_age=None)
    monkeypatch.delitem(sys.modules, "graceful_sse._backends.redis", raising=False)
    monkeypatch.setitem(sys.modules, "redis", None)
    monkeypatch.setitem(sys.modules, "redis.asyncio", None)
    with pytest.raises(ImportError, match=r"install -e '\.\[redis\]'"):
        open_backend("redis://localhost", history=1, history_age=None)


@pytest.mark.parametrize("outage", ["stopped", "killed"])
@pytest.mark.anyio
async def test_a_client_resuming_during_an_outage_gets_a_reset_then_live_events(
    tmp_path: Path, outage: str
) -> None:
    """Never silence: the replay cannot be fetched, so ``reset`` (unavailable), then live events
    once Redis is back. A stopped Redis (``kill -STOP``) hangs every call until its timeout."""

    server = RedisServer(tmp_path)
    try:
        async with worker(server.url) as hub:
            first = aiter(hub.subscribe("t"))
            await hub.publish("t", "seen")
            last = (await take(first, 1))[-1].last_event_id
            await first.aclose()
            if outage == "stopped":
                server.pause()
            else:
                server.kill()
            asked = time.monotonic()
            back = aiter(hub.subscribe("t").resume(last))
            events = await take(back, 1, within=10)
            assert events[0].type == "reset" and '"unavailable"' in events[0].data, events
            print(f"Redis {outage}: reset after {time.monotonic() - asked:.2f} s")
            if outage == "stopped":
                server.resume()
            else:
                server.start()
            await _publish_when_back(hub, "t", "after the outage")
            assert [e.data for e in await take(back, 1, within=15)] == ["after the outage"]
    finally:
        server.kill()


async def _publish_when_back(
    hub: Hub, topic: str, data: str, within: float = 15.0, key: str | None = None
) -> None:
    async with asyncio.timeout(within):
        while True:
            try:
                await hub.publish(topic, data, key=key)
                return
            except BackendUnavailable:
                await asyncio.sleep(0.1)


SECRET = "Pa55-w0rd!"


@pytest.mark.parametrize(
    "template",
    [
        f"redis://:{SECRET}@127.0.0.1:{{port}}/0",
        f"redis://app-user:{SECRET}@127.0.0.1:{{port}}/0",
        f"redis://127.0.0.1:{{port}}/0?password={SECRET}",
        f"redis://127.0.0.1:{{port}}/0?username=app-user&password={SECRET}&prefix=x",
        f"redis://127.0.0.1:{{port}}/0?password={SECRET.replace('!', '%21')}",
        f"redis+sentinel://app-user:{SECRET}@127.0.0.1:{{port}}/mymaster/0?sentinel_password={SECRET}",
    ],
    ids=[
        "userinfo password",
        "userinfo user and password",
        "query password",
        "query both",
        "encoded",
        "sentinel",
    ],
)
@pytest.mark.anyio
async def test_credentials_in_the_url_never_reach_a_log_or_an_error(
    template: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Redis down from the start: the start-up line, the outage warning and the publisher's
    error all name the broker, with its user and password masked."""
    dead = free_port()
    url = template.format(port=dead)

    async def main() -> str:
        async with worker(url) as hub:
            with pytest.raises(BackendUnavailable) as failed:
                await hub.publish("t", "x")
            return str(failed.value)

    with caplog.at_level("INFO", logger="graceful_sse"):
        error = await main()
    said = caplog.text + error
    assert f"127.0.0.1:{dead}" in said and "***" in said, said
    assert SECRET not in said and "Pa55" not in said and "app-user" not in said, said


@pytest.mark.anyio
async def test_a_key_publishes_once_across_workers(url: str) -> None:
    async with worker(url) as a, worker(url) as b:
        sub = aiter(a.subscribe("t"))
        first = await a.publish("t", "order #41", key="order-41")
        again = await b.publish("t", "order #41", key="order-41")
        other = await b.publish("t", "order #43", key="order-43")
        assert again == first and other != first
        assert [e.data for e in await take(sub, 2)] == ["order #41", "order #43"]
        assert await quiet(sub) == []


@pytest.mark.anyio
async def test_a_publish_that_timed_out_and_ran_later_is_not_repeated_by_its_retry(tmp_path: Path) -> None:
    """Redis hangs (``kill -STOP``): the publisher hears "outcome unknown"; Redis runs the script
    when it wakes; the retry with the same key delivers nothing more. Killed: "not published"."""

    server = RedisServer(tmp_path)
    try:
        async with worker(server.url) as publisher, worker(server.url) as reader:
            sub = aiter(reader.subscribe("orders"))
            await publisher.publish("orders", "warm the pool")
            await take(sub, 1)
            server.pause()
            with pytest.raises(OutcomeUnknown):
                await publisher.publish("orders", "order #42", key="order-42")
            server.resume()
            await _publish_when_back(publisher, "orders", "order #42", key="order-42")
            await publisher.publish("orders", "after")
            events = await take(sub, 2, within=15)
            assert [e.data for e in events] == ["order #42", "after"]
            assert await quiet(sub) == []
            server.kill()
            with pytest.raises(NotPublished):
                for _ in range(50):
                    # The pooled connection dies under its command first: that one's
                    # outcome is unknown; the next cannot connect at all.
                    with contextlib.suppress(OutcomeUnknown):
                        await publisher.publish("orders", "into the void")
                    await asyncio.sleep(0.05)
    finally:
        server.kill()


# -- high availability: Redis Sentinel -------------------------------------------------------


@pytest.fixture
def sentinels(tmp_path: Path) -> Iterator[tuple[str, RedisServer, RedisServer, SentinelServer]]:
    """A primary, its replica and three Sentinels (a quorum of two); the URL names all three."""
    primary = RedisServer(tmp_path)
    replica = RedisServer(tmp_path, args=("--replicaof", "127.0.0.1", str(primary.port)))
    watching = [SentinelServer(tmp_path, primary.port, quorum=2) for _ in range(3)]
    hosts = ",".join(f"127.0.0.1:{s.port}" for s in watching)
    try:
        yield f"redis+sentinel://{hosts}/{SentinelServer.SERVICE}/0?prefix=ha", primary, replica, watching[0]
    finally:
        for server in (*watching, replica, primary):
            server.kill()


@pytest.mark.anyio
async def test_a_failover_under_a_steady_publisher_gives_every_client_each_event_once_in_order(
    sentinels: tuple[str, RedisServer, RedisServer, SentinelServer],
) -> None:
    """The primary is killed while a publisher sends an event every 50 ms (each with its key,
    sent again until the new primary takes it); a client on each of two workers gets all of
    them, in order, once; then a client back with an id from before the failover gets the rest."""
    url, primary, replica, sentinel = sentinels
    count, kill_after = 40, 10

    async with worker(url) as a, worker(url) as b:
        clients = [aiter(a.subscribe("t")), aiter(b.subscribe("t"))]

        async def publisher() -> float:
            killed_at = 0.0
            for i in range(count):
                if i == kill_after:
                    assert await asyncio.to_thread(_replicas_in_step, primary) == 1
                    primary.kill()
                    killed_at = time.monotonic()
                await _publish_when_back(a, "t", f"e{i}", key=f"e{i}", within=30)
                if i == kill_after:
                    took = time.monotonic() - killed_at
                    print(f"failover: the new primary took a publish {took:.1f} s after the kill")
                await asyncio.sleep(0.05)
            return killed_at

        publishing = asyncio.create_task(publisher())
        received = [await take(client, count, within=40) for client in clients]
        await publishing
        for events in received:
            assert [e.data for e in events] == [f"e{i}" for i in range(count)]
        for client in clients:
            assert await quiet(client) == []
        assert sentinel.primary() == replica.port
        resume_from = received[1][kill_after - 3].last_event_id
        back = aiter(b.subscribe("t").resume(resume_from))
        rest = [e.data for e in await take(back, count - kill_after + 2)]
        assert rest == [f"e{i}" for i in range(kill_after - 2, count)]
        assert await quiet(back) == []


def _replicas_in_step(primary: RedisServer, within: float = 10.0) -> int:
    """``WAIT``: how many replicas have every write so far (the first sync takes a moment)."""
    import redis as sync_redis

    client = sync_redis.Redis(port=primary.port)
    deadline = time.monotonic() + within
    try:
        while (in_step := int(client.execute_command("WAIT", 1, 500))) == 0 and time.monotonic() < deadline:
            pass
        return in_step
    finally:
        client.close()
