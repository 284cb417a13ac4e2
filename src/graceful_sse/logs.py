"""Where the shutdown log lines go.

Every step of a shutdown is one INFO line on the ``graceful_sse`` logger. ASGI servers
configure only their own loggers, so without help those lines would vanish exactly when a
developer presses Ctrl+C and wants to see them. When nothing in the process has configured
logging for us, we add one stderr handler in the servers' own style; configure the
``graceful_sse`` logger (or the root logger) and we add nothing.
"""

from __future__ import annotations

import logging
import sys

__all__ = ["logger", "make_visible"]

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
