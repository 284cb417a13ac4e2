"""The apps the hub benchmark compares (each a module of ``apps/``), in the order of its tables."""

from __future__ import annotations

from dataclasses import dataclass

from harness.contenders import Contender, by_key


@dataclass(frozen=True)
class App(Contender):
    workers: int = 1
    redis: bool = False  # the hub on Redis (SSE_BROKER_URL), with a key prefix of its own per run
    topics: bool = True  # in the 1,000-topic scenario (the library has per-topic publish)


APPS = by_key(
    [
        App(
            "floor",
            "floor_app",
            "floor (raw ASGI)",
            "raw ASGI: a set of send callables; publish awaits send() of one pre-encoded chunk for each",
            marker="s",
        ),
        App(
            "graceful_sse",
            "graceful_app",
            "graceful_sse in FastHTML",
            "fast_app(lifespan=hub.lifespan); EventStream(hub.subscribe(...)); await hub.publish(...)",
        ),
        App(
            "graceful_redis",
            "graceful_app",
            "graceful_sse in FastHTML, Redis, 2 workers",
            "the same FastHTML app with SSE_BROKER_URL=redis://… under uvicorn --workers 2: the streams "
            "spread over both workers; a publish goes to one and reaches the other's streams through Redis",
            marker="v",
            workers=2,
            redis=True,
            topics=False,
        ),
        App(
            "graceful_granian",
            "graceful_app",
            "graceful_sse in FastHTML, Granian",
            "the same FastHTML app served by granian --interface asgi (one worker, its default loop)",
            marker="P",
            server="granian",
        ),
        App(
            "graceful_starlette",
            "graceful_starlette_app",
            "graceful_sse in Starlette",
            "the same Hub and EventStream in a plain Starlette app",
        ),
        App(
            "seed",
            "seed_app",
            "seed: cjm SSEBroadcastManager",
            "FastHTML route over cjm_fasthtml_sse.SSEBroadcastManager (defaults), the design document's "
            "generator: wait_for(queue.get(), 30), yield sse_message(...)",
            marker="^",
            topics=False,  # its broadcast reaches every connection: no topics
        ),
        App(
            "sse_starlette",
            "sse_starlette_app",
            "sse-starlette + broadcaster",
            "Starlette app: sse_starlette.EventSourceResponse over broadcaster's Broadcast('memory://')",
            marker="D",
        ),
        App(
            "fastapi_sse",
            "fastapi_sse_app",
            "FastAPI EventSourceResponse + broadcaster",
            "FastAPI path operation with response_class=fastapi.sse.EventSourceResponse over "
            "broadcaster's Broadcast('memory://')",
            marker="X",
        ),
    ]
)

# The distributions whose versions the results record.
DISTRIBUTIONS = [
    "graceful-sse",
    "uvicorn",
    "granian",
    "uvloop",
    "httptools",
    "starlette",
    "python-fasthtml",
    "sse-starlette",
    "fastapi",
    "broadcaster",
    "cjm-fasthtml-sse",
    "anyio",
    "redis",
]


def label(key: str) -> str:
    return APPS[key].label if key in APPS else key
