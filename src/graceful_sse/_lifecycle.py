"""``Lifecycle``: one app's shutdown settings, and its run on each event loop.

A ``Lifecycle`` belongs to the app. It learns of shutdown from the first of:

- a signal (SIGINT, SIGTERM, SIGQUIT), through a handler chained in front of the server's own;
- the server itself beginning to stop where no signal reached us (``_servers``);
- an explicit ``await lifecycle.shutdown(...)`` from application code.

Then every open stream is told (``stop`` or ``restart``), producers are cancelled, the server
hears of the signal once the farewells are written, the drain is awaited up to
``drain_timeout``, connections whose clients did not take their farewell are closed, and, when a
signal or the server asked the process to end, an exit guard makes sure it is gone
``exit_timeout`` seconds after the signal. That path is ``_run.Run``, one per event loop: a
notebook's stopped server may still be draining on its loop while the next starts on another.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar, overload

from ._drain import Kind, KindName, Outcome, ShutdownReport, StreamHandle, as_kind, kind_from_env
from ._farewell import FarewellExtra, Farewells
from ._logs import Summary, logger, make_visible
from ._producers import Producer, ProducerFn, Producers
from ._run import Run

__all__ = ["Lifecycle", "Lifespan"]

F = TypeVar("F", bound=ProducerFn)


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

    ``finish`` (s) is how long a shutdown lets each stream over an app's generator go on before
    it is told (an answer being streamed; ``EventStream(finish=...)`` sets it per stream): it
    ends cleanly if its generator ends in time, else it gets the farewell then. Hub subscriptions
    are always told at once. The exit bound grows by the longest finish time of the streams open.
    """

    def __init__(
        self,
        *,
        on_sigint: KindName | None = None,
        on_sigterm: KindName | None = None,
        on_sigquit: KindName = Kind.STOP,
        on_server_exit: KindName | None = None,
        restart_window: tuple[float, float] = (1.0, 5.0),
        drain_timeout: float = 3.0,
        exit_timeout: float | None = 5.0,
        restart_settle: float = 0.5,
        stop_message: str = "Server stopped",
        restart_message: str = "Server restarting",
        farewell_extra: FarewellExtra | None = None,
        finish: float = 0.0,
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
        if finish < 0:
            raise ValueError("finish must be zero (told at once) or a positive number of seconds")
        sigterm = as_kind(on_sigterm) if on_sigterm else kind_from_env("SSE_ON_SIGTERM", Kind.RESTART)
        self.kinds: dict[signal.Signals, Kind] = {
            signal.SIGINT: as_kind(on_sigint) if on_sigint else kind_from_env("SSE_ON_SIGINT", Kind.STOP),
            signal.SIGTERM: sigterm,
            signal.SIGQUIT: as_kind(on_sigquit),
        }
        self.on_server_exit: Kind = as_kind(on_server_exit) if on_server_exit else sigterm
        self.drain_timeout = drain_timeout
        self.exit_timeout = exit_timeout
        self.restart_settle = restart_settle
        self.finish = finish
        self.farewells = Farewells(
            restart_window=(lo, hi),
            stop_message=stop_message,
            restart_message=restart_message,
            extra=farewell_extra,
        )
        self.producers = Producers()
        self.shutdowns = 0  # drains run, for metrics
        self.last_shutdown_seconds = 0.0
        self.streams_finished = 0  # streams given time to finish that did (``finish=``), all drains
        self.streams_out_of_time = 0  # ... that were told when their time ran out
        # Clients that stop reading are theirs to multiply: one line a minute says how many.
        self.cut_off_log = Summary("streams ended for taking no data", level=logging.WARNING)
        self._watched: list[Any] = []  # servers passed to ``watch``
        self._runs: dict[asyncio.AbstractEventLoop, Run] = {}
        self._latest: Run | None = None
        self._warned_second = False
        self._said_started_by_stream = False

    # -- state -------------------------------------------------------------------------------

    @property
    def draining(self) -> bool:
        run = self._current()
        return run is not None and run.drain is not None

    @property
    def kind(self) -> Kind | None:
        """The kind of the shutdown in progress, if any."""
        run = self._current()
        return run.drain.kind if run is not None and run.drain is not None else None

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
    def of_app(cls, app: Any, claim: Lifecycle | None = None) -> Lifecycle:
        """The lifecycle of a Starlette ``app``: the one its lifespan attached, or the first used.

        An app without ``lifespan=`` gets one on its first stream: ``claim`` (a hub
        subscription's lifecycle) if given, else one with defaults, and every later stream of
        the app finds that one: one lifecycle per app, one line per shutdown step in the log.
        """
        state = getattr(app, "state", None)
        if state is None:
            if claim is not None:
                return claim
            raise RuntimeError(
                "EventStream could not find its Lifecycle: run it inside a Starlette/FastHTML app, "
                "or pass EventStream(..., lifecycle=...)"
            )
        found = getattr(state, "graceful_sse", None)
        if found is None:
            found = state.graceful_sse = claim or cls()
        assert isinstance(found, Lifecycle)
        if claim is not None and found is not claim:
            claim._warn_second(found)
            return claim
        return found

    def _warn_second(self, other: Lifecycle) -> None:
        if not self._warned_second:
            self._warned_second = True
            logger.warning(
                "graceful-sse: this app's streams follow two lifecycles (a hub's, and the app's, made "
                "for a plain EventStream that opened first): each logs and drains on its own. Pass "
                "lifespan=hub.lifespan to the app so that every stream follows the hub's"
            )

    async def start(self) -> None:
        """Start on the running loop: chain signal handlers, watch the server, run producers."""
        self._open_run()

    async def close(self) -> None:
        """The app is done (lifespan shutdown): stop producers, watches and the exit guard."""
        run = self._here()
        if run is not None:
            await self._close_run(run)

    def watch(self, server: Any) -> None:
        """Begin the drain when ``server.should_exit`` becomes true (an embedded uvicorn server).

        Needed only where the server runs outside the main thread (a uvicorn ``Server`` run in
        the main thread is found on its own). Call it before or after the server starts.
        """
        self._watched.append(server)
        run = self._latest
        if run is not None and not run.loop.is_closed():
            run.loop.call_soon_threadsafe(run.triggers.watch, server)

    # -- runs, one per event loop ------------------------------------------------------------

    def run_here(self, *, by_stream: bool = False) -> Run:
        """The run on the running loop, started on first use; safe to call on every stream."""
        loop = asyncio.get_running_loop()
        run = self._runs.get(loop)
        if run is not None:
            return run
        if by_stream and not self._said_started_by_stream:
            self._said_started_by_stream = True
            logger.info(
                "graceful-sse: started by the first stream, as the app has no lifespan=hub.lifespan "
                "(or lifecycle.lifespan): background producers start only now. Pass it to start "
                "with the app"
            )
        self._forget_ended_runs()
        make_visible()
        run = self._runs[loop] = self._latest = Run(self, loop, on_report=self._reported)
        # A server stopped before (a notebook's stop() then start()) must not end the new run.
        self._watched = [server for server in self._watched if not server.should_exit]
        run.start(self._watched)
        return run

    def _open_run(self) -> Run:
        """An app starts on this loop: its run, a new one if the loop's last server is stopping.

        A notebook's ``JupyUviAsync`` stopped then started runs both servers on the kernel's loop
        for a moment: the old one's streams are told now, not at its watch's next look, and are
        drained in its run while the new server gets a run of its own.
        """
        run = self._here()
        if run is not None and run.triggers.server_stopping():
            run.on_server_exit()
            del self._runs[run.loop]
        return self.run_here()

    async def _close_run(self, run: Run) -> None:
        await run.close()
        # The run ends with the app: a server started again on this loop (a notebook's
        # JupyUviAsync) gets a fresh one.
        if self._runs.get(run.loop) is run:
            del self._runs[run.loop]

    def _forget_ended_runs(self) -> None:
        """Runs whose loop has ended (``asyncio.run`` returned) let go of signals and watches."""
        for loop, run in list(self._runs.items()):
            if loop.is_closed() or not loop.is_running():
                run.forget()
                del self._runs[loop]

    def _here(self) -> Run | None:
        """The run on the running event loop, if any."""
        loop = _running_loop()
        return self._runs.get(loop) if loop is not None else None

    def _current(self) -> Run | None:
        """The run of the calling thread's loop; off any loop, the most recently started one.

        A run ended with its app (``close``) stays readable on its loop until the next starts.
        """
        loop, latest = _running_loop(), self._latest
        if loop is None:
            return latest
        return self._runs.get(loop) or (latest if latest is not None and latest.loop is loop else None)

    def _reported(self, report: ShutdownReport) -> None:
        self.shutdowns += 1
        self.last_shutdown_seconds = report.seconds
        self.streams_finished += report.finished
        self.streams_out_of_time += report.out_of_time

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
        return self.run_here().open_stream(handle or StreamHandle())

    def close_stream(self, handle: StreamHandle, outcome: Outcome) -> None:
        """A stream ended; ``outcome`` says whether it took its farewell."""
        if handle.run is not None:
            handle.run.close_stream(handle, outcome)

    def farewell(self, kind: KindName) -> bytes:
        """The bytes that end a stream told ``kind`` (without a status update; streams ask
        ``farewells`` for theirs)."""
        return self.farewells.build(as_kind(kind))

    # -- shutdown ----------------------------------------------------------------------------

    async def shutdown(self, kind: KindName = Kind.STOP) -> ShutdownReport:
        """Tell every stream now and wait for the drain; new streams get the farewell at once.

        For application code (an admin action, a maintenance window). The server keeps running;
        call ``reopen()`` to accept streams normally again.
        """
        run = self.run_here()
        run.begin(as_kind(kind), "explicit call")
        drain = run.drain
        assert drain is not None and drain.task is not None
        await asyncio.shield(drain.task)
        assert drain.report is not None
        return drain.report

    def reopen(self) -> None:
        """After an explicit ``shutdown()``, accept new streams normally again."""
        run = self._current()
        if run is not None and run.drain is not None:
            run.reopen()
            logger.info("graceful-sse: accepting streams again")

    def request_shutdown(self, kind: KindName = Kind.STOP) -> None:
        """Thread-safe, non-blocking: start the drain from any thread (no report)."""
        run = self._current()
        if run is None:
            raise RuntimeError("the lifecycle has not started on an event loop yet")
        run.loop.call_soon_threadsafe(run.begin, as_kind(kind), "request")


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
