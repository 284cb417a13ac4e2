"""graceful_sse with no FastHTML: the same hub and ``EventStream`` in a plain Starlette app."""

from _starlette_routes import bench_routes
from starlette.applications import Starlette

from graceful_sse import EventStream, Hub

hub = Hub()


async def stream(request):
    return EventStream(hub.subscribe("bench"))


async def publish(data):
    return await hub.publish("bench", data)


app = Starlette(routes=bench_routes(stream, publish), lifespan=hub.lifespan)
