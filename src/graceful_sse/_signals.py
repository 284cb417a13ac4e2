"""Chaining a callback in front of the process's existing signal handlers, and undoing it.

ASGI has no "the server is shutting down" message, and servers install their signal handlers
before (uvicorn, gunicorn's worker) or after (Hypercorn, Granian) importing the app. A handler
chained at app start-up sees every signal first and then hands it on unchanged, so the server
behaves exactly as it would without us (a second Ctrl+C still forces uvicorn's exit). Nothing
is patched: the previous handler is read with ``signal.getsignal`` and called from ours.

The callback may keep a signal for a moment (``hand_on`` later), so that the server begins its
own shutdown only once the streams have written their farewells: an HTTP/2 server's GOAWAY, or
a KeyboardInterrupt, must not come before them.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterable
from enum import Enum
from types import FrameType
from typing import Any

from ._logs import logger

__all__ = ["Disposition", "SignalChain"]


Handler = Callable[[int, FrameType | None], Any] | int | None


class Disposition(Enum):
    """What the process did with a signal before we chained ours in front of it."""

    HANDLED = "handled"  # a server's handler: call it right after ours
    DEFAULT = "default"  # terminate / KeyboardInterrupt: do it ourselves once streams are told
    IGNORED = "ignored"  # the process ignores it (Hypercorn workers ignore SIGINT)


# Called on the main thread, inside the signal handler: must only schedule work. It returns True
# when it will call ``hand_on`` itself (after telling the streams); otherwise the signal goes on
# to the previous handler (or its default action) at once, as if we were not there.
Callback = Callable[[signal.Signals, Disposition], bool]


class SignalChain:
    """Our handler in front of whatever handled ``signals`` before, for as long as installed."""

    def __init__(self, signals: Iterable[signal.Signals], callback: Callback) -> None:
        self._signals = tuple(signals)
        self._callback = callback
        self._previous: dict[signal.Signals, Handler] = {}

    @property
    def installed(self) -> bool:
        return bool(self._previous)

    def previous(self, sig: signal.Signals) -> Handler:
        return self._previous.get(sig)

    def install(self) -> bool:
        """Chain in front of the current handlers; False where that is impossible (not the main thread)."""
        if self._previous:
            return True
        if threading.current_thread() is not threading.main_thread():
            return False
        for sig in self._signals:
            self._previous[sig] = signal.getsignal(sig)
            signal.signal(sig, self._handle)
        return True

    def uninstall(self) -> None:
        """Put back the previous handlers, where nobody has chained over ours since."""
        if threading.current_thread() is not threading.main_thread():
            return
        for sig, prev in self._previous.items():
            if signal.getsignal(sig) == self._handle:
                signal.signal(sig, prev)
        self._previous.clear()

    def disposition(self, sig: signal.Signals) -> Disposition:
        prev = self._previous.get(sig)
        if prev == signal.SIG_IGN:
            return Disposition.IGNORED
        if prev in (signal.SIG_DFL, None) or prev is signal.default_int_handler:
            return Disposition.DEFAULT
        return Disposition.HANDLED

    def hand_on(self, sig: signal.Signals, frame: FrameType | None = None) -> None:
        """Give a kept signal to the handler that was there before ours (or its default action)."""
        if sig not in self._previous:  # uninstalled meanwhile: the handler now in place takes it
            signal.raise_signal(sig)
            return
        disposition = self.disposition(sig)
        if disposition is Disposition.HANDLED:
            prev = self._previous[sig]
            assert callable(prev)
            prev(sig, frame)
        elif disposition is Disposition.DEFAULT:
            self.redeliver(sig)

    def redeliver(self, sig: signal.Signals) -> None:
        """Give a DEFAULT signal its default effect now (terminate, or KeyboardInterrupt)."""
        prev = self._previous.pop(sig, signal.SIG_DFL)
        signal.signal(sig, prev if prev is not None else signal.SIG_DFL)
        logger.info("graceful-sse: re-raising %s with its default action", sig.name)
        signal.raise_signal(sig)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        sig = signal.Signals(signum)
        if not self._callback(sig, self.disposition(sig)):
            self.hand_on(sig, frame)
