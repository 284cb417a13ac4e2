"""The demo: live server stats and a broadcast message board over one graceful stream.

``python -m graceful_sse.demo`` runs it through FastHTML's ``serve()`` (uvicorn with reload);
``graceful_sse.demo:app`` is the same ASGI app for any other server.
"""

from __future__ import annotations

import os
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
        Footer,
        Form,
        Header,
        Input,
        Li,
        Link,
        Main,
        NotStr,
        P,
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
    raise ImportError("the demo needs its extra: pip install 'graceful-sse[demo]'") from exc
from starlette.responses import Response

from graceful_sse import (
    BackendUnavailable,
    EventStream,
    Hub,
    NotPublished,
    OutcomeUnknown,
    SSEScripts,
    SSEStatus,
    SSEStream,
    sse_assets,
)

CSS = (Path(__file__).parent / "style.css").read_text()
FAVICON = (
    "data:image/svg+xml,<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 16 16'>"
    "<circle cx='8' cy='8' r='6' fill='%2316a34a'/></svg>"
)
# After a message is sent, the form gets a fresh key (crypto.randomUUID needs a secure context).
NEXT_KEY = (
    "if (event.detail.successful) { this.reset(); this.key.value = crypto.randomUUID"
    " ? crypto.randomUUID() : Date.now() + '-' + Math.random().toString(36).slice(2) }"
)
TOPIC = "demo"  # messages: every worker's clients get them (through Redis when it is used)
STATS = f"stats-{os.getpid()}"  # each worker's own figures, for the clients connected to it
MAX_MESSAGE = 500
STARTED = time.monotonic()

hub = Hub()
app, rt = fast_app(
    default_hdrs=False,
    hdrs=(*SSEScripts(), Style(CSS), Link(rel="icon", href=FAVICON)),
    lifespan=hub.lifespan,
    routes=[sse_assets()],
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


def message_item(text: str, at: str) -> Li:
    return Li(Time(at), Span(text))


@hub.producer(every=1.0)
async def system_updates() -> None:
    try:
        # Each page's stream holds its worker's stats topic: their sum counts every worker's pages.
        topics = (await hub.presence())["topics"]
        clients = sum(n for topic, n in topics.items() if topic.startswith("stats-"))
    except BackendUnavailable:
        clients = None
    await hub.publish(STATS, stats_panel(clients), event="stats")


@hub.producer
async def remember_messages() -> None:
    """Keep the last messages for pages that open later, whichever worker took them."""
    async for chunk in hub.subscribe(TOPIC):
        lines = chunk.decode().splitlines()
        recent.append("\n".join(line[6:] for line in lines if line.startswith("data: ")))


@rt("/")
def index():
    return (
        Title("graceful-sse demo"),
        Header(H1("graceful-sse ", Small("demo")), SSEStatus()),
        Main(
            SSEStream(
                "/stream",
                Section(H2("Server"), Div(stats_panel(), id="stats", sse_swap="stats"), cls="card"),
                Section(
                    H2("Messages"),
                    Form(
                        Input(
                            name="text",
                            placeholder="Say something to every open page",
                            maxlength=MAX_MESSAGE,
                            required=True,
                            autocomplete="off",
                            aria_label="Message",
                        ),
                        # One key per message: a resubmission after a failure or a lost answer
                        # carries the same key, and the hub delivers it at most once.
                        Input(type="hidden", name="key", value=uuid.uuid4().hex),
                        Button("Send"),
                        hx_post="/messages",
                        hx_swap="none",
                        hx_on__after_request=NEXT_KEY,
                    ),
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
    text = text.strip()
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
