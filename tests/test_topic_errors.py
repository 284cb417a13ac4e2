"""A topic or identity from a request that breaks the rules is the client's mistake: a 400 that
says why, never a 500 with a traceback, in FastHTML, Starlette and FastAPI routes alike.

The routes are written as the README writes them (the topic from the query or the path, the
identity from the request); each app runs in-process under ``SSEClient``, and any exception that
reached the server would fail the test (the client raises what the app raised).
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from fastapi import FastAPI
from fasthtml.common import fast_app
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route

from graceful_sse import EventStream, Hub, InvalidIdentity, InvalidTopic
from graceful_sse.testing import SSEClient, StreamRefused

from asgi import lifecycle

RULE = "a topic is a str of 1 to 200 characters without control characters"
IDENTITY_RULE = "an identity is a str of 1 to 200 characters without control characters"
BAD = {
    "empty": "",
    "too long": "x" * (Hub.MAX_TOPIC_LENGTH + 1),
    "NUL": "a\x00b",
    "CR LF": "a\r\nb",
    "LF": "a\nb",
    "escape": "\x1b[31mred",
    "DEL": "a\x7f",
    "C1 (NEL)": "a\x85b",
}


def _fasthtml(hub: Hub) -> object:
    app, rt = fast_app(default_hdrs=False)

    @rt("/updates")
    def updates(topic: str, user: str = "alice"):  # type: ignore[no-untyped-def]
        return EventStream(hub.subscribe(topic, identity=user))

    @rt("/topics/{topic}")
    def by_path(topic: str):  # type: ignore[no-untyped-def]
        return EventStream(hub.subscribe(topic))

    return app


def _starlette(hub: Hub) -> object:
    def updates(request: Request) -> EventStream:
        query = request.query_params
        return EventStream(hub.subscribe(query["topic"], identity=query.get("user", "alice")))

    def by_path(request: Request) -> EventStream:
        return EventStream(hub.subscribe(request.path_params["topic"]))

    return Starlette(routes=[Route("/updates", updates), Route("/topics/{topic}", by_path)])


def _fastapi(hub: Hub) -> object:
    app = FastAPI()

    @app.api_route("/updates", methods=["GET", "HEAD"])
    def updates(topic: str, user: str = "alice") -> EventStream:
        return EventStream(hub.subscribe(topic, identity=user))

    @app.get("/topics/{topic}")
    def by_path(topic: str) -> EventStream:
        return EventStream(hub.subscribe(topic))

    return app


FRAMEWORKS: dict[str, Callable[[Hub], object]] = {
    "FastHTML": _fasthtml,
    "Starlette": _starlette,
    "FastAPI": _fastapi,
}


# Each request breaks one rule: the topic in the query or in the path, or the identity.
BAD_REQUESTS = [
    *(pytest.param("/updates", {"topic": topic}, RULE, id=f"query {name}") for name, topic in BAD.items()),
    *(
        pytest.param(f"/topics/{topic}", {}, RULE, id=f"path {name}")
        for name, topic in {"LF": "a%0Ab", "NUL": "nul%00", "too long": "x" * 201}.items()
    ),
    *(
        pytest.param("/updates", {"topic": "news", "user": user}, IDENTITY_RULE, id=f"identity {name}")
        for name, user in {"empty": "", "CR LF": "eve\r\nSet-Cookie: x", "too long": "x" * 201}.items()
    ),
]


def _message(framework: str, refused: StreamRefused) -> str:
    # FastAPI answers an HTTPException in JSON; Starlette and FastHTML in plain text.
    text = refused.body.decode()
    return str(json.loads(text)["detail"]) if framework == "FastAPI" else text


@pytest.mark.anyio
@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize(("path", "params", "rule"), BAD_REQUESTS)
async def test_a_bad_topic_or_identity_from_the_request_is_a_400_that_says_why(
    framework: str, path: str, params: dict[str, str], rule: str
) -> None:
    app = FRAMEWORKS[framework](Hub(lifecycle=lifecycle()))
    async with SSEClient(app) as client:  # type: ignore[arg-type]
        with pytest.raises(StreamRefused) as refused:
            async with client.stream(path, params=params):
                pass
    assert refused.value.status == 400
    assert rule in _message(framework, refused.value)


@pytest.mark.anyio
@pytest.mark.parametrize("framework", FRAMEWORKS)
async def test_a_good_topic_still_opens_its_stream(framework: str) -> None:
    app = FRAMEWORKS[framework](Hub(lifecycle=lifecycle()))
    good = {"topic": "news/é", "user": "alice@example.com"}
    async with SSEClient(app) as client:  # type: ignore[arg-type]
        async with client.stream("/updates", params=good) as stream:
            assert stream.status == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
        # HEAD: the status a GET would get, without a stream.
        response = await client.request("HEAD", "/updates", params=good)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")


@pytest.mark.parametrize("topic", BAD.values(), ids=BAD.keys())
def test_publishing_to_a_bad_topic_is_a_clear_value_error_and_reaches_nobody(topic: str) -> None:
    hub = Hub(lifecycle=lifecycle())
    sub = aiter(hub.subscribe("news"))
    with pytest.raises(ValueError, match=RULE) as raised:
        hub.publish_nowait(topic, "x")
    assert isinstance(raised.value, InvalidTopic) and sub.pending == 0
    shown = str(raised.value)
    assert "\n" not in shown and "\r" not in shown and "\x00" not in shown  # safe to log as it is
    assert len(shown) < 200


def test_a_topic_that_is_not_a_string_is_a_value_error_too() -> None:
    hub = Hub(lifecycle=lifecycle())
    for topic in (None, 3, b"news"):
        with pytest.raises(InvalidTopic, match=RULE):
            hub.subscribe(topic)  # type: ignore[arg-type]
    with pytest.raises(InvalidTopic, match="at least one topic"):
        hub.subscribe()


def test_identities_follow_the_topics_rules() -> None:
    hub = Hub(lifecycle=lifecycle())
    for identity in BAD.values():
        with pytest.raises(InvalidIdentity, match=IDENTITY_RULE):
            hub.subscribe("news", identity=identity)
    assert hub.subscribe("news", identity="x" * Hub.MAX_TOPIC_LENGTH).identity == "x" * 200
    error = InvalidIdentity("why")
    assert isinstance(error, ValueError) and error.status_code == 400 and str(error) == "why"
