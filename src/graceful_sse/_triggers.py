"""How one run hears that its process is stopping: signals, and the server itself.

Signals reach us first, through a handler chained in front of the server's own (``_signals``),
and are held until the streams have written their farewells: only then does the server begin
its own shutdown (closing its listener, an HTTP/2 GOAWAY, a KeyboardInterrupt). Where no signal
reaches this process (an embedded server's ``should_exit``, Hypercorn's workers) a watch on the
server sees it stopping (``_servers``).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Iterable

from . import _servers as servers
from ._drain import Kind
from ._signals import Callback, Disposition, SignalChain

__all__ = ["Triggers"]


class Triggers:
    """The signal chain and server watches of one event loop's run, and the signals it holds."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        signals: Iterable[signal.Signals],
        *,
        on_signal: Callback,
        on_server_exit: Callable[[], None],
    ) -> None:
        self._loop = loop
        self._chain = SignalChain(signals, on_signal)
        self._on_server_exit = on_server_exit
        self._watches: list[servers.ServerWatch] = []
        self._hypercorn_checked = False
        self._kept: list[signal.Signals] = []  # held until the farewells are written
        self._released = False  # after the drain, signals go straight on
        self.server: servers.ExitFlag | None = None
        self.server_grace: float | None = None  # the server cancels what is still open after this
        self.noted: Kind | None = None  # what the signals so far meant, for a watch that sees it first
        self.sigints = 0

    # -- signals -----------------------------------------------------------------------------

    def install(self) -> bool:
        """Chain our handler in front of the server's; False off the main thread."""
        return self._chain.install()

    def note(self, kind: Kind) -> None:
        """Remember what the signals so far meant; a stop among them wins (a Ctrl+C)."""
        self.noted = Kind.STOP if kind is Kind.STOP else (self.noted or kind)

    def hold(self, sig: signal.Signals) -> bool:
        """Keep ``sig`` for the server until the farewells are written; False: it goes on now."""
        self.sigints += sig is signal.SIGINT
        if sig is signal.SIGINT and self.sigints > 1:
            # A second Ctrl+C: the server gets both at once (uvicorn forces its exit on the second).
            self.hand_on(Disposition.HANDLED, Disposition.DEFAULT)
            return False
        if self._released:
            return False
        # Every signal is held, each once: gunicorn's SIGQUIT can come first and mean nothing to
        # uvicorn, whose own shutdown waits for the SIGINT after it.
        if sig not in self._kept:
            self._kept.append(sig)
        return True

    def hand_on(self, *dispositions: Disposition) -> None:
        """Give the kept signals to the server's own handlers (or their default action).

        SIGINT first: uvicorn takes a SIGINT that follows any other signal for a second Ctrl+C and
        forces its exit, skipping the app's lifespan shutdown.
        """
        for sig in sorted(self._kept, key=lambda s: s is not signal.SIGINT):
            if self._chain.disposition(sig) in dispositions:
                self._kept.remove(sig)
                self._chain.hand_on(sig)

    def release(self) -> None:
        """The drain is over: hand on every kept signal, a default action last; later ones go straight on."""
        self._released = True
        self.hand_on(Disposition.HANDLED, Disposition.DEFAULT)

    # -- the server --------------------------------------------------------------------------

    def watch(self, server: servers.ExitFlag) -> None:
        """Hear of ``server`` stopping through its ``should_exit`` flag."""
        self.server = server
        self._watches.append(servers.watch_should_exit(server, self._on_server_exit))
        grace = servers.uvicorn_graceful_timeout(server)
        if grace is not None:
            self.server_grace = grace

    def follow_hypercorn(self) -> None:
        """Hear of Hypercorn's shutdown trigger; once, at the first stream (its task exists by then)."""
        if self._hypercorn_checked:
            return
        self._hypercorn_checked = True
        watch = servers.find_hypercorn_trigger(self._on_server_exit)
        if watch is not None:
            self._watches.append(watch)
            self.server_grace = servers.hypercorn_graceful_timeout()

    def server_stopping(self) -> bool:
        return self.server is not None and servers.is_stopping(self.server)

    def nudge(self) -> None:
        """The exit bound is near (another thread): ask a uvicorn server to stop waiting (a second Ctrl+C)."""
        server = self.server
        if server is None or self._loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            self._loop.call_soon_threadsafe(setattr, server, "force_exit", True)

    def stop(self) -> None:
        """Let go of the server and the signals (the previous handlers are back)."""
        for watch in self._watches:
            watch.cancel()
        self._watches.clear()
        self._chain.uninstall()
