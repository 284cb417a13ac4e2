"""The floor: a raw ASGI app that keeps the open streams' ``send`` callables in a set and, on
publish, writes one pre-encoded chunk to each, in a loop, and nothing else.

No queue, no task per event, no heartbeat, no protection against a client that does not read
(its ``send`` blocks once uvicorn pauses writing, and with it the loop): the least a fan-out
through uvicorn can cost.
"""

import time

from _common import payload, probe, query_int, result, rss

from harness.asgi import lifespan, send_json

HEADERS = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
FIRST = {"type": "http.response.body", "body": b": connected\n\n", "more_body": True}

clients: set = set()


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        await lifespan(receive, send)
        return
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
        await send(FIRST)
        clients.add(send)
        try:
            while (await receive())["type"] != "http.disconnect":
                pass
        finally:
            clients.discard(send)
    elif path == "/publish":
        query = scope["query_string"]
        data, stamp = payload(query_int(query, "seq", 0), query_int(query, "size", 64))
        started = time.perf_counter()
        message = {"type": "http.response.body", "body": f"data: {data}\n\n".encode(), "more_body": True}
        for client in list(clients):
            await client(message)
        await send_json(send, result(len(clients), stamp, started))
    elif path == "/rss":
        await send_json(send, rss(b"gc=1" in scope["query_string"]))
    elif path == "/health":
        await send_json(send, probe())
    else:
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})
