"""graceful_sse with no FastHTML: the same hub and ``EventStream`` in a plain Starlette app."""

from _starlette_routes import bench_routes, topic_of
from starlette.applications import Starlette

from graceful_sse import EventStream, Hub

hub = Hub()


async def stream(request):
    return EventStream(hub.subscribe(topic_of(request)))


async def publish(topic, data):
    return await hub.publish(topic, data)


app = Starlette(routes=bench_routes(stream, publish), lifespan=hub.lifespan)
