"""Finding out that the ASGI server itself has begun to shut down, where no signal tells us.

Signals cover most run modes. Some do not: a program that embeds uvicorn and sets
``server.should_exit = True`` (a notebook's ``JupyUvi.stop()``), a uvicorn worker recycled after
``--limit-max-requests`` (gunicorn's ``--max-requests`` becomes that), which ends its main loop
without any flag, and Hypercorn's worker processes, which ignore SIGINT and learn of a SIGTERM
sent to the parent through a multiprocessing event. Each watcher here reads public state of an
object the server already created (no patching) and calls ``on_shutdown`` once.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from typing import Any, Protocol, TypeGuard

__all__ = [
    "ServerWatch",
    "find_hypercorn_trigger",
    "find_uvicorn_server",
    "hypercorn_graceful_timeout",
    "uvicorn_graceful_timeout",
    "watch_should_exit",
]


POLL_INTERVAL = 0.1  # uvicorn's own main loop looks at should_exit this often


class ExitFlag(Protocol):
    """What uvicorn's ``Server`` offers: ``should_exit`` (and ``force_exit``) flags, ``started``,
    and once started its listeners."""

    should_exit: bool
    force_exit: bool
    started: bool
    servers: list[asyncio.AbstractServer]


class ServerWatch:
    """A running watch; ``cancel()`` stops it."""

    def __init__(self, cancel: Callable[[], None]) -> None:
        self.cancel = cancel


def find_uvicorn_server() -> ExitFlag | None:
    """The uvicorn ``Server`` serving this event loop, if there is exactly one.

    Found through the task running its ``serve()`` (any thread: ``uvicorn.run``, gunicorn's
    worker, a notebook's ``JupyUvi``), else through the signal handler it installed.
    """
    # A server that is stopping does not count: a notebook's next one may be starting beside it.
    serving = {id(s): s for s in _uvicorn_servers_serving() if not is_stopping(s)}
    if len(serving) == 1:
        return next(iter(serving.values()))
    return None if serving else _uvicorn_server_by_signal()


def _uvicorn_servers_serving() -> list[ExitFlag]:
    found: list[ExitFlag] = []
    for task in asyncio.all_tasks():
        coro: Any = task.get_coro()
        while coro is not None and hasattr(coro, "cr_code"):
            owner = coro.cr_frame.f_locals.get("self") if coro.cr_frame is not None else None
            if coro.cr_code.co_name in ("serve", "_serve") and _is_uvicorn_server(owner):
                found.append(owner)
                break
            coro = coro.cr_await
    return found


def _uvicorn_server_by_signal() -> ExitFlag | None:
    """Through the signal handler it installed, looking through handlers chained in front."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        handler: Any = signal.getsignal(sig)
        for _ in range(16):  # a chain of chains, never a cycle; the bound is only a safeguard
            owner = getattr(handler, "__self__", None)
            if owner is None:
                break
            if _is_uvicorn_server(owner):
                return owner
            previous = getattr(owner, "previous", None)
            if not callable(previous):
                break
            handler = previous(sig)
    return None


def _is_uvicorn_server(obj: object) -> TypeGuard[ExitFlag]:
    return type(obj).__module__.startswith("uvicorn") and hasattr(obj, "should_exit")


def is_stopping(server: ExitFlag) -> bool:
    """It was asked to exit, or stopped listening with no flag (a recycled worker)."""
    return server.should_exit or _stopped_listening(server)


def _stopped_listening(server: ExitFlag) -> bool:
    return server.started and not any(listener.is_serving() for listener in server.servers)


def watch_should_exit(server: ExitFlag, on_shutdown: Callable[[], None]) -> ServerWatch:
    """Call ``on_shutdown`` once, soon after the server begins to shut down.

    ``should_exit`` says so, or, for a recycled worker, the listeners closing: uvicorn's main loop
    ends at its request limit without setting any flag, then closes them first.
    """
    loop = asyncio.get_running_loop()
    handle: asyncio.TimerHandle | None = None

    def check() -> None:
        nonlocal handle
        if is_stopping(server):
            handle = None
            on_shutdown()
        else:
            handle = loop.call_later(POLL_INTERVAL, check)

    def cancel() -> None:
        if handle is not None:
            handle.cancel()

    handle = loop.call_later(POLL_INTERVAL, check)
    return ServerWatch(cancel)


def find_hypercorn_trigger(on_shutdown: Callable[[], None]) -> ServerWatch | None:
    """Hypercorn's worker waits for shutdown in tasks running ``raise_shutdown``: follow them."""
    tasks = [t for t in asyncio.all_tasks() if _runs_hypercorn_raise_shutdown(t)]
    if not tasks:
        return None
    fired = False

    def done(_: asyncio.Task[Any]) -> None:
        nonlocal fired
        if not fired:
            fired = True
            on_shutdown()

    for task in tasks:
        task.add_done_callback(done)

    def cancel() -> None:
        for task in tasks:
            task.remove_done_callback(done)

    return ServerWatch(cancel)


def _runs_hypercorn_raise_shutdown(task: asyncio.Task[Any]) -> bool:
    code = getattr(task.get_coro(), "cr_code", None)
    return code is not None and _is_hypercorn(code, "raise_shutdown")


def uvicorn_graceful_timeout(server: object) -> float | None:
    """uvicorn's ``--timeout-graceful-shutdown``: it cancels what is still open after it."""
    timeout = getattr(getattr(server, "config", None), "timeout_graceful_shutdown", None)
    return float(timeout) if isinstance(timeout, int | float) else None


def hypercorn_graceful_timeout() -> float | None:
    """How long Hypercorn's worker lets connections finish once it begins to shut down.

    It then cancels them; on Python 3.11 asyncio logs a traceback for each, and a cancelled
    connection whose client is not reading holds the worker until the exit bound. Read from the
    ``config`` of the ``worker_serve`` coroutine running the worker (no patching).
    """
    for task in asyncio.all_tasks():
        coro: Any = task.get_coro()
        while coro is not None and hasattr(coro, "cr_code"):
            if _is_hypercorn(coro.cr_code, "worker_serve") and coro.cr_frame is not None:
                timeout = getattr(coro.cr_frame.f_locals.get("config"), "graceful_timeout", None)
                return float(timeout) if isinstance(timeout, int | float) else None
            coro = coro.cr_await
    return None


def _is_hypercorn(code: Any, name: str) -> bool:
    return bool(code.co_name == name and "hypercorn" in code.co_filename.replace("\\", "/").split("/"))
