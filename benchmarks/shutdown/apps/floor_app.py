"""App 5: the floor. A raw ASGI app (no framework) that does the least a graceful SSE shutdown needs.

At lifespan startup it chains a SIGINT/SIGTERM handler in front of uvicorn's; every stream sends
its head and a first chunk, waits on one asyncio.Event, then sends one pre-encoded farewell with
more_body=False.
"""

import asyncio
import signal

from _probe import probe_bytes

HEADERS = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
FIRST = b": connected\n\n"
FAREWELL = b'retry: 86400000\nevent: shutdown\ndata: {"kind":"stop"}\n\n'

stopping: asyncio.Event | None = None


def _chain(loop: asyncio.AbstractEventLoop, event: asyncio.Event) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        prev = signal.getsignal(sig)

        def handler(signum, frame, prev=prev):
            loop.call_soon_threadsafe(event.set)
            if callable(prev):
                prev(signum, frame)

        signal.signal(sig, handler)


async def app(scope, receive, send):
    global stopping
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                stopping = asyncio.Event()
                _chain(asyncio.get_running_loop(), stopping)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    if scope["path"] == "/health":
        body = probe_bytes()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})
        return
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": FIRST, "more_body": True})
    assert stopping is not None
    await stopping.wait()
    await send({"type": "http.response.body", "body": FAREWELL, "more_body": False})
