"""App 4: FastHTML's own EventStream over a generator that sleeps in a loop (no shutdown handling)."""

import asyncio

from fasthtml.common import EventStream, JSONResponse, fast_app, sse_message

from harness.probe import probe

app, rt = fast_app()


@rt("/stream")
async def stream():
    async def updates():
        yield ": connected\n\n"
        n = 0
        while True:
            await asyncio.sleep(30)
            n += 1
            yield sse_message(f"tick {n}")

    return EventStream(updates())


@rt("/health")
async def health():
    return JSONResponse(probe())
