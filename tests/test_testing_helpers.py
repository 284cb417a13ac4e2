"""``graceful_sse.testing``: an app author's streams tested in-process, on FastHTML, Starlette and
FastAPI apps written as their users write them."""

from __future__ import annotations

import asyncio
import contextlib
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from graceful_sse import Event, EventStream, Hub, Limits
from graceful_sse.testing import SSEClient, StreamClosed, StreamRefused

from asgi import lifecycle
from sse_parser import parse

DOCS = Path(__file__).parent.parent / "docs" / "testing.md"


@dataclass
class Served:
    """An app under test, its hub, and how it renders what ``POST /say`` publishes."""

    app: Any
    hub: Hub
    said: Callable[[str], str]


def _hub() -> Hub:
    # One stream at a time (a second gets 503); the topic "secret" is refused (403).
    return Hub(
        lifecycle=lifecycle(restart_window=(1, 2)),
        limits=Limits(max_connections=1),
        authorize=lambda request, topic: topic != "secret",
    )


def _fasthtml() -> Served:
    from fasthtml.common import P, fast_app

    hub = _hub()
    app, rt = fast_app(lifespan=hub.lifespan, default_hdrs=False)

    @rt("/updates/{topic}")
    def get(topic: str) -> EventStream:
        return EventStream(hub.subscribe(topic))

    @rt("/say")
    async def post(text: str) -> str:
        await hub.publish("news", P(text))
        return "sent"

    return Served(app, hub, lambda text: f"<p>{text}</p>")


def _starlette() -> Served:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    hub = _hub()

    async def updates(request: Request) -> EventStream:
        return EventStream(hub.subscribe(request.path_params["topic"]))

    async def say(request: Request) -> PlainTextResponse:
        form = await request.form()
        await hub.publish("news", str(form["text"]))
        return PlainTextResponse("sent")

    routes = [Route("/updates/{topic}", updates), Route("/say", say, methods=["POST"])]
    return Served(Starlette(routes=routes, lifespan=hub.lifespan), hub, lambda text: text)


def _fastapi() -> Served:
    from fastapi import FastAPI, Form

    hub = _hub()
    app = FastAPI(lifespan=hub.lifespan)

    @app.get("/updates/{topic}")
    async def updates(topic: str) -> EventStream:
        return EventStream(hub.subscribe(topic))

    @app.post("/say")
    async def say(text: str = Form()) -> dict[str, str]:
        await hub.publish("news", Event(data={"text": text}))
        return {"sent": text}

    return Served(app, hub, lambda text: f'{{"text":"{text}"}}')


@pytest.fixture(params=[_fasthtml, _starlette, _fastapi], ids=["fasthtml", "starlette", "fastapi"])
def served(request: pytest.FixtureRequest) -> Served:
    make: Callable[[], Served] = request.param
    return make()


# -- what an app author asserts, on each framework ---------------------------------------------------


@pytest.mark.anyio
async def test_a_page_gets_what_is_published(served: Served) -> None:
    async with SSEClient(served.app) as client, client.stream("/updates/news") as stream:
        assert (await client.post("/say", data={"text": "hi"})).status_code == 200
        event = await stream.next_event(timeout=2)
        assert (event.event, event.data) == ("message", served.said("hi"))
        assert event.id == served.hub.last_id and stream.retry == 3000
        assert stream.comments == ["connected"]


@pytest.mark.anyio
async def test_a_returning_page_gets_what_it_missed_with_last_event_id(served: Served) -> None:
    async with SSEClient(served.app) as client:
        async with client.stream("/updates/news") as stream:
            await client.post("/say", data={"text": "seen"})
            seen = await stream.next_event()
        for text in ("missed 1", "missed 2"):
            await client.post("/say", data={"text": text})
        async with client.stream("/updates/news", last_event_id=seen.id) as stream:
            await client.post("/say", data={"text": "live"})
            received = [(await stream.next_event()).data for _ in range(3)]
    assert received == [served.said(t) for t in ("missed 1", "missed 2", "live")]


@pytest.mark.anyio
async def test_on_stop_the_stream_says_goodbye_and_ends_and_later_ones_are_told_at_once(
    served: Served,
) -> None:
    async with SSEClient(served.app) as client:
        async with client.stream("/updates/news") as stream:
            report = await client.shutdown("stop")
            farewell = await stream.next_event()
            await stream.closed()
        assert farewell.event == "shutdown" and farewell.json()["kind"] == "stop"
        assert farewell.retry == 24 * 60 * 60 * 1000, "a bare EventSource must not hammer a stopped server"
        assert (report.told, report.took) == (1, 1)
        async with client.stream("/updates/news") as late:
            assert (await late.next_event()).event == "shutdown"
            await late.closed()


@pytest.mark.anyio
async def test_on_restart_the_stream_says_when_to_come_back(served: Served) -> None:
    async with SSEClient(served.app) as client, client.stream("/updates/news") as stream:
        await client.shutdown("restart")
        farewell = await stream.next_event("restart")
        await stream.closed()
    assert farewell.retry is not None and 1000 <= farewell.retry <= 2000  # the app's restart_window
    assert farewell.json()["retry"] == farewell.retry == stream.retry
    assert farewell.json()["kind"] == "restart"


@pytest.mark.anyio
async def test_a_timeout_says_which_stream_and_what_it_received(served: Served) -> None:
    async with SSEClient(served.app) as client, client.stream("/updates/news") as stream:
        await client.post("/say", data={"text": "only one"})
        await stream.next_event()
        with pytest.raises(TimeoutError) as raised:
            await stream.next_event("shutdown", timeout=0.2)
    message = str(raised.value)
    assert message.startswith("GET /updates/news: no event named 'shutdown' within 0.2 s; received ")
    assert "message " + repr(served.said("only one")) in message and "still open" in message


@pytest.mark.anyio
async def test_a_refused_stream_raises_with_its_status_and_body(served: Served) -> None:
    async with SSEClient(served.app) as client:
        refused = r"GET /updates/secret answered 403 .*'Not allowed'"
        with pytest.raises(StreamRefused, match=refused) as forbidden:
            async with client.stream("/updates/secret"):
                pass
        assert forbidden.value.status == 403
        async with client.stream("/updates/news"):
            with pytest.raises(StreamRefused, match="answered 503") as full:
                async with client.stream("/updates/news"):
                    pass
        assert full.value.headers["retry-after"] == "5" and b"Too many open streams" in full.value.body
        with pytest.raises(StreamRefused, match="answered 404"):
            async with client.stream("/nowhere"):
                pass


# -- the helper itself -------------------------------------------------------------------------------


def _idle() -> set[asyncio.Task[Any]]:
    return {t for t in asyncio.all_tasks() if t is not asyncio.current_task()}


@pytest.mark.anyio
async def test_the_client_runs_the_lifespan_and_leaves_no_task_behind() -> None:
    served, before = _starlette(), _idle()
    async with SSEClient(served.app) as client:
        assert served.app.state.graceful_sse is served.hub.lifecycle, "the lifespan attached it"
        async with client.stream("/updates/news") as stream:
            await client.post("/say", data={"text": "x"})
            await stream.next_event()
            assert served.hub.connections() == 1
        async with client.stream("/updates/news"):
            pass  # left without reading: the response sees the disconnect
    assert served.hub.connections() == 0 and served.hub.lifecycle.open_streams == 0
    await asyncio.sleep(0)
    assert _idle() <= before


@pytest.mark.anyio
async def test_a_finite_stream_is_read_to_its_clean_end_with_async_for() -> None:
    from starlette.applications import Starlette
    from starlette.routing import Route

    async def tokens() -> AsyncIterator[str]:
        for word in ("streamed", "token", "by", "token"):
            yield word

    lc = lifecycle()
    app = Starlette(routes=[Route("/answer", lambda request: EventStream(tokens(), lifecycle=lc))])
    async with SSEClient(app, lifecycle=lc) as client, client.stream("/answer") as stream:
        assert [event.data async for event in stream] == ["streamed", "token", "by", "token"]
        assert stream.ended
        with pytest.raises(StreamClosed, match=r"ended before an event; .*ended cleanly"):
            await stream.next_event()


@pytest.mark.anyio
async def test_what_the_app_raises_reaches_the_test() -> None:
    from starlette.applications import Starlette
    from starlette.routing import Route

    async def broken() -> AsyncIterator[str]:
        yield "fine"
        raise RuntimeError("boom")

    def fails(request: object) -> EventStream:
        raise LookupError("no such page")

    lc = lifecycle()
    routes = [Route("/broken", lambda request: EventStream(broken(), lifecycle=lc)), Route("/fails", fails)]
    async with SSEClient(Starlette(routes=routes), lifecycle=lc) as client:
        async with client.stream("/broken") as stream:
            assert (await stream.next_event()).data == "fine"
            assert (await stream.next_event("error")).json()["message"].startswith("The stream failed")
        with pytest.raises(LookupError, match="no such page"):
            async with client.stream("/fails"):
                pass
        with pytest.raises(LookupError):
            await client.get("/fails")


async def _fails_mid_stream(scope: Any, receive: Any, send: Any) -> None:
    """A raw ASGI app whose stream breaks after its first event."""
    if scope["type"] != "http":
        return
    headers = [(b"content-type", b"text/event-stream")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"data: first\n\n", "more_body": True})
    raise ValueError("the stream broke")


@pytest.mark.anyio
async def test_an_error_mid_stream_is_raised_once_where_the_test_reads_or_else_on_leaving() -> None:
    async with SSEClient(_fails_mid_stream) as client:
        async with client.stream("/") as stream:
            assert (await stream.next_event()).data == "first"
            with pytest.raises(ValueError, match="the stream broke"):
                await stream.next_event()
        with pytest.raises(ValueError, match="the stream broke"):
            async with client.stream("/"):
                await asyncio.sleep(0.05)  # the test reads nothing more: it is raised on leaving


@pytest.mark.anyio
async def test_an_ordinary_request_that_never_ends_times_out_with_a_hint() -> None:
    served = _starlette()
    async with SSEClient(served.app) as client:
        with pytest.raises(TimeoutError, match=r"GET /updates/news: .* within 0.3 s.* use client.stream\(\)"):
            await client.get("/updates/news", timeout=0.3)
        assert served.hub.connections() == 0


@pytest.mark.anyio
async def test_a_shutdown_through_a_lifecycle_the_streams_do_not_follow_says_so() -> None:
    """The app's lifespan attached one lifecycle; its streams follow their hub's."""
    from starlette.applications import Starlette
    from starlette.routing import Route

    hub = Hub(lifecycle=lifecycle())
    routes = [Route("/updates", lambda request: EventStream(hub.subscribe("t")))]
    app = Starlette(routes=routes, lifespan=lifecycle().lifespan)
    async with SSEClient(app) as client, client.stream("/updates"):
        with pytest.raises(RuntimeError, match=r"lifecycle=hub.lifecycle"):
            await client.shutdown("stop")
    await hub.lifecycle.close()


@pytest.mark.anyio
async def test_a_failing_lifespan_startup_raises_the_apps_error() -> None:
    from starlette.applications import Starlette

    @contextlib.asynccontextmanager
    async def lifespan(app: object) -> AsyncIterator[None]:
        raise ConnectionError("the database is down")
        yield

    with pytest.raises(ConnectionError, match="database is down"):
        async with SSEClient(Starlette(lifespan=lifespan)):
            pass


@pytest.mark.anyio
async def test_the_requests_come_from_the_clients_address_which_a_per_client_cap_counts() -> None:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.routing import Route

    hub, seen = Hub(lifecycle=lifecycle(), limits=Limits(max_per_client=1)), []

    def updates(request: Request) -> EventStream:
        seen.append(request.client)
        return EventStream(hub.subscribe("news"))

    app = Starlette(routes=[Route("/updates", updates)], lifespan=hub.lifespan)
    async with SSEClient(app) as client, client.stream("/updates"):
        pass
    async with SSEClient(app, client=("10.0.0.1", 40000)) as client, client.stream("/updates"):
        with pytest.raises(StreamRefused) as refused:
            async with client.stream("/updates"):
                pass
        assert refused.value.status == 503, "one stream per client"
        client.client = ("10.0.0.2", 40000)  # another machine: its own count
        async with client.stream("/updates") as other:
            assert other.status == 200
    assert seen == [("testclient", 50000), ("10.0.0.1", 40000), ("10.0.0.1", 40000), ("10.0.0.2", 40000)]


@pytest.mark.anyio
async def test_the_streams_send_the_cookies_that_requests_set() -> None:
    """A login sets a session cookie; the stream opened after it belongs to that user."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    lc = lifecycle()

    def login(request: Request) -> PlainTextResponse:
        response = PlainTextResponse("welcome")
        response.set_cookie("user", "ada")
        return response

    def mine(request: Request) -> EventStream:
        return EventStream([f"hello {request.cookies.get('user')}"], lifecycle=lc)

    app = Starlette(routes=[Route("/login", login, methods=["POST"]), Route("/mine", mine)])
    async with SSEClient(app, lifecycle=lc) as client:
        await client.post("/login")
        async with client.stream("/mine") as stream:
            assert (await stream.next_event()).data == "hello ada"


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.text(st.characters(blacklist_categories=["Cs"]), max_size=20), min_size=1, max_size=6),
    st.lists(st.integers(1, 40), max_size=30),
    st.sampled_from(["\n", "\r\n", "\r"]),
)
def test_the_parser_reads_any_split_of_the_stream_as_the_reference_parser_does(
    datas: list[str], cuts: list[int], newline: str
) -> None:
    from graceful_sse.testing import _Parser

    wire = "".join(Event(data=d, event="e", id=str(i)).encode().decode() for i, d in enumerate(datas))
    wire = (": hi\nretry: 10\n\n" + wire).replace("\n", newline)
    raw, received, parser, at = wire.encode(), [], _Parser(), 0
    for cut in cuts:
        received += parser.feed(raw[at : at + cut])
        at += cut
    received += parser.feed(raw[at:], final=True)
    expected = [(e.type, e.data, e.last_event_id) for e in parse(wire).events]
    assert [(e.event, e.data, e.id) for e in received] == expected
    assert parser.retry == 10 and parser.comments == ["hi"]


def test_the_guides_example_runs_as_a_users_test_suite(tmp_path: Path) -> None:
    """docs/testing.md's app and test, copied into a project of their own and run by pytest."""
    blocks = re.findall(r"```python\n(.*?)```", DOCS.read_text(), flags=re.S)
    (tmp_path / "app.py").write_text(next(b for b in blocks if "fast_app(" in b))
    (tmp_path / "test_app.py").write_text(next(b for b in blocks if "SSEClient(" in b))
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:asyncio", str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert re.search(r"\b[2-9] passed", run.stdout), run.stdout
