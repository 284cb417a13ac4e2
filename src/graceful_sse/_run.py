"""The lifecycle on one event loop: its streams, and the shutdown path from trigger to exit.

Shutdown, top to bottom (each step is one method below):

1. ``_on_signal`` (in the signal handler) or ``on_server_exit`` (a server watch): note what it
   means, arm the exit bound, hold the signal for the server;
2. ``_signalled``: a stop begins at once; a restart settles for ``restart_settle`` first, in case
   a stop follows (a Ctrl+C reaches a reloader's child twice);
3. ``begin``: tell every open stream (a finite one that asked for time to finish is told only
   when its time runs out), cancel producers, start ``_drain``;
4. ``_drain``: hand the held signals to the server once the farewells are written (or after
   ``HANDOFF``): it stops accepting while finishing streams go on; give finishing streams and
   slow readers the rest of the bound, close those that did not take it, log the report, hand on
   whatever is left;
5. the exit guard (``_exit_guard``) ends the process ``exit_timeout`` after the signal if the
   server has not managed to.
"""

from __future__ import annotations

import asyncio
import gc
import signal
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from . import _servers as servers
from ._drain import MIN_FLUSH, Drain, Kind, Outcome, ShutdownReport, StreamHandle
from ._exit_guard import ExitGuard
from ._logs import logger
from ._producers import ProducerTasks
from ._signals import Disposition
from ._sockets import SocketCloser
from ._triggers import Triggers

if TYPE_CHECKING:
    from starlette.types import Scope

    from ._lifecycle import Lifecycle

__all__ = ["Run"]

# The server hears of a signal once every told stream has written its farewell, or this long after
# the drain began: its own shutdown (an HTTP/2 GOAWAY, closing the listener) must not overtake them.
HANDOFF = 1.0
GRACE_MARGIN = 0.5  # the drain ends this long before the server's own graceful timeout


class Run:
    """The lifecycle's state on one event loop, from its app's lifespan start to its end."""

    def __init__(
        self,
        lifecycle: Lifecycle,
        loop: asyncio.AbstractEventLoop,
        *,
        on_report: Callable[[ShutdownReport], None],
    ) -> None:
        self.lifecycle = lifecycle  # its settings: what signals mean, the bounds, the farewells
        self.loop = loop
        self.streams: set[StreamHandle] = set()
        self.drain: Drain | None = None  # the shutdown in progress (or done, until ``reopen``)
        self.report: ShutdownReport | None = None
        self.triggers = Triggers(
            loop, lifecycle.kinds, on_signal=self._on_signal, on_server_exit=self.on_server_exit
        )
        self.closer = SocketCloser(loop)
        self.producers = ProducerTasks()
        self.closed = False  # its app's lifespan ended, or its loop did
        self._on_report = on_report
        self._guard: ExitGuard | None = None
        self._guard_from_signal = False
        self._settling: asyncio.TimerHandle | None = None  # a restart waiting for a stop to overtake it
        self._triggered_at: float | None = None  # loop time of the first trigger (a settle's start)

    # -- start and end -----------------------------------------------------------------------

    def start(self, watched: Iterable[Any]) -> None:
        """Chain the signal handlers, watch the server, start the producers."""
        found = servers.find_uvicorn_server()
        watched = list(watched)
        if not self.triggers.install() and found is None and not watched:
            logger.info(
                "graceful-sse: not on the main thread, so no signal handlers; call "
                "lifecycle.watch(server) or lifecycle.shutdown() to end streams gracefully"
            )
        for server in {id(s): s for s in [*watched, *([found] if found else [])]}.values():
            self.triggers.watch(server)
        self.producers = self.lifecycle.producers.start()

    async def close(self) -> None:
        """The app is done (lifespan shutdown): producers, watches and signals let go."""
        self._stop_producers()
        await self.producers.wait(self.lifecycle.drain_timeout)
        self.forget()
        if self._guard is not None and not self._guard_from_signal:
            # The server stopped with no signal: the program that runs it lives on (a notebook,
            # an embedded server). After a signal the process is ending, so the bound stays in
            # force through the server's and Python's clean-up.
            self._guard.disarm()

    def forget(self) -> None:
        """Let go of signals and watches: the app or the loop has ended."""
        self.triggers.stop()
        self.closed = True

    # -- streams -----------------------------------------------------------------------------

    def open_stream(self, handle: StreamHandle) -> StreamHandle:
        """Register a stream; one opened during the drain is told at once (``handle.late``)."""
        self.triggers.follow_hypercorn()
        if self.drain is not None:
            self.drain.opened_late(handle)
        self.streams.add(handle)
        handle.run = self
        return handle

    def close_stream(self, handle: StreamHandle, outcome: Outcome) -> None:
        if handle not in self.streams:
            return
        self.streams.discard(handle)
        drain = self.drain
        if drain is not None:
            drain.count(handle, outcome)
            if not self.streams:
                drain.done.set()

    def close_connection(self, scope: Scope) -> bool:
        """Close the connection of ``scope`` under the server (see ``_sockets``); False if unknown."""
        return self.closer.close(scope)

    def flush_timeout(self) -> float:
        """How long a told stream may still take to write its farewell."""
        return self.drain.flush_timeout() if self.drain is not None else self.lifecycle.drain_timeout

    # -- 1. the trigger ------------------------------------------------------------------------

    def _on_signal(self, sig: signal.Signals, disposition: Disposition) -> bool:
        """Inside the signal handler, on the main thread: arm the exit bound, schedule the rest.

        Returns True when the signal is held, to be handed on to the server once the streams have
        written their farewells.
        """
        if self.closed or not self.loop.is_running():
            return False
        kind = self.lifecycle.kinds[sig]
        # Noted before anything runs on the loop: under load a server watch can run first and
        # see the server's reaction to a signal; it must take it for this signal, not for an exit
        # with no signal.
        self.triggers.note(kind)
        if disposition is Disposition.IGNORED:
            # The process ignores it (Hypercorn's workers and SIGINT): what it meant is noted for
            # when the server tells us it is stopping.
            return False
        # The process is ending. The bound counts from now and is kept from here, not from the
        # loop, which app code may be blocking.
        self._arm_guard(sig.name, from_signal=True)
        self.loop.call_soon_threadsafe(self._signalled, kind, sig)
        return self.triggers.hold(sig)

    def on_server_exit(self) -> None:
        """A server watch saw the server stopping: a signal's meaning if one came, else ours."""
        if self.closed or self.drain is not None:
            return
        self._arm_guard("server", from_signal=False)
        kind = self.triggers.noted or self.lifecycle.on_server_exit
        if kind is Kind.STOP:
            self.begin(Kind.STOP, "server")
        elif self._settling is None:
            self._settle("server")

    # -- 2. stop now, or settle a restart --------------------------------------------------------

    def _signalled(self, kind: Kind, sig: signal.Signals) -> None:
        """On the loop, soon after a signal: begin the drain, or wait a moment for a restart."""
        if self.closed:
            return
        if self.drain is not None:
            self._again(sig)
        elif kind is Kind.STOP:
            self.begin(Kind.STOP, sig.name)
        elif self._settling is None:
            self._settle(sig.name)

    def _settle(self, cause: str) -> None:
        # A Ctrl+C reaches a reloader's child as its own SIGINT and as the reloader's SIGTERM, in
        # either order: a restart waits a moment, and a stop arriving meanwhile replaces it.
        self._triggered_at = self.loop.time()
        self._settling = self.loop.call_later(self.lifecycle.restart_settle, self.begin, Kind.RESTART, cause)

    def _again(self, sig: signal.Signals) -> None:
        assert self.drain is not None
        if sig is not signal.SIGINT or self.triggers.sigints < 2:
            # A reloader's or supervisor's SIGTERM after a Ctrl+C, most often: nothing to do.
            doing = "stopping" if self.drain.kind is Kind.STOP else "restarting"
            logger.info("graceful-sse: %s while already %s: carrying on", sig.name, doing)
            return
        # A second Ctrl+C: the user wants out now. The server's own handler has both signals and
        # forces its exit; we stop waiting for streams and keep the exit bound short.
        logger.warning("graceful-sse: second SIGINT: ending the drain now")
        self.drain.end_now()
        if self._guard is not None:
            self._guard.shorten(1.0)

    # -- 3. tell every stream ------------------------------------------------------------------

    def begin(self, kind: Kind, cause: str) -> None:
        """Tell every open stream, stop producers, and start the drain (once per shutdown)."""
        if self.drain is not None or self.closed:
            return
        # A restart still settling is overtaken.
        if self._settling is not None:
            self._settling.cancel()
            self._settling = None
        streams, cap = list(self.streams), self._finish_cap()
        finish = max((min(handle.finish, cap) for handle in streams), default=0.0)
        drain = Drain(kind, cause, told=len(streams), bound=self._drain_bound(finish), finish=finish)
        self.drain, self.report = drain, None
        self.lifecycle.farewells.new_drain()
        # Each stream wakes, writes its farewell and ends its response; a finite one that asked
        # for time goes on streaming, and is told if it has not ended when its time runs out.
        for handle in streams:
            if handle.finish > 0:
                drain.let_finish(handle, min(handle.finish, cap))
            else:
                drain.tell(handle)
        logger.info(
            "graceful-sse: %s: %s; telling %d open stream(s)%s",
            cause,
            "stopping" if kind is Kind.STOP else "restarting",
            len(streams) - drain.given_time,
            f", letting {drain.given_time} finish (up to {finish:.1f} s)" if drain.given_time else "",
        )
        if drain.waiting_told == 0:
            drain.told_done.set()
        if not self.streams:
            drain.done.set()
        if finish and self._guard is not None:
            self._guard.extend(finish)  # the exit bound: the longest finish time, plus exit_timeout
        # Nothing more will be published to streams that are leaving.
        self._stop_producers()
        if self._guard is not None:
            # The process is ending: a full collection over every connection's objects would
            # stall the drain for up to a second at 10,000 streams, and find nothing to free.
            gc.freeze()
        drain.task = self.loop.create_task(self._drain(drain))

    # -- 4. the drain --------------------------------------------------------------------------

    async def _drain(self, drain: Drain) -> None:
        # Wait for the farewells to be written, briefly: only then does the server hear of the
        # signal, so that its own shutdown (closing the listener, an HTTP/2 GOAWAY) comes after.
        # Streams still finishing are not waited for: the server stops accepting meanwhile.
        await drain.wait(min(drain.started_at + HANDOFF, drain.deadline), told_only=True)
        self.triggers.hand_on(Disposition.HANDLED)

        # Give finishing streams their time, and slow readers the rest of the drain bound.
        await drain.wait(drain.deadline)

        # Clients that did not take their farewell: stop writing to them, and close their
        # connections, so that the server's graceful shutdown (and the app's lifespan) completes.
        drain.give_up([handle for handle in self.streams if not handle.late])

        # One line for the log, and the report.
        self.report = drain.finish()
        self._on_report(self.report)
        logger.info("graceful-sse: %s", self.report.describe())

        # A signal with no handler but its default action (terminate, KeyboardInterrupt) ends the
        # loop: it goes last. Signals that come after this go straight on.
        self.triggers.release()

    # -- helpers -------------------------------------------------------------------------------

    def _arm_guard(self, cause: str, *, from_signal: bool) -> None:
        timeout = self.lifecycle.exit_timeout
        if self._guard is None and timeout is not None:
            self._guard = ExitGuard(
                timeout,
                cause,
                nudge=self.triggers.nudge,
                open_streams=lambda: len(self.streams),
                backstop=from_signal,
            )
            self._guard_from_signal = from_signal

    def _stop_producers(self) -> None:
        cancelled = self.producers.cancel()
        if cancelled:
            logger.info("graceful-sse: stopped %d background producer(s)", cancelled)

    def reopen(self) -> None:
        """After an explicit shutdown: streams open normally again, the next shutdown is new."""
        self.drain = None
        self._triggered_at = None

    def _finish_cap(self) -> float:
        # A server that cancels what is still open after its own graceful timeout (Hypercorn's
        # graceful_timeout, uvicorn's --timeout-graceful-shutdown) caps how long streams may
        # finish: each still needs a moment for its farewell before that.
        grace = self._server_grace_left()
        return float("inf") if grace is None else max(grace - GRACE_MARGIN - MIN_FLUSH, 0.0)

    def _drain_bound(self, finish: float) -> float:
        # Streams still writing are closed before the server cancels them (Hypercorn's
        # graceful_timeout, 3 s by default, runs from its shutdown's trigger).
        grace, timeout = self._server_grace_left(), self.lifecycle.drain_timeout
        if grace is None:
            return timeout
        return max(MIN_FLUSH, min(timeout, grace - GRACE_MARGIN - finish))

    def _server_grace_left(self) -> float | None:
        # The server's graceful timeout runs from its own trigger: a restart that settled first
        # has already used some of it (uvicorn's starts later, when it gets the held signal).
        grace = self.triggers.server_grace
        if grace is None or self._triggered_at is None:
            return grace
        return grace - (self.loop.time() - self._triggered_at)
