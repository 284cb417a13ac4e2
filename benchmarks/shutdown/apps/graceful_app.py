"""App 1: graceful_sse (this library) in a FastHTML app, as its README shows."""

from fasthtml.common import JSONResponse, fast_app

from graceful_sse import EventStream, Hub

from harness.probe import probe

hub = Hub()
app, rt = fast_app(lifespan=hub.lifespan)


@rt("/stream")
def stream():
    return EventStream(hub.subscribe("updates"))


@rt("/health")
async def health():
    return JSONResponse(probe())
