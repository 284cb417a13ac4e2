"""An app whose startup takes a while after the hub has started (as one that first connects to a
database): for signals that arrive before it serves. SLOW_START is the startup's length (s)."""

import asyncio
import os
import sys

from fasthtml.common import fast_app

from graceful_sse import EventStream, Hub, Lifecycle

hub = Hub(lifecycle=Lifecycle(exit_timeout=float(os.environ.get("SSE_TEST_EXIT", "5"))))


async def lifespan(app):  # FastHTML takes an async generator function
    async with hub.lifespan(app):
        print("startup begun", file=sys.stderr, flush=True)
        await asyncio.sleep(float(os.environ.get("SLOW_START", "2")))
        print("startup done", file=sys.stderr, flush=True)
        yield


app, rt = fast_app(lifespan=lifespan, default_hdrs=False)


@rt("/stream")
def stream():
    return EventStream(hub.subscribe("updates"))


@rt("/stats")
def stats():
    return {"pid": os.getpid(), "streams": hub.lifecycle.open_streams}
