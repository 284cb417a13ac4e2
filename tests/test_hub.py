"""The hub: who gets what, bounded queues, counts, and a publisher that never waits."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from graceful_sse import Event, EventId, Hub, Overflow, Subscription, TopicPolicy
from graceful_sse._backends.memory import MemoryBackend
from graceful_sse._logs import Summary

from asgi import lifecycle
from sse_parser import parse


def _events(chunks: list[bytes]) -> list[tuple[str, str]]:
    return [(e.type, e.data) for e in parse(b"".join(chunks).decode()).events]


async def _drain(sub) -> list[bytes]:  # type: ignore[no-untyped-def]
    out = []
    while sub.pending or sub.dropped:
        out.append(await sub.__anext__())
    return out


@pytest.mark.anyio
async def test_subscribers_get_only_their_topics_in_order() -> None:
    hub = Hub(lifecycle=lifecycle())
    news, both = aiter(hub.subscribe("news")), aiter(hub.subscribe("news", "chat"))
    ids = [
        await hub.publish("news", "n1"),
        await hub.publish("chat", "c1", event="chat"),
        await hub.publish("sport", "s1"),
        await hub.publish("news", Event(data="n2", event="message")),
    ]
    assert ids == sorted(ids, key=EventId.parse) and len(set(ids)) == 4 and ids[-1] == hub.last_id
    assert _events(await _drain(news)) == [("message", "n1"), ("message", "n2")]
    assert _events(await _drain(both)) == [("message", "n1"), ("chat", "c1"), ("message", "n2")]


@pytest.mark.anyio
async def test_a_subscription_counts_only_while_it_is_iterated() -> None:
    hub = Hub(lifecycle=lifecycle())
    sub = hub.subscribe("a", "b", "a")
    assert sub.topics == ("a", "b") and hub.connections() == 0
    aiter(sub)
    assert (hub.connections(), hub.connections("a"), hub.connections("b")) == (1, 1, 1)
    async with hub.subscribe("a"):
        assert (hub.connections(), hub.connections("a")) == (2, 2)
    await sub.aclose()
    assert (hub.connections(), hub.connections("a")) == (0, 0)
    await hub.publish("a", "x")
    assert hub.metrics()["events_delivered"] == 0


@pytest.mark.anyio
async def test_a_slow_subscriber_loses_the_oldest_events_and_is_told_how_many() -> None:
    hub = Hub(lifecycle=lifecycle(), maxsize=3)
    slow = aiter(hub.subscribe("t"))
    for i in range(10):
        hub.publish_nowait("t", str(i))
    assert slow.pending == 3
    events = _events(await _drain(slow))
    assert events[0] == ("missed", json.dumps({"count": 7}, separators=(",", ":")))
    assert events[1:] == [("message", "7"), ("message", "8"), ("message", "9")]


@pytest.mark.anyio
async def test_publishing_encodes_once_and_shares_the_bytes() -> None:
    hub = Hub(lifecycle=lifecycle())
    subs = [aiter(hub.subscribe("t")) for _ in range(3)]
    await hub.publish("t", {"x": 1})
    chunks = [await s.__anext__() for s in subs]
    assert chunks[0] is chunks[1] is chunks[2]


@pytest.mark.anyio
async def test_a_waiting_subscriber_wakes_on_publish_and_ends_on_close() -> None:
    hub = Hub(lifecycle=lifecycle())
    sub = hub.subscribe("t")
    waiting = asyncio.create_task(anext(aiter(sub)))
    await asyncio.sleep(0.01)
    assert not waiting.done()
    await hub.publish("t", "hi")
    assert _events([await waiting]) == [("message", "hi")]
    ending = asyncio.create_task(anext(sub))
    await asyncio.sleep(0.01)
    sub.close()
    with pytest.raises(StopAsyncIteration):
        await ending


def test_a_subscription_needs_a_topic() -> None:
    with pytest.raises(ValueError, match="at least one topic"):
        Hub(lifecycle=lifecycle()).subscribe()


def test_the_hub_gives_ids_and_refuses_ones_given_by_the_publisher() -> None:
    hub = Hub(lifecycle=lifecycle())
    with pytest.raises(ValueError, match="the hub gives every event its id"):
        hub.publish_nowait("t", Event(data="x", id="mine"))


def test_bad_event_fields_fail_at_the_publisher_and_reach_nobody() -> None:
    hub = Hub(lifecycle=lifecycle())
    sub = aiter(hub.subscribe("t"))
    with pytest.raises(ValueError, match="CR or LF"):
        hub.publish_nowait("t", "x", event="a\nb")
    assert sub.pending == 0


@settings(max_examples=200)
@given(st.lists(st.one_of(st.integers(0, 50), st.just(-1)), max_size=80), st.integers(1, 8))
def test_any_interleaving_keeps_order_and_bounds_memory(ops: list[int], maxsize: int) -> None:
    """Positive op: publish that number; -1: the subscriber reads one event."""

    async def main() -> None:
        hub = Hub(lifecycle=lifecycle(), maxsize=maxsize)
        sub = aiter(hub.subscribe("t"))
        received: list[int] = []
        missed = 0
        published: list[int] = []
        for op in ops:
            if op >= 0:
                published.append(op)
                hub.publish_nowait("t", op)
                assert sub.pending <= maxsize
            elif sub.pending:
                (event,) = parse((await sub.__anext__()).decode()).events
                if event.type == "missed":
                    missed += json.loads(event.data)["count"]
                else:
                    received.append(int(event.data))
        for chunk in await _drain(sub):
            (event,) = parse(chunk.decode()).events
            if event.type == "missed":
                missed += json.loads(event.data)["count"]
            else:
                received.append(int(event.data))
        assert len(received) + missed == len(published)
        # What arrives is in publish order: a subsequence of what was published.
        it = iter(published)
        assert all(any(x == y for y in it) for x in received)

    asyncio.run(main())


# -- ids and replay ---------------------------------------------------------------------------


def _ids(chunks: list[bytes]) -> list[str]:
    return [e.last_event_id for e in parse(b"".join(chunks).decode()).events]


def test_ids_are_unique_ordered_and_not_reused_by_a_restarted_process() -> None:
    first = Hub(lifecycle=lifecycle())
    sub = aiter(first.subscribe("a", "b"))
    for topic in "abab":
        first.publish_nowait(topic, "x")
    ids = [EventId.parse(i) for i in _ids(list(iter(sub.pop, None)))]
    assert all(ids) and ids == sorted(ids) and len(set(ids)) == 4
    time.sleep(0.002)
    restarted = Hub(lifecycle=lifecycle())
    assert EventId.parse(restarted.last_id) > ids[-1]  # type: ignore[operator]


@pytest.mark.anyio
async def test_a_returning_client_gets_exactly_what_it_missed_then_live_events() -> None:
    hub = Hub(lifecycle=lifecycle())
    first = aiter(hub.subscribe("t"))
    for i in range(3):
        hub.publish_nowait("t", f"before {i}")
    seen = await _drain(first)
    last = _ids(seen)[-1]
    await first.aclose()
    for i in range(3):
        hub.publish_nowait("t", f"missed {i}")
    back = aiter(hub.subscribe("t").resume(last))
    hub.publish_nowait("t", "live")
    data = [d for _, d in _events(await _drain(back))]
    assert data == ["missed 0", "missed 1", "missed 2", "live"]


@pytest.mark.anyio
async def test_replay_over_several_topics_keeps_publish_order() -> None:
    hub = Hub(lifecycle=lifecycle())
    hub.publish_nowait("a", "0")
    start = hub.last_id
    for i, topic in enumerate("abcab", start=1):
        hub.publish_nowait(topic, str(i))
    back = aiter(hub.subscribe("a", "b").resume(start))
    assert [d for _, d in _events(await _drain(back))] == ["1", "2", "4", "5"]


@pytest.mark.parametrize(
    "last_id,reason",
    [
        ("garbage", "not-ours"),
        ("1-2-3", "not-ours"),
        ("9" * 500, "not-ours"),
        ("", "not-ours"),
        ("1-1", "unknown"),  # another process's epoch: the in-memory history is gone
        ("{epoch}-999", "unknown"),  # from the future
        ("{epoch}-1", "too-old"),  # trimmed from a history of 2
    ],
)
@pytest.mark.anyio
async def test_an_id_the_history_cannot_serve_gets_a_reset_then_live_events(
    last_id: str, reason: str
) -> None:
    hub = Hub(lifecycle=lifecycle(), history=2)
    for i in range(5):
        hub.publish_nowait("t", str(i))
    epoch = hub.last_id.split("-")[0]
    back = aiter(hub.subscribe("t").resume(last_id.format(epoch=epoch)))
    hub.publish_nowait("t", "live")
    events = _events(await _drain(back))
    assert events == [
        ("reset", json.dumps({"reason": reason}, separators=(",", ":"))),
        ("message", "live"),
    ]


@pytest.mark.anyio
async def test_clients_cannot_make_the_log_grow_with_unusable_ids(caplog: pytest.LogCaptureFixture) -> None:
    """2,000 clients back with ids the hub cannot place: each gets its reset, the log one line."""

    caplog.set_level("INFO", logger="graceful_sse")
    hub = Hub(lifecycle=lifecycle())
    for i in range(2000):
        back = aiter(hub.subscribe("t").resume(f"made-up-{i}" if i % 2 else "1-1"))
        assert [t for t, _ in _events(await _drain(back))] == ["reset"]
    lines = [r.getMessage() for r in caplog.records if "Last-Event-ID" in r.getMessage()]
    assert len(lines) == 1, lines[:3]


@pytest.mark.anyio
async def test_a_summary_counts_what_it_held_back_by_kind(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="graceful_sse")
    summary = Summary("unusable ids", interval=0.2)
    for i in range(30):
        summary.log("not-ours" if i % 3 else "unknown", "graceful-sse: bad id %d", i)
    await asyncio.sleep(0.3)  # the interval ends: one line with the count
    summary.log("unknown", "graceful-sse: bad id %d", 99)
    assert [r.getMessage() for r in caplog.records] == [
        "graceful-sse: bad id 0",
        "graceful-sse: 29 more unusable ids in 0.2 s (not-ours: 20, unknown: 9)",
        "graceful-sse: bad id 99",
    ]


@pytest.mark.anyio
async def test_a_key_publishes_at_most_once() -> None:
    hub = Hub(lifecycle=lifecycle())
    sub = aiter(hub.subscribe("t"))
    first = await hub.publish("t", "order #41", key="order-41")
    assert await hub.publish("t", "order #41", key="order-41") == first  # a retry: the same id
    assert hub.publish_nowait("t", "order #41", key="order-41") == first
    await hub.publish("t", "order #43", key="order-43")
    await hub.publish("t", "no key")
    await hub.publish("t", "no key")
    assert [d for _, d in _events(await _drain(sub))] == ["order #41", "order #43", "no key", "no key"]
    for bad in ("", "k" * 201):
        with pytest.raises(ValueError, match="publish key"):
            await hub.publish("t", "x", key=bad)


@pytest.mark.anyio
async def test_history_is_trimmed_by_age() -> None:
    hub = Hub(lifecycle=lifecycle(), history_age=0.05)
    hub.publish_nowait("t", "old")
    start = hub.last_id
    hub.publish_nowait("t", "older than the window soon")
    await asyncio.sleep(0.1)
    back = aiter(hub.subscribe("t").resume(start))
    assert [t for t, _ in _events(await _drain(back))] == ["reset"]


@settings(max_examples=100)
@given(st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=40), st.data())
def test_leaving_and_resuming_anywhere_loses_nothing_and_repeats_nothing(
    topics: list[str], draw: st.DataObject
) -> None:
    """Publish to a, b, c; a client of a+b leaves at one point and comes back at a later one."""
    leave_at = draw.draw(st.integers(0, len(topics) - 1))
    back_at = draw.draw(st.integers(leave_at, len(topics)))

    async def main() -> list[str]:
        hub = Hub(lifecycle=lifecycle(), maxsize=1000)
        sub = aiter(hub.subscribe("a", "b"))
        received: list[str] = []
        last = ""
        for i, topic in enumerate(topics):
            if i == leave_at:
                chunks = await _drain(sub)
                received += [d for _, d in _events(chunks)]
                last = _ids(chunks)[-1] if chunks else hub.last_id
                await sub.aclose()
            if i == back_at:
                sub = aiter(hub.subscribe("a", "b").resume(last))
            hub.publish_nowait(topic, f"{i}:{topic}")
        if back_at == len(topics):
            sub = aiter(hub.subscribe("a", "b").resume(last))
        return received + [d for _, d in _events(await _drain(sub))]

    assert asyncio.run(main()) == [f"{i}:{t}" for i, t in enumerate(topics) if t in "ab"]


def test_a_subscription_knows_where_its_client_can_resume_from() -> None:
    hub = Hub(lifecycle=lifecycle())
    hub.publish_nowait("t", "a")
    fresh = aiter(hub.subscribe("t"))
    assert fresh.position == hub.last_id, "a new client resumes after what was before it"
    seen = hub.last_id
    hub.publish_nowait("t", "b")
    back = aiter(hub.subscribe("t").resume(seen))
    assert back.position == seen, "a replayed client resumes from its own id until it has the replay"
    lost = aiter(hub.subscribe("t").resume("junk"))
    assert lost.position == hub.last_id


@pytest.mark.anyio
async def test_the_restart_policy_ends_a_slow_subscriber_with_restart_advice_and_frees_its_queue() -> None:
    hub = Hub(lifecycle=lifecycle(restart_window=(2, 3)), maxsize=3, overflow="restart")
    slow, fast = aiter(hub.subscribe("t")), aiter(hub.subscribe("t", maxsize=100, overflow="drop-oldest"))
    for i in range(5):
        await hub.publish("t", str(i))
    assert slow.stats()["overflow"] == "restart" and slow.pending == 0
    assert hub.connections("t") == 1  # the slow one left the hub at once
    parsed = parse((await slow.__anext__()).decode())
    assert [e.type for e in parsed.events] == ["restart"]
    assert json.loads(parsed.events[0].data)["reason"] == "slow"
    assert parsed.retry is not None and 2000 <= parsed.retry <= 3000
    assert slow.finished
    assert [d for _, d in _events(await _drain(fast))] == ["0", "1", "2", "3", "4"]
    assert hub.metrics()["slow_client_restarts"] == 1


def test_buffering_comes_from_the_subscription_then_its_topic_then_the_hub() -> None:
    hub = Hub(lifecycle=lifecycle(), maxsize=10, topics={"chat": TopicPolicy(maxsize=50, overflow="restart")})
    assert (hub.subscribe("news").maxsize, hub.subscribe("news").overflow) == (10, "drop-oldest")
    assert (hub.subscribe("news", "chat").maxsize, hub.subscribe("chat").overflow) == (50, "restart")
    assert hub.subscribe("chat", maxsize=5, overflow="drop-oldest").stats()["overflow"] == "drop-oldest"
    with pytest.raises(ValueError, match="overflow must be one of"):
        hub.subscribe("chat", overflow="block")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="maxsize"):
        TopicPolicy(maxsize=0)


@pytest.mark.anyio
async def test_connect_and_disconnect_hooks_see_each_subscription_sync_or_async() -> None:
    hub = Hub(lifecycle=lifecycle())
    seen: list[tuple[str, tuple[str, ...]]] = []

    @hub.on_connect
    def joined(sub: Subscription) -> None:
        seen.append(("in", sub.topics))

    @hub.on_disconnect
    async def left(sub: Subscription) -> None:
        seen.append(("out", sub.topics))

    @hub.on_connect
    def broken(sub: Subscription) -> None:
        raise RuntimeError("a hook's bug must not break the stream")

    sub = aiter(hub.subscribe("a", "b"))
    await hub.publish("a", "x")
    assert _events(await _drain(sub)) == [("message", "x")]
    await sub.aclose()
    await asyncio.sleep(0)
    assert seen == [("in", ("a", "b")), ("out", ("a", "b"))]


@pytest.mark.anyio
async def test_metrics_count_what_happened_as_a_dict_and_for_prometheus() -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from graceful_sse import register_prometheus

    hub = Hub(lifecycle=lifecycle(), maxsize=1)
    sub = aiter(hub.subscribe("t"))
    for i in range(3):
        await hub.publish("t", str(i))
    await _drain(sub)
    metrics = hub.metrics()
    assert metrics["events_published"] == 3 and metrics["events_dropped"] == 2
    assert metrics["events_delivered"] == 1 and metrics["connections"] == 1
    assert metrics["topics"] == {"t": 1} and metrics["backend"] == "memory"
    registry = CollectorRegistry()
    register_prometheus(hub, registry=registry)
    text = generate_latest(registry).decode()
    assert 'graceful_sse_events_dropped_total{backend="memory"} 2.0' in text
    assert 'graceful_sse_topic_connections{topic="t"} 1.0' in text
    assert hub.streams() == [sub.stats()] and sub.stats()["dropped"] == 2


@pytest.mark.anyio
async def test_a_last_event_id_ahead_of_this_process_gets_no_event_twice() -> None:
    hub = Hub(lifecycle=lifecycle())
    first = await hub.publish("t", "a")
    await hub.publish("t", "b")
    sub = aiter(hub.subscribe("t").resume(first))
    hub.publish_nowait("t", "c")
    assert [d for _, d in _events(await _drain(sub))] == ["b", "c"]


@pytest.mark.anyio
async def test_an_event_over_the_size_limit_is_refused_at_the_publisher_and_reaches_nobody() -> None:
    hub = Hub(lifecycle=lifecycle(), max_event_bytes=100)
    sub = aiter(hub.subscribe("t"))
    with pytest.raises(ValueError, match="over the hub's max_event_bytes"):
        await hub.publish("t", "x" * 200)
    with pytest.raises(ValueError, match="over the hub's max_event_bytes"):
        hub.publish_nowait("t", "x" * 200)
    await hub.publish("t", "small")
    assert _events(await _drain(sub)) == [("message", "small")]
    assert Hub(lifecycle=lifecycle(), max_event_bytes=None).max_event_bytes is None


@pytest.mark.parametrize("topic", ["", None, 3, "a\nb", "a\rb", "nul\x00", "x" * 201])
def test_topic_names_from_requests_are_checked(topic: object) -> None:
    hub = Hub(lifecycle=lifecycle())
    with pytest.raises(ValueError, match="control characters"):
        hub.subscribe(topic)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="control characters"):
        hub.publish_nowait(topic, "x")  # type: ignore[arg-type]


class _RecordingBackend(MemoryBackend):
    """An app's own backend: the in-memory one, recording what it was asked to publish."""

    def __init__(self) -> None:
        super().__init__(history=10, history_age=None)
        self.published: list[str] = []

    async def publish(self, topic: str, body: bytes, key: str | None = None) -> EventId:
        self.published.append(topic)
        return await super().publish(topic, body, key)


@pytest.mark.anyio
async def test_a_hub_takes_a_backend_object_instead_of_a_url() -> None:
    backend = _RecordingBackend()
    hub = Hub(backend=backend, lifecycle=lifecycle())
    sub = aiter(hub.subscribe("t"))
    event_id = await hub.publish("t", "through my backend")
    assert backend.published == ["t"] and hub.last_id == event_id
    assert _events(await _drain(sub)) == [("message", "through my backend")]
    with pytest.raises(ValueError, match="not both"):
        Hub("memory://", backend=_RecordingBackend())


def test_overflow_policies_are_an_enum_that_also_takes_their_names() -> None:
    hub = Hub(
        lifecycle=lifecycle(), overflow="restart", topics={"t": TopicPolicy(overflow=Overflow.DROP_OLDEST)}
    )
    assert hub.overflow is Overflow.RESTART and hub.subscribe("t").overflow is Overflow.DROP_OLDEST
    with pytest.raises(ValueError, match="drop-oldest, restart"):
        Hub(lifecycle=lifecycle(), overflow="drop-newest")  # type: ignore[arg-type]
