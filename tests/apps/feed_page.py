"""What the browser tests' pages share (page_app.py, htmx4_app.py): the page, a status indicator
and a feed its stream appends to, and the routes the tests drive it with."""

import os

from fasthtml.common import H1, Li, Main, Title, Ul

from graceful_sse import EventStream, SSEStatus, SSEStream, last_event_id


def add_feed(rt, hub, title, *above_feed, stats=dict, **stream):
    """``/`` (the page: ``title``, the indicator, ``above_feed``, the feed; ``stream``:
    SSEStream's options), ``/feed`` (its stream), ``/publish?text=`` (an item for the feed: its
    id and how many streams it reached) and ``/stats`` (open streams, the Last-Event-IDs clients
    came back with, and what ``stats()`` adds)."""
    resumed_from = []

    @rt("/")
    def index():
        feed = SSEStream("/feed", Ul(id="feed"), target="#feed", swap="beforeend", **stream)
        return Title(title), Main(H1("Feed"), SSEStatus(), *above_feed, feed)

    @rt("/feed")
    def feed(req):
        last = last_event_id(req.scope)
        if last is not None:
            resumed_from.append(last)
        return EventStream(hub.subscribe("feed"))

    @rt("/publish")
    async def publish(text: str):
        return {"delivered": await hub.publish("feed", Li(text, cls="msg")), "id": hub.last_id}

    @rt("/stats")
    def show_stats():
        return {
            "pid": os.getpid(),
            "streams": hub.lifecycle.open_streams,
            "resumed_from": resumed_from,
            **stats(),
        }
