"""The demo: live server stats and a broadcast message board over one graceful stream.

``python -m graceful_sse.demo`` runs it through FastHTML's ``serve()`` (uvicorn with reload);
``graceful_sse.demo:app`` is the same ASGI app for any other server.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
import uuid
from collections import deque
from datetime import datetime
from pathlib import Path

try:
    import psutil
    from fasthtml.common import (
        H1,
        H2,
        A,
        Button,
        Div,
        Fieldset,
        Footer,
        Form,
        Header,
        Input,
        Li,
        Link,
        Main,
        NotStr,
        P,
        Script,
        Section,
        Small,
        Span,
        Style,
        Time,
        Title,
        Ul,
        fast_app,
    )
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "the demo needs its extra: install the demo extra "
        "(pip install -e '.[demo]' in a clone, or the wheel with [demo])"
    ) from exc
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from graceful_sse import (
    BackendUnavailable,
    EventStream,
    Hub,
    NotPublished,
    OutcomeUnknown,
    SSEScripts,
    SSEStatus,
    SSEStream,
    Subscription,
    sse_assets,
)

HERE = Path(__file__).parent
CSS = (HERE / "style.css").read_text()
SCRIPT = (HERE / "page.js").read_text()  # the stale and stopped states, and sending with feedback
# At /favicon.ico, where browsers also look for it on pages that name no icon (the stream's, say).
FAVICON = (
    "<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 16 16'>"
    "<circle cx='8' cy='8' r='6' fill='#16a34a'/></svg>"
)
TOPIC = "demo"  # messages: every worker's clients get them (through Redis when it is used)
STATS = f"stats-{os.getpid()}"  # each worker's own figures, for the clients connected to it
MAX_MESSAGE = 500
STARTED = time.monotonic()


async def favicon(request: Request) -> Response:
    return Response(FAVICON, media_type="image/svg+xml", headers={"Cache-Control": "max-age=86400"})


hub = Hub()
app, rt = fast_app(
    default_hdrs=False,
    hdrs=(
        *SSEScripts(),
        Style(CSS),
        Link(rel="icon", href="/favicon.ico", type="image/svg+xml"),
        Script(SCRIPT),
    ),
    lifespan=hub.lifespan,
    # Before FastHTML's own route for static files, which would answer /favicon.ico with a 404.
    routes=[sse_assets(), Route("/favicon.ico", favicon)],
)
recent: deque[str] = deque(maxlen=20)  # the last messages' HTML, from any worker
process = psutil.Process()


def _uptime() -> str:
    seconds = int(time.monotonic() - STARTED)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


def stats_panel(clients: int | None = None) -> Div:
    memory = process.memory_info().rss / 2**20
    rows = [
        ("Server time", datetime.now().strftime("%H:%M:%S")),
        ("Uptime", _uptime()),
        ("Connected clients", str(hub.connections(STATS) if clients is None else clients)),
        ("CPU", f"{process.cpu_percent():.1f} %"),
        ("Memory", f"{memory:.1f} MiB"),
        ("Process", str(os.getpid())),
    ]
    return Div(*(Div(Span(k, cls="k"), Span(v, cls="v")) for k, v in rows), cls="stats")


# What an HTML parser would change in text: markup, and CR (read as LF, as SSE reads it too).
_HTML_TEXT = {ord("&"): "&amp;", ord("<"): "&lt;", ord(">"): "&gt;", ord("\r"): "&#13;"}
# The line ends of the SSE format (WHATWG HTML): only these, not all that str.splitlines() knows.
_SSE_LINE_END = re.compile(r"\r\n|\r|\n")


def message_text(posted: str) -> str:
    """The message a posted text makes: trimmed, and without NUL, which no HTML page can hold
    (browsers show it as U+FFFD, the replacement character, so the demo stores that)."""
    return posted.strip().replace("\0", "\ufffd")


def message_item(text: str, at: str) -> Li:
    """One message: ``text`` as exactly one element holding that text, whatever it contains."""
    return Li(Time(at), Span(NotStr(text.translate(_HTML_TEXT))))


def read_event(chunk: bytes) -> tuple[str, str]:
    """The name and data of one encoded event, read as a browser's EventSource reads them."""
    name, values = "message", []
    for line in _SSE_LINE_END.split(chunk.decode()):
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "event":
            name = value
        elif field == "data":
            values.append(value)
    return name, "\n".join(values)


@hub.producer(every=1.0)
async def system_updates() -> None:
    try:
        # Each page's stream holds its worker's stats topic: their sum counts every worker's pages.
        topics = (await hub.presence())["topics"]
        clients = sum(n for topic, n in topics.items() if topic.startswith("stats-"))
    except BackendUnavailable:
        clients = None
    await hub.publish(STATS, stats_panel(clients), event="stats")


@hub.on_connect
@hub.on_disconnect
async def count_the_pages(sub: Subscription) -> None:
    """A page opening or closing updates every page's client count now, not at the next tick
    (the count a page is rendered with cannot include itself: it has not connected yet)."""
    if STATS in sub.topics and not hub.lifecycle.draining:
        with contextlib.suppress(BackendUnavailable):  # the next tick says it
            await system_updates()


@hub.producer
async def remember_messages() -> None:
    """Keep the last messages for pages that open later, whichever worker took them."""
    async for chunk in hub.subscribe(TOPIC):
        name, data = read_event(chunk)
        if name == "chat":  # not the hub's own notices (missed, reset)
            recent.append(data)


@rt("/")
def index():
    return (
        Title("graceful-sse demo"),
        Header(H1("graceful-sse ", Small("demo")), SSEStatus()),
        Main(
            SSEStream(
                "/stream",
                Section(
                    H2("Server ", Span("last known values", cls="stale-badge")),
                    Div(stats_panel(), id="stats", sse_swap="stats"),
                    id="server-card",
                    cls="card",
                ),
                Section(
                    H2("Messages"),
                    Form(
                        Fieldset(
                            Input(
                                name="text",
                                placeholder="Say something to every open page",
                                maxlength=MAX_MESSAGE,
                                required=True,
                                # Some text besides white space, as the server asks (any line break).
                                pattern=r"[\s\S]*\S[\s\S]*",
                                title="Some text to send",
                                autocomplete="off",
                                aria_label="Message",
                            ),
                            # One key per message: a resubmission after a failure or a lost answer
                            # carries the same key, and the hub delivers it at most once.
                            Input(type="hidden", name="key", value=uuid.uuid4().hex),
                            Button("Send", name="send"),
                            name="fields",
                        ),
                        # page.js sends it with fetch and tells the outcome in the note below.
                        id="send",
                        method="post",
                        action="/messages",
                    ),
                    P(id="send-note", cls="send-note", role="status", aria_live="polite", hidden=True),
                    Ul(
                        *(NotStr(item) for item in reversed(recent)),
                        id="messages",
                        sse_swap="chat",
                        hx_swap="afterbegin",
                    ),
                    cls="card",
                ),
                events=None,
                cls="grid",
            ),
            Section(
                H2("Try it"),
                P(
                    "Press ",
                    Span("Ctrl+C", cls="kbd"),
                    " in the terminal: this page says ",
                    Span("Server stopped", cls="em"),
                    " and stops asking the server.",
                ),
                P(
                    "Save a file of the app (or send SIGTERM): it says ",
                    Span("Server restarting", cls="em"),
                    " and comes back on its own, after a random delay.",
                ),
                P("Open this page in several tabs: a message sent in one shows in all."),
                cls="card help",
            ),
        ),
        Footer(
            A("graceful-sse", href="https://pypi.org/project/graceful-sse/"),
            " · htmx and its SSE extension are served by this app: no CDN, works offline.",
        ),
    )


@rt("/stream")
def stream():
    return EventStream(hub.subscribe(TOPIC, STATS))


@rt("/messages", methods=["post"])
async def post_message(text: str = "", key: str = ""):
    text = message_text(text)
    if not text:
        return Response("A message needs some text.", status_code=400)
    if len(text) > MAX_MESSAGE:
        return Response(f"A message holds at most {MAX_MESSAGE} characters.", status_code=413)
    if len(key) > Hub.MAX_KEY_LENGTH:
        return Response(f"A message key holds at most {Hub.MAX_KEY_LENGTH} characters.", status_code=400)
    at = datetime.now().strftime("%H:%M:%S")
    try:
        await hub.publish(TOPIC, message_item(text, at), event="chat", key=key or None)
    except NotPublished:
        return Response("Messages are unavailable for a moment; try again.", status_code=503)
    except OutcomeUnknown:
        return Response(
            "The message may have been sent; sending it again will not repeat it.", status_code=503
        )
    return Response(status_code=204)
