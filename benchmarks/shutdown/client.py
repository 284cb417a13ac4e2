"""Load client for the shutdown benchmark: N idle SSE streams over raw asyncio protocols.

It opens N HTTP/1.1 keep-alive ``GET PATH`` connections (at most ``--inflight`` of them between
connect and first chunk at any time, so the server's listen backlog never overflows), waits until
every one has its response head and first complete chunk, prints one ``ready {json}`` line, then
reads every connection until EOF. Per connection it records whether a notice event arrived (an
SSE event whose ``event:`` name is in ``--notice``; the chunked body and the SSE lines are parsed
properly, across any read boundaries), whether the chunked body ended cleanly (the
``0\\r\\n\\r\\n`` terminator arrived before EOF) and when EOF came. It prints one
``summary {json}`` line at the end. Times are ``time.monotonic()`` values (CLOCK_MONOTONIC, the
same clock in every process), so the runner can subtract the moment it sent SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from collections import Counter
from collections.abc import Awaitable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the harness, when run by hand

from harness import loadclient
from harness.stats import percentiles

BACKOFF = (0.2, 0.2, 0)  # seconds before connecting again after a failed connect (0: give up)

# Chunked-body parser states
HEAD, SIZE, DATA, DATA_CRLF, TRAILER, DONE = range(6)


class SSEStream:
    """The SSE line parser of the HTML spec, as far as event dispatch goes."""

    __slots__ = ("data_seen", "event", "events", "notice_names", "notice_time", "rest", "retry", "skip_lf")

    def __init__(self, notice_names: frozenset[bytes]) -> None:
        self.notice_names = notice_names
        self.rest = b""
        self.skip_lf = False
        self.event = b""
        self.data_seen = False
        self.events: list[bytes] = []  # names of dispatched events, in order
        self.notice_time: float | None = None
        self.retry: int | None = None

    def feed(self, data: bytes) -> None:
        if self.skip_lf and data:
            # the previous piece ended with CR: a LF now is the second half of that CRLF
            self.skip_lf = False
            if data[:1] == b"\n":
                data = data[1:]
        if not data:
            return
        self.skip_lf = data.endswith(b"\r")
        lines = (self.rest + data).replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
        self.rest = lines.pop()
        for line in lines:
            self._line(line)

    def _line(self, line: bytes) -> None:
        if not line:
            if self.data_seen:  # dispatch
                name = self.event or b"message"
                self.events.append(name)
                if name in self.notice_names and self.notice_time is None:
                    self.notice_time = time.monotonic()
            self.event = b""
            self.data_seen = False
            return
        if line[:1] == b":":
            return
        field, colon, value = line.partition(b":")
        if colon and value[:1] == b" ":
            value = value[1:]
        if field == b"event":
            self.event = value
        elif field == b"data":
            self.data_seen = True
        elif field == b"retry" and value.isdigit():
            self.retry = int(value)


class Tracker:
    """Counts open connections; ``all_closed`` is set when the last one is lost."""

    def __init__(self) -> None:
        self.open = 0
        self.all_closed = asyncio.Event()

    def opened(self) -> None:
        self.open += 1
        self.all_closed.clear()

    def lost(self) -> None:
        self.open -= 1
        if self.open == 0:
            self.all_closed.set()


class Conn(asyncio.Protocol):
    __slots__ = (
        "buf",
        "chunks",
        "clean_time",
        "eof_time",
        "error",
        "extra",
        "ready",
        "remaining",
        "request",
        "sse",
        "state",
        "status",
        "tracker",
        "transport",
    )

    def __init__(
        self, request: bytes, notice_names: frozenset[bytes], ready: asyncio.Future[None], tracker: Tracker
    ) -> None:
        self.request = request
        self.tracker = tracker  # the process's, counting all its connections
        self.ready = ready
        self.sse = SSEStream(notice_names)
        self.state = HEAD
        self.buf = b""
        self.remaining = 0
        self.chunks = 0
        self.status = 0
        self.clean_time: float | None = None
        self.eof_time: float | None = None
        self.error: str | None = None
        self.extra = 0  # bytes after the terminator
        self.transport: asyncio.Transport | None = None

    # -- asyncio.Protocol ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.tracker.opened()
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        try:
            self._parse(data)
        except Exception as e:  # a protocol error: record it and drop the connection
            self._fail(f"parse: {e!r}")

    def eof_received(self) -> bool:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof_time = time.monotonic()
        self.tracker.lost()
        if exc is not None and self.error is None:
            self.error = type(exc).__name__
        if not self.ready.done():
            self.ready.set_result(None)

    # -- parsing -----------------------------------------------------------------------------------

    def _fail(self, why: str) -> None:
        if self.error is None:
            self.error = why
        if self.transport is not None:
            self.transport.abort()

    def _parse(self, data: bytes) -> None:
        i, n = 0, len(data)
        while i < n:
            st = self.state
            if st == DATA:
                take = min(self.remaining, n - i)
                self.sse.feed(data[i : i + take])
                self.remaining -= take
                i += take
                if self.remaining == 0:
                    self.state = DATA_CRLF
                continue
            if st == DONE:
                self.extra += n - i
                return
            # line-oriented states: HEAD (until a blank line), SIZE, DATA_CRLF, TRAILER
            if st == HEAD:
                end = (self.buf + data[i:]).find(b"\r\n\r\n")
                if end < 0:
                    self.buf += data[i:]
                    return
                whole = self.buf + data[i:]
                head, rest = whole[:end], whole[end + 4 :]
                self.buf = b""
                self._head(head)
                data, i, n = rest, 0, len(rest)
                self.state = SIZE
                continue
            j = data.find(b"\n", i)
            if j < 0:
                self.buf += data[i:]
                return
            line = self.buf + data[i : j + 1]
            self.buf = b""
            i = j + 1
            if not line.endswith(b"\r\n"):
                raise ValueError(f"bare LF in chunk framing: {line[:40]!r}")
            line = line[:-2]
            if st == SIZE:
                size = int(line.split(b";", 1)[0].strip(), 16)
                if size == 0:
                    self.state = TRAILER
                else:
                    self.remaining = size
                    self.state = DATA
            elif st == DATA_CRLF:
                if line:
                    raise ValueError("chunk data longer than its size")
                self.chunks += 1
                self.state = SIZE
                if not self.ready.done():
                    self.ready.set_result(None)
            elif st == TRAILER and not line:
                self.state = DONE
                self.clean_time = time.monotonic()

    def _head(self, head: bytes) -> None:
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ", 2)
        self.status = int(parts[1])
        headers = {}
        for h in lines[1:]:
            k, _, v = h.partition(b":")
            headers[k.strip().lower()] = v.strip().lower()
        if self.status != 200:
            raise ValueError(f"status {self.status}")
        if b"chunked" not in headers.get(b"transfer-encoding", b""):
            raise ValueError(f"not chunked: {headers}")


async def main(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    notice_names = frozenset(x.encode() for x in args.notice.split(",") if x)
    request = loadclient.stream_request(args.host, args.port, args.path)
    t0, cpu0 = time.monotonic(), loadclient.cpu_seconds()
    tracker = Tracker()

    def connect(i: int) -> Awaitable[tuple[asyncio.BaseTransport, Conn]]:
        ready = loop.create_future()
        return loop.create_connection(
            lambda: Conn(request, notice_names, ready, tracker), args.host, args.port
        )

    conns, connect_errors = await loadclient.open_streams(
        args.n, args.inflight, connect, args.ready_timeout, BACKOFF
    )
    t_ready, cpu_ready = time.monotonic(), loadclient.cpu_seconds()
    ok = sum(1 for c in conns if c.chunks > 0 and c.eof_time is None)
    loadclient.print_ready(ok, len(conns), args.n, connect_errors, t_ready - t0, cpu_ready - cpu0)

    # Read every connection until EOF (the server's exit closes them all), or give up.
    if tracker.open:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(tracker.all_closed.wait(), args.timeout)
    t_end, cpu_end = time.monotonic(), loadclient.cpu_seconds()
    still_open = 0
    for c in conns:
        if c.eof_time is None:
            still_open += 1
            if c.transport is not None:
                c.transport.abort()

    names: Counter[str] = Counter()
    for c in conns:
        names.update(e.decode(errors="replace") for e in c.sse.events)
    eofs = [c.eof_time for c in conns if c.eof_time is not None and c.eof_time <= t_end]
    summary = {
        "n": args.n,
        "opened": len(conns),
        "ready_ok": ok,
        "notified": sum(1 for c in conns if c.sse.notice_time is not None),
        "clean": sum(1 for c in conns if c.clean_time is not None),
        "notified_and_clean": sum(
            1 for c in conns if c.sse.notice_time is not None and c.clean_time is not None
        ),
        "eof": len(eofs),
        "still_open": still_open,
        "errors": dict(Counter(c.error for c in conns if c.error)),
        "extra_bytes_after_end": sum(c.extra for c in conns),
        "event_names": dict(names),
        "retry_values": dict(Counter(str(c.sse.retry) for c in conns)),
        "eof_time": percentiles(eofs),
        "notice_time": percentiles([c.sse.notice_time for c in conns if c.sse.notice_time is not None]),
        "clean_time": percentiles([c.clean_time for c in conns if c.clean_time is not None]),
        "t_start": t0,
        "t_ready": t_ready,
        "t_end": t_end,
        "cpu_connect": cpu_ready - cpu0,
        "cpu_after_ready": cpu_end - cpu_ready,
        "wall_connect": t_ready - t0,
    }
    print("summary " + json.dumps(summary), flush=True)


def selftest() -> None:
    """Feed synthetic responses to the parser split at every boundary (and randomly); check the verdicts."""
    import random

    def body(*chunks: bytes, end: bool = True) -> bytes:
        out = b"".join(b"%x;ext=1\r\n" % len(c) + c + b"\r\n" for c in chunks)
        return out + (b"0\r\nX-Trailer: 1\r\n\r\n" if end else b"")

    head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
    farewell_crlf = b"retry: 86400000\r\nevent: shutdown\r\ndata: {}\r\n\r\n"
    cases = [
        # (wire bytes, notice expected, clean expected, events expected)
        (head + body(b": connected\n\n", b"event: shutdown\ndata: {}\n\n"), True, True, [b"shutdown"]),
        (
            head + body(b": connected\r\n\r\n", farewell_crlf[:20], farewell_crlf[20:]),
            True,
            True,
            [b"shutdown"],
        ),
        (head + body(b": c\r\r", b"event: shutdown\rdata\r\r"), True, True, [b"shutdown"]),
        # CRLFs of the SSE text split across chunks
        (
            head + body(b": c\r", b"\nevent: shutdown\r", b"\ndata: {}\r", b"\n\r", b"\n"),
            True,
            True,
            [b"shutdown"],
        ),
        (head + body(b": c\n\n", b"event: shutdown\n\n", b"data: x\n\n"), False, True, [b"message"]),
        (head + body(b": c\n\n", b"event: shutdown\ndata: {}\n"), False, True, []),  # never dispatched
        (head + body(b": c\n\n", b"event: close\ndata: {}\n\n", end=False), False, False, [b"close"]),
        (head + body(b": c\n\n", b"0\r\n\r\n"), False, True, []),  # a terminator inside data is data
    ]
    rng = random.Random(1)
    checked = 0
    for wire, notice, clean, events in cases:
        for cut in loadclient.split_points(len(wire), rng, samples=50, cuts=5):
            loop = asyncio.new_event_loop()
            ready = loop.create_future()
            c = Conn(b"", frozenset({b"shutdown"}), ready, Tracker())
            c.connection_made(loadclient.FakeTransport())  # type: ignore[arg-type]
            for piece in loadclient.pieces(wire, cut):
                c.data_received(piece)
            c.connection_lost(None)
            loop.close()
            got = (c.sse.notice_time is not None, c.clean_time is not None, c.sse.events, c.error)
            assert got == (notice, clean, events, None), (wire, cut, got)
            assert c.chunks >= 1
            checked += 1
    print(f"selftest: {checked} splits of {len(cases)} responses parsed as expected")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = loadclient.client_parser(
        __doc__, 256, "connections between connect and first chunk", ready_timeout=30.0
    )
    p.add_argument("--notice", default="shutdown", help="comma-separated event names that count as a notice")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds after ready to wait for every EOF")
    p.add_argument("--selftest", action="store_true", help="check the parser on split responses and exit")
    return loadclient.parse_client_args(p, argv)


if __name__ == "__main__":
    loadclient.client_main(parse_args(), main, selftest)
