"""graceful_sse with no framework around it: ``EventStream(hub.subscribe(...))`` as the ASGI app.

Served next to the raw floor, it shows what the library itself costs at shutdown.
"""

from graceful_sse import EventStream, Hub

from harness.asgi import send_json
from harness.probe import probe

hub = Hub()


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        async with hub.lifespan():
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["path"] == "/health":
        await send_json(send, probe())
        return
    await EventStream(hub.subscribe("updates"))(scope, receive, send)
