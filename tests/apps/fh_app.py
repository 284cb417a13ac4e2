"""The app the run-mode tests serve, written the way a FastHTML user writes one.

Module-level hub, its lifespan in ``fast_app(lifespan=...)``, and ``serve()`` at the bottom, so that
``python fh_app.py`` runs it through FastHTML's ``serve()`` (uvicorn with reload) and
``uvicorn fh_app:app`` (and every other server) imports the same module.
"""

import asyncio
import contextlib
import ctypes
import os
import threading
import time

from fasthtml.common import P, fast_app, serve

from graceful_sse import EventStream, Hub, Lifecycle, Limits


def private_needs_the_key(request, topic):
    """Topics named private-* need the header X-Key: sesame (the others are public)."""
    return not topic.startswith("private") or request.headers.get("x-key") == "sesame"


def client_header_or_address(scope):
    """The X-Client header when a test sends one (many clients share 127.0.0.1), else the address."""
    for name, value in scope["headers"]:
        if name == b"x-client":
            return value.decode("latin-1")
    return scope["client"][0] if scope.get("client") else ""


hub = Hub(
    lifecycle=Lifecycle(
        drain_timeout=float(os.environ.get("SSE_TEST_DRAIN", "3")),
        exit_timeout=float(os.environ.get("SSE_TEST_EXIT", "5")),
    ),
    authorize=private_needs_the_key,
)
capped = Limits(max_connections=4, max_per_client=2, retry_after=4, client_key=client_header_or_address)
# harness.LIFESPAN_DONE: the tests look for it in the log.
LIFESPAN_DONE = "test app: lifespan shutdown complete (hub stopped)"


async def lifespan(app):
    """``hub.lifespan``, and a line once it has run to its end (the hub's backend stopped)."""
    async for _ in hub.lifespan(app):  # FastHTML iterates a lifespan as an async generator
        yield
    print(LIFESPAN_DONE, flush=True)


app, rt = fast_app(lifespan=lifespan, default_hdrs=False)


@hub.producer(every=0.5)
async def tick():
    await hub.publish("ticks", {"pid": os.getpid()}, event="tick")


@rt("/stream")
def stream(topic: str = "updates", heartbeat: float = 15.0):
    return EventStream(hub.subscribe(topic), heartbeat=heartbeat)


@rt("/capped")
def capped_stream(topic: str = "ticks"):
    """At most 4 streams, 2 per client (503, Retry-After: 4)."""
    return EventStream(hub.subscribe(topic), limits=capped)


@rt("/say", methods=["post"])
async def say(text: str, topic: str = "chat"):
    """User text, published as it came (the hub sends it as data, whatever it holds)."""
    return {"id": await hub.publish(topic, text)}


@rt("/gen")
def gen():
    async def numbers():
        n = 0
        while True:
            n += 1
            yield P(f"number {n}")
            await asyncio.sleep(0.2)

    return EventStream(numbers())


@rt("/answer")
def answer(tokens: int = 30, every: float = 0.1, finish: float = 0.0):
    """A finite answer, token by token (an LLM's): given ``finish`` s to complete at a shutdown."""

    async def token_by_token():
        for n in range(tokens):
            yield f"data: token {n}\n\n"
            await asyncio.sleep(every)

    return EventStream(token_by_token(), finish=finish)


@rt("/firehose")
def firehose(send_timeout: float = 0.0):
    """64 KiB events as fast as the client takes them: a client that never reads blocks it at once."""

    async def chunks():
        block = "x" * 65536
        while True:
            yield block
            await asyncio.sleep(0)

    return EventStream(chunks(), send_timeout=send_timeout or None)


# -- app code that misbehaves at shutdown (tests/test_misbehaving_apps.py) ---------------------


@rt("/stubborn")
def stubborn():
    """An async generator that swallows its cancellation and goes on forever."""

    async def ticks():
        while True:
            try:
                await asyncio.sleep(30)
                yield "tick"
            except BaseException:  # swallowing cancellation is the misbehaviour under test
                pass

    return EventStream(ticks())


@rt("/blocking")
def blocking():
    """A sync generator (run in the threadpool) that blocks its thread between items."""

    def ticks():
        while True:
            yield "tick"
            time.sleep(30)

    return EventStream(ticks())


@rt("/fails")
def fails():
    """A generator that raises after its first event: the log must say what it raised."""

    async def ticks():
        yield "tick"
        raise RuntimeError("boom-detail-42")

    return EventStream(ticks())


@rt("/block-loop")
async def block_loop(seconds: float = 20.0):
    """An ``async def`` route that blocks the event loop (a sync call where an await belonged)."""
    time.sleep(seconds)  # noqa: ASYNC251 - the misbehaviour under test
    return {"blocked": seconds}


if os.environ.get("SSE_TEST_HOLD_GIL"):

    def hold_the_gil_once_draining() -> None:
        """Native code that takes the GIL and never lets go, once the drain has begun."""
        while not hub.lifecycle.draining:
            time.sleep(0.05)
        ctypes.PyDLL(None).sleep(60)  # PyDLL keeps the GIL through the call

    threading.Thread(target=hold_the_gil_once_draining, daemon=True).start()


if os.environ.get("SSE_TEST_STUBBORN_PRODUCER"):

    @hub.producer
    async def stubborn_producer():
        while True:
            with contextlib.suppress(BaseException):  # swallows its cancellation
                await asyncio.sleep(30)


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
    return {
        "pid": os.getpid(),
        "streams": hub.lifecycle.open_streams,
        "hub": hub.connections(),
        "capped": capped.open_streams,
        "refused": capped.refused,
    }


serve()
