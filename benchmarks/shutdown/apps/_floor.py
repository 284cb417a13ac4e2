"""The floor's shutdown logic, shared by the raw-ASGI floor and the floor in FastHTML (the same
logic in two frameworks, so that the two differ only by the framework): a SIGINT/SIGTERM handler
chained in front of uvicorn's sets one asyncio.Event; every stream writes its head and a first
chunk, waits on that event, then writes one pre-encoded farewell with more_body=False.
"""

import asyncio
import signal
from types import FrameType

from harness.asgi import Send

HEADERS = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
FIRST = b": connected\n\n"
FAREWELL = b'retry: 86400000\nevent: shutdown\ndata: {"kind":"stop"}\n\n'


def chain_signals(event: asyncio.Event) -> None:
    """Set ``event`` on SIGINT/SIGTERM, then hand the signal on to uvicorn's handler."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        prev = signal.getsignal(sig)

        def handler(signum: int, frame: FrameType | None, prev: object = prev) -> None:
            loop.call_soon_threadsafe(event.set)
            if callable(prev):
                prev(signum, frame)

        signal.signal(sig, handler)


async def farewell_stream(send: Send, stopping: asyncio.Event) -> None:
    """One stream: open it, wait for the signal, say farewell and end the body."""
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": FIRST, "more_body": True})
    await stopping.wait()
    await send({"type": "http.response.body", "body": FAREWELL, "more_body": False})
