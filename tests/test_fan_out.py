"""Fan-out over real sockets: events written from the publisher and from the stream's own task
arrive in order, once, whether a client keeps up or pauses, on a busy machine."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from graceful_sse import EventId

from harness import Server, busy_machine, free_port, run_modes, running
from sse_parser import SSEParser

pytestmark = pytest.mark.servers

EVENTS = 300


class Reader:
    """One stream read on a thread; ``pause()`` stops reading, so the server's writes back up."""

    def __init__(self, url: str) -> None:
        self.parser = SSEParser()
        self.reading = threading.Event()
        self.reading.set()
        self.error: str | None = None
        self._lock = threading.Lock()
        self._client = httpx.Client(timeout=httpx.Timeout(60, connect=5))
        self._thread = threading.Thread(target=self._run, args=(url,), daemon=True)
        self._thread.start()

    def _run(self, url: str) -> None:
        try:
            with self._client.stream("GET", url) as response:
                for text in response.iter_text():
                    self.reading.wait()
                    with self._lock:
                        self.parser.feed(text)
        except (httpx.HTTPError, OSError) as exc:
            self.error = f"{type(exc).__name__}: {exc}"

    def received(self) -> tuple[list[EventId], int]:
        """The ids of the events received, and how many the server said were dropped."""
        with self._lock:
            events = list(self.parser.events)
        ids = [EventId.parse(e.last_event_id) for e in events if e.type == "message"]
        missed = sum(json.loads(e.data)["count"] for e in events if e.type == "missed")
        return [i for i in ids if i is not None], missed

    def close(self) -> None:
        self.reading.set()
        self._client.close()


def _accounted(reader: Reader) -> int:
    ids, missed = reader.received()
    return len(ids) + missed


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    port = free_port()
    with running(run_modes(port)["uvicorn"], port, tmp_path / "server.log") as srv:
        yield srv


@pytest.mark.parametrize("run", range(2))
def test_every_client_gets_every_event_in_order_once_whether_it_keeps_up_or_pauses(
    server: Server, run: int
) -> None:
    url = server.url + "/stream?topic=fan&heartbeat=0.2"
    readers = [Reader(url) for _ in range(8)]
    slow = readers[:3]
    try:
        with busy_machine():
            time.sleep(1.0)  # every stream open
            for batch in range(6):
                if batch == 1:
                    for reader in slow:
                        reader.reading.clear()
                if batch == 4:
                    for reader in slow:
                        reader.reading.set()
                # 30 KB events: a paused client's socket buffers fill within the pause, so the
                # publisher's writes to it wait and its events queue.
                params = {"topic": "fan", "size": 30000, "count": 50}
                httpx.get(server.url + "/publish", params=params, timeout=30)
                time.sleep(0.2)
            deadline = time.monotonic() + 60  # about 15 s beside the burners
            while time.monotonic() < deadline and not all(_accounted(r) >= EVENTS for r in readers):
                time.sleep(0.1)
        counts = [(_accounted(r), r in slow) for r in readers]
        for reader in readers:
            ids, missed = reader.received()
            assert reader.error is None, reader.error
            assert ids == sorted(set(ids)), "in order, none twice"
            assert len(ids) + missed == EVENTS, (len(ids), missed, counts)
            if reader not in slow:
                assert missed == 0, "a client that keeps up loses nothing"
    finally:
        for reader in readers:
            reader.close()
