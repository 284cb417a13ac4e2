"""App 5: the floor. A raw ASGI app (no framework) that does the least a graceful SSE shutdown needs.

At lifespan startup it chains a SIGINT/SIGTERM handler in front of uvicorn's; every stream sends
its head and a first chunk, waits on one asyncio.Event, then sends one pre-encoded farewell with
more_body=False (``_floor.py``, shared with the floor in FastHTML).
"""

import asyncio

from _floor import chain_signals, farewell_stream

from harness.asgi import lifespan, send_json
from harness.probe import probe

stopping = asyncio.Event()  # made on import, used once uvicorn's loop runs (Python 3.10+)


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        await lifespan(receive, send, startup=lambda: chain_signals(stopping))
        return
    if scope["type"] != "http":
        return
    if scope["path"] == "/health":
        await send_json(send, probe())
        return
    await farewell_stream(send, stopping)
