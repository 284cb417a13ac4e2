"""The exit bound: a process that was told to end is gone within seconds, whatever blocks it."""

from __future__ import annotations

import faulthandler
import logging
import os
import sys
import threading
import time
from collections.abc import Callable

from ._logs import logger

__all__ = ["ExitGuard"]


class ExitGuard:
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

    def extend(self, seconds: float) -> None:
        """Move the bound ``seconds`` later: streams were given that long to finish."""
        self._deadline += seconds
        self._changed.set()
        if self._backstop:
            _arm_watchdog(self._deadline - time.monotonic() + self.BACKSTOP)

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
