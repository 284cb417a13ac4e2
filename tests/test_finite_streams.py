"""Finite streams finish at a shutdown: an answer in flight completes, then the process goes.

In-process first (the drain's rules with a lifecycle we drive), then over the wire: a real
server in each run mode where the server lets responses complete, real signals, a client that
counts tokens. An "answer" is the app's generator yielding ``TOKENS`` tokens ``EVERY`` s apart.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from graceful_sse import EventStream, Hub

from asgi import Client, lifecycle, serve
from harness import FORBIDDEN_LOG_LINES, Server, busy_machine, free_port, open_streams, run_modes, running

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


# -- the drain's rules, in-process -------------------------------------------------------------


@pytest.mark.parametrize("kind", ["stop", "restart"])
@pytest.mark.anyio
async def test_an_answer_in_flight_finishes_with_a_clean_end_and_no_farewell(kind: str) -> None:
    lc, client = lifecycle(), Client()
    async with lc.lifespan():
        task = serve(EventStream(answer(10, 0.02), finish=5.0, lifecycle=lc), client)
        await client.got("message")
        report = await lc.shutdown(kind)  # type: ignore[arg-type]
        await task
    assert tokens(client) == [f"token {n}" for n in range(10)]
    assert farewells(client) == [] and client.ended
    assert (report.told, report.finishing, report.finished, report.took) == (1, 1, 1, 0)
    assert "1 of 1 finishing finished" in report.describe()


@pytest.mark.anyio
async def test_an_answer_longer_than_its_finish_time_gets_the_farewell_when_the_time_runs_out() -> None:
    lc, client = lifecycle(), Client()
    async with lc.lifespan():
        task = serve(EventStream(answer(100, 0.02), finish=0.3, lifecycle=lc), client)
        await client.got("message")
        report = await lc.shutdown("restart")
        await task
    got = tokens(client)
    assert 5 < len(got) < 100, "it went on for its finish time, then was told"
    assert got == [f"token {n}" for n in range(len(got))]
    assert farewells(client) == ["restart"] and client.ended
    assert (report.finishing, report.finished, report.took) == (1, 0, 1)
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
    lc, client = lifecycle(finish=5.0), Client()
    async with lc.lifespan():
        task = serve(EventStream(answer(10, 0.02), lifecycle=lc), client)
        await client.got("message")
        report = await lc.shutdown("stop")
        await task
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


@pytest.mark.servers
@pytest.mark.parametrize("mode_name", FINISH_MODES)
def test_a_deploy_lets_the_answer_in_flight_finish(mode_name: str, tmp_path: Path) -> None:
    port = free_port()
    mode = run_modes(port)[mode_name]
    with running(mode, port, tmp_path / "server.log") as server:
        streams, seconds = asyncio.run(_answer_beside_a_subscription(server, 20.0, "sigterm_main"))
        log = server.log
    answer_stream, sub = streams
    assert answer_stream.clean_end, (answer_stream.error, log[-3000:])
    got = [e.data for e in answer_stream.events if e.type == "message"]
    assert got == [f"token {n}" for n in range(TOKENS)], (got, log[-3000:])
    assert answer_stream.names()[-1] == "message", "a finished answer needs no farewell"
    assert sub.clean_end and sub.names()[-1] == "restart", (sub.names()[-3:], log[-3000:])
    assert seconds is not None and seconds < 20.0 + 5.0, log[-3000:]
    for line in FORBIDDEN_LOG_LINES:
        assert line not in log, log[-3000:]
    assert "finishing finished" in log, log[-3000:]


@pytest.mark.servers
@pytest.mark.parametrize("mode_name", ["uvicorn", "serve()", "gunicorn"])
def test_an_answer_longer_than_its_finish_time_gets_the_farewell_then(mode_name: str, tmp_path: Path) -> None:
    port = free_port()
    mode = run_modes(port)[mode_name]
    with running(mode, port, tmp_path / "server.log") as server:
        (answer_stream, sub), seconds = asyncio.run(
            _answer_beside_a_subscription(server, 1.0, "sigterm_main", after=0.5)
        )
        log = server.log
    got = [e.data for e in answer_stream.events if e.type == "message"]
    assert 5 < len(got) < TOKENS, (got, log[-3000:])
    assert got == [f"token {n}" for n in range(len(got))], "in order, none lost"
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
@pytest.mark.parametrize("mode_name", ["uvicorn", "serve()", "gunicorn"])
def test_a_second_ctrl_c_ends_the_wait_for_finishing_streams_at_once(mode_name: str, tmp_path: Path) -> None:
    port = free_port()
    mode = run_modes(port)[mode_name]
    with running(mode, port, tmp_path / "server.log") as server:
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
                    _answer_beside_a_subscription(server, 20.0, "sigterm_main")
                )
                log = server.log
            got = [e.data for e in answer_stream.events if e.type == "message"]
            assert got == [f"token {n}" for n in range(TOKENS)], (attempt, got, log[-3000:])
            assert answer_stream.clean_end and sub.names()[-1] == "restart", (attempt, log[-3000:])
            assert seconds is not None and seconds < 25.0


async def _long_answer(server: Server) -> tuple[list, float | None]:  # type: ignore[type-arg]
    async with open_streams([f"{server.url}/answer?tokens=1000&every=0.1&finish=60"]) as (streams, tasks):
        start = time.monotonic()
        server.sigterm_main()
        await asyncio.wait_for(asyncio.gather(*tasks), 15)
        exited = await asyncio.to_thread(server.wait_exit, 15)
        return streams, (time.monotonic() - start) if exited else None


@pytest.mark.servers
@pytest.mark.parametrize(
    "mode_name,extra",
    [("hypercorn", []), ("uvicorn", ["--timeout-graceful-shutdown", "3"])],
    ids=["hypercorn graceful_timeout 3 s (its default)", "uvicorn --timeout-graceful-shutdown 3"],
)
def test_a_server_graceful_timeout_caps_finishing_and_the_farewell_still_arrives(
    mode_name: str, extra: list[str], tmp_path: Path
) -> None:
    """The server cancels what is open that long after its shutdown begins: the farewell comes first."""
    port = free_port()
    mode = run_modes(port)[mode_name]
    mode.argv += extra
    with running(mode, port, tmp_path / "server.log") as server:
        (answer_stream,), seconds = asyncio.run(_long_answer(server))
        log = server.log
    assert answer_stream.clean_end and answer_stream.names()[-1] == "restart", log[-3000:]
    assert seconds is not None and seconds < 3.0 + 2.0, log[-3000:]
    for line in FORBIDDEN_LOG_LINES:
        assert line not in log, log[-3000:]
