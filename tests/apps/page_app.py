"""The page the browser tests load: a status indicator, a feed, and controls for the tests.

Environment: PAGE_HTMX (2 or 4), PAGE_MONITOR (0 leaves our script out), PAGE_SHARED (1: one
connection for all tabs), PAGE_MAX_ATTEMPTS (the monitor's give-up limit), PAGE_DEFAULT_HDRS (1:
FastHTML's default headers, with htmx from its CDN), PAGE_MAX_STREAMS and PAGE_RETRY_AFTER (a cap
on open streams, answered 503), PAGE_MEMBERS_ONLY (1: the feed needs the cookie member=yes, 403).
"""

import os

from fasthtml.common import Link, fast_app, serve
from feed_page import add_feed

from graceful_sse import Hub, Limits, SSEScripts, sse_assets

HTMX = int(os.environ.get("PAGE_HTMX", "2"))
MONITOR = os.environ.get("PAGE_MONITOR", "1") == "1"
SHARED = os.environ.get("PAGE_SHARED", "0") == "1"
MAX_ATTEMPTS = int(os.environ.get("PAGE_MAX_ATTEMPTS", "10"))
DEFAULT_HDRS = os.environ.get("PAGE_DEFAULT_HDRS", "0") == "1"  # FastHTML's own htmx (CDN) and more
MAX_STREAMS = int(os.environ.get("PAGE_MAX_STREAMS", "0")) or None
MEMBERS_ONLY = os.environ.get("PAGE_MEMBERS_ONLY", "0") == "1"


def members_only(request, topic):
    return not MEMBERS_ONLY or request.cookies.get("member") == "yes"


limits = Limits(max_connections=MAX_STREAMS, retry_after=int(os.environ.get("PAGE_RETRY_AFTER", "5")))
hub = Hub(limits=limits, authorize=members_only)
app, rt = fast_app(
    default_hdrs=DEFAULT_HDRS,
    hdrs=(
        *SSEScripts(htmx=HTMX, monitor=MONITOR, include_htmx=not DEFAULT_HDRS),
        Link(rel="icon", href="data:,"),
    ),
    lifespan=hub.lifespan,
    routes=[sse_assets()],
)
add_feed(
    rt,
    hub,
    "graceful-sse test page",
    htmx=HTMX,
    shared=SHARED,
    max_attempts=MAX_ATTEMPTS,
    stats=lambda: {"refused": limits.refused},
)

serve()
