"""The floor again, inside FastHTML: the least a graceful shutdown needs, behind FastHTML's stack.

Its stream response is the raw floor's (``_floor.py``: wait on one event, write one farewell);
the app around it is FastHTML's, with its default middleware. Next to graceful_sse in FastHTML,
it shows what the library costs where FastHTML users run it.
"""

import asyncio

from _floor import chain_signals, farewell_stream
from fasthtml.common import JSONResponse, fast_app
from starlette.responses import Response

from harness.probe import probe

stopping = asyncio.Event()  # made on import, used once uvicorn's loop runs (Python 3.10+)


async def lifespan(app):
    chain_signals(stopping)
    yield


app, rt = fast_app(lifespan=lifespan)


class Farewell(Response):
    async def __call__(self, scope, receive, send):
        await farewell_stream(send, stopping)


@rt("/stream")
def stream():
    return Farewell()


@rt("/health")
async def health():
    return JSONResponse(probe())
