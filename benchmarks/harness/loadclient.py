"""Load clients, the clients' own side: their common options and ``__main__``, opening N streams
without overflowing the server's backlog, the ``ready`` line, and what their selftests need.
The clients import it as ``from harness import loadclient``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import resource
import sys
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, NoReturn, Protocol, TypeVar


def cpu_seconds() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def stream_request(host: str, port: int, path: str) -> bytes:
    """The request every stream sends: what a browser's EventSource sends, give or take."""
    return (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        "Accept: text/event-stream\r\nCache-Control: no-cache\r\nConnection: keep-alive\r\n\r\n"
    ).encode()


def client_parser(
    doc: str | None, inflight: int, inflight_help: str, ready_timeout: float
) -> argparse.ArgumentParser:
    """The options every stream client has; a client adds its own before :func:`parse_client_args`."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int)
    p.add_argument("--path", default="/stream")
    p.add_argument("-n", "--n", type=int, help="connections to open")
    p.add_argument("--inflight", type=int, default=inflight, help=inflight_help)
    p.add_argument("--ready-timeout", type=float, default=ready_timeout)
    return p


def parse_client_args(p: argparse.ArgumentParser, argv: list[str] | None = None) -> argparse.Namespace:
    args = p.parse_args(argv)
    if not args.selftest and (args.port is None or args.n is None):
        p.error("--port and -n are required")
    return args


def run_loop(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """``main()`` on uvloop when it is installed (as the servers run), else on asyncio's loop."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main())
    else:
        uvloop.run(main())


def client_main(
    args: argparse.Namespace,
    main: Callable[[argparse.Namespace], Coroutine[Any, Any, None]],
    test: Callable[[], None],
) -> NoReturn:
    """What a stream client's ``__main__`` does: its selftest, or its run, then exit 0."""
    if args.selftest:
        test()
    else:
        run_loop(lambda: main(args))
    sys.exit(0)


class Stream(Protocol):
    """A client's connection: its ``ready`` future is done once the stream has begun (or failed)."""

    ready: asyncio.Future[None]


S = TypeVar("S", bound=Stream)


async def open_streams(
    n: int,
    inflight: int,
    connect: Callable[[int], Awaitable[tuple[Any, S]]],
    ready_timeout: float,
    backoff: Sequence[float],
) -> tuple[list[S], Counter[str]]:
    """Open ``n`` streams, at most ``inflight`` between connect and first bytes at once (so that
    the server's listen backlog never overflows); ``connect(i)`` opens the ``i``-th. A connect
    that fails is tried again after each delay of ``backoff`` (0: give up without waiting). The
    streams made, and the connect errors."""
    conns: list[S] = []
    errors: Counter[str] = Counter()
    sem = asyncio.Semaphore(inflight)

    async def open_one(i: int) -> None:
        async with sem:
            for delay in backoff:
                try:
                    _, proto = await connect(i)
                except OSError as e:
                    errors[type(e).__name__] += 1
                    if delay:
                        await asyncio.sleep(delay)
                    continue
                conns.append(proto)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(proto.ready, ready_timeout)
                return

    await asyncio.gather(*(open_one(i) for i in range(n)))
    return conns, errors


def print_ready(ok: int, opened: int, n: int, errors: Counter[str], seconds: float, cpu: float) -> None:
    """The ``ready {json}`` line the runner waits for before it measures."""
    figures = {"ok": ok, "opened": opened, "n": n, "connect_errors": dict(errors)}
    figures |= {"seconds": round(seconds, 3), "cpu": round(cpu, 3)}
    print("ready " + json.dumps(figures), flush=True)


class FakeTransport:
    """Enough of a transport for a selftest to feed a protocol bytes by hand."""

    def write(self, data: bytes) -> None:
        pass

    def abort(self) -> None:
        pass


def split_points(length: int, rng: random.Random, samples: int, cuts: int) -> list[list[int]]:
    """Where to cut a response of ``length`` bytes into reads: at every single byte, at
    ``samples`` random sets of ``cuts`` places, and everywhere (one byte per read)."""
    every = [[i] for i in range(1, length)]
    some = [sorted(rng.sample(range(1, length), cuts)) for _ in range(samples)]
    return [*every, *some, list(range(1, length))]


def pieces(wire: bytes, cut: list[int]) -> list[bytes]:
    """``wire`` cut at ``cut``: the reads a protocol would get."""
    return [wire[a:b] for a, b in zip([0, *cut], [*cut, len(wire)], strict=True)]
