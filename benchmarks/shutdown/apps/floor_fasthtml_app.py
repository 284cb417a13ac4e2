"""The floor again, inside FastHTML: the least a graceful shutdown needs, behind FastHTML's stack.

Its stream response is the raw floor's (wait on one event, write one farewell); the app around it
is FastHTML's, with its default middleware. Next to graceful_sse in FastHTML, it shows what the
library costs where FastHTML users run it.
"""

import asyncio
import signal

from _probe import probe
from fasthtml.common import JSONResponse, fast_app
from starlette.responses import Response

HEADERS = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
FIRST = b": connected\n\n"
FAREWELL = b'retry: 86400000\nevent: shutdown\ndata: {"kind":"stop"}\n\n'

stopping: asyncio.Event | None = None


async def lifespan(app):
    global stopping
    loop, stopping = asyncio.get_running_loop(), asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        prev = signal.getsignal(sig)

        def handler(signum, frame, prev=prev):
            loop.call_soon_threadsafe(stopping.set)
            if callable(prev):
                prev(signum, frame)

        signal.signal(sig, handler)
    yield


app, rt = fast_app(lifespan=lifespan)


class Farewell(Response):
    async def __call__(self, scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
        await send({"type": "http.response.body", "body": FIRST, "more_body": True})
        assert stopping is not None
        await stopping.wait()
        await send({"type": "http.response.body", "body": FAREWELL, "more_body": False})


@rt("/stream")
def stream():
    return Farewell()


@rt("/health")
async def health():
    return JSONResponse(probe())
