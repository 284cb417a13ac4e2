"""``EventStream``: a drop-in replacement for FastHTML's ``EventStream`` that ends gracefully.

It accepts the same generators (sync or async, yielding SSE text such as ``sse_message(...)``,
plain text, FT components, bytes or ``Event`` values), or a hub subscription, and adds what a
long-lived stream needs: ``retry:`` and a first comment at once, a heartbeat comment when idle,
immediate notice of a client that left, and, when the app shuts down, a farewell written by the
same response, followed by a clean end of the chunked body. Before any of that it asks the
admission rules (``limits``) whether the stream may open at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import random
import time
from collections.abc import AsyncIterable, Coroutine, Generator, Iterable, Mapping
from typing import Any
from urllib.parse import parse_qs

from starlette.background import BackgroundTask
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from ._drain import Outcome, StreamHandle
from ._lifecycle import Lifecycle
from ._limits import FORBIDDEN, Limits, Refusal, Ticket
from ._logs import logger
from ._run import Run
from ._sources import Pump, Source
from ._status import DEFAULT_STATUS_ID, status_event
from ._wire import Event, comment, encode

__all__ = ["EventStream", "last_event_id"]

HEARTBEAT = comment("heartbeat")
HEARTBEAT_SPREAD = 0.2  # each stream's heartbeat interval is 80 to 100% of the one asked for
# A stream whose producer-side write had to wait (a slow reader; a server whose send always
# suspends) lets this many chunks go through its task before trying again.
SKIP_AFTER_WAIT = 16
WATCHER_GRACE = 1.0  # after a complete response, how long its watcher may take to end by itself
NEVER_AGAIN = 1 << 62  # a server whose send is not a coroutine cannot be written to that way
DROP_WAIT = 1.0  # how long a dropped connection's stream waits for the server to see it closed
ERROR_EVENT = encode(Event(event="error", data={"message": "The stream failed on the server."}))
# A stream that finishes during a drain ends with a comment, not an empty body: Hypercorn's
# HTTP/2 sends its GOAWAY before the END_STREAM of an empty last body, and h2 then drops it.
FINISHED_IN_DRAIN = comment("end")


class _Status(enum.Enum):
    FOR_HTMX = "for htmx"

    def __repr__(self) -> str:
        return "<the page's status indicator, for htmx clients>"


# EventStream's default ``status``: the page's indicator (``SSEStatus``) is updated only for
# htmx clients: htmx 4 sends HX-Request, and our monitor marks htmx 2's EventSource with htmx=1.
FOR_HTMX = _Status.FOR_HTMX


class EventStream(Response):
    """A ``text/event-stream`` response over ``content`` that ends gracefully at shutdown.

    ``heartbeat`` is the idle time (s) after which a comment is sent (``None``: never; each
    stream takes its own between 80 and 100% of it, so that streams opened together do not all
    fall due together); ``retry`` the reconnection time (ms) sent first. ``status`` is the id
    of the page's status indicator, which the stream updates out of band on opening and in its
    farewell (``None``: no status events); by default only htmx clients get them, for the
    indicator ``SSEStatus()`` renders, and other clients (curl, a Python client, a plain
    ``EventSource``) get none; an id given explicitly is sent to every client. The lifecycle is
    ``lifecycle`` if given, else the one of a hub subscription, else the app's
    (``Lifecycle.of_app``: the one its lifespan attached, else the first stream's).

    ``limits`` caps open streams (503 with ``Retry-After`` over a cap); a hub subscription
    brings its hub's ``limits`` and ``authorize`` (403 for a refused topic). ``send_timeout``
    (s) ends a stream whose client has not taken a single write for that long. A ``HEAD``
    request gets the status a ``GET`` would get, and no stream.

    ``finish`` (s) lets a stream over a finite generator (an answer streamed token by token)
    go on at a shutdown until its generator ends (a clean end, no farewell) or that time runs
    out (then the farewell); ``None``: the lifecycle's ``finish`` (0 by default: told at once).
    A hub subscription never ends by itself and is always told at once.
    """

    media_type = "text/event-stream"

    def __init__(
        self,
        content: AsyncIterable[Any] | Iterable[Any],
        *,
        heartbeat: float | None = 15.0,
        retry: int | None = 3000,
        lifecycle: Lifecycle | None = None,
        status: str | _Status | None = FOR_HTMX,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        background: BackgroundTask | None = None,
        limits: Limits | None = None,
        send_timeout: float | None = None,
        finish: float | None = None,
    ) -> None:
        if heartbeat is not None and heartbeat <= 0:
            raise ValueError("heartbeat must be a positive number of seconds, or None")
        if send_timeout is not None and send_timeout <= 0:
            raise ValueError("send_timeout must be a positive number of seconds, or None")
        self.source: Source = content if isinstance(content, Source) else Pump(content)
        if finish is not None and (finish < 0 or (finish and not self.source.finite)):
            raise ValueError(
                "finish must be zero or positive, and is for streams that end by themselves (an app's "
                "generator): a hub subscription is told at once"
            )
        self.finish = finish
        self.heartbeat = heartbeat
        self.retry = retry
        self.status = status
        self.send_timeout = send_timeout
        self.lifecycle = lifecycle
        self.limits = limits or self.source.limits
        self.status_code = status_code
        self.background = background
        self._opening = Event(retry=retry, comment="connected").encode()
        self.init_headers(
            {
                # Proxies (nginx) and compressing middleware must not buffer an event stream.
                "cache-control": "no-cache",
                "x-accel-buffering": "no",
                **(headers or {}),
            }
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        lifecycle = self.lifecycle or Lifecycle.of_app(scope.get("app"), claim=self.source.lifecycle)
        try:
            admitted = await self._admit(scope, lifecycle)
        except BaseException:
            await self.source.discard()
            raise
        head = scope.get("method") == "HEAD"
        if isinstance(admitted, Refusal) or head:
            await self.source.discard()
            await (admitted.send(send, head=head) if isinstance(admitted, Refusal) else self._head(send))
            return
        try:
            await self._stream(scope, receive, send, lifecycle)
        finally:
            if admitted is not None:
                admitted.release()
        if self.background is not None:
            await self.background()

    async def _stream(self, scope: Scope, receive: Receive, send: Send, lifecycle: Lifecycle) -> None:
        source = self.source.resume(last_event_id(scope))
        run = lifecycle.run_here(by_stream=True)
        stream = _Stream(self, lifecycle, source, send, _label(scope))
        run.open_stream(stream)
        outcome: Outcome | None = None
        try:
            outcome = await stream.respond(scope, receive)
        finally:
            if outcome is None:  # cancelled or failed: a told stream's client never got the notice
                outcome = Outcome.GONE if stream.kind is None or stream.gone else Outcome.TOO_SLOW
                if not stream.gone:
                    # The server gave up on the response (Hypercorn's graceful_timeout), maybe
                    # with bytes the client is not taking: it would wait for them to drain.
                    run.close_connection(scope)
            stream.stop_watching(outcome)
            run.close_stream(stream, outcome)
            await source.aclose()

    async def _admit(self, scope: Scope, lifecycle: Lifecycle) -> Ticket | Refusal | None:
        """Authorisation first (its answer does not change on retry), then the caps."""
        if not await self.source.authorized(scope):
            return FORBIDDEN
        if self.limits is None or lifecycle.draining:
            return None  # during the drain every stream gets the farewell at once: no cap
        if scope.get("method") == "HEAD":
            return self.limits.check(scope)
        return self.limits.admit(scope)

    async def _head(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        await send({"type": "http.response.body", "body": b""})


class _Pumped(enum.Enum):
    """Why a stream stopped pumping its source."""

    TOLD = enum.auto()  # the lifecycle told it to end: the farewell next
    GONE = enum.auto()  # the client left
    CUT = enum.auto()  # the client took nothing for send_timeout
    FAILED = enum.auto()  # the source raised
    DONE = enum.auto()  # the source ended


class _Stream(StreamHandle):
    """One response in progress: waits on its source's one future, woken by callbacks."""

    __slots__ = (
        "_blocked",
        "_interrupted",
        "_parked",
        "_skip_direct",
        "_task",
        "_timer",
        "_watcher",
        "gone",
        "heartbeat",
        "heartbeat_due",
        "last_sent",
        "lifecycle",
        "response",
        "send",
        "send_started",
        "sending",
        "source",
        "status",
        "timed_out",
    )

    def __init__(
        self, response: EventStream, lifecycle: Lifecycle, source: Source, send: Send, label: str
    ) -> None:
        finish = response.finish if response.finish is not None else lifecycle.finish
        super().__init__(label, finish=finish if source.finite else 0.0)
        self.response = response
        self.lifecycle = lifecycle
        self.source = source
        self.send = send
        self.gone = False
        self.status: str | None = None  # the indicator this client's page has (see ``respond``)
        self.sending = False
        self.timed_out = False
        self.heartbeat_due = False
        # Each stream's own interval, a little under the response's: streams opened in a burst
        # would otherwise fall due together for ever after, maybe inside a publish.
        every = response.heartbeat
        self.heartbeat = every * random.uniform(1 - HEARTBEAT_SPREAD, 1) if every is not None else None
        self.last_sent = self.send_started = time.monotonic()
        self._interrupted = False
        self._task: asyncio.Task[Any] | None = None
        self._parked = False  # the task waits on its source: a producer may write for it
        self._blocked: asyncio.Task[None] | None = None  # a producer's write, waiting for the client
        self._skip_direct = 0  # after a write that had to wait, this many chunks go by the task
        self._timer: asyncio.TimerHandle | None = None
        self._watcher: asyncio.Task[None] | None = None  # waits for the client to leave

    # -- called by the lifecycle (on the loop) ------------------------------------------------------

    def notice(self) -> None:
        self.source.wake()
        # A write the client is not taking: stop waiting for it, say goodbye instead.
        self._interrupt()

    def abandon(self) -> None:
        # The drain's bound passed (or a second Ctrl+C) while the farewell is still being written.
        self._interrupt()

    def _interrupt(self) -> None:
        if self._blocked is not None:
            self._blocked.cancel()  # a producer's write: its task ends, and wakes the stream's
        elif self.sending and self._task is not None and not self._interrupted:
            self._interrupted = True
            self._task.cancel()

    # -- called by the source, from the producer (a publish) ------------------------------------

    def write_now(self, chunk: bytes) -> bool:
        """Write ``chunk`` from the producer's own call while the stream's task waits.

        The send runs in the caller: where the server takes the bytes at once (the client keeps
        up) it completes without suspending, and the stream's task is never woken. Where it
        would wait (the client is slow to read), the rest of that send runs in a task of its own
        and the stream is busy until it ends; the next chunks go through the stream's task.
        """
        if not self._parked or self.sending or self.kind is not None or self.gone or self.timed_out:
            return False
        if self._skip_direct:
            self._skip_direct -= 1
            return False
        self.sending = True
        self.send_started = now = time.monotonic()
        send = self.send({"type": "http.response.body", "body": chunk, "more_body": True})
        if not isinstance(send, Coroutine):  # a server's own awaitable, which cannot be stepped
            self._skip_direct = NEVER_AGAIN
            self._blocked = asyncio.ensure_future(send)
            self._blocked.add_done_callback(self._unblocked)
            return True
        try:
            waiting_on = send.send(None)
        except StopIteration:
            self.sending = False
            self.last_sent = now
            return True
        except Exception as exc:  # the client has gone (ASGI 2.4 servers raise OSError), or worse
            if not isinstance(exc, OSError):
                logger.exception("graceful-sse: the server failed a write; ending the stream")
            self.sending = False
            self.gone = True  # never the publisher's problem: this stream ends, the others go on
            self.source.wake()
            return True
        self._skip_direct = SKIP_AFTER_WAIT
        self._blocked = asyncio.get_running_loop().create_task(_finish(send, waiting_on))
        self._blocked.add_done_callback(self._unblocked)
        return True

    def _unblocked(self, write: asyncio.Task[None]) -> None:
        self._blocked = None
        self.sending = False
        failed = None if write.cancelled() else write.exception()
        if failed is not None and not isinstance(failed, OSError):
            logger.error("graceful-sse: the server failed a write; ending the stream", exc_info=failed)
        if failed is not None:
            self.gone = True  # the client has gone (or the server cannot write to it)
        elif not write.cancelled():
            self.last_sent = time.monotonic()
        self.source.wake()  # the stream's task takes over: queued chunks, a farewell, a cut

    def _opened_in(self) -> Run:
        assert self.run is not None, "a stream responds once its run has opened it"
        return self.run

    # -- the response ---------------------------------------------------------------------------

    async def respond(self, scope: Scope, receive: Receive) -> Outcome:
        response = self.response
        named = not _from_htmx4(scope)
        self.status = _status_for(response.status, scope)
        await self.send(
            {"type": "http.response.start", "status": response.status_code, "headers": response.raw_headers}
        )
        if self.kind is not None:  # opened during the drain: the farewell at once
            return await self._farewell(response._opening, named, scope, receive)
        self.source.open()
        self._task = asyncio.current_task()
        try:
            if not await self._write(self._opening(named)):
                return await self._farewell(b"", named, scope, receive)
            ended = await self._pump(receive)
        except OSError:  # ASGI 2.4 servers raise it from send() once the client has gone
            return Outcome.GONE
        if ended is _Pumped.TOLD:
            return await self._farewell(b"", named, scope, receive)
        if ended is _Pumped.GONE:
            return Outcome.GONE
        if ended is _Pumped.CUT:
            return await self._cut_off(scope, receive)
        if ended is _Pumped.FAILED:
            return await self._end(ERROR_EVENT)
        return await self._end(FINISHED_IN_DRAIN if self.lifecycle.draining else b"")

    def _opening(self, named: bool) -> bytes:
        """``retry:``, a comment and the status (or at least an id to resume from).

        Built by a function of its own, so that no frame that lives as long as the stream
        holds on to it.
        """
        response, position = self.response, self.source.position
        if self.status is not None:
            return response._opening + status_event("live", self.status, named=named, event_id=position)
        if position is not None:
            return response._opening + Event(id=position).encode()  # sets the browser's Last-Event-ID
        return response._opening

    async def _pump(self, receive: Receive) -> _Pumped:
        source = self.source
        self._watcher = asyncio.get_running_loop().create_task(self._watch(receive))
        self._arm_heartbeat()
        source.attach(self)
        try:
            while True:
                if self._blocked is not None:
                    # A producer's write waits for the client: nothing else may be sent before
                    # it ends (or is interrupted), which wakes this task again.
                    if self.gone:
                        self._blocked.cancel()
                elif self.timed_out:
                    return _Pumped.CUT
                elif self.kind is not None or source.ending is not None:
                    return _Pumped.TOLD
                elif self.gone:
                    return _Pumped.GONE
                elif (chunk := source.pop()) is not None:
                    await self._write(chunk)
                    continue
                elif source.finished:
                    return _Pumped.FAILED if source.failed else _Pumped.DONE
                elif self.heartbeat_due:
                    self.heartbeat_due = False
                    self._arm_heartbeat()
                    await self._write(HEARTBEAT)
                    continue
                # Nothing to write: wait (on the source's future itself, no frame of ours), and
                # meanwhile let a producer write for this stream (``write_now``).
                self._parked = True
                await source.wait()
                self._parked = False
        finally:
            source.attach(None)
            if self._timer is not None:
                self._timer.cancel()

    async def _write(self, chunk: bytes, *, more: bool = True) -> bool:
        """Send one chunk; False if the lifecycle interrupted a send the client did not take.

        No timer per write: the lifecycle interrupts the writes still waiting when a stream is
        told, and the farewells still waiting when its drain's bound passes; the stream's one
        timer interrupts a write older than ``send_timeout``.
        """
        self.sending = True
        self.send_started = time.monotonic()
        try:
            await self.send({"type": "http.response.body", "body": chunk, "more_body": more})
        except asyncio.CancelledError:
            task = self._task
            if self._interrupted and task is not None and task.uncancel() == 0:
                self._interrupted = False
                return False
            raise
        finally:
            self.sending = False
        self.last_sent = time.monotonic()
        return True

    async def _farewell(self, prefix: bytes, named: bool, scope: Scope, receive: Receive) -> Outcome:
        """Write the farewell and end the body, within the lifecycle's flush bound."""
        ending = self.source.ending  # the app ended it (``Hub.end``): its kind and reason
        kind = self.kind if ending is None else ending.kind
        assert kind is not None
        reason = None if ending is None else ending.reason
        data = prefix + self.lifecycle.farewells.build(kind, self.status, named_status=named, reason=reason)
        self._task = asyncio.current_task()
        try:
            if self.late:  # the drain may be over: this stream keeps its own bound
                async with asyncio.timeout(self._opened_in().flush_timeout()):
                    took = await self._write(data, more=False)
            else:
                took = await self._write(data, more=False)
        except TimeoutError:
            took = False
        except OSError:
            # The server dropped the connection under the farewell (Hypercorn does at its own
            # shutdown): the client did not get it, unless it had already left.
            return Outcome.GONE if self.gone else Outcome.DROPPED
        if took:
            return Outcome.TOOK
        await self._drop(scope, receive)
        return Outcome.TOO_SLOW

    async def _cut_off(self, scope: Scope, receive: Receive) -> Outcome:
        """The client took nothing for ``send_timeout``: end the stream without a goodbye.

        Its last write never completed, so the response cannot end cleanly: its connection is
        closed under the server (see ``_drop``).
        """
        client = scope.get("client") or ("?", 0)
        self.lifecycle.cut_off_log.log(
            "send_timeout",
            "graceful-sse: %s %s from %s took no data for %.1f s; ending its stream",
            scope.get("method", "GET"),
            scope.get("path", ""),
            client[0],
            self.response.send_timeout,
        )
        await self._drop(scope, receive)
        return Outcome.NOT_READING if self.kind is not None else Outcome.GONE

    def stop_watching(self, outcome: Outcome) -> None:
        """The response is over: the watcher of the client's leaving is no longer needed."""
        watcher = self._watcher
        if watcher is None or watcher.done():
            return
        if outcome in (Outcome.TOOK, Outcome.ENDED):
            # A complete response: the server's receive now says so, and the watcher ends by
            # itself, which costs less than a cancellation (10,000 of them at a shutdown). A
            # server whose receive does not has it cancelled a moment later.
            asyncio.get_running_loop().call_later(WATCHER_GRACE, watcher.cancel)
        else:
            watcher.cancel()

    async def _drop(self, scope: Scope, receive: Receive) -> None:
        """Close the connection of a client that takes nothing, and let the server see it first.

        The server's transport still holds bytes the client will never read, so the server could
        only wait for them; closing the socket under it makes it drop the connection as lost,
        which lets its graceful shutdown complete and keeps its log free of an unfinished
        response.
        """
        if self._watcher is not None:
            self._watcher.cancel()  # this method reads the client's leaving itself
        if self.gone or not self._opened_in().close_connection(scope):
            return
        with contextlib.suppress(TimeoutError, OSError):
            async with asyncio.timeout(DROP_WAIT):
                while (await receive())["type"] != "http.disconnect":
                    pass

    async def _end(self, data: bytes) -> Outcome:
        try:
            await self.send({"type": "http.response.body", "body": data, "more_body": False})
        except OSError:
            return Outcome.GONE
        return Outcome.ENDED

    async def _watch(self, receive: Receive) -> None:
        """The client leaving resolves the stream's wake-up."""
        while (await receive())["type"] != "http.disconnect":
            pass
        self.gone = True
        self.source.wake()

    # -- heartbeats and blocked writes: one timer per stream, re-armed only when it fires ----------
    #
    # The timer looks at the stream without waking its task: only a heartbeat that is really due
    # wakes it, and only a write older than send_timeout is interrupted. Between those it re-arms
    # for whichever comes first, so a blocked write is cut send_timeout after it began.

    def _arm_heartbeat(self, delay: float | None = None) -> None:
        intervals = [t for t in (self.heartbeat, self.response.send_timeout) if t is not None]
        if intervals:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(min(intervals) if delay is None else delay, self._timer_fired)

    def _timer_fired(self) -> None:
        now = time.monotonic()
        heartbeat, limit = self.heartbeat, self.response.send_timeout
        if self.sending:
            if limit is None:
                self._arm_heartbeat()
            elif now - self.send_started < limit:
                self._arm_heartbeat(limit - (now - self.send_started))  # look again when its time is up
            elif not self._interrupted:
                self.timed_out = True
                self._interrupt()
            return
        idle = now - self.last_sent
        if heartbeat is not None and idle >= heartbeat:
            # Written from here while the stream is idle, with no task woken; else by the task,
            # which re-arms the timer first.
            if self.write_now(HEARTBEAT):
                self._arm_heartbeat()
            else:
                self.heartbeat_due = True
                self.source.wake()
            return
        delays = [heartbeat - idle] if heartbeat is not None else []
        self._arm_heartbeat(min([*delays, limit]) if limit is not None else min(delays))


class _Rest:
    """The rest of a coroutine already stepped once (it waits on ``waiting_on``), as an awaitable.

    A task that awaits it drives the coroutine to its end exactly as if the task had started
    it: what the coroutine waits on goes to the task, what the task sends or throws (a
    cancellation) goes back in.
    """

    __slots__ = ("_coroutine", "_waiting_on")

    def __init__(self, coroutine: Coroutine[Any, Any, Any], waiting_on: Any) -> None:
        self._coroutine = coroutine
        self._waiting_on = waiting_on

    def __await__(self) -> Generator[Any, Any, None]:
        coroutine, waiting_on = self._coroutine, self._waiting_on
        while True:
            try:
                sent = yield waiting_on
            except BaseException as exc:
                try:
                    waiting_on = coroutine.throw(exc)
                except StopIteration:
                    return
            else:
                try:
                    waiting_on = coroutine.send(sent)
                except StopIteration:
                    return


async def _finish(send: Coroutine[Any, Any, Any], waiting_on: Any) -> None:
    await _Rest(send, waiting_on)


def _label(scope: Scope) -> str:
    # The path without its query string, which may carry a token.
    client = scope.get("client") or ("?", 0)
    return f"{scope.get('method', 'GET')} {scope.get('path', '')} from {client[0]}:{client[1]}"


def _from_htmx4(scope: Scope) -> bool:
    # htmx 4 streams with fetch and sends HX-Request; htmx 2's EventSource does not.
    return any(name == b"hx-request" for name, _ in scope.get("headers", ()))


def _status_for(status: str | _Status | None, scope: Scope) -> str | None:
    """The status indicator to update for this request (``None``: no status events)."""
    if status is not FOR_HTMX:
        return status
    query: bytes = scope.get("query_string", b"")
    from_htmx = _from_htmx4(scope) or "1" in parse_qs(query.decode("latin-1")).get("htmx", ())
    return DEFAULT_STATUS_ID if from_htmx else None


def last_event_id(scope: Scope) -> str | None:
    """The client's ``Last-Event-ID`` header, or the ``lastEventId`` query parameter.

    Browsers send the header when they reconnect by themselves; a new ``EventSource`` cannot set
    headers, so clients that open one to resume (our monitor, common polyfills) use the query.
    """
    for name, value in scope.get("headers", ()):
        if name == b"last-event-id":
            return str(value.decode("latin-1"))
    query: bytes = scope.get("query_string", b"")
    if b"lastEventId=" in query:
        values: list[str] = parse_qs(query.decode("latin-1")).get("lastEventId", [])
        if values:
            return values[-1]
    return None
