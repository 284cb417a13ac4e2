from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from graceful_sse import EventStream, Hub

hub = Hub()


async def updates(request: Request) -> Response:
    return EventStream(hub.subscribe("updates"))


async def say(request: Request) -> Response:
    text = (await request.body()).decode(errors="replace")  # the message is the request's body
    await hub.publish("updates", text)
    return Response(status_code=204)


app = Starlette(
    routes=[Route("/updates", updates), Route("/say", say, methods=["POST"])],
    lifespan=hub.lifespan,
)
