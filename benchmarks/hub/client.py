"""Load client for the hub benchmark: N idle SSE streams over raw asyncio protocols, which time
every event they receive.

It opens N HTTP/1.1 keep-alive ``GET PATH`` connections on uvloop (at most ``--inflight``
between connect and first body bytes at once, so the server's listen backlog never overflows),
waits until each has its response head and the first bytes of its body (every app subscribes
the stream before it writes them), and prints one ``ready {json}`` line. Then it reads every
connection and takes commands on stdin, one per line:

- ``reset``: forget what was received so far and restart the CPU clock (a new phase); from then
  on it prints ``got SEQ`` as soon as every stream open at the reset has event ``SEQ``;
- ``report [T0 T1]``: print one ``report {json}`` line for the phase: for each event ``seq``,
  how many streams got it and the latencies (arrival ``time.time()`` minus the publish stamp the
  event carries), and how many deliveries arrived between ``T0`` and ``T1`` (``time.time()``);
- ``quit``.

It does not parse SSE: every benchmark event's data starts with ``~E<seq>:<stamp>|`` and the
client finds that marker in the raw bytes (across read boundaries; ``--selftest`` checks it),
which keeps the client's cost per event to one ``bytes.find`` per read, so that it is not the
bottleneck. Events named ``missed`` (graceful_sse's notice of dropped events) are counted.

With ``--topics``, stream ``j`` of the process asks for ``PATH?topic=u<OFFSET + j>``
(``--topic-offset``): every stream on a topic of its own, for the 1,000-topic scenario.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the harness, when run by hand

from harness import loadclient
from harness.stats import nearest_rank

MARK = b"~E"
MISSED = b"event: missed"
_time = time.time
BACKOFF = (0.05, 0.1, 0.15)  # seconds before connecting again after a failed connect


class Stats:
    """What this process received in the current phase."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.arrivals: defaultdict[int, list[float]] = defaultdict(list)
        self.stamps: dict[int, float] = {}
        self.missed = 0
        self.lost = 0  # connections lost during the phase
        self.target = 0  # streams open at the reset: "got SEQ" is printed when that many have SEQ
        self.t0 = _time()
        self.cpu0 = loadclient.cpu_seconds()


class Conn(asyncio.Protocol):
    __slots__ = ("closed", "error", "head", "ready", "request", "stats", "status", "tail", "transport")

    def __init__(self, request: bytes, ready: asyncio.Future[None], stats: Stats) -> None:
        self.request = request
        self.stats = stats  # the process's, shared by all its connections
        self.ready = ready
        self.head = b""  # the response head until it is complete, then None
        self.tail = b""  # the start of a marker cut by a read boundary
        self.status = 0
        self.closed = False
        self.error: str | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        now = _time()
        if self.head is not None:
            whole = self.head + data
            end = whole.find(b"\r\n\r\n")
            if end < 0:
                self.head = whole
                return
            try:
                self.status = int(whole.split(b" ", 2)[1])
            except (IndexError, ValueError):
                self.status = -1
            self.head = None
            data = whole[end + 4 :]
            if self.status != 200:
                self.error = f"status {self.status}"
                self.transport.abort()  # type: ignore[union-attr]
                return
            if not data:
                return
        if not self.ready.done():
            self.ready.set_result(None)
        stats = self.stats
        if MISSED in data:
            stats.missed += data.count(MISSED)
        if self.tail:
            data = self.tail + data
            self.tail = b""
        pos = data.find(MARK)
        while pos >= 0:
            end = data.find(b"|", pos)
            if end < 0:
                self.tail = data[pos:]
                return
            seq, _, stamp = data[pos + 2 : end].partition(b":")
            seq_i = int(seq)
            arrivals = stats.arrivals[seq_i]
            arrivals.append(now)
            if len(arrivals) == 1:
                stats.stamps[seq_i] = float(stamp)
            if len(arrivals) == stats.target:
                sys.stdout.write(f"got {seq_i}\n")
                sys.stdout.flush()
            pos = data.find(MARK, end)
        if data[-1:] == b"~":
            self.tail = b"~"

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.stats.lost += 1
        if exc is not None and self.error is None:
            self.error = type(exc).__name__
        if not self.ready.done():
            self.ready.set_result(None)


def report(conns: list[Conn], s: Stats, window: tuple[float, float] | None) -> dict[str, object]:
    per_seq = {}
    in_window = 0
    total = 0
    for seq, arr in s.arrivals.items():
        stamp = s.stamps[seq]
        arr.sort()
        total += len(arr)
        if window is not None:
            in_window += sum(1 for a in arr if window[0] <= a <= window[1])
        per_seq[seq] = {
            "count": len(arr),
            "stamp": stamp,
            "first": arr[0] - stamp,
            "p50": nearest_rank(arr, 0.5) - stamp,
            "p99": nearest_rank(arr, 0.99) - stamp,
            "last": arr[-1] - stamp,
        }
    return {
        "conns": len(conns),
        "open": sum(1 for c in conns if not c.closed),
        "lost": s.lost,
        "errors": dict(Counter(c.error for c in conns if c.error)),
        "deliveries": total,
        "in_window": in_window if window is not None else None,
        "missed_notices": s.missed,
        "per_seq": per_seq,
        "cpu_s": loadclient.cpu_seconds() - s.cpu0,
        "wall_s": _time() - s.t0,
    }


def stream_request(args: argparse.Namespace) -> Callable[[int], bytes]:
    """The request of stream ``j``: all alike, or with ``--topics`` each on a topic of its own."""
    if not args.topics:
        same = loadclient.stream_request(args.host, args.port, args.path)
        return lambda j: same
    return lambda j: loadclient.stream_request(
        args.host, args.port, f"{args.path}?topic=u{args.topic_offset + j}"
    )


async def main(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    t0, cpu0 = time.monotonic(), loadclient.cpu_seconds()
    stats = Stats()
    request_of = stream_request(args)

    def connect(i: int) -> Awaitable[tuple[asyncio.BaseTransport, Conn]]:
        ready = loop.create_future()
        request = request_of(i)
        return loop.create_connection(lambda: Conn(request, ready, stats), args.host, args.port)

    conns, connect_errors = await loadclient.open_streams(
        args.n, args.inflight, connect, args.ready_timeout, BACKOFF
    )
    ok = sum(1 for c in conns if c.head is None and c.ready.done() and not c.closed)
    loadclient.print_ready(
        ok, len(conns), args.n, connect_errors, time.monotonic() - t0, loadclient.cpu_seconds() - cpu0
    )
    stats.reset()

    done = asyncio.Event()

    def command(line: str) -> None:
        parts = line.split()
        if not parts:
            return
        if parts[0] == "reset":
            stats.reset()
            stats.target = sum(1 for c in conns if c.head is None and not c.closed)
            print("reset", flush=True)
        elif parts[0] == "report":
            window = (float(parts[1]), float(parts[2])) if len(parts) == 3 else None
            print("report " + json.dumps(report(conns, stats, window)), flush=True)
        elif parts[0] == "quit":
            done.set()

    def read_stdin() -> None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(command, line)
        loop.call_soon_threadsafe(done.set)

    threading.Thread(target=read_stdin, daemon=True).start()
    await done.wait()
    for c in conns:
        if c.transport is not None:
            c.transport.abort()


def selftest() -> None:
    """Feed synthetic responses split at every boundary (and randomly); check what is counted."""
    import random

    head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"

    def chunk(text: bytes) -> bytes:
        return b"%x\r\n" % len(text) + text + b"\r\n"

    events = [(7, 1.25), (8, 2.5), (12345, 1700000000.123456)]
    body = chunk(b": connected\n\n") + chunk(b"retry: 3000\nevent: missed\ndata: {}\n\n")
    for seq, stamp in events:
        body += chunk(b"id: 1-%d\ndata: ~E%d:%f|xx~x~\n\n" % (seq, seq, stamp))
    wire = head + body
    splits = loadclient.split_points(len(wire), random.Random(1), samples=200, cuts=8)
    for cut in splits:
        loop = asyncio.new_event_loop()
        stats = Stats()
        c = Conn(b"", loop.create_future(), stats)
        c.connection_made(loadclient.FakeTransport())  # type: ignore[arg-type]
        for piece in loadclient.pieces(wire, cut):
            c.data_received(piece)
        loop.close()
        got = sorted((seq, stats.stamps[seq], len(arr)) for seq, arr in stats.arrivals.items())
        assert got == [(s, t, 1) for s, t in events], (cut, got)
        assert c.status == 200 and c.error is None
        assert stats.missed <= 1
    print(f"selftest: {len(splits)} splits parsed as expected")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = loadclient.client_parser(
        __doc__, 128, "connections between connect and first bytes", ready_timeout=60.0
    )
    p.add_argument("--topics", action="store_true", help="each stream on a topic of its own: u<OFFSET+j>")
    p.add_argument("--topic-offset", type=int, default=0, help="the first stream's topic number")
    p.add_argument("--selftest", action="store_true", help="check the marker parser and exit")
    return loadclient.parse_client_args(p, argv)


if __name__ == "__main__":
    loadclient.client_main(parse_args(), main, selftest)
