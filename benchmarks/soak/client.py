"""Churning SSE clients for the soak benchmark (one process runs ``--slots`` of them).

Each slot loops: connect, ``GET /stream``, read for a random time in [hold-min, hold-max] s, hang
up, pause up to ``--pause-max`` s, again. A line ``freeze`` on stdin (the runner sends it as it
sends SIGINT to the server) stops the churn: no new connections and no more hanging up; every
open stream is read to its end. Per stream it records whether the ``shutdown`` event arrived and
whether the chunked body ended cleanly (its ``0\\r\\n\\r\\n`` terminator). One ``summary {json}``
line at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the harness, when run by hand

from harness.loadclient import run_loop

NOTICE = b"event: shutdown"
# A saturated server's listen queue drops SYNs, and the kernel retries them for a minute.
CONNECT_TIMEOUT = 10.0


class Body:
    """A chunked HTTP body read as it comes: SSE events counted, notice and clean end noted."""

    __slots__ = ("buffer", "clean_end", "events", "head_done", "notice", "opened", "status", "tail")

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.head_done = False
        self.status = 0
        self.opened = False  # the stream's opening comment arrived
        self.events = 0
        self.notice = False
        self.clean_end = False
        self.tail = b""  # the end of the previous chunk, for markers split across chunks

    def feed(self, data: bytes) -> None:
        self.buffer += data
        if not self.head_done:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            self.status = int(self.buffer[9:12])
            del self.buffer[: end + 4]
            self.head_done = True
        while not self.clean_end:
            line_end = self.buffer.find(b"\r\n")
            if line_end < 0:
                return
            size = int(self.buffer[:line_end].split(b";")[0], 16)
            if size == 0:
                self.clean_end = True
                return
            if len(self.buffer) < line_end + 2 + size + 2:
                return
            self._sse(bytes(self.buffer[line_end + 2 : line_end + 2 + size]))
            del self.buffer[: line_end + 2 + size + 2]

    def _sse(self, chunk: bytes) -> None:
        text = self.tail + chunk
        self.opened = self.opened or b": connected" in text
        self.notice = self.notice or NOTICE in text
        self.events += chunk.count(b"\n\n")
        self.tail = chunk[-32:]


class Churn:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.frozen = asyncio.Event()
        self.frozen_at: float | None = None
        self.counts: Counter[str] = Counter()
        self.last_eof = 0.0
        self.busy = 0  # slots inside one_stream

    async def slot(self, rng: random.Random) -> None:
        await asyncio.sleep(rng.uniform(0, self.args.ramp))  # spread the first connections out
        while not self.frozen.is_set():
            await self.one_stream(rng)
            if not self.frozen.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.frozen.wait(), rng.uniform(0, self.args.pause_max))

    async def one_stream(self, rng: random.Random) -> None:
        self.busy += 1
        try:
            await self._one_stream(rng)
        finally:
            self.busy -= 1

    async def _one_stream(self, rng: random.Random) -> None:
        counts = self.counts
        counts["connects"] += 1
        try:
            connecting = asyncio.open_connection(self.args.host, self.args.port)
            reader, writer = await asyncio.wait_for(connecting, CONNECT_TIMEOUT)
        except (OSError, TimeoutError) as exc:
            failed = "timeouts" if isinstance(exc, TimeoutError) else "errors"
            counts[f"connect {failed}{' after SIGINT' if self.frozen.is_set() else ''}"] += 1
            return
        body = Body()
        hold_until = time.monotonic() + rng.uniform(self.args.hold_min, self.args.hold_max)
        try:
            writer.write(f"GET /stream HTTP/1.1\r\nHost: {self.args.host}\r\n\r\n".encode())
            await self.read(reader, body, hold_until)
        except (OSError, RuntimeError):  # reset; uvloop says RuntimeError for a closed transport
            pass
        finally:
            writer.close()
        self.record(body)

    async def read(self, reader: asyncio.StreamReader, body: Body, hold_until: float) -> None:
        while not body.clean_end:
            left = hold_until - time.monotonic()
            if not self.frozen.is_set() and left <= 0:
                return  # the client hangs up, as a closed tab does
            timeout = None if self.frozen.is_set() else left
            try:
                data = await asyncio.wait_for(reader.read(65536), timeout)
            except TimeoutError:
                continue
            if not data:
                break
            body.feed(data)
        self.last_eof = time.monotonic()

    def record(self, body: Body) -> None:
        counts = self.counts
        counts["events"] += body.events
        if body.status and body.status != 200:
            counts[f"status {body.status}"] += 1
        if not body.opened:
            counts["no opening"] += 1
            return
        counts["streams"] += 1
        if not self.frozen.is_set():
            counts["hung up"] += 1
            return
        counts["open at SIGINT"] += 1  # did it get the farewell?
        if body.notice:
            counts["notified"] += 1
        if body.clean_end:
            counts["clean end"] += 1

    async def watch_stdin(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line or line.strip() == "freeze":
                self.frozen_at = time.monotonic()
                self.frozen.set()
                break
        while True:  # for the log: what is still being read after the freeze
            await asyncio.sleep(5)
            after = time.monotonic() - self.frozen_at
            print(f"{after:.0f} s after the freeze: {self.busy} open", file=sys.stderr, flush=True)

    async def run(self) -> None:
        watcher = asyncio.create_task(self.watch_stdin())
        rng = random.Random(self.args.seed)
        slots = [asyncio.create_task(self.slot(random.Random(rng.random()))) for _ in range(self.args.slots)]
        print("started", flush=True)
        await asyncio.gather(*slots)
        watcher.cancel()
        summary = {**self.counts, "frozen_at": self.frozen_at, "last_eof": self.last_eof}
        print("summary " + json.dumps(summary), flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--slots", type=int, default=1000, help="concurrent clients in this process")
    p.add_argument("--hold-min", type=float, default=1.0)
    p.add_argument("--hold-max", type=float, default=30.0)
    p.add_argument("--pause-max", type=float, default=1.0)
    p.add_argument("--ramp", type=float, default=10.0, help="seconds over which the slots first connect")
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()
    run_loop(Churn(args).run)


if __name__ == "__main__":
    main()
