"""The Redis backend: every worker and host shares ids, history and delivery.

- One Lua script per publish gives the event its id, ``<epoch>-<seq>`` from a counter every
  process shares, appends it to the topic's Redis Stream (the history: trimmed by count, and the
  whole stream expires ``history_age`` after its last event) and publishes it on one channel.
- Each process holds one Pub/Sub subscription to that channel, whatever its number of clients,
  and sees every event in id order; a jump in the sequence (Redis went away, a slow reader) is
  filled from the streams, and what cannot be filled is told to the subscribers as ``reset``.
- Ending streams (``Hub.end``): the order goes on a second channel the same Pub/Sub connection
  listens to, so every process ends its own; the sender has already ended its.
- Presence: each process writes its connection counts to a hash that expires unless refreshed.

``epoch`` is stored in Redis the first time a process connects, so ids are the same for every
worker and are not reused after Redis loses its data (a new epoch starts).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import socket
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from urllib.parse import parse_qsl, urlencode, urlsplit

import redis.asyncio as aioredis
from redis.asyncio.sentinel import MasterNotFoundError, Sentinel
from redis.exceptions import ReadOnlyError, RedisError

from .._history import EventId
from .._logs import logger
from .._wire import Encoded
from . import (
    KEY_WINDOW,
    Backend,
    BackendUnavailable,
    Deliver,
    EndOrder,
    NotPublished,
    OutcomeUnknown,
    Replay,
    Reset,
    ResetReason,
    _shown,
)

__all__ = ["RedisBackend"]

OUTBOX_LIMIT = 10_000  # publish_nowait events waiting for Redis
PRESENCE_EVERY = 2.0
PRESENCE_TTL_MS = 10_000
RETRY_CAP = 5.0
STOP_TIMEOUT = 2.0

_PUBLISH = """
if ARGV[6] ~= '' then
  -- published with this key within the window: its id, and nothing delivered again
  local seen = redis.call('GET', KEYS[7])
  if seen then return seen end
end
local epoch = redis.call('GET', KEYS[1])
if not epoch then
  epoch = ARGV[5]
  redis.call('SET', KEYS[1], epoch)
end
local seq = redis.call('INCR', KEYS[2])
local id = epoch .. '-' .. seq
local chunk = 'id: ' .. id .. '\\n' .. ARGV[1]
if ARGV[2] ~= '0' then
  redis.call('XADD', KEYS[3], seq .. '-0', 'c', chunk)
  local over = redis.call('XLEN', KEYS[3]) - tonumber(ARGV[2])
  if over > 0 then
    -- remember the newest id trimmed away: a replay from before it cannot be exact
    local old = redis.call('XRANGE', KEYS[3], '-', '+', 'COUNT', over)
    redis.call('XTRIM', KEYS[3], 'MAXLEN', ARGV[2])
    redis.call('HSET', KEYS[6], ARGV[4], old[#old][1])
  end
  if ARGV[3] ~= '0' then redis.call('PEXPIRE', KEYS[3], ARGV[3]) end
end
redis.call('HSET', KEYS[4], ARGV[4], id)
redis.call('PUBLISH', KEYS[5], ARGV[4] .. '\\n' .. id .. '\\n' .. chunk)
if ARGV[6] ~= '' then redis.call('SET', KEYS[7], id, 'PX', ARGV[6]) end
return id
"""


class RedisBackend(Backend):
    """``redis://host:port/db``, ``rediss://…`` or ``unix:///path``; ``?prefix=`` names the keys
    (default ``sse``), so that several apps can share one Redis."""

    def __init__(self, url: str, *, history: int, history_age: float | None) -> None:
        self.url = url
        self.history = history
        self.history_age = history_age
        self.prefix, self._redis_url = _split_prefix(url)
        p = self.prefix
        self._keys = {
            "epoch": f"{p}:epoch",
            "seq": f"{p}:seq",
            "last": f"{p}:last",
            "live": f"{p}:live",
            "control": f"{p}:control",
            "trimmed": f"{p}:trimmed",
            "key": f"{p}:key",
        }
        self._me = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._control = self._keys["control"].encode()  # the channel as the reader sees it
        self._epoch = 0
        self._last = EventId(0, 0)  # the newest event delivered here
        self._deliver: Deliver | None = None
        self._reset: Reset | None = None
        self._counts: Callable[[], dict[str, int]] = dict
        self._topics: Callable[[], Iterable[str]] = tuple
        self._client: aioredis.Redis | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._outbox: deque[tuple[str, bytes, str]] = deque()  # topic, body, key
        self._outbox_ready: asyncio.Event | None = None
        self._up = True  # for logging each transition once

    # -- lifetime ------------------------------------------------------------------------------

    async def start(self, deliver: Deliver, reset: Reset) -> None:
        self._deliver, self._reset = deliver, reset
        self._client = _connect(self._redis_url)
        self._script = self._client.register_script(_PUBLISH)
        self._outbox_ready = asyncio.Event()
        try:
            await self._sync_position()
        except RedisError as exc:
            self._went_down(exc)
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._read(), name="graceful-sse redis reader"),
            loop.create_task(self._flush_outbox(), name="graceful-sse redis outbox"),
            loop.create_task(self._write_presence(), name="graceful-sse redis presence"),
        ]
        logger.info("graceful-sse: broker %s, keys %s:*", _shown(self.url), self.prefix)

    def watch_topics(self, topics: Callable[[], Iterable[str]], counts: Callable[[], dict[str, int]]) -> None:
        """The hub's topics with local subscribers (to fill gaps for) and its counts (presence)."""
        self._topics, self._counts = topics, counts

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        with contextlib.suppress(TimeoutError, RedisError, OSError):
            async with asyncio.timeout(STOP_TIMEOUT):
                await asyncio.gather(*self._tasks, return_exceptions=True)
                await self._drain_outbox()
                if self._client is not None:
                    await self._client.delete(self._presence_key(self._me))
        self._tasks = []
        if self._client is not None:
            with contextlib.suppress(RedisError, OSError):
                await self._client.aclose()
            self._client = None

    # -- publishing ----------------------------------------------------------------------------

    def last_id(self) -> EventId:
        return self._last

    async def publish(self, topic: str, body: bytes, key: str | None = None) -> EventId:
        try:
            raw = await self._script(
                keys=[
                    self._keys["epoch"],
                    self._keys["seq"],
                    self._stream(topic),
                    self._keys["last"],
                    self._keys["live"],
                    self._keys["trimmed"],
                    self._key_key(key),
                ],
                args=[
                    body,
                    self.history,
                    0 if self.history_age is None else max(int(self.history_age * 1000), 1),
                    topic,
                    time.time_ns() // 1_000_000,
                    "" if key is None else int(KEY_WINDOW * 1000),
                ],
            )
        except (RedisError, OSError) as exc:
            self._went_down(exc)
            raise _publish_failed(exc, self.url) from exc
        event_id = EventId.parse(raw.decode() if isinstance(raw, bytes) else str(raw))
        assert event_id is not None
        return event_id

    def publish_nowait(self, topic: str, body: bytes, key: str | None = None) -> EventId | None:
        if len(self._outbox) >= OUTBOX_LIMIT:
            raise NotPublished(f"{OUTBOX_LIMIT} events already wait for Redis at {_shown(self.url)}")
        # Every queued event has a key: the outbox sends it again after a timeout, and Redis may
        # have run the first attempt after all.
        self._outbox.append((topic, body, key or f"outbox:{self._me}:{uuid.uuid4().hex}"))
        if self._outbox_ready is not None:
            self._outbox_ready.set()
        return None

    async def _flush_outbox(self) -> None:
        assert self._outbox_ready is not None
        while True:
            await self._outbox_ready.wait()
            self._outbox_ready.clear()
            try:
                await self._drain_outbox(retry=True)
            except Exception:  # not Redis being away (that is retried): say so, and go on
                logger.exception("graceful-sse: sending queued events to Redis failed; trying again")
                await asyncio.sleep(RETRY_CAP)
                self._outbox_ready.set()

    async def _drain_outbox(self, *, retry: bool = False) -> None:
        delay = 0.5
        while self._outbox:
            topic, body, key = self._outbox[0]
            try:
                await self.publish(topic, body, key)
            except BackendUnavailable:
                if not retry:
                    return
                await asyncio.sleep(delay)  # in order: nothing overtakes the event that waits
                delay = min(delay * 2, RETRY_CAP)
                continue
            self._outbox.popleft()

    async def end(self, order: EndOrder) -> int:
        ended = self._end_here(order)
        assert self._client is not None
        message = self._me.encode() + b"\n" + order.to_bytes()
        try:
            await self._client.publish(self._keys["control"], message)
        except (RedisError, OSError) as exc:
            self._went_down(exc)
            raise BackendUnavailable(
                f"ended {ended} stream(s) in this process, but Redis at {_shown(self.url)} is "
                f"unavailable, so the other workers may not have been told ({_reason(exc)}): "
                "end them again (a stream ends once)"
            ) from exc
        return ended

    # -- delivery ------------------------------------------------------------------------------

    async def _read(self) -> None:
        delay = 0.5
        while True:
            assert self._client is not None
            pubsub = self._client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self._keys["live"], self._keys["control"])
                await self._catch_up()
                self._came_back()
                delay = 0.5
                while True:
                    message = await pubsub.get_message(timeout=None)
                    if message is None or message["type"] != "message":
                        continue
                    if message["channel"] == self._control:
                        self._on_control(message["data"])
                    else:
                        await self._on_message(message["data"])
            except (RedisError, OSError) as exc:
                self._went_down(exc)
            except Exception:
                # A message or reply this code did not expect: say so, and listen again.
                logger.exception("graceful-sse: the Redis reader failed; starting it again")
            finally:
                with contextlib.suppress(RedisError, OSError, asyncio.CancelledError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call, unused-ignore]  # untyped before redis 8.2
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_CAP)

    async def _on_message(self, data: bytes) -> None:
        topic, raw_id, chunk = data.split(b"\n", 2)
        event_id = EventId.parse(raw_id.decode())
        if event_id is None:
            return
        if event_id.epoch != self._last.epoch:
            await self._new_epoch(event_id.epoch)
        if event_id.seq <= self._last.seq:
            return  # already delivered by a catch-up
        if event_id.seq > self._last.seq + 1:
            await self._fill(EventId(event_id.epoch, event_id.seq - 1))
        self._last = event_id
        assert self._deliver is not None
        self._deliver(topic.decode(), event_id, Encoded(chunk))

    def _on_control(self, data: bytes) -> None:
        sender, _, raw = data.partition(b"\n")
        order = EndOrder.from_bytes(raw)
        if order is None:
            logger.warning("graceful-sse: an order to end streams from Redis could not be read; ignored")
        elif sender.decode(errors="replace") != self._me:  # the sender ended its own already
            self._end_here(order)

    async def _catch_up(self) -> None:
        """After (re)connecting: deliver what was published while this process did not listen."""
        epoch, seq = await self._position()
        if epoch != self._last.epoch:
            await self._new_epoch(epoch)
        if seq > self._last.seq:
            await self._fill(EventId(epoch, seq))

    async def _new_epoch(self, epoch: int) -> None:
        if self._last.epoch:
            # Redis lost its data: what this process knew is gone; start the new epoch's count.
            logger.warning("graceful-sse: Redis at %s lost its data; event ids start again", _shown(self.url))
        self._epoch = epoch
        self._last = EventId(epoch, 0)

    async def _fill(self, upto: EventId) -> None:
        """Deliver the events after ``self._last`` up to ``upto`` for the topics watched here."""
        topics = tuple(self._topics())
        entries, lost = await self._read_streams(topics, self._last, upto)
        if lost:
            logger.warning(
                "graceful-sse: %d event(s) from Redis could not be recovered on %d topic(s); "
                "sending reset to their streams",
                upto.seq - self._last.seq,
                len(lost),
            )
            assert self._reset is not None
            self._reset(lost, ResetReason.LOST)
        assert self._deliver is not None
        for topic, event_id, chunk in entries:
            self._last = event_id
            self._deliver(topic, event_id, chunk)
        self._last = upto

    # -- replay --------------------------------------------------------------------------------

    def replay_now(self, topics: tuple[str, ...], last: EventId) -> Replay | None:
        if last.epoch != self._epoch and self._epoch:
            return ResetReason.UNKNOWN
        return None  # read from Redis

    async def replay(self, topics: tuple[str, ...], last: EventId) -> Replay:
        try:
            epoch, seq = await self._position()
            if last.epoch != epoch or last.seq > seq:
                return ResetReason.UNKNOWN
            if not self.history and last.seq < seq:
                return ResetReason.NO_HISTORY
            entries, lost = await self._read_streams(topics, last, None)
        except (RedisError, OSError) as exc:
            self._went_down(exc)
            raise BackendUnavailable(f"Redis at {_shown(self.url)} is unavailable: {_reason(exc)}") from exc
        if lost:
            return ResetReason.TOO_OLD
        return [(event_id, chunk) for _, event_id, chunk in entries]

    async def _read_streams(
        self, topics: tuple[str, ...], after: EventId, upto: EventId | None
    ) -> tuple[list[tuple[str, EventId, Encoded]], list[str]]:
        """The streams' events of ``topics`` in (after, upto], in order, and the topics whose
        events in that range are no longer all held."""
        assert self._client is not None
        if not topics:
            return [], []
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.hmget(self._keys["last"], list(topics))
            pipe.hmget(self._keys["trimmed"], list(topics))
            for topic in topics:
                pipe.exists(self._stream(topic))
                pipe.xrange(self._stream(topic), f"({after.seq}-0", "+" if upto is None else f"{upto.seq}-0")
            results = await pipe.execute()
        newest_ids, trimmed_ids, per_topic = results[0], results[1], results[2:]
        entries: list[tuple[str, EventId, Encoded]] = []
        lost: list[str] = []
        for i, topic in enumerate(topics):
            newest, trimmed = newest_ids[i], trimmed_ids[i]
            exists, rows = per_topic[2 * i], per_topic[2 * i + 1]
            newest_id = EventId.parse(_text(newest)) if newest else None
            if newest_id is None or newest_id.epoch != after.epoch or newest_id.seq <= after.seq:
                continue  # nothing was published to it after ``after``
            # Lost: the stream expired, or events after ``after`` were trimmed from it.
            if not exists or (trimmed and int(_text(trimmed).split("-")[0]) > after.seq):
                lost.append(topic)
                continue
            for stream_id, fields in rows:
                seq = int(stream_id.split(b"-", 1)[0])
                entries.append((topic, EventId(after.epoch, seq), Encoded(fields[b"c"])))
        entries.sort(key=lambda entry: entry[1])
        return entries, lost

    # -- presence ------------------------------------------------------------------------------

    async def presence(self, local: dict[str, int]) -> dict[str, int]:
        assert self._client is not None
        totals: dict[str, int] = dict(local)
        try:
            async for key in self._client.scan_iter(match=self._presence_key("*"), count=100):
                if _text(key).endswith(self._me):
                    continue
                for name, count in (await self._client.hgetall(key)).items():
                    topic = _text(name)
                    totals[topic] = totals.get(topic, 0) + int(count)
        except (RedisError, OSError) as exc:
            raise BackendUnavailable(f"Redis at {_shown(self.url)} is unavailable: {_reason(exc)}") from exc
        return totals

    async def _write_presence(self) -> None:
        key = self._presence_key(self._me)
        while True:
            try:
                await self._send_presence(key)
            except (RedisError, OSError):
                pass  # Redis is away: said once by the reader; presence is refreshed when it is back
            except Exception:
                logger.exception("graceful-sse: writing this process's presence to Redis failed")
            await asyncio.sleep(PRESENCE_EVERY)

    async def _send_presence(self, key: str) -> None:
        counts = self._counts()
        assert self._client is not None
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            if counts:
                pipe.hset(key, mapping=counts)  # type: ignore[arg-type]
                pipe.pexpire(key, PRESENCE_TTL_MS)
            await pipe.execute()

    # -- helpers -------------------------------------------------------------------------------

    async def _position(self) -> tuple[int, int]:
        assert self._client is not None
        epoch, seq = await self._client.mget(self._keys["epoch"], self._keys["seq"])
        return (int(epoch) if epoch else 0), (int(seq) if seq else 0)

    async def _sync_position(self) -> None:
        epoch, seq = await self._position()
        if not epoch:
            # First process ever (or Redis lost its data): set the epoch now, so ids can be
            # checked before the first publish.
            await self._client.set(self._keys["epoch"], time.time_ns() // 1_000_000, nx=True)  # type: ignore[union-attr]
            epoch, seq = await self._position()
        self._epoch = epoch
        self._last = EventId(epoch, seq)

    def _stream(self, topic: str) -> str:
        return f"{self.prefix}:t:{topic}"

    def _key_key(self, key: str | None) -> str:
        if key is None:
            return self._keys["key"]  # not read by the script: no hashing on every plain publish
        # Hashed: the key is the publisher's text, of any length and alphabet.
        return f"{self.prefix}:key:{hashlib.sha256(key.encode()).hexdigest()[:32]}"

    def _presence_key(self, who: str) -> str:
        return f"{self.prefix}:presence:{who}"

    def _went_down(self, exc: BaseException) -> None:
        if self._up:
            self._up = False
            logger.warning(
                "graceful-sse: Redis at %s is unavailable (%s): streams stay open, publishing fails "
                "until it is back",
                _shown(self.url),
                _reason(exc),
            )

    def _came_back(self) -> None:
        if not self._up:
            self._up = True
            logger.info("graceful-sse: Redis at %s is back; resumed after %s", _shown(self.url), self._last)


TIMEOUTS = {"socket_connect_timeout": 2.0, "socket_timeout": 2.0}
SENTINEL_PORT = 26379


def _connect(url: str) -> aioredis.Redis:
    """A client for ``url``. ``redis+sentinel://h1:p1,h2:p2/service/db`` asks the Sentinels for
    the service's primary on every new connection, so that a failover is followed."""
    parts = urlsplit(url)
    if parts.scheme != "redis+sentinel":
        return aioredis.from_url(url, health_check_interval=10, **TIMEOUTS)
    service, _, db = parts.path.strip("/").partition("/")
    if not service:
        raise ValueError(f"a Sentinel URL names the service after its hosts: {_shown(url)}")
    hosts = [_host_and_port(host) for host in parts.netloc.rsplit("@", 1)[-1].split(",")]
    query = dict(parse_qsl(parts.query))
    sentinels = Sentinel(  # type: ignore[no-untyped-call, unused-ignore]  # untyped before 8.2
        hosts,
        sentinel_kwargs={"password": query.get("sentinel_password"), **TIMEOUTS},
        socket_connect_timeout=TIMEOUTS["socket_connect_timeout"],
        socket_timeout=TIMEOUTS["socket_timeout"],
    )
    client: aioredis.Redis = sentinels.master_for(
        service,
        db=int(db or 0),
        username=parts.username or None,
        password=parts.password or query.get("password"),
        health_check_interval=10,
    )
    return client


def _host_and_port(host: str) -> tuple[str, int]:
    name, _, port = host.rpartition(":") if ":" in host else (host, "", "")
    return name, int(port or SENTINEL_PORT)


def _reason(exc: BaseException) -> str:
    """redis-py's message, short: its no-primary error carries the whole client's repr."""
    if isinstance(exc, MasterNotFoundError):
        return "the Sentinels know no primary for the service"
    return str(exc).rstrip(".")


def _publish_failed(exc: BaseException, url: str) -> BackendUnavailable:
    """What the publisher is told: surely not published, or it may have been.

    redis-py says "connecting to" when it could not open the connection, so the command was
    never sent; any other failure (a timeout waiting for the answer, a connection lost after
    sending) leaves the outcome unknown: Redis may still run the script when it answers again.
    """
    reason = _reason(exc)
    # During a failover: no primary known yet, or a demoted one refusing the script.
    if "connecting to" in reason or isinstance(exc, MasterNotFoundError | ReadOnlyError):
        return NotPublished(f"Redis at {_shown(url)} is unavailable; the event was not published: {reason}")
    return OutcomeUnknown(
        f"Redis at {_shown(url)} did not answer; the event may have been published ({reason}). "
        "Publish it again with the same key to have it at most once."
    )


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _split_prefix(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    prefix = next((value for name, value in query if name == "prefix"), "sse") or "sse"
    rest = urlencode([(name, value) for name, value in query if name != "prefix"])
    return prefix, parts._replace(query=rest).geturl()
