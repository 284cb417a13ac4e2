"""graceful_sse in FastHTML, as its README shows: ``fast_app(lifespan=hub.lifespan)``,
``EventStream(hub.subscribe(...))`` and ``await hub.publish(...)``, all defaults."""

from _common import TOPIC
from _fasthtml_routes import add_bench_routes
from fasthtml.common import fast_app

from graceful_sse import EventStream, Hub

hub = Hub()
app, rt = fast_app(lifespan=hub.lifespan)


@rt("/stream")
def stream(topic: str = TOPIC):
    return EventStream(hub.subscribe(topic))


async def publish(topic, data):
    return await hub.publish(topic, data)


add_bench_routes(rt, publish)
