"""The app the ending tests serve: streams that belong to a user, and the routes that end them.

A FastHTML app as docs/ending-streams.md writes one: the session says who the user is, each of
their streams is subscribed with that identity, and signing out ends them all, on every worker
(``$SSE_BROKER_URL`` names the Redis they share). For the wire tests ``?user=`` stands in for a
session, ``/end`` takes any order and each stream first says which worker serves it (``hello``).
``ENDING_HTMX`` (2 or 4) is the htmx the page loads.
"""

import os

from fasthtml.common import H1, Button, Li, Link, Main, RedirectResponse, Title, Ul, fast_app
from starlette.responses import JSONResponse

from graceful_sse import Event, EventStream, Hub, SSEScripts, SSEStatus, SSEStream, encode, sse_assets

HTMX = int(os.environ.get("ENDING_HTMX", "2"))
hub = Hub()
app, rt = fast_app(
    default_hdrs=False,
    hdrs=(*SSEScripts(htmx=HTMX), Link(rel="icon", href="data:,")),
    lifespan=hub.lifespan,
    routes=[sse_assets()],
    secret_key="ending-tests-only",
)


@hub.on_connect
def say_which_worker(sub):
    sub.put(encode(Event(event="hello", data=str(os.getpid()))))


@rt("/health")
def health():
    return "ok"


@rt("/login")
def login(user: str, session):
    session["user"] = user
    return RedirectResponse("/", status_code=303)


@rt("/")
def index(session):
    return (
        Title("Signed in"),
        Main(
            H1(f"Hello {session.get('user', 'nobody')}"),
            SSEStatus(),
            SSEStream("/feed", Ul(id="feed"), target="#feed", swap="beforeend", htmx=HTMX),
            Button("Sign out", hx_post="/logout", hx_swap="none", id="logout"),
        ),
    )


@rt("/feed")
def feed(session, user: str | None = None):
    user = user or session.get("user")
    if user is None:
        return JSONResponse({"error": "sign in first"}, status_code=403)
    return EventStream(hub.subscribe("feed", identity=user))


@rt("/room")
def room(user: str):
    return EventStream(hub.subscribe("room", identity=user))


@rt("/logout", methods=["post"])
async def logout(session):
    user = session.pop("user", None)
    if user is not None:
        # Every stream of this user, in every tab and on every worker, says goodbye and stays away.
        await hub.end(identity=user, kind="stop", reason="Signed out")
    return ""


@rt("/end", methods=["post"])
async def end(req):
    return {"ended_here": await hub.end(**(await req.json()))}


@rt("/say", methods=["post"])
async def say(text: str):
    for topic in ("feed", "room"):
        await hub.publish(topic, Li(text))
    return {"ok": True}
