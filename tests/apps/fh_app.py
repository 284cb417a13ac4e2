"""The app the run-mode tests serve, written the way a FastHTML user writes one.

Module-level hub, ``fast_app(lifespan=hub.lifespan)``, and ``serve()`` at the bottom, so that
``python fh_app.py`` runs it through FastHTML's ``serve()`` (uvicorn with reload) and
``uvicorn fh_app:app`` (and every other server) imports the same module.
"""

import asyncio
import os

from fasthtml.common import P, fast_app, serve

from graceful_sse import EventStream, Hub, Lifecycle

hub = Hub(
    lifecycle=Lifecycle(
        drain_timeout=float(os.environ.get("SSE_TEST_DRAIN", "3")),
        exit_timeout=float(os.environ.get("SSE_TEST_EXIT", "5")),
    )
)
app, rt = fast_app(lifespan=hub.lifespan, default_hdrs=False)


@hub.producer(every=0.5)
async def tick():
    await hub.publish("ticks", {"pid": os.getpid()}, event="tick")


@rt("/stream")
def stream(topic: str = "updates"):
    return EventStream(hub.subscribe(topic))


@rt("/gen")
def gen():
    async def numbers():
        n = 0
        while True:
            n += 1
            yield P(f"number {n}")
            await asyncio.sleep(0.2)

    return EventStream(numbers())


@rt("/firehose")
def firehose():
    """64 KiB events as fast as the client takes them: a client that never reads blocks it at once."""

    async def chunks():
        block = "x" * 65536
        while True:
            yield block
            await asyncio.sleep(0)

    return EventStream(chunks())


@rt("/publish")
async def publish(topic: str = "updates", size: int = 10, count: int = 1):
    n = 0
    for _ in range(count):
        n = await hub.publish(topic, "x" * size)
    return {"delivered": n, "pid": os.getpid()}


@rt("/shutdown", methods=["post"])
async def shutdown(kind: str = "stop"):
    report = await hub.lifecycle.shutdown(kind)
    return {"told": report.told, "took": report.took, "late": report.late}


@rt("/reopen", methods=["post"])
def reopen():
    hub.lifecycle.reopen()
    return {"ok": True}


@rt("/stats")
def stats():
    return {"pid": os.getpid(), "streams": hub.lifecycle.open_streams, "hub": hub.connections()}


serve()
