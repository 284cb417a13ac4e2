"""The shutdown lifecycle: learn that the process is stopping, tell every stream, exit in bounds.

A ``Lifecycle`` belongs to the app (one per app, bound to the event loop that serves it). It
learns of shutdown from the first of:

- a signal (SIGINT, SIGTERM, SIGQUIT), through a handler chained in front of the server's own;
- the server itself beginning to stop where no signal reached us (``servers`` module);
- an explicit ``await lifecycle.shutdown(...)`` from application code.

Then, in logged steps: every open stream is told (``stop`` or ``restart``), producers are
cancelled, the server hears of the signal once the farewells are written, the drain is awaited up
to ``drain_timeout``, connections whose clients did not take their farewell are closed, and, when
a signal or the server asked the process to end, an exit guard makes sure it is gone
``exit_timeout`` seconds after the signal, whatever the clients and the app's own code do.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import faulthandler
import gc
import json
import logging
import os
import random
import signal
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, overload

from . import _servers as servers
from ._logs import Summary, logger, make_visible
from ._producers import Producer, ProducerFn, Producers, ProducerTasks
from ._signals import Disposition, SignalChain
from ._sockets import SocketCloser
from ._status import State, status_event
from ._wire import encode_item

__all__ = ["Kind", "Lifecycle", "Lifespan", "Outcome", "ShutdownReport", "StreamHandle"]


Kind = Literal["stop", "restart"]
KINDS: tuple[Kind, ...] = ("stop", "restart")


class Outcome(enum.Enum):
    """How a stream ended, as its drain counts it; the value is what the drain's log line says."""

    TOOK = "took the farewell"
    GONE = "the client had gone"
    ENDED = "ended by its source"
    # Missed: the client did not get its farewell, and its connection was closed under the server.
    NOT_READING = "took no data for send_timeout"
    TOO_SLOW = "did not take the farewell within the bound"
    DROPPED = "dropped by the server"

    @property
    def missed(self) -> bool:
        return self in (Outcome.NOT_READING, Outcome.TOO_SLOW, Outcome.DROPPED)


F = TypeVar("F", bound=ProducerFn)

# A farewell sent on "stop" also sets a day-long reconnection time, so that a client without
# our script (a bare EventSource that ignores the event) does not hammer a dead port.
STOP_RETRY_MS = 24 * 60 * 60 * 1000
MIN_FLUSH = 0.25  # even a stream opened at the end of the drain gets this long to take its notice
# The server hears of a signal once every told stream has written its farewell, or this long after
# the drain began: its own shutdown (an HTTP/2 GOAWAY, closing the listener) must not overtake them.
HANDOFF = 1.0
GRACE_MARGIN = 0.5  # the drain ends this long before the server's own graceful timeout
CUT_SHOWN = 5  # the drain's log line names this many of the streams it had to close


@dataclass(frozen=True, slots=True)
class ShutdownReport:
    """What a drain achieved: one line of the log, as a value."""

    kind: Kind
    cause: str
    told: int  # streams open when the notice went out
    took: int  # ... that received the whole farewell
    gone: int  # ... whose client had already left
    missed: int  # ... that did not take the notice within the drain bound
    late: int  # streams opened during the drain (each got the farewell at once)
    seconds: float
    cut: tuple[str, ...] = ()  # each missed stream: its request (no query string) and why

    def describe(self) -> str:
        """The drain's log line, after "graceful-sse: "."""
        line = (
            f"drain took {self.seconds:.3f} s: {self.took} of {self.told} stream(s) took the notice, "
            f"{self.gone} had gone, {self.missed} did not take it; {self.late} opened during the drain"
        )
        if self.cut:
            shown = "; ".join(self.cut[:CUT_SHOWN])
            more = f"; and {len(self.cut) - CUT_SHOWN} more" if len(self.cut) > CUT_SHOWN else ""
            line += f". Closed: {shown}{more}"
        return line


class StreamHandle:
    """One open stream as the lifecycle sees it: told once, then it reports how it ended.

    ``EventStream`` subclasses it: ``notice`` wakes the stream (and interrupts a write the
    client is not taking), ``abandon`` gives up writing the farewell (a second Ctrl+C).
    """

    __slots__ = ("_run", "kind", "label", "late")

    def __init__(self, label: str = "stream") -> None:
        self.kind: Kind | None = None
        self.late = False
        self.label = label  # how the drain's log line names it: "GET /updates from 10.0.0.7"
        self._run: _Run | None = None  # the run it was opened in (set by ``open_stream``)

    def tell(self, kind: Kind) -> None:
        if self.kind is None:
            self.kind = kind
            self.notice()

    def notice(self) -> None:
        """Called once, when the stream is told to end."""

    def abandon(self) -> None:
        """Stop waiting for the client to take the farewell."""


def _kind_from_env(name: str, default: Kind) -> Kind:
    value = os.environ.get(name, default).strip().lower()
    if value not in KINDS:
        raise ValueError(f"{name} must be 'stop' or 'restart', not {value!r}")
    return value


def _check_kind(value: str) -> Kind:
    if value not in KINDS:
        raise ValueError(f"kind must be 'stop' or 'restart', not {value!r}")
    return value


class Lifespan:
    """A lifespan usable both ways apps take one.

    Starlette enters it as an async context manager; FastHTML's ``fast_app(lifespan=...)``
    iterates it as an async generator. Both run the same generator: start, yield, clean up.
    """

    def __init__(self, gen: AsyncIterator[None]) -> None:
        self._gen = gen

    async def __aenter__(self) -> None:
        await anext(self._gen)

    async def __aexit__(self, *exc_info: object) -> None:
        with contextlib.suppress(StopAsyncIteration):
            await anext(self._gen)

    def __aiter__(self) -> AsyncIterator[None]:
        return self._gen


class _Run:
    """The lifecycle's state on one event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.streams: set[StreamHandle] = set()
        self.draining = False
        self.kind: Kind | None = None
        self.cause = ""
        self.started_at = 0.0
        self.deadline = 0.0
        self.noted: Kind | None = None  # kind of the first signal, for a server watch that sees it first
        self.told = self.took = self.gone = self.late = 0
        self.cut: list[str] = []  # the told streams that missed their farewell, and why
        self.drained = asyncio.Event()
        self.report: ShutdownReport | None = None
        self.chain: SignalChain | None = None
        self.watches: list[servers.ServerWatch] = []
        self.server: Any = None
        self.hypercorn_checked = False
        self.server_grace: float | None = None  # the server cancels what is still open after this
        self.drain_task: asyncio.Task[None] | None = None
        # The signals held until the farewells are written; after the drain they go straight on.
        self.kept: list[signal.Signals] = []
        self.handed_on = False
        self.sigints = 0
        self.settling: asyncio.TimerHandle | None = None  # a restart waiting for a stop to overtake it
        self.guard: _ExitGuard | None = None
        self.guard_from_signal = False
        self.closer = SocketCloser(loop)
        self.producers = ProducerTasks()
        self.closed = False  # its app's lifespan ended, or its loop did

    def note(self, kind: Kind) -> None:
        """Remember what the signals so far meant; a stop among them wins (a Ctrl+C)."""
        self.noted = "stop" if kind == "stop" else (self.noted or kind)


class Lifecycle:
    """Shutdown coordination for one app's event streams.

    ``on_sigint`` / ``on_sigterm`` / ``on_sigquit`` say what each signal means (``"stop"``: the
    service is going away, clients must not reconnect; ``"restart"``: it is coming back,
    clients reconnect after a random delay in ``restart_window`` seconds). The environment
    variables ``SSE_ON_SIGINT`` and ``SSE_ON_SIGTERM`` override the defaults (stop, restart).
    ``on_server_exit`` is the kind used when the server stops without a signal reaching this
    process (embedded uvicorn's ``should_exit``, Hypercorn's workers on a SIGTERM to the parent).

    A restart waits ``restart_settle`` seconds before its streams are told, for a stop that may
    follow: a terminal's Ctrl+C reaches a reloader's (or supervisor's) child twice, as its own
    SIGINT and as the SIGTERM the parent sends it, and on a busy machine the SIGTERM can be
    handled first. A stop is never delayed.
    """

    def __init__(
        self,
        *,
        on_sigint: Kind | None = None,
        on_sigterm: Kind | None = None,
        on_sigquit: Kind = "stop",
        on_server_exit: Kind | None = None,
        restart_window: tuple[float, float] = (1.0, 5.0),
        drain_timeout: float = 3.0,
        exit_timeout: float | None = 5.0,
        restart_settle: float = 0.5,
        stop_message: str = "Server stopped",
        restart_message: str = "Server restarting",
        farewell_extra: Callable[[Kind], Iterable[Any]] | None = None,
    ) -> None:
        lo, hi = restart_window
        if not 0 <= lo <= hi:
            raise ValueError(f"restart_window must be (low, high) with 0 <= low <= high: {restart_window}")
        if drain_timeout <= 0:
            raise ValueError("drain_timeout must be positive")
        if exit_timeout is not None and exit_timeout < drain_timeout:
            raise ValueError("exit_timeout must be at least drain_timeout (or None to disable)")
        if restart_settle < 0:
            raise ValueError("restart_settle must be zero or positive")
        on_sigterm = on_sigterm or _kind_from_env("SSE_ON_SIGTERM", "restart")
        self.kinds: dict[signal.Signals, Kind] = {
            signal.SIGINT: _check_kind(on_sigint or _kind_from_env("SSE_ON_SIGINT", "stop")),
            signal.SIGTERM: _check_kind(on_sigterm),
            signal.SIGQUIT: _check_kind(on_sigquit),
        }
        self.on_server_exit: Kind = _check_kind(on_server_exit or on_sigterm)
        self.restart_window = (lo, hi)
        self.drain_timeout = drain_timeout
        self.exit_timeout = exit_timeout
        self.restart_settle = restart_settle
        self.stop_message = stop_message
        self.restart_message = restart_message
        self.farewell_extra = farewell_extra
        self.producers = Producers()
        self._rng = random.Random()
        self.shutdowns = 0  # drains run, for metrics
        self.last_shutdown_seconds = 0.0
        self._watched: list[Any] = []
        self._stop_farewells: dict[tuple[str | None, bool], bytes] = {}
        # One run per event loop: a notebook's stopped server may still be draining on its loop
        # while the next one starts on another.
        self._runs: dict[asyncio.AbstractEventLoop, _Run] = {}
        self._latest: _Run | None = None
        # Clients that stop reading are theirs to multiply: one line a minute says how many.
        self.cut_off_log = Summary("streams ended for taking no data", level=logging.WARNING)

    # -- state -------------------------------------------------------------------------------

    @property
    def draining(self) -> bool:
        run = self._current()
        return run is not None and run.draining

    @property
    def kind(self) -> Kind | None:
        """The kind of the shutdown in progress, if any."""
        run = self._current()
        return run.kind if run is not None else None

    @property
    def open_streams(self) -> int:
        run = self._current()
        return len(run.streams) if run is not None else 0

    @property
    def running_producers(self) -> int:
        run = self._current()
        return run.producers.running if run is not None else 0

    @property
    def last_report(self) -> ShutdownReport | None:
        run = self._current()
        return run.report if run is not None else None

    def _here(self) -> _Run | None:
        """The run on the running event loop, if any."""
        loop = _running_loop()
        return self._runs.get(loop) if loop is not None else None

    def _current(self) -> _Run | None:
        """The run of the calling thread's loop; off any loop, the most recently started one.

        A run ended with its app (``close``) stays readable on its loop until the next starts.
        """
        loop, latest = _running_loop(), self._latest
        if loop is None:
            return latest
        return self._runs.get(loop) or (latest if latest is not None and latest.loop is loop else None)

    # -- wiring into an app ------------------------------------------------------------------

    def lifespan(self, app: Any = None) -> Lifespan:
        """A Starlette/FastHTML ``lifespan``: ``fast_app(lifespan=lifecycle.lifespan)``."""
        return Lifespan(self._lifespan(app))

    async def _lifespan(self, app: Any) -> AsyncIterator[None]:
        self.attach(app)
        run = self._open_run()
        try:
            yield
        finally:
            await self._close_run(run)

    def attach(self, app: Any) -> None:
        """Make plain ``EventStream`` responses of ``app`` use this lifecycle."""
        state = getattr(app, "state", None)
        if state is not None:
            state.graceful_sse = self

    @classmethod
    def of_app(cls, app: Any) -> Lifecycle:
        """The lifecycle attached to a Starlette ``app``, created with defaults on first use."""
        state = getattr(app, "state", None)
        if state is None:
            raise RuntimeError(
                "EventStream could not find its Lifecycle: run it inside a Starlette/FastHTML app, "
                "or pass EventStream(..., lifecycle=...)"
            )
        found = getattr(state, "graceful_sse", None)
        if found is None:
            found = cls()
            state.graceful_sse = found
        assert isinstance(found, Lifecycle)
        return found

    async def start(self) -> None:
        """Start on the running loop: chain signal handlers, watch the server, run producers."""
        self._open_run()

    def _open_run(self) -> _Run:
        """An app starts on this loop: its run, a new one if the loop's last server is stopping.

        A notebook's ``JupyUviAsync`` stopped then started runs both servers on the kernel's loop
        for a moment: the old one's streams are told now, not at its watch's next look, and are
        drained in its run while the new server gets a run of its own.
        """
        run = self._here()
        if run is not None and run.server is not None and servers.is_stopping(run.server):
            self._on_server_exit(run)
            del self._runs[run.loop]
        return self.ensure_started()

    def ensure_started(self) -> _Run:
        """Bind to the running loop (once per loop) and start; safe to call on every stream."""
        loop = asyncio.get_running_loop()
        run = self._runs.get(loop)
        if run is not None:
            return run
        self._forget_ended_runs()
        make_visible()
        run = self._runs[loop] = self._latest = _Run(loop)
        # A server stopped before (a notebook's stop() then start()) must not end the new run.
        self._watched = [server for server in self._watched if not server.should_exit]
        found = servers.find_uvicorn_server()
        run.chain = SignalChain(self.kinds, lambda sig, disposition: self._on_signal(run, sig, disposition))
        if not run.chain.install() and found is None and not self._watched:
            logger.info(
                "graceful-sse: not on the main thread, so no signal handlers; call "
                "lifecycle.watch(server) or lifecycle.shutdown() to end streams gracefully"
            )
        for server in {id(s): s for s in [*self._watched, *([found] if found else [])]}.values():
            self._watch(run, server)
        run.producers = self.producers.start()
        return run

    def _forget_ended_runs(self) -> None:
        """Runs whose loop has ended (``asyncio.run`` returned) let go of signals and watches."""
        for loop, run in list(self._runs.items()):
            if loop.is_closed() or not loop.is_running():
                self._stop_watching(run)
                run.closed = True
                del self._runs[loop]

    async def close(self) -> None:
        """The app is done (lifespan shutdown): stop producers, watches and the exit guard."""
        run = self._here()
        if run is not None:
            await self._close_run(run)

    async def _close_run(self, run: _Run) -> None:
        cancelled = run.producers.cancel()
        if cancelled:
            logger.info("graceful-sse: stopped %d background producer(s)", cancelled)
        await run.producers.wait(self.drain_timeout)
        self._stop_watching(run)
        if run.guard is not None and not run.guard_from_signal:
            # The server stopped with no signal: the program that runs it lives on (a notebook,
            # an embedded server). After a signal the process is ending, so the bound stays in
            # force through the server's and Python's clean-up.
            run.guard.disarm()
        # The run ends with the app: a server started again on this loop (a notebook's
        # JupyUviAsync) gets a fresh one.
        run.closed = True
        if self._runs.get(run.loop) is run:
            del self._runs[run.loop]

    def watch(self, server: Any) -> None:
        """Begin the drain when ``server.should_exit`` becomes true (an embedded uvicorn server).

        Needed only where the server runs outside the main thread (a uvicorn ``Server`` run in
        the main thread is found on its own). Call it before or after the server starts.
        """
        self._watched.append(server)
        run = self._latest
        if run is not None and not run.loop.is_closed():
            run.loop.call_soon_threadsafe(self._watch, run, server)

    def _watch(self, run: _Run, server: Any) -> None:
        run.server = server
        run.watches.append(servers.watch_should_exit(server, lambda: self._on_server_exit(run)))

    def _stop_watching(self, run: _Run) -> None:
        for w in run.watches:
            w.cancel()
        run.watches.clear()
        if run.chain is not None:
            run.chain.uninstall()

    # -- producers ---------------------------------------------------------------------------

    @overload
    def producer(self, fn: F) -> F: ...
    @overload
    def producer(self, *, every: float | None = None, name: str | None = None) -> Callable[[F], F]: ...

    def producer(self, fn: Any = None, *, every: float | None = None, name: str | None = None) -> Any:
        """Register a background producer, started with the app and cancelled at shutdown.

        Use as ``@lifecycle.producer`` (the function runs once, usually a loop) or
        ``@lifecycle.producer(every=1.0)`` (called every second).
        """

        def register(f: ProducerFn) -> ProducerFn:
            self.producers.add(Producer(f, every=every, name=name))
            return f

        return register(fn) if fn is not None else register

    # -- streams -----------------------------------------------------------------------------

    def open_stream(self, handle: StreamHandle | None = None) -> StreamHandle:
        """Register a stream; one opened during the drain is told at once (``handle.late``)."""
        run = self.ensure_started()
        if not run.hypercorn_checked:
            run.hypercorn_checked = True
            self._follow_hypercorn(run)
        handle = handle or StreamHandle()
        if run.draining and run.kind is not None:
            handle.late = True
            handle.kind = run.kind
            run.late += 1
        run.streams.add(handle)
        handle._run = run
        return handle

    def close_stream(self, handle: StreamHandle, outcome: Outcome) -> None:
        """A stream ended; ``outcome`` says whether it took its farewell."""
        run = handle._run
        if run is None or handle not in run.streams:
            return
        run.streams.discard(handle)
        if run.draining and not handle.late and run.report is None:
            if outcome is Outcome.TOOK:
                run.took += 1
            elif outcome is Outcome.GONE:
                run.gone += 1
            elif outcome.missed:
                run.cut.append(f"{handle.label} ({outcome.value})")
        if run.draining and not run.streams:
            run.drained.set()

    def close_connection(self, scope: Any) -> bool:
        """Close the connection of ``scope`` under the server (see ``_sockets``); False if unknown."""
        run = self._here()
        return run is not None and run.closer.close(scope)

    def flush_timeout(self, handle: StreamHandle) -> float:
        """How long a told stream may take to write its farewell."""
        run = handle._run
        if run is None or not run.draining:
            return self.drain_timeout
        return max(run.deadline - time.monotonic(), MIN_FLUSH)

    def farewell(self, kind: Kind, status_id: str | None = None, *, named_status: bool = True) -> bytes:
        """The bytes that end a stream: the status update, extra events, then ``shutdown``/``restart``.

        ``status_id`` names the page's status indicator (see ``status``); ``None`` leaves it out.
        A stop farewell is the same for every stream, so it is built once per drain.
        """
        if kind == "stop":
            key = (status_id, named_status)
            cached = self._stop_farewells.get(key)
            if cached is None:
                cached = self._stop_farewells[key] = self._farewell(kind, status_id, named_status)
            return cached
        return self._farewell(kind, status_id, named_status)

    def _farewell(self, kind: Kind, status_id: str | None, named_status: bool) -> bytes:
        parts: list[bytes] = []
        if status_id is not None:
            state: State = "stopped" if kind == "stop" else "restarting"
            parts.append(status_event(state, status_id, named=named_status))
        if self.farewell_extra is not None:
            parts.extend(encode_item(item) for item in self.farewell_extra(kind))
        body: dict[str, Any]
        if kind == "stop":
            body = {"kind": kind, "message": self.stop_message}
            parts.append(_farewell_event("shutdown", STOP_RETRY_MS, body))
        else:
            parts.append(self.restart_event({"kind": kind, "message": self.restart_message}))
        return b"".join(parts)

    def restart_event(self, body: dict[str, Any]) -> bytes:
        """A ``restart`` event whose ``retry:`` is random in ``restart_window`` (also in ``body``)."""
        delay = round(self._rng.uniform(*self.restart_window) * 1000)
        return _farewell_event("restart", delay, {**body, "retry": delay})

    # -- shutdown ----------------------------------------------------------------------------

    async def shutdown(self, kind: Kind = "stop") -> ShutdownReport:
        """Tell every stream now and wait for the drain; new streams get the farewell at once.

        For application code (an admin action, a maintenance window). The server keeps running;
        call ``reopen()`` to accept streams normally again.
        """
        run = self.ensure_started()
        self._begin(run, _check_kind(kind), "explicit call")
        assert run.drain_task is not None
        await asyncio.shield(run.drain_task)
        assert run.report is not None
        return run.report

    def reopen(self) -> None:
        """After an explicit ``shutdown()``, accept new streams normally again."""
        run = self._current()
        if run is not None and run.draining:
            run.draining = False
            run.kind = None
            run.drained = asyncio.Event()
            logger.info("graceful-sse: accepting streams again")

    def request_shutdown(self, kind: Kind = "stop") -> None:
        """Thread-safe, non-blocking: start the drain from any thread (no report)."""
        run = self._current()
        if run is None:
            raise RuntimeError("the lifecycle has not started on an event loop yet")
        run.loop.call_soon_threadsafe(self._begin, run, _check_kind(kind), "request")

    def _on_signal(self, run: _Run, sig: signal.Signals, disposition: Disposition) -> bool:
        """Inside the signal handler, on the main thread: arm the exit bound, schedule the rest.

        Returns True when the signal is kept, to be handed on to the server once the streams have
        written their farewells (``_hand_on``).
        """
        if run.closed or not run.loop.is_running():
            return False
        kind = self.kinds[sig]
        # Noted before anything runs on the loop: under load a server watch can run first and
        # see the server's reaction to a signal; it must take it for this signal, not for an exit
        # with no signal.
        run.note(kind)
        if disposition is Disposition.IGNORED:
            # The process ignores it (Hypercorn's workers and SIGINT): what it meant is noted for
            # when the server tells us it is stopping.
            return False
        # The process is ending. The bound counts from now and is kept from here, not from the
        # loop, which app code may be blocking.
        self._arm_guard(run, sig.name, from_signal=True)
        run.loop.call_soon_threadsafe(self._signalled, run, kind, sig)
        run.sigints += sig is signal.SIGINT
        if sig is signal.SIGINT and run.sigints > 1:
            # A second Ctrl+C: the server gets both at once (uvicorn forces its exit on the second).
            self._hand_on(run, Disposition.HANDLED, Disposition.DEFAULT)
            return False
        if run.handed_on:
            return False
        # Every signal is held until the farewells are written, each once: gunicorn's SIGQUIT can
        # come first and mean nothing to uvicorn, whose own shutdown waits for the SIGINT after it.
        if sig not in run.kept:
            run.kept.append(sig)
        return True

    def _signalled(self, run: _Run, kind: Kind, sig: signal.Signals) -> None:
        """On the loop, soon after a signal: begin the drain, or wait a moment for a restart."""
        if run.closed:
            return
        if run.draining:
            self._again(run, sig)
        elif kind == "stop":
            self._begin(run, "stop", sig.name)
        elif run.settling is None:
            self._settle(run, sig.name)

    def _on_server_exit(self, run: _Run) -> None:
        """A server watch saw the server stopping: a signal's meaning if one came, else ours."""
        if run.closed or run.draining:
            return
        self._arm_guard(run, "server", from_signal=False)
        kind = run.noted or self.on_server_exit
        if kind == "stop":
            self._begin(run, "stop", "server")
        elif run.settling is None:
            self._settle(run, "server")

    def _settle(self, run: _Run, cause: str) -> None:
        # A Ctrl+C reaches a reloader's child as its own SIGINT and as the reloader's SIGTERM, in
        # either order: a restart waits a moment, and a stop arriving meanwhile replaces it.
        run.settling = run.loop.call_later(self.restart_settle, self._begin, run, "restart", cause)

    def _arm_guard(self, run: _Run, cause: str, *, from_signal: bool) -> None:
        if run.guard is None and self.exit_timeout is not None:
            run.guard = _ExitGuard(
                self.exit_timeout,
                cause,
                nudge=lambda: self._nudge(run),
                open_streams=lambda: len(run.streams),
                backstop=from_signal,
            )
            run.guard_from_signal = from_signal

    def _nudge(self, run: _Run) -> None:
        """The exit bound is near: ask a known uvicorn server to stop waiting (a second Ctrl+C)."""
        server = run.server
        if server is None or not hasattr(server, "force_exit") or run.loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            run.loop.call_soon_threadsafe(setattr, server, "force_exit", True)

    def _begin(self, run: _Run, kind: Kind, cause: str) -> None:
        """Tell every open stream, stop producers, and start the drain (once per shutdown)."""
        if run.closed or run.draining:
            return
        if run.settling is not None:
            run.settling.cancel()
            run.settling = None
        run.draining, run.kind, run.cause = True, kind, cause
        self._stop_farewells.clear()
        run.started_at = time.monotonic()
        run.deadline = run.started_at + self._drain_bound(run)
        run.told, run.took, run.gone, run.late = len(run.streams), 0, 0, 0
        run.cut = []
        run.report = None
        run.drained = asyncio.Event()
        logger.info(
            "graceful-sse: %s: %s; telling %d open stream(s)",
            cause,
            "stopping" if kind == "stop" else "restarting",
            run.told,
        )
        for handle in list(run.streams):
            handle.tell(kind)
        if not run.streams:
            run.drained.set()
        cancelled = run.producers.cancel()
        if cancelled:
            logger.info("graceful-sse: stopped %d background producer(s)", cancelled)
        if run.guard is not None:
            # The process is ending: a full collection over every connection's objects would
            # stall the drain for up to a second at 10,000 streams, and find nothing to free.
            gc.freeze()
        run.drain_task = run.loop.create_task(self._drain(run))

    def _again(self, run: _Run, sig: signal.Signals) -> None:
        if sig is not signal.SIGINT or run.sigints < 2:
            logger.info("graceful-sse: %s during the drain: already %s", sig.name, run.kind)
            return
        # A second Ctrl+C: the user wants out now. The server's own handler has both signals and
        # forces its exit; we stop waiting for streams and keep the exit bound short.
        logger.warning("graceful-sse: second SIGINT: ending the drain now")
        run.deadline = time.monotonic()
        run.drained.set()  # the drain task gives up on the streams still writing
        if run.guard is not None:
            run.guard.shorten(1.0)

    async def _drain(self, run: _Run) -> None:
        # Wait for the farewells to be written, briefly: only then does the server hear of the
        # signal, so that its own shutdown (closing the listener, an HTTP/2 GOAWAY) comes after.
        await _wait(run.drained, min(run.started_at + HANDOFF, run.deadline))
        self._hand_on(run, Disposition.HANDLED)

        # Give slow readers the rest of the drain bound.
        await _wait(run.drained, run.deadline)

        # Clients that did not take their farewell: stop writing to them, and close their
        # connections, so that the server's graceful shutdown (and the app's lifespan) completes.
        told_still_open = [h for h in run.streams if not h.late]
        for handle in told_still_open:
            handle.abandon()
            run.cut.append(f"{handle.label} ({Outcome.TOO_SLOW.value})")

        # One line for the log, and the report.
        run.report = ShutdownReport(
            kind=run.kind or "stop",
            cause=run.cause,
            told=run.told,
            took=run.took,
            gone=run.gone,
            missed=len(run.cut),
            late=run.late,
            seconds=time.monotonic() - run.started_at,
            cut=tuple(run.cut),
        )
        self.shutdowns += 1
        self.last_shutdown_seconds = run.report.seconds
        logger.info("graceful-sse: %s", run.report.describe())

        # A signal with no handler but its default action (terminate, KeyboardInterrupt) ends the
        # loop: it goes last. Signals that come after this go straight on.
        run.handed_on = True
        self._hand_on(run, Disposition.HANDLED, Disposition.DEFAULT)

    def _hand_on(self, run: _Run, *dispositions: Disposition) -> None:
        """Give the kept signals to the server's own handlers (or their default action).

        SIGINT first: uvicorn takes a SIGINT that follows any other signal for a second Ctrl+C and
        forces its exit, skipping the app's lifespan shutdown.
        """
        chain = run.chain
        if chain is None:
            return
        for sig in sorted(run.kept, key=lambda s: s is not signal.SIGINT):
            if chain.disposition(sig) in dispositions:
                run.kept.remove(sig)
                chain.hand_on(sig)

    def _drain_bound(self, run: _Run) -> float:
        # Streams still writing are closed before the server cancels them (Hypercorn's
        # graceful_timeout, 3 s by default, begins with its shutdown, as our drain does).
        if run.server_grace is None:
            return self.drain_timeout
        return max(MIN_FLUSH, min(self.drain_timeout, run.server_grace - GRACE_MARGIN))

    def _follow_hypercorn(self, run: _Run) -> None:
        watch = servers.find_hypercorn_trigger(lambda: self._on_server_exit(run))
        if watch is not None:
            run.watches.append(watch)
            run.server_grace = servers.hypercorn_graceful_timeout()


def _farewell_event(name: str, retry_ms: int, body: dict[str, Any]) -> bytes:
    data = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
    return f"retry: {retry_ms}\nevent: {name}\ndata: {data}\n\n".encode()


class _ExitGuard:
    """Ends the process ``timeout`` s after a signal if the server has not managed to.

    It runs on its own daemon thread, so neither a blocked event loop nor app code that ignores
    cancellation or blocks a thread can stop it; it stays armed after the app's lifespan has
    ended, through the server's and Python's own clean-up. ``NUDGE_BEFORE`` s before the bound
    it calls ``nudge`` (the lifecycle asks a uvicorn server to stop waiting for connections);
    at the bound it exits the process.

    With ``backstop`` (the process is ending on a signal), faulthandler's watchdog ends it
    ``BACKSTOP`` s later still, printing where every thread was: a native thread that holds the
    GIL forever (seen with Granian's worker) stops every Python thread, this one included, but
    not that watchdog, a C thread that needs no GIL.
    """

    NUDGE_BEFORE = 1.0
    BACKSTOP = 1.0

    def __init__(
        self,
        timeout: float,
        cause: str,
        *,
        nudge: Callable[[], None],
        open_streams: Callable[[], int],
        backstop: bool = False,
    ) -> None:
        self._cause = cause
        self._nudge = nudge
        self._open_streams = open_streams
        self._started = time.monotonic()
        self._deadline = self._started + timeout
        self._cancelled = threading.Event()
        self._changed = threading.Event()
        self._backstop = backstop and _arm_watchdog(timeout + self.BACKSTOP)
        thread = threading.Thread(target=self._watch, name="graceful-sse exit guard", daemon=True)
        thread.start()

    def disarm(self) -> None:
        self._cancelled.set()
        self._changed.set()
        if self._backstop:
            faulthandler.cancel_dump_traceback_later()

    def shorten(self, seconds: float) -> None:
        self._deadline = min(self._deadline, time.monotonic() + seconds)
        self._changed.set()
        if self._backstop:
            _arm_watchdog(self._deadline - time.monotonic() + self.BACKSTOP)

    def _watch(self) -> None:
        nudged = False
        while not self._cancelled.is_set():
            left = self._deadline - time.monotonic()
            if left <= 0:
                break
            if not nudged and left <= self.NUDGE_BEFORE:
                nudged = True
                self._nudge()
            self._changed.wait(min(left, max(left - self.NUDGE_BEFORE, 0.01)))
            self._changed.clear()
        if self._cancelled.is_set():
            return
        others = [t.name for t in threading.enumerate() if t is not threading.current_thread()]
        logger.error(
            "graceful-sse: process still running %.1f s after %s with %d stream(s) open and %d other "
            "thread(s) (%s); exiting now",
            time.monotonic() - self._started,
            self._cause,
            self._open_streams(),
            len(others),
            ", ".join(others[:5]),
        )
        for handler in logging.getLogger().handlers + logger.handlers:
            handler.flush()
        os._exit(1)


def _arm_watchdog(seconds: float) -> bool:
    """faulthandler's one process-wide timer: dump every thread's stack, then ``_exit(1)``."""
    stream = sys.__stderr__
    try:
        faulthandler.dump_traceback_later(seconds, exit=True, file=stream)  # type: ignore[arg-type]
    except (AttributeError, OSError, RuntimeError, ValueError):
        return False  # no real stderr to write to (an embedding host): the guard alone
    return True


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


async def _wait(event: asyncio.Event, until: float) -> None:
    """Wait for ``event`` until the monotonic time ``until`` at the latest."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), timeout=max(until - time.monotonic(), 0))
