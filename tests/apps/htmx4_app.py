"""An htmx 4 page the way FastHTML writes one: ``fast_app(htmx4=True, exts="sse4")``.

FastHTML's headers then load htmx 4 and hx-sse from a CDN and set htmx's ``metaCharacter`` to
``-`` (``hx-sse-connect``, ``htmx-sse-error``); SSEScripts adds only our monitor and styles. The
tests answer the CDN from copies of the same files (tests/apps/cdn/).

Environment: HTMX4_SHARED (1: one connection for all tabs), HTMX4_FASTHTML (0: no FastHTML
headers, our vendored htmx 4 with its own defaults instead).

The page: a status indicator, a feed (``#feed``, each event appended), and ``#latest``, which an
event with ``hx-partial`` elements updates together with the feed.
"""

import os

from fasthtml.common import Div, Li, Link, Span, fast_app, ft_hx, serve
from feed_page import add_feed

from graceful_sse import Hub, SSEScripts, sse_assets

SHARED = os.environ.get("HTMX4_SHARED", "0") == "1"
FASTHTML = os.environ.get("HTMX4_FASTHTML", "1") == "1"

hub = Hub()
scripts = SSEScripts(htmx=4, include_htmx=not FASTHTML, include_extension=not FASTHTML)
app, rt = fast_app(
    htmx4=FASTHTML,
    exts="sse4" if FASTHTML else None,
    default_hdrs=FASTHTML,
    hdrs=(*scripts, Link(rel="icon", href="data:,")),
    lifespan=hub.lifespan,
    routes=[sse_assets()],
)
add_feed(
    rt,
    hub,
    "graceful-sse htmx 4 page",
    Div("nothing yet", id="latest"),
    htmx=4,
    meta_character="-" if FASTHTML else ":",
    shared=SHARED,
)


@rt("/publish-both")
async def publish_both(text: str):
    """One event, two targets: appended to the feed and shown as the latest (htmx 4's hx-partial)."""
    update = (
        ft_hx("hx-partial", Li(text, cls="msg"), hx_target="#feed", hx_swap="beforeend"),
        ft_hx("hx-partial", Span(text), hx_target="#latest"),
    )
    return {"delivered": await hub.publish("feed", update), "id": hub.last_id}


serve()
