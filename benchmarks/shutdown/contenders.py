"""The apps the shutdown benchmark compares (each a module of ``apps/``), in the order of its table."""

from __future__ import annotations

from dataclasses import dataclass

from harness.contenders import Contender, by_key

FAREWELLS = "shutdown,close,restart"  # for apps without a notice of their own: would count anything


@dataclass(frozen=True)
class App(Contender):
    path: str = "/stream"
    notice: str = "shutdown"  # event names that count as the farewell notice
    framework_floor: str = "floor"  # the floor written in the same framework, to compare with


APPS = by_key(
    [
        App(
            "floor",
            "floor_app",
            "floor (raw ASGI)",
            "raw ASGI app: chained signal handler, one asyncio.Event, one pre-encoded farewell",
            marker="s",
        ),
        App(
            "floor_fasthtml",
            "floor_fasthtml_app",
            "floor in FastHTML",
            "FastHTML app whose stream response is the floor's: one asyncio.Event, one farewell",
            marker="s",
            framework_floor="floor_fasthtml",
        ),
        App(
            "graceful_raw",
            "graceful_raw_app",
            "graceful_sse (raw ASGI)",
            "graceful_sse EventStream(hub.subscribe(...)) as the ASGI app, no framework",
        ),
        App(
            "graceful_sse",
            "graceful_app",
            "graceful_sse in FastHTML",
            "FastHTML app, graceful_sse Hub + EventStream (defaults: drain 3 s, exit bound 5 s)",
            framework_floor="floor_fasthtml",
        ),
        App(
            "graceful_granian",
            "graceful_app",
            "graceful_sse in FastHTML, Granian",
            "the same FastHTML app served by granian --interface asgi (one worker, its default loop)",
            marker="P",
            framework_floor="floor_fasthtml",
            server="granian",
        ),
        App(
            "seed",
            "seed_app",
            "seed recipe",
            "FastHTML app, the design document's recipe: SSEBroadcastManager + patched "
            "Server.handle_exit with time.sleep(1.0), event: close",
            marker="^",
            path="/stream_updates",
            notice="close",
            framework_floor="floor_fasthtml",
        ),
        App(
            "sse_starlette",
            "sse_starlette_app",
            "sse-starlette (defaults)",
            "Starlette app, sse_starlette.EventSourceResponse over an asyncio.Queue generator, defaults",
            marker="D",
            notice=FAREWELLS,
        ),
        App(
            "sse_starlette_farewell",
            "sse_starlette_farewell_app",
            "sse-starlette, shutdown_event",
            "the same, with its README's cooperative shutdown: shutdown_event=, shutdown_grace_period=5.0, "
            "the generator yields event: shutdown once the event is set",
            marker="d",
        ),
        App(
            "fastapi_sse",
            "fastapi_sse_app",
            "FastAPI EventSourceResponse",
            "FastAPI path operation, response_class=fastapi.sse.EventSourceResponse, over an asyncio.Queue "
            "generator",
            marker="X",
            notice=FAREWELLS,
        ),
        App(
            "fasthtml",
            "fasthtml_plain_app",
            "FastHTML EventStream",
            "FastHTML app, fasthtml EventStream over a generator that sleeps in a loop",
            marker="v",
            notice=FAREWELLS,
            framework_floor="floor_fasthtml",
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
    "h11",
    "starlette",
    "python-fasthtml",
    "sse-starlette",
    "fastapi",
    "cjm-fasthtml-sse",
    "anyio",
]
