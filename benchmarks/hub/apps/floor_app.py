"""The floor: a raw ASGI app that keeps the open streams' ``send`` callables in a dict, topic ->
set, and, on publish, writes one pre-encoded chunk to each stream of the topic, in a loop, and
nothing else.

No queue, no task per event, no heartbeat, no protection against a client that does not read
(its ``send`` blocks once uvicorn pauses writing, and with it the loop): the least a fan-out
through uvicorn can cost.
"""

from urllib.parse import parse_qs

from _common import TOPIC, probe, query_int, rss, timed_publish, timed_publish_each

from harness.asgi import lifespan, send_json

HEADERS = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
FIRST = {"type": "http.response.body", "body": b": connected\n\n", "more_body": True}

topics: dict[str, set] = {}


async def publish(topic, data):
    clients = topics.get(topic, ())
    message = {"type": "http.response.body", "body": f"data: {data}\n\n".encode(), "more_body": True}
    for client in list(clients):
        await client(message)
    return len(clients)


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        await lifespan(receive, send)
        return
    if scope["type"] != "http":
        return
    path, query = scope["path"], scope["query_string"]
    if path == "/stream":
        topic = parse_qs(query.decode()).get("topic", [TOPIC])[0]
        await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
        await send(FIRST)
        clients = topics.setdefault(topic, set())
        clients.add(send)
        try:
            while (await receive())["type"] != "http.disconnect":
                pass
        finally:
            clients.discard(send)
            if not clients:
                del topics[topic]
    elif path == "/publish":
        answer = await timed_publish(publish, query_int(query, "seq", 0), query_int(query, "size", 64))
        await send_json(send, answer)
    elif path == "/publish_each":
        count, base = query_int(query, "count", 1000), query_int(query, "base", 0)
        await send_json(send, await timed_publish_each(publish, base, count, query_int(query, "size", 64)))
    elif path == "/rss":
        await send_json(send, rss(b"gc=1" in query))
    elif path == "/health":
        await send_json(send, probe())
    else:
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})
