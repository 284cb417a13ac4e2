"""The seed's broadcast manager: ``cjm_fasthtml_sse``'s ``SSEBroadcastManager`` behind a FastHTML route.

The package documents the manager's API (``register_connection``, ``unregister_connection``,
``broadcast``) but ships no endpoint; the endpoint is the one of the project's design document
(section 2, the recipe the project's users follow), without its shutdown handling (the shutdown
benchmark measures that): register a queue, wait on it with ``asyncio.wait_for(queue.get(),
timeout=30.0)`` (a heartbeat comment on timeout), ``yield sse_message(...)`` per message, and
unregister in ``finally``; FastHTML's ``EventStream`` sends it. The manager has its default
arguments (``max_queue_size=100, history_size=50, default_timeout=0.1``).

The manager has no topics (``broadcast`` puts every message in every connection's queue), so
this app is not in the 1,000-topic scenario: ``publish`` ignores the topic it is given.
"""

import asyncio
from datetime import datetime

from _fasthtml_routes import add_bench_routes
from cjm_fasthtml_sse.core import SSEBroadcastManager
from fasthtml.common import EventStream, fast_app, sse_message

sse_manager = SSEBroadcastManager()
app, rt = fast_app()


@rt("/stream")
async def stream():
    async def update_stream():
        queue = await sse_manager.register_connection()
        try:
            yield f": Connected to updates (active connections: {sse_manager.connection_count})\n\n"
            while True:
                try:
                    message = await asyncio.wait_for(queue.get(), timeout=30.0)
                    if message.get("type") == "bench":
                        yield sse_message(message["data"]["payload"])
                except TimeoutError:
                    yield f": heartbeat {datetime.now().isoformat()}\n\n"
        finally:
            await sse_manager.unregister_connection(queue)

    return EventStream(update_stream())


async def publish(topic, data):
    return await sse_manager.broadcast("bench", {"payload": data})


add_bench_routes(rt, publish)
