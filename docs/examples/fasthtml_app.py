from fasthtml.common import *
from graceful_sse import EventStream, Hub, SSEScripts, SSEStatus, SSEStream, sse_assets

hub = Hub()
app, rt = fast_app(
    default_hdrs=False,  # every script from the app itself (sse_assets), none from a CDN
    hdrs=(*SSEScripts(), Link(rel="icon", href="data:,")),  # an empty icon: no /favicon.ico 404
    lifespan=hub.lifespan,
    routes=[sse_assets()],
)

@rt("/")
def index():
    return Titled(
        "Messages",
        SSEStatus(),
        SSEStream("/updates", Ul(id="feed"), target="#feed", swap="beforeend"),
        Form(
            Input(name="text", placeholder="Say something", required=True),
            Button("Send"),
            hx_post="/say", hx_swap="none", hx_on__after_request="this.reset()",
        ),
    )

@rt("/updates")
def updates():
    return EventStream(hub.subscribe("updates"))

@rt("/say", methods=["post"])
async def say(text: str):
    await hub.publish("updates", Li(text))

serve()
