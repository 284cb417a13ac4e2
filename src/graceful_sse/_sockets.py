"""Closing a connection that the ASGI server cannot close: one whose client stopped reading.

ASGI gives an app no way to drop its connection. When a client stops reading, the server's
transport holds the unsent bytes, and a polite close waits for them to drain, which never
happens: the connection stays open, so the server's graceful shutdown never completes (uvicorn
waits for it until its exit is forced, skipping the app's lifespan shutdown). The kernel knows
the connection by its two addresses, which the ASGI scope carries (``server`` and ``client``):
we find that socket among the process's descriptors and shut it down, with ``SO_LINGER`` 0 so
that its final close resets it and frees its buffers. The server's next read sees the end and
its next write an error, and it drops the connection as it would for any client that vanished.

Only an exact match of both addresses is closed: a scope rewritten by proxy headers (client port
0) or a Unix socket matches nothing, and then nothing is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import stat
import struct
from collections.abc import Iterator
from typing import Any

__all__ = ["SocketCloser"]

Address = tuple[str, int]
Pair = tuple[Address, Address]  # (server side, client side)

_FD_DIRS = ("/proc/self/fd", "/dev/fd")
_LINGER_RESET = struct.pack("ii", 1, 0)


class SocketCloser:
    """Closes connections named by ASGI scopes; requests made in one loop turn share one scan."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._pending: set[Pair] = set()
        self._scheduled = False
        self.closed = 0  # connections closed so far, for the log and tests

    def close(self, scope: Any) -> bool:
        """Ask for the connection of ``scope`` to be closed soon; False if it names no TCP socket."""
        pair = _pair(scope)
        if pair is None:
            return False
        self._pending.add(pair)
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._flush)
        return True

    def _flush(self) -> None:
        pending, self._pending, self._scheduled = self._pending, set(), False
        for fd in _descriptors():
            if not pending:
                return
            found = _pair_of(fd)
            if found in pending:
                pending.discard(found)
                _reset(fd)
                self.closed += 1


def _pair(scope: Any) -> Pair | None:
    server, client = scope.get("server"), scope.get("client")
    if not server or not client or not client[1] or not server[1]:
        return None
    return (str(server[0]), int(server[1])), (str(client[0]), int(client[1]))


def _descriptors() -> Iterator[int]:
    for path in _FD_DIRS:
        with contextlib.suppress(OSError):
            names = os.listdir(path)
            for name in names:
                if name.isdigit():
                    yield int(name)
            return


def _pair_of(fd: int) -> Pair | None:
    try:
        if not stat.S_ISSOCK(os.fstat(fd).st_mode):
            return None
        with socket.socket(fileno=os.dup(fd)) as sock:
            if sock.type != socket.SOCK_STREAM or sock.family not in (socket.AF_INET, socket.AF_INET6):
                return None
            local, peer = sock.getsockname(), sock.getpeername()
    except OSError:  # closed meanwhile, a listening socket, not connected
        return None
    return (local[0], local[1]), (peer[0], peer[1])


def _reset(fd: int) -> None:
    with contextlib.suppress(OSError), socket.socket(fileno=os.dup(fd)) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
        sock.shutdown(socket.SHUT_RDWR)
