"""Where the shutdown log lines go.

Every step of a shutdown is one INFO line on the ``graceful_sse`` logger. ASGI servers
configure only their own loggers, so without help those lines would vanish exactly when a
developer presses Ctrl+C and wants to see them. When nothing in the process has configured
logging for us, we add one stderr handler in the servers' own style; configure the
``graceful_sse`` logger (or the root logger) and we add nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections import Counter

__all__ = ["Summary", "logger", "make_visible"]

logger = logging.getLogger("graceful_sse")


class _Formatter(logging.Formatter):
    """uvicorn's layout, "INFO:     message", so our lines line up with the server's.

    The exception and traceback of a record that has one follow its line, as with logging's
    own formatter: "the stream's generator failed" is of no use without what it raised.
    """

    def __init__(self) -> None:
        super().__init__("%(levelprefix)s %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        return f"{record.levelname + ':':<9} {record.message}"


def make_visible() -> None:
    """Give the ``graceful_sse`` logger a stderr handler if nothing would print its INFO lines."""
    if logger.handlers or logging.getLogger().handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter())
    logger.addHandler(handler)
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)


class Summary:
    """A condition clients can repeat at will, logged at most once per ``interval`` seconds.

    The first occurrence in an interval is logged as it comes; the ones after it are counted by
    kind, and one line at the end of the interval says how many there were. Clients decide how
    often such a thing happens (an unusable ``Last-Event-ID``, a client that stopped reading);
    they must not decide how long the log grows.
    """

    def __init__(self, what: str, *, level: int = logging.INFO, interval: float = 60.0) -> None:
        self.what = what  # "unusable Last-Event-IDs", for the summary line
        self.level = level
        self.interval = interval
        self._until = 0.0
        self._counts: Counter[str] = Counter()
        self._flush: asyncio.TimerHandle | None = None

    def log(self, kind: str, message: str, *args: object) -> None:
        """Log ``message`` now, or count it under ``kind`` if a line was written this interval."""
        now = time.monotonic()
        if now >= self._until:
            self.flush()
            self._until = now + self.interval
            logger.log(self.level, message, *args)
            return
        self._counts[kind] += 1
        if self._flush is None:
            with contextlib.suppress(RuntimeError):  # no loop: the next line carries the count
                loop = asyncio.get_running_loop()
                self._flush = loop.call_later(self._until - now, self.flush)

    def flush(self) -> None:
        """Write the count of what was held back, if anything was."""
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        if self._counts:
            kinds = ", ".join(f"{kind}: {n}" for kind, n in self._counts.most_common())
            total = sum(self._counts.values())
            logger.log(
                self.level, "graceful-sse: %d more %s in %g s (%s)", total, self.what, self.interval, kinds
            )
            self._counts.clear()
