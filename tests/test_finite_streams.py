"""Finite streams finish at a shutdown: an answer in flight completes, then the process goes.

In-process first (the drain's rules with a lifecycle we drive), then over the wire: a real
server in each run mode where the server lets responses complete, real signals, a client that
counts tokens. An "answer" is the app's generator yielding ``TOKENS`` tokens ``EVERY`` s apart.
Last, the modes where no signal comes or the wire differs: a worker recycled at its request
limit, a notebook's ``stop()``, HTTP/2 (the raw frame reader of ``h2_client``, which sees the
GOAWAY and each stream's end).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from h2_client import H2Connection, open_h2_streams

from graceful_sse import EventStream, Hub, Lifecycle, ShutdownReport
from graceful_sse._drain import KindName

from asgi import Client, lifecycle, serve
from harness import (
    FORBIDDEN_LOG_LINES,
    H2_IDS,
    H2_SERVERS,
    LIFESPAN_DONE,
    Server,
    Stream,
    busy_machine,
    free_port,
    notebook,
    open_streams,
    pass_the_limit,
    recycling,
    run_modes,
    running,
    wait_pid_gone,
    worker_pid,
)
from sse_parser import ParsedEvent

TOKENS = 30
EVERY = 0.1  # tokens every 100 ms: a 3 s answer


async def answer(tokens: int = TOKENS, every: float = EVERY) -> AsyncIterator[str]:
    for n in range(tokens):
        yield f"data: token {n}\n\n"
        await asyncio.sleep(every)


def tokens(client: Client) -> list[str]:
    return [e.data for e in client.parser.events if e.type == "message"]


def farewells(client: Client) -> list[str]:
    return [e.type for e in client.parser.events if e.type in ("shutdown", "restart")]


async def shut_down_mid_answer(
    lc: Lifecycle, source: AsyncIterator[str], kind: KindName = "stop", **stream: Any
) -> tuple[Client, ShutdownReport]:
    """Serve ``source`` as an ``EventStream``, shut down once its first token is out, let it end."""
    client = Client()
    async with lc.lifespan():
        task = serve(EventStream(source, lifecycle=lc, **stream), client)
        await client.got("message")
        report = await lc.shutdown(kind)
        await task
    return client, report


# -- the drain's rules, in-process -------------------------------------------------------------


@pytest.mark.parametrize("kind", ["stop", "restart"])
@pytest.mark.anyio
async def test_an_answer_in_flight_finishes_with_a_clean_end_and_no_farewell(kind: str) -> None:
    client, report = await shut_down_mid_answer(lifecycle(), answer(10, 0.02), kind, finish=5.0)  # type: ignore[arg-type]
    assert tokens(client) == [f"token {n}" for n in range(10)]
    assert farewells(client) == [] and client.ended
    assert (report.told, report.finishing, report.finished, report.took) == (1, 1, 1, 0)
    assert "1 of 1 finishing finished" in report.describe()


@pytest.mark.anyio
async def test_an_answer_longer_than_its_finish_time_gets_the_farewell_when_the_time_runs_out() -> None:
    client, report = await shut_down_mid_answer(lifecycle(), answer(100, 0.02), "restart", finish=0.3)
    got = tokens(client)
    assert 5 < len(got) < 100, "it went on for its finish time, then was told"
    assert got == [f"token {n}" for n in range(len(got))]
    assert farewells(client) == ["restart"] and client.ended
    assert (report.finishing, report.finished, report.out_of_time, report.took) == (1, 0, 1, 1)
    assert "0 of 1 finishing finished (1 ran out of time)" in report.describe()
    assert report.seconds < 0.3 + 1.0


@pytest.mark.anyio
async def test_subscriptions_and_streams_without_a_finish_time_are_told_at_once() -> None:
    hub = Hub()
    lc = hub.lifecycle
    answer_client, sub_client, plain_client = Client(), Client(), Client()
    async with hub.lifespan():
        tasks = [
            serve(EventStream(answer(40, 0.02), finish=5.0, lifecycle=lc), answer_client),
            serve(EventStream(hub.subscribe("news")), sub_client),
            serve(EventStream(answer(1000, 0.02), lifecycle=lc), plain_client),
        ]
        for client in (answer_client, sub_client, plain_client):
            await client.opened.wait()
        shutdown = asyncio.create_task(lc.shutdown("stop"))
        await asyncio.wait_for(asyncio.gather(*tasks[1:]), 1.0)
        assert not answer_client.ended, "the answer is still streaming while the others have ended"
        report = await shutdown
        await tasks[0]
    assert farewells(sub_client) == ["shutdown"] and farewells(plain_client) == ["shutdown"]
    assert len(tokens(answer_client)) == 40 and farewells(answer_client) == []
    assert (report.told, report.finishing, report.finished, report.took) == (3, 1, 1, 2)


@pytest.mark.anyio
async def test_the_lifecycle_sets_a_default_finish_time_for_generator_streams() -> None:
    client, report = await shut_down_mid_answer(lifecycle(finish=5.0), answer(10, 0.02))
    assert len(tokens(client)) == 10 and farewells(client) == []
    assert report.finished == 1


@pytest.mark.anyio
async def test_a_client_leaving_while_its_answer_finishes_does_not_hold_the_drain() -> None:
    lc, client = lifecycle(), Client()
    async with lc.lifespan():
        task = serve(EventStream(answer(1000, 0.02), finish=30.0, lifecycle=lc), client)
        await client.got("message")
        shutdown = asyncio.create_task(lc.shutdown("stop"))
        await asyncio.sleep(0.1)
        client.left.set()
        report = await asyncio.wait_for(shutdown, 2.0)
        await task
    assert (report.finishing, report.finished, report.gone) == (1, 0, 1)


def test_finish_is_refused_where_it_cannot_apply() -> None:
    with pytest.raises(ValueError, match="hub subscription"):
        EventStream(Hub().subscribe("news"), finish=10.0)
    with pytest.raises(ValueError, match="finish"):
        EventStream(answer(), finish=-1.0)
    with pytest.raises(ValueError, match="finish"):
        lifecycle(finish=-1.0)


# -- over the wire: real servers, real signals -------------------------------------------------

# Where the server lets a response in flight complete, with the exit bound it keeps. Hypercorn
# cancels what is open after its graceful_timeout (3 s by default), so finishing is capped there.
FINISH_MODES = list(run_modes(0))
ANSWER = f"/answer?tokens={TOKENS}&every={EVERY}"
FINISH = 20.0  # ample for the 2 s left of the answer: it ends by itself, well before
EXIT_BOUND = FINISH + 5.0  # the longest finish time, plus the app's exit_timeout
TOLD_WITHIN = 3.0  # a subscription's farewell, "at once" on a loaded machine (a restart settles 0.5 s)
EVERY_TOKEN = [f"token {n}" for n in range(TOKENS)]


@pytest.fixture
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    """The test app in the run mode named by ``request.param`` (a name, or a name and extra argv)."""
    name, extra = (request.param, []) if isinstance(request.param, str) else request.param
    port = free_port()
    mode = run_modes(port)[name]
    mode.argv += extra
    with running(mode, port, tmp_path / "server.log") as started:
        yield started


def token_data(events: list[ParsedEvent]) -> list[str]:
    return [e.data for e in events if e.type == "message"]


async def _until(condition: Callable[[], bool], within: float) -> bool:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


async def _told_while_it_answers(tasks: list[asyncio.Task[None]]) -> bool:
    """The subscription (``tasks[1]``) has its farewell and has ended while the answer goes on."""
    await asyncio.wait([tasks[1]], timeout=TOLD_WITHIN)
    return tasks[1].done() and not tasks[0].done()


async def _answer_beside_a_subscription(
    server: Server, finish: float, send_signal: str, after: float = 1.0
) -> tuple[list, float | None]:  # type: ignore[type-arg]
    urls = [f"{server.url}{ANSWER}&finish={finish}", server.url + "/stream"]
    async with open_streams(urls) as (streams, tasks):
        await asyncio.sleep(after)
        start = time.monotonic()
        getattr(server, send_signal)()
        await asyncio.wait_for(asyncio.gather(*tasks), finish + 10)
        exited = await asyncio.to_thread(server.wait_exit, finish + 10)
        return streams, (time.monotonic() - start) if exited else None


def assert_the_answer_came_whole(answer_stream: Stream, log: str) -> None:
    """Every token, in order, then a clean end with no farewell: what the page would show."""
    assert answer_stream.clean_end, (answer_stream.error, log[-3000:])
    assert token_data(answer_stream.events) == EVERY_TOKEN, (token_data(answer_stream.events), log[-3000:])
    assert answer_stream.names()[-1] == "message", ("a finished answer needs no farewell", log[-3000:])


def assert_a_clean_log(log: str) -> None:
    for line in (*FORBIDDEN_LOG_LINES, "Traceback", "exiting now"):
        assert line not in log, log[-3000:]


@pytest.mark.servers
@pytest.mark.parametrize("server", FINISH_MODES, indirect=True)
def test_a_deploy_lets_the_answer_in_flight_finish(server: Server) -> None:
    streams, seconds = asyncio.run(_answer_beside_a_subscription(server, FINISH, "sigterm_main"))
    log = server.log
    answer_stream, sub = streams
    assert_the_answer_came_whole(answer_stream, log)
    assert sub.clean_end and sub.names()[-1] == "restart", (sub.names()[-3:], log[-3000:])
    assert seconds is not None and seconds < EXIT_BOUND, log[-3000:]
    for line in FORBIDDEN_LOG_LINES:
        assert line not in log, log[-3000:]
    assert "finishing finished" in log, log[-3000:]


@pytest.mark.servers
@pytest.mark.parametrize("server", ["uvicorn", "serve()", "gunicorn"], indirect=True)
def test_an_answer_longer_than_its_finish_time_gets_the_farewell_then(server: Server) -> None:
    (answer_stream, sub), seconds = asyncio.run(
        _answer_beside_a_subscription(server, 1.0, "sigterm_main", after=0.5)
    )
    log = server.log
    got = token_data(answer_stream.events)
    assert 5 < len(got) < TOKENS, (got, log[-3000:])
    assert got == EVERY_TOKEN[: len(got)], "in order, none lost"
    assert answer_stream.clean_end and answer_stream.names()[-1] == "restart", log[-3000:]
    assert sub.names()[-1] == "restart"
    assert seconds is not None and seconds < 1.0 + 5.0, log[-3000:]
    assert "0 of 1 finishing finished" in log or "0 of 2 finishing finished" in log, log[-3000:]


async def _ctrl_c_twice(server: Server) -> tuple[list, float | None]:  # type: ignore[type-arg]
    urls = [f"{server.url}/answer?tokens=1000&every=0.1&finish=60", server.url + "/stream"]
    async with open_streams(urls) as (streams, tasks):
        start = time.monotonic()
        server.sigint_group()
        await asyncio.sleep(1.0)  # the subscription has its farewell; the answer goes on
        assert not tasks[0].done()
        server.sigint_group()
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 10)
        exited = await asyncio.to_thread(server.wait_exit, 10)
        return streams, (time.monotonic() - start) if exited else None


@pytest.mark.servers
@pytest.mark.parametrize("server", ["uvicorn", "serve()", "gunicorn"], indirect=True)
def test_a_second_ctrl_c_ends_the_wait_for_finishing_streams_at_once(server: Server) -> None:
    (_, sub), seconds = asyncio.run(_ctrl_c_twice(server))
    log = server.log
    assert sub.names()[-1] == "shutdown", log[-3000:]
    assert seconds is not None and seconds < 1.0 + 5.0, ("60 s of finish time, cut short", log[-3000:])
    assert "second SIGINT" in log, log[-3000:]


@pytest.mark.servers
def test_answers_finish_through_a_deploy_on_a_busy_machine(tmp_path: Path) -> None:
    """Deploys beside CPU burners (3; FINISH_SOAK_RUNS=50 for a soak): every token, in order, a clean end."""
    with busy_machine():
        for attempt in range(int(os.environ.get("FINISH_SOAK_RUNS", "3"))):
            port = free_port()
            with running(run_modes(port)["uvicorn"], port, tmp_path / f"server-{attempt}.log") as server:
                (answer_stream, sub), seconds = asyncio.run(
                    _answer_beside_a_subscription(server, FINISH, "sigterm_main")
                )
                log = server.log
            assert_the_answer_came_whole(answer_stream, f"attempt {attempt}: {log}")
            assert sub.names()[-1] == "restart", (attempt, log[-3000:])
            assert seconds is not None and seconds < EXIT_BOUND


async def _long_answer(server: Server) -> tuple[list, float | None]:  # type: ignore[type-arg]
    async with open_streams([f"{server.url}/answer?tokens=1000&every=0.1&finish=60"]) as (streams, tasks):
        start = time.monotonic()
        server.sigterm_main()
        await asyncio.wait_for(asyncio.gather(*tasks), 15)
        exited = await asyncio.to_thread(server.wait_exit, 15)
        return streams, (time.monotonic() - start) if exited else None


@pytest.mark.servers
@pytest.mark.parametrize(
    "server",
    [("hypercorn", []), ("uvicorn", ["--timeout-graceful-shutdown", "3"])],
    ids=["hypercorn graceful_timeout 3 s (its default)", "uvicorn --timeout-graceful-shutdown 3"],
    indirect=True,
)
def test_a_server_graceful_timeout_caps_finishing_and_the_farewell_still_arrives(server: Server) -> None:
    """The server cancels what is open that long after its shutdown begins: the farewell comes first."""
    (answer_stream,), seconds = asyncio.run(_long_answer(server))
    log = server.log
    assert answer_stream.clean_end and answer_stream.names()[-1] == "restart", log[-3000:]
    assert seconds is not None and seconds < 3.0 + 2.0, log[-3000:]
    for line in FORBIDDEN_LOG_LINES:
        assert line not in log, log[-3000:]


# -- worker recycling: the server stops listening at its request limit, with no signal ----------

# The worker's request limit: the harness's ready check, the pid, the two streams, then ours reach it.
LIMIT = 10


async def _recycle_mid_answer(server: Server) -> tuple[list[Stream], list[int], bool]:
    """An answer and a subscription open, then plain requests until the worker stops taking them."""
    urls = [f"{server.url}{ANSWER}&finish={FINISH}", server.url + "/stream"]
    async with open_streams(urls) as (streams, tasks):
        await asyncio.sleep(0.5)  # the answer is under way when another user's request hits the limit
        # Beside the subscription's farewell: past the limit, gunicorn's next request waits in the
        # listen backlog (until pass_the_limit gives up) for a worker that starts once this one is gone.
        requests = asyncio.create_task(pass_the_limit(server, LIMIT))
        told = await _told_while_it_answers(tasks)
        answered = await requests
        await asyncio.wait_for(asyncio.gather(*tasks), FINISH + 10)
        return streams, answered, told


@pytest.mark.servers
@pytest.mark.parametrize("name", ["uvicorn", "gunicorn"])
def test_a_recycled_worker_lets_the_answer_in_flight_finish(name: str, tmp_path: Path) -> None:
    """The request that hits the limit is answered, the answer streaming meanwhile arrives whole, a
    subscription is told at once (restart), and the worker goes once the answer is done."""
    port = free_port()
    with running(recycling(run_modes(port)[name], LIMIT), port, tmp_path / "server.log") as server:
        old_pid = worker_pid(server)
        (answer_stream, sub), answered, told = asyncio.run(_recycle_mid_answer(server))
        if name == "uvicorn":  # nothing restarts it: a supervisor would
            server.wait_exit(EXIT_BOUND)
        else:  # gunicorn starts a new worker once the old one has gone
            wait_pid_gone(old_pid, EXIT_BOUND)
            assert worker_pid(server) != old_pid, "gunicorn's new worker answers"
        log = server.log
    print(f"{name}: {len(answered)} plain request(s) answered; the worker's limit is {LIMIT}")
    assert "Maximum request limit" in log, log[-3000:]
    assert answered and set(answered) == {200}, ("every request the worker took was answered", answered)
    assert_the_answer_came_whole(answer_stream, log)
    assert told and sub.clean_end and sub.names()[-1] == "restart", (sub.names()[-3:], log[-3000:])
    assert "1 of 1 finishing finished, 1 of 2 stream(s) took the notice" in log, log[-3000:]
    assert_a_clean_log(log)


# -- a notebook: JupyUvi / JupyUviAsync, then stop() (the kernel lives on) ----------------------


async def _stop_mid_answer(server: Server, stop: Path) -> tuple[list[Stream], bool]:
    urls = [f"{server.url}{ANSWER}&finish={FINISH}", server.url + "/stream"]
    async with open_streams(urls) as (streams, tasks):
        await asyncio.sleep(1.0)
        await asyncio.to_thread(stop.touch)  # the notebook calls server.stop()
        told = await _told_while_it_answers(tasks)
        await asyncio.wait_for(asyncio.gather(*tasks), FINISH + 10)
        return streams, told


@pytest.mark.servers
@pytest.mark.parametrize("flavour", ["thread", "async"], ids=["JupyUvi", "JupyUviAsync"])
def test_a_notebook_stop_lets_the_answer_in_flight_finish(flavour: str, tmp_path: Path) -> None:
    """``stop()`` returns once the port is free; the stopped server finishes the answer, then its
    lifespan ends, while the notebook starts the next one (the cell run again)."""
    port = free_port()
    with running(notebook(port, tmp_path, flavour), port, tmp_path / "server.log") as server:
        (answer_stream, sub), told = asyncio.run(_stop_mid_answer(server, tmp_path / "stop-1"))
        server.wait_for_line(LIFESPAN_DONE, EXIT_BOUND)  # the stopped server has ended
        server.wait_for_line("notebook: started 2", EXIT_BOUND)
        server.wait_ready()
        (tmp_path / "stop-2").touch()
        server.wait_exit(EXIT_BOUND)
        log = server.log
    assert_the_answer_came_whole(answer_stream, log)
    assert told and sub.clean_end and sub.names()[-1] == "restart", (sub.names()[-3:], log[-3000:])
    assert "1 of 1 finishing finished, 1 of 2 stream(s) took the notice" in log, log[-3000:]
    assert "notebook: the kernel lives on" in log, log[-3000:]
    assert_a_clean_log(log)


# -- HTTP/2: Hypercorn and Granian, h2c and TLS, a SIGTERM --------------------------------------


async def _h2_answer_beside_a_subscription(
    server: Server, finish: float, after: float = 1.0
) -> tuple[H2Connection, bool, float]:
    """One connection, two streams: the answer and a subscription; a SIGTERM ``after`` s."""
    paths = [f"{ANSWER}&finish={finish}", "/stream"]
    record, reading = await open_h2_streams(
        "127.0.0.1", server.port, paths, tls=server.url.startswith("https")
    )
    await asyncio.wait_for(record.connected.wait(), 20)
    answer_stream, sub = record.streams.values()
    await asyncio.sleep(after)
    start = time.monotonic()
    server.sigterm_main()
    told = await _until(lambda: sub.ended, TOLD_WITHIN) and not answer_stream.ended
    await asyncio.wait_for(reading, finish + 10)
    await asyncio.to_thread(server.wait_exit, finish + 10)
    return record, told, time.monotonic() - start


@pytest.mark.servers
@pytest.mark.parametrize("h2_server", H2_SERVERS, ids=H2_IDS, indirect=True)
def test_an_answer_on_an_http2_connection_finishes_through_the_goaway(h2_server: Server) -> None:
    """The GOAWAY names the answer's stream among those the server finishes; it ends with
    END_STREAM (no reset), every token in order, no farewell."""
    record, told, seconds = asyncio.run(_h2_answer_beside_a_subscription(h2_server, FINISH))
    log = h2_server.log
    answer_stream, sub = record.streams.values()
    assert answer_stream.status == 200 and not answer_stream.reset, log[-3000:]
    assert token_data(answer_stream.parser.events) == EVERY_TOKEN, log[-3000:]
    assert answer_stream.names()[-1] == "message", ("a finished answer needs no farewell", log[-3000:])
    assert record.goaway_last_stream is not None, "the server said GOAWAY"
    assert answer_stream.stream_id <= record.goaway_last_stream, "the GOAWAY lets the answer finish"
    assert told and sub.farewell == "restart" and not sub.reset, (sub.names()[-3:], log[-3000:])
    assert seconds < EXIT_BOUND, log[-3000:]
    assert "1 of 1 finishing finished" in log and LIFESPAN_DONE in log, log[-3000:]
    assert_a_clean_log(log)
    # Hypercorn sends its GOAWAY before the END_STREAM of an empty last body (so the stream ends
    # with a comment during a drain, see _response.py): the answer must end, not be cut.
    assert answer_stream.ended, f"{h2_server.mode.name}: the connection closed, no END_STREAM on the answer"


@pytest.mark.servers
@pytest.mark.parametrize("h2_server", H2_SERVERS[::2], ids=H2_IDS[::2], indirect=True)
def test_an_answer_on_an_http2_connection_longer_than_its_finish_time_gets_the_farewell(
    h2_server: Server,
) -> None:
    """The farewell comes when the time runs out, on the answer's own stream, then its END_STREAM
    (under Granian after its GOAWAY, which came at the signal; under Hypercorn before it)."""
    record, _, seconds = asyncio.run(_h2_answer_beside_a_subscription(h2_server, 1.0, after=0.5))
    log = h2_server.log
    answer_stream, sub = record.streams.values()
    got = token_data(answer_stream.parser.events)
    assert 5 < len(got) < TOKENS and got == EVERY_TOKEN[: len(got)], (got, log[-3000:])
    assert answer_stream.farewell == "restart" and answer_stream.ended, (
        answer_stream.names()[-3:],
        log[-3000:],
    )
    assert not answer_stream.reset and sub.farewell == "restart", log[-3000:]
    assert seconds < 1.0 + 5.0, log[-3000:]
    assert "0 of 1 finishing finished" in log, log[-3000:]
