"""Test helpers: open an app's event streams in-process and read their events in pytest.

    from graceful_sse.testing import SSEClient

    @pytest.mark.anyio
    async def test_the_page_gets_the_news_and_a_goodbye():
        async with SSEClient(app) as client:          # runs the app's lifespan
            async with client.stream("/updates") as stream:
                await client.post("/say", data={"text": "hi"})
                assert (await stream.next_event()).data == "<p>hi</p>"
                await client.shutdown("stop")
                assert (await stream.next_event()).event == "shutdown"
                await stream.closed()

Starlette's and httpx's test clients read a response to its end, which an event stream never
reaches. This client calls the ASGI app itself, on the test's event loop (no server, no thread):
each stream's response runs in a task of its own whose ``send`` feeds an SSE parser and whose
``receive`` says ``http.disconnect`` once the stream is closed. Ordinary requests go through
httpx (``client.http``) with a transport that calls the app the same way, so the streams send
the cookies those requests set (a login, a session).

It uses plain asyncio tasks rather than a task group, so that a client opened in an async
fixture may be closed from another task (pytest-asyncio runs a fixture's setup and teardown in
two). Every task it starts is ended when the stream or the client is closed.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import json
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

try:
    import httpx
except ModuleNotFoundError as missing:  # pragma: no cover - httpx comes with most test setups
    raise ModuleNotFoundError(
        "graceful_sse.testing needs httpx for its ordinary requests: pip install httpx"
    ) from missing
from starlette.types import ASGIApp, Message, Scope

from ._drain import Kind, KindName, ShutdownReport
from ._lifecycle import Lifecycle
from ._status import STATUS_EVENT

__all__ = ["ReceivedEvent", "SSEClient", "Stream", "StreamClosed", "StreamRefused"]

DEFAULT_TIMEOUT = 5.0
DEFAULT_CLIENT = ("testclient", 50000)  # the address requests come from, as Starlette's TestClient
# After the client closes a stream, how long its response may take to see the disconnect before
# its task is cancelled (EventStream sees it at once; an app that ignores it is not waited for).
CLOSE_GRACE = 1.0
SHOWN = 8  # events named in an error message (the last ones)
_LINE_END = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True, slots=True)
class ReceivedEvent:
    """One event as a browser's ``EventSource`` dispatches it.

    ``event`` is its name (``"message"`` when it has none), ``data`` its data lines joined by
    newlines, ``id`` the stream's last event id once it arrived (what the browser would send back
    as ``Last-Event-ID``), ``retry`` the reconnection time (ms) its own block set, if any.
    """

    event: str
    data: str
    id: str
    retry: int | None = None

    def json(self) -> Any:
        """``data`` parsed as JSON."""
        return json.loads(self.data)


class StreamRefused(Exception):
    """The app answered the stream with something a browser's ``EventSource`` would not read:
    a status other than 200 (a 403 or 503 refusal, a 404) or another content type."""

    def __init__(self, label: str, status: int, headers: httpx.Headers, body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body
        kind = headers.get("content-type", "no content type")
        text = body.decode("utf-8", "replace").strip()
        shown = text if len(text) <= 200 else text[:200] + "…"
        super().__init__(f"{label} answered {status} ({kind}), not an event stream: {shown!r}")


class StreamClosed(Exception):
    """The stream ended before what was waited for arrived."""


class _Parser:
    """An incremental SSE parser that follows the WHATWG standard ("Parsing an event stream")."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._pending = ""
        self._started = False
        self._data: list[str] = []
        self._has_data = False
        self._type = ""
        self._id = ""
        self._block_retry: int | None = None
        self.last_event_id = ""
        self.retry: int | None = None
        self.comments: list[str] = []

    def feed(self, chunk: bytes, *, final: bool = False) -> list[ReceivedEvent]:
        """The events ``chunk`` completes; at the end (``final``) an unfinished one is dropped."""
        text = self._pending + self._decoder.decode(chunk, final)
        if not self._started and text:
            self._started = True
            text = text.removeprefix("\ufeff")
        hold = ""
        if text.endswith("\r") and not final:
            text, hold = text[:-1], "\r"  # maybe the first half of a CRLF
        *lines, rest = _LINE_END.split(text)
        self._pending = rest + hold
        events: list[ReceivedEvent] = []
        for line in lines:
            event = self._line(line)
            if event is not None:
                events.append(event)
        return events

    def _line(self, line: str) -> ReceivedEvent | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            self.comments.append(line[1:].removeprefix(" "))
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._type = value
        elif name == "data":
            self._data.append(value)
            self._has_data = True
        elif name == "id" and "\0" not in value:
            self._id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            self.retry = self._block_retry = int(value)
        return None

    def _dispatch(self) -> ReceivedEvent | None:
        self.last_event_id = self._id
        data, has_data, event_type, retry = self._data, self._has_data, self._type, self._block_retry
        self._data, self._has_data, self._type, self._block_retry = [], False, "", None
        if not has_data:
            return None
        return ReceivedEvent(event_type or "message", "\n".join(data), self.last_event_id, retry)


class Stream:
    """One event stream opened by ``SSEClient.stream``: what arrived, and ways to wait for more.

    ``events`` holds every event received so far, in order; ``next_event`` returns them one at
    a time, waiting for the next. ``comments`` holds the comment lines (``connected``,
    ``heartbeat``), ``retry`` the reconnection time in force, ``last_event_id`` what a browser
    would send back to resume.
    """

    def __init__(self, label: str, timeout: float, *, keep_body: bool = False) -> None:
        self._label = label  # the request line, for messages: "GET /updates"
        self.timeout = timeout
        self._keep_body = keep_body
        self.status = 0
        self.headers = httpx.Headers()
        self.events: list[ReceivedEvent] = []
        self.ended = False  # the response ended cleanly (its last body message said no more)
        self.error: BaseException | None = None  # what the app raised, if it did
        self._error_raised = False  # ... and the test has been given it
        self._parser = _Parser()
        self._read = 0  # index in ``events`` of the next one ``next_event`` looks at
        self._body = bytearray()  # a refusal's (for its message) or an ordinary response's
        self._started = asyncio.Event()
        self._over = asyncio.Event()  # ``receive`` says http.disconnect from now on
        self._changed = asyncio.Event()
        self._returned = False  # the app's call returned (or raised)
        self._left = False  # the client closed the stream
        self._task: asyncio.Task[None] | None = None

    @property
    def comments(self) -> list[str]:
        return self._parser.comments

    @property
    def retry(self) -> int | None:
        return self._parser.retry

    @property
    def last_event_id(self) -> str:
        return self._parser.last_event_id

    @property
    def open(self) -> bool:
        """The response is still streaming."""
        return not (self.ended or self._returned or self._left)

    async def next_event(self, *names: str, timeout: float | None = None) -> ReceivedEvent:  # noqa: ASYNC109 - its error says what came
        """The next event not yet returned; with ``names``, the next of those names.

        Events passed over stay in ``events``. The page's status-indicator updates
        (``sse-status``) are passed over unless named. Raises ``TimeoutError`` after
        ``timeout`` seconds (the client's timeout by default) and ``StreamClosed`` if the
        response ends first, each saying what was received; re-raises what the app raised.
        """
        wanted = f" named {' or '.join(map(repr, names))}" if names else ""
        async with self._deadline(timeout, f"no event{wanted}"):
            while True:
                self._changed.clear()
                while self._read < len(self.events):
                    event = self.events[self._read]
                    self._read += 1
                    if event.event in names if names else event.event != STATUS_EVENT:
                        return event
                if not self.open:
                    self._raise_failure()
                    raise StreamClosed(f"{self._label}: the stream ended before an event{wanted}; {self}")
                await self._changed.wait()

    async def closed(self, timeout: float | None = None) -> None:  # noqa: ASYNC109 - as next_event
        """Wait for the response to end cleanly (its body complete, as a browser sees it).

        Raises ``StreamClosed`` if the app dropped it instead (returned without completing the
        response), re-raises what the app raised, and ``TimeoutError`` if it is still open.
        """
        async with self._deadline(timeout, "the response did not end"):
            while not self.ended:
                self._changed.clear()
                if self._returned or self._left:
                    self._raise_failure()
                    raise StreamClosed(f"{self._label}: the response was not completed; {self}")
                await self._changed.wait()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> ReceivedEvent:
        """``async for event in stream``: the events until the response ends cleanly."""
        try:
            return await self.next_event()
        except StreamClosed:
            if self.ended:
                raise StopAsyncIteration from None
            raise

    def __str__(self) -> str:
        """What was received so far, for error messages."""
        shown = ", ".join(f"{e.event} {_short(e.data)}" for e in self.events[-SHOWN:])
        more = f"... {len(self.events) - SHOWN} before, " if len(self.events) > SHOWN else ""
        state = "still open" if self.open else ("ended cleanly" if self.ended else "not completed")
        return (
            f"received {len(self.events)} event(s) [{more}{shown}] and {len(self.comments)} "
            f"comment(s); the response is {state}"
        )

    @contextlib.asynccontextmanager
    async def _deadline(self, within: float | None, what: str) -> AsyncIterator[None]:
        seconds = self.timeout if within is None else within
        try:
            async with asyncio.timeout(seconds) as scope:
                yield
        except TimeoutError:
            if not scope.expired():
                raise
            raise TimeoutError(f"{self._label}: {what} within {seconds:g} s; {self}") from None

    def _raise_failure(self) -> None:
        if self.error is not None:
            self._error_raised = True
            raise self.error

    # -- the ASGI side ------------------------------------------------------------------------------

    def _start(self, app: ASGIApp, scope: Scope, body: bytes) -> None:
        self._task = asyncio.get_running_loop().create_task(self._call(app, scope, body))

    async def _call(self, app: ASGIApp, scope: Scope, body: bytes) -> None:
        requested = False

        async def receive() -> Message:
            nonlocal requested
            if not requested:
                requested = True
                return {"type": "http.request", "body": body, "more_body": False}
            await self._over.wait()
            return {"type": "http.disconnect"}

        try:
            await app(scope, receive, self._send)
        except Exception as exc:  # kept for the test, which gets it from the stream's methods
            self.error = exc
        finally:
            self._returned = True
            self._over.set()
            self._started.set()
            self._changed.set()

    async def _send(self, message: Message) -> None:
        if self._left:
            return  # the client has gone: a server drops what the app still sends
        if message["type"] == "http.response.start":
            self.status = int(message["status"])
            self.headers = httpx.Headers([(bytes(k), bytes(v)) for k, v in message.get("headers", [])])
            self._started.set()
        elif message["type"] == "http.response.body":
            body: bytes = message.get("body", b"")
            more = bool(message.get("more_body", False))
            if self._keep_body or not self._streaming():
                self._body += body
            if self._streaming():
                self.events += self._parser.feed(body, final=not more)
            if not more:
                self.ended = True
                self._over.set()  # as a server's receive says after a complete response
        self._changed.set()

    def _streaming(self) -> bool:
        """The response is an event stream a browser would read (200, ``text/event-stream``)."""
        media_type = self.headers.get("content-type", "").split(";")[0].strip()
        return self.status == 200 and media_type == "text/event-stream"

    async def _opened(self) -> None:
        """Wait for the response to begin; raise ``StreamRefused`` if it is not an event stream."""
        async with self._deadline(None, "no response began"):
            await self._started.wait()
        if self.status == 0:  # the app failed (or returned) before responding
            self._raise_failure()
            raise StreamClosed(f"{self._label}: the app returned without starting a response")
        if self._streaming():
            return
        # The refusal's body, for its message; and an app that fails answers 500 before it
        # raises (Starlette's ServerErrorMiddleware): its error, not the 500, is what to show.
        if self._task is not None:
            await asyncio.wait({self._task}, timeout=self.timeout)
        self._raise_failure()
        raise StreamRefused(self._label, self.status, self.headers, bytes(self._body))

    async def _finished(self) -> None:
        """Wait for an ordinary response to end (complete, or the app returned)."""
        try:
            async with self._deadline(None, "the response did not complete"):
                while not (self.ended or self._returned):
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError as exc:  # only ours: what the app raises is kept in ``error``
            raise TimeoutError(f"{exc}; for an event stream use client.stream()") from None

    async def _close(self) -> None:
        """Leave: the app's ``receive`` says ``http.disconnect``; its task ends or is cancelled."""
        self._left = True
        self._over.set()
        self._changed.set()
        if self._task is not None:
            await _end(self._task, CLOSE_GRACE)


class SSEClient:
    """An in-process client for an ASGI app (FastHTML, Starlette, FastAPI) and its event streams.

    ``async with SSEClient(app) as client`` runs the app's lifespan (``lifespan=False`` skips it)
    and ends it, with every stream and task the client started, on leaving. ``client.stream(url)``
    opens an event stream; ``client.get``, ``client.post`` and ``client.request`` (or
    ``client.http``, an ``httpx.AsyncClient``) make ordinary requests. ``client.shutdown("stop")``
    or ``("restart")`` ends the app's streams as a signal would, through its ``Lifecycle``: the
    one passed as ``lifecycle=``, else the app's (``Lifecycle.of_app``, the one its lifespan
    attached). ``timeout`` (s) bounds every wait unless a call gives its own. ``client`` is the
    address the requests come from (``request.client``: what ``Limits`` counts per client), as
    in Starlette's ``TestClient``; read at each request, it may be changed between two.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        base_url: str = "http://testserver",
        headers: Mapping[str, str] | None = None,
        cookies: dict[str, str] | None = None,
        lifecycle: Lifecycle | None = None,
        lifespan: bool = True,
        timeout: float = DEFAULT_TIMEOUT,
        client: tuple[str, int] = DEFAULT_CLIENT,
    ) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be a positive number of seconds")
        self.app = app
        self.timeout = timeout
        self.client = client
        self._lifecycle = lifecycle
        self._state: dict[str, Any] = {}  # the lifespan's state, copied into each request's scope
        self._lifespan = _Lifespan(app, self._state, timeout) if lifespan else None
        self._streams: set[Stream] = set()
        self.http = httpx.AsyncClient(
            transport=_Transport(self), base_url=base_url, headers=headers, cookies=cookies, timeout=timeout
        )

    async def __aenter__(self) -> Self:
        if self._lifespan is not None:
            try:
                await self._lifespan.startup()
            except BaseException:
                await self._lifespan.abandon()
                await self.http.aclose()
                raise
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            for stream in list(self._streams):
                await stream._close()
            if self._lifespan is not None:
                await self._lifespan.shutdown()
        finally:
            await self.http.aclose()

    @property
    def lifecycle(self) -> Lifecycle:
        """The lifecycle ``shutdown`` goes through."""
        if self._lifecycle is None:
            try:
                self._lifecycle = Lifecycle.of_app(self.app)
            except RuntimeError:
                raise RuntimeError(
                    "SSEClient found no Lifecycle: the app is not a Starlette app (wrapped in a "
                    "middleware?); pass SSEClient(app, lifecycle=...)"
                ) from None
        return self._lifecycle

    @contextlib.asynccontextmanager
    async def stream(
        self,
        url: str,
        *,
        last_event_id: str | None = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> AsyncIterator[Stream]:
        """Open an event stream as a browser's ``EventSource`` would (``GET``, ``Accept:
        text/event-stream``, ``Last-Event-ID`` when given), and close it on leaving.

        Raises ``StreamRefused`` when the app answers with another status or content type.
        """
        request = self.http.build_request("GET", url, headers=headers, params=params)
        request.headers.setdefault("accept", "text/event-stream")
        request.headers.setdefault("cache-control", "no-cache")
        if last_event_id is not None:
            request.headers["last-event-id"] = last_event_id
        stream = Stream(_label(request), self.timeout)
        self._streams.add(stream)
        stream._start(self.app, self._scope(request), b"")
        try:
            await stream._opened()
            yield stream
        finally:
            await stream._close()
            self._streams.discard(stream)
        if not stream._error_raised:
            stream._raise_failure()  # what the app raised after the test stopped reading

    async def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """An ordinary request (``httpx.AsyncClient.request``'s arguments), read to its end."""
        return await self.http.request(method, url, **kwargs)

    async def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.http.get(url, **kwargs)

    async def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.http.post(url, **kwargs)

    async def shutdown(self, kind: KindName = Kind.STOP) -> ShutdownReport:
        """End the app's streams now, as a signal would (``stop`` or ``restart``), and wait for
        the drain. Streams opened afterwards get the farewell at once, until
        ``client.lifecycle.reopen()``."""
        lifecycle = self.lifecycle
        if lifecycle.open_streams == 0 and any(s.open for s in self._streams):
            raise RuntimeError(
                "the app's streams are open but its Lifecycle knows none of them: they follow "
                "another one (a Hub's, not wired to the app's lifespan?); pass "
                "SSEClient(app, lifecycle=hub.lifecycle) or fast_app(lifespan=hub.lifespan)"
            )
        return await lifecycle.shutdown(kind)

    def _scope(self, request: httpx.Request) -> Scope:
        url = request.url
        return {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": request.method,
            "scheme": url.scheme,
            "path": url.path,  # decoded, as a server gives it
            "raw_path": url.raw_path.split(b"?")[0],
            "query_string": url.query,
            "root_path": "",
            "headers": [(k.lower(), v) for k, v in request.headers.raw],
            "client": self.client,
            "server": (url.host, url.port or (443 if url.scheme == "https" else 80)),
            "state": self._state.copy(),
        }


class _Transport(httpx.AsyncBaseTransport):
    """httpx's way into the app for ordinary requests: one call, read to its end, bounded."""

    def __init__(self, client: SSEClient) -> None:
        self._client = client

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        client, label = self._client, _label(request)
        # httpx's own per-request ``timeout=`` (its read bound), else the client's.
        bound = request.extensions.get("timeout", {}).get("read") or client.timeout
        stream = Stream(label, bound, keep_body=True)
        stream._start(client.app, client._scope(request), await request.aread())
        try:
            await stream._finished()
        finally:
            await stream._close()
        stream._raise_failure()
        if stream.status == 0:
            raise RuntimeError(f"{label}: the app returned without starting a response")
        return httpx.Response(
            stream.status, headers=stream.headers, content=bytes(stream._body), request=request
        )


class _Lifespan:
    """The ASGI lifespan protocol, run in a task of its own from startup to shutdown."""

    def __init__(self, app: ASGIApp, state: dict[str, Any], timeout: float) -> None:
        self._app = app
        self._state = state
        self._timeout = timeout
        self._inbox: asyncio.Queue[Message] = asyncio.Queue()
        self._outcome: Message | None = None
        self._answered = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def startup(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())
        await self._step("startup")

    async def _run(self) -> None:
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": self._state}
        await self._app(scope, self._inbox.get, self._send)

    async def shutdown(self) -> None:
        task = self._task
        if task is None or task.done():
            return
        try:
            await self._step("shutdown")
        finally:
            await _end(task, self._timeout)

    async def abandon(self) -> None:
        """The startup failed: the app's lifespan task must not outlive the client."""
        if self._task is not None:
            await _end(self._task, 0)

    async def _step(self, phase: str) -> None:
        """Send ``lifespan.<phase>`` and wait for the app's answer (or for it to return)."""
        task = self._task
        assert task is not None
        self._answered.clear()
        self._outcome = None
        await self._inbox.put({"type": f"lifespan.{phase}"})
        answered = asyncio.ensure_future(self._answered.wait())
        try:
            done, _ = await asyncio.wait(
                {answered, task}, timeout=self._timeout, return_when="FIRST_COMPLETED"
            )
        finally:
            answered.cancel()
        if not done:
            raise TimeoutError(f"the app's lifespan {phase} did not complete within {self._timeout:g} s")
        outcome = self._outcome
        if outcome is not None and outcome["type"].endswith(".complete"):
            return
        if outcome is not None:  # ``.failed``: Starlette raises the app's error right after
            await asyncio.wait({task}, timeout=self._timeout)
        failure = task.exception() if task.done() and not task.cancelled() else None
        if failure is not None:
            raise failure
        if outcome is not None:
            raise RuntimeError(f"the app's lifespan {phase} failed: {outcome.get('message', '')}")
        # The app returned without answering: it does not use the lifespan protocol.

    async def _send(self, message: Message) -> None:
        self._outcome = message
        self._answered.set()


async def _end(task: asyncio.Task[None], within: float) -> None:
    """Let ``task`` end by itself ``within`` seconds, else cancel it; never leave it running."""
    if not task.done():
        await asyncio.wait({task}, timeout=within)
    if not task.done():
        task.cancel()
        await asyncio.wait({task})  # not ``await task``: a cancellation of ours must go on
    if not task.cancelled():
        task.exception()  # seen: asyncio does not warn that it was never retrieved


def _label(request: httpx.Request) -> str:
    target = request.url.raw_path.decode("ascii", "replace")
    return f"{request.method} {target}"


def _short(data: str) -> str:
    return repr(data) if len(data) <= 60 else repr(data[:60]) + "…"
