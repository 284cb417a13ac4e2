"""Clients that send junk, stop halfway, lie about where they were, or vanish: over the wire.

One real uvicorn server (tests/apps/fh_app.py) takes random bytes, truncated requests, any
``Last-Event-ID`` a client can put in a header, and user text full of line breaks; it must never
answer 500, and a witness stream opened before all of it must keep receiving. Clients that stop
reading or vanish without a FIN are found and freed within bounds.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness import APPS, Server, free_port, run_modes, running, stuck_client
from sse_parser import ParsedEvent, SSEParser

pytestmark = pytest.mark.servers

FUZZ = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


class Collector:
    """A stream read on a thread for the whole module: what it received, and whether it still runs."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.parser = SSEParser()
        self.ended: str | None = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._client = httpx.Client(timeout=httpx.Timeout(30, connect=5))
        self._thread.start()

    def _run(self) -> None:
        try:
            with self._client.stream("GET", self.url) as response:
                for text in response.iter_text():
                    with self._lock:
                        self.parser.feed(text)
            self.ended = "the stream ended"
        except (httpx.HTTPError, OSError) as exc:
            self.ended = f"{type(exc).__name__}: {exc}"

    def events(self, type_: str | None = None) -> list[ParsedEvent]:
        with self._lock:
            return [e for e in self.parser.events if type_ is None or e.type == type_]

    def wait_for(self, type_: str, count: int, within: float = 5.0) -> list[ParsedEvent]:
        deadline = time.monotonic() + within
        while len(self.events(type_)) < count:
            assert self.ended is None, self.ended
            assert time.monotonic() < deadline, f"{len(self.events(type_))} {type_!r} events, not {count}"
            time.sleep(0.01)
        return self.events(type_)

    def still_receiving(self) -> None:
        """A new tick arrives: the server still serves this earlier client."""
        self.wait_for("tick", len(self.events("tick")) + 1, within=5.0)

    def close(self) -> None:
        self._client.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    port = free_port()
    log = tmp_path_factory.mktemp("hostile") / "server.log"
    with running(run_modes(port)["uvicorn"], port, log) as srv:
        yield srv
        log = srv.log
        assert " 500 " not in log, log[-3000:]
        # A POST body cut short makes Starlette's form parser raise ClientDisconnect, which uvicorn
        # logs; the client has gone, so nobody gets a 500. Any other exception is a failure.
        exceptions = log.count("Exception in ASGI application")
        assert exceptions == log.count("starlette.requests.ClientDisconnect"), log[-3000:]
        # A stream cut for taking no data has its connection closed under the server, which then
        # drops it as lost: no unfinished response in the log.
        assert "returned without completing response" not in log, log[-3000:]


@contextlib.contextmanager
def collecting(url: str, first: str) -> Iterator[Collector]:
    """A stream read in the background, once its first ``first`` event has come."""
    collector = Collector(url)
    try:
        collector.wait_for(first, 1)
        yield collector
    finally:
        collector.close()


@pytest.fixture(scope="module")
def witness(server: Server) -> Iterator[Collector]:
    with collecting(server.url + "/stream?topic=ticks", "tick") as collector:
        yield collector


def exchange(
    port: int, data: bytes, *, read: float = 2.0, until: tuple[bytes, ...] = (b"\r\n\r\n",)
) -> bytes:
    """Send raw bytes, then read what comes back until one of ``until`` or the time is up; hang up."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        with contextlib.suppress(OSError):
            sock.sendall(data)
        received = b""
        deadline = time.monotonic() + read
        while not any(u in received for u in until) and time.monotonic() < deadline:
            sock.settimeout(max(deadline - time.monotonic(), 0.01))
            try:
                chunk = sock.recv(65536)
            except (TimeoutError, OSError):
                break
            if not chunk:
                break
            received += chunk
        return received


def status(answer: bytes) -> int | None:
    match = re.match(rb"HTTP/1\.[01] (\d{3}) ", answer)
    return int(match[1]) if match else None


def stream_request(path: str, headers: dict[str, bytes] | None = None) -> bytes:
    lines = [f"GET {path} HTTP/1.1".encode(), b"Host: 127.0.0.1", b"Accept: text/event-stream"]
    lines += [name.encode() + b": " + value for name, value in (headers or {}).items()]
    return b"\r\n".join(lines) + b"\r\n\r\n"


def first_events(answer: bytes) -> list[str]:
    """The event types in a chunked stream's first bytes (status updates aside)."""
    body = answer.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in answer else b""
    # Chunk-size lines are noise to an SSE parser only at their own lines: drop them.
    text = re.sub(rb"(?m)^[0-9a-f]+\r\n", b"", body).decode("utf-8", "replace")
    parser = SSEParser()
    parser.feed(text)
    return [e.type for e in parser.events if e.type != "sse-status"]


# -- junk on the wire ------------------------------------------------------------------------------


@FUZZ
@given(junk=st.binary(min_size=1, max_size=4096))
def test_random_bytes_never_get_a_500_and_others_keep_streaming(
    server: Server, witness: Collector, junk: bytes
) -> None:
    answer = exchange(server.port, junk, read=0.5)
    assert status(answer) != 500, answer[:200]


REQUESTS = [
    stream_request("/stream?topic=ticks", {"Last-Event-ID": b"1700000000000-5"}),
    b"POST /say HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
    b"Content-Length: 23\r\n\r\ntext=hello%0D%0Aworld!!",
    b"GET /stats HTTP/1.1\r\nHost: x\r\n\r\n",
]


@FUZZ
@given(which=st.sampled_from(REQUESTS), cut=st.floats(min_value=0.0, max_value=1.0, exclude_max=True))
def test_a_request_cut_anywhere_never_gets_a_500(
    server: Server, witness: Collector, which: bytes, cut: float
) -> None:
    answer = exchange(server.port, which[: int(len(which) * cut)], read=0.2)
    assert status(answer) in (None, 400), answer[:200]


def test_the_witness_kept_streaming_through_the_junk(witness: Collector) -> None:
    witness.still_receiving()


# -- Last-Event-ID from anywhere -------------------------------------------------------------------

# What a header value may hold on the wire: tab, visible ASCII, space, obs-text.
HEADER_BYTES = st.sampled_from([9, *range(0x20, 0x7F), *range(0x80, 0x100)]).map(lambda b: bytes([b]))
LIVE_OR_RESET = (b"event: tick", b"event: reset")
LAST_IDS = st.one_of(
    st.lists(HEADER_BYTES, max_size=300).map(b"".join),
    st.from_regex(rb"\A-?[0-9]{1,30}-[0-9]{1,30}\Z"),  # shaped like ours, from another process or made up
    st.integers(1, 200_000).map(lambda n: b"9" * n),  # huge
    st.sampled_from([b"", b" ", b"0-0", b"-1--1", b"1-1-1", b"\xff\xfe", b"null", b"undefined"]),
)


@FUZZ
@given(last_id=LAST_IDS, in_query=st.booleans())
def test_any_last_event_id_gets_a_stream_with_a_reset_or_live_events_never_a_500(
    server: Server, witness: Collector, last_id: bytes, in_query: bool
) -> None:
    if in_query:
        request = stream_request("/stream?topic=ticks&lastEventId=" + quote(last_id, safe=""))
    else:
        request = stream_request("/stream?topic=ticks", {"Last-Event-ID": last_id})
    answer = exchange(server.port, request, read=3.0, until=LIVE_OR_RESET)
    code = status(answer)
    assert code in (200, 400, 414, 431), answer[:300]  # the server's own limits may say no
    if code == 200:
        assert first_events(answer)[:1] in (["reset"], ["tick"]), answer[:600]


def test_a_megabyte_of_last_event_id_is_refused_or_reset_and_nothing_breaks(
    server: Server, witness: Collector
) -> None:
    request = stream_request("/stream?topic=ticks", {"Last-Event-ID": b"7" * 1_000_000})
    answer = exchange(server.port, request, read=3.0, until=LIVE_OR_RESET)
    assert status(answer) in (None, 200, 400, 431), answer[:300]
    witness.still_receiving()


# -- user text ------------------------------------------------------------------------------------

PIECES = ["\r", "\n", "\r\n", ":", " ", "data: x", "event: shutdown", "id: 1", "retry: 1", "\n\n"]
TEXT = (
    st.lists(st.one_of(st.sampled_from(PIECES), st.characters(blacklist_categories=("Cs",))), max_size=40)
    .map("".join)
    .filter(lambda t: t.strip() != "")  # a form field of blanks only is a missing one to FastHTML
)


@pytest.fixture(scope="module")
def chat(server: Server) -> Iterator[Collector]:
    with collecting(server.url + "/stream?topic=chat&htmx=1", "sse-status") as collector:
        yield collector


@FUZZ
@given(text=TEXT)
def test_user_text_with_any_line_breaks_arrives_as_the_data_of_one_message(
    server: Server, chat: Collector, text: str
) -> None:
    before = len(chat.events("message"))
    response = httpx.post(server.url + "/say", data={"text": text}, timeout=5)
    assert response.status_code == 200, response.text
    received = chat.wait_for("message", before + 1)
    # Line breaks of any kind become LF (EventSource joins data lines with it); nothing else changes.
    assert received[-1].data == re.sub(r"\r\n|\r", "\n", text)
    assert {e.type for e in chat.events()} <= {"message", "sse-status"}, "no event was injected"


# -- clients that stop reading, and clients that vanish -------------------------------------------


def stats(server: Server) -> dict[str, int]:
    return httpx.get(server.url + "/stats", timeout=5).json()  # type: ignore[no-any-return]


def wait_until(predicate: object, within: float) -> float:
    start = time.monotonic()
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() - start < within, f"not within {within} s"
        time.sleep(0.1)
    return time.monotonic() - start


def test_a_client_that_never_reads_is_cut_after_the_send_timeout_and_others_go_on(
    server: Server, witness: Collector
) -> None:
    before = stats(server)["streams"]
    sock = stuck_client(server.port, "/firehose?send_timeout=1")
    try:
        wait_until(lambda: stats(server)["streams"] == before + 1, 5)
        freed = wait_until(lambda: stats(server)["streams"] == before, 15)
        assert "took no data for 1.0 s; ending its stream" in server.log
        witness.still_receiving()
    finally:
        sock.close()
    assert freed < 15


HALF_OPEN = APPS / "half_open.py"


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("ip") is None,
    reason="needs root and unshare/ip to make a network namespace where a client can vanish",
)
@pytest.mark.parametrize("bound", ["tcp_retries2", "tcp_user_timeout"])
def test_a_client_that_vanishes_without_a_fin_is_found_by_the_heartbeat(bound: str, tmp_path: Path) -> None:
    """In a network namespace of its own, a client's address disappears under an idle stream.

    Only the heartbeat puts bytes in flight; the kernel gives up on them after its retransmission
    bound (here lowered: tcp_retries2=4, or TCP_USER_TIMEOUT=3 s on the listening socket), the
    server sees the connection lost, and the stream is freed.
    """
    result = subprocess.run(
        ["unshare", "--net", sys.executable, str(HALF_OPEN), bound, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["streams_before"] == 1 and outcome["streams_after"] == 0, outcome
    assert outcome["seconds"] < 20, outcome
