"""What every app of the hub benchmark shares: /rss, the event payload and the /publish and
/publish_each answers (the /health probe is the harness's, shared with the shutdown benchmark).

The payload of event ``seq`` is ``~E<seq>:<time.time()>|`` padded with ``x`` to ``size`` bytes:
the client finds the marker in the raw bytes, so it needs no SSE parsing per event, and the
stamp is taken just before the app's publish call, so the latency it gives is the app's fan-out
(publish call to the last client) and not the publisher's HTTP round trip.

Every stream is on one topic: ``bench`` unless its request says ``/stream?topic=NAME``.
``/publish`` publishes one event to ``bench``; ``/publish_each?count=N&base=B`` publishes one event
to each of the topics ``u0`` … ``u<N-1>`` in a loop inside the app (event ``B + i`` to ``u<i>``, each
stamped right before its own publish call): the per-user notification case.
"""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Awaitable, Callable

from harness.probe import probe

__all__ = [
    "TOPIC",
    "Publish",
    "payload",
    "probe",
    "query_int",
    "result",
    "rss",
    "timed_publish",
    "timed_publish_each",
    "user_topic",
]

PAGE = os.sysconf("SC_PAGE_SIZE")
_pads: dict[int, str] = {}

TOPIC = "bench"  # the topic of /stream and /publish when the request names none

# An app's publish call: the topic and the event's data in; what the library answers out (the
# subscribers reached, an event id, or nothing).
Publish = Callable[[str, str], Awaitable[object]]


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def rss(collect: bool) -> dict[str, object]:
    """The process's resident set size, after a full collection if ``collect``."""
    if collect:
        gc.collect()
        gc.collect()
    return {"rss": rss_bytes(), "pid": os.getpid()}


def payload(seq: int, size: int) -> tuple[str, float]:
    """The data of event ``seq`` (about ``size`` bytes) and its publish stamp (``time.time()``)."""
    stamp = time.time()
    head = f"~E{seq}:{stamp:.6f}|"
    pad = max(0, size - len(head))
    fill = _pads.get(pad)
    if fill is None:
        fill = _pads[pad] = "x" * pad
    return head + fill, stamp


def user_topic(i: int) -> str:
    """The topic of the ``i``-th user's stream in the 1,000-topic scenario."""
    return f"u{i}"


def result(n: object, stamp: float, started: float) -> dict[str, object]:
    """The /publish answer: subscribers reached (if the library says), the stamp, the call's time."""
    return {"n": n, "stamp": stamp, "call_s": time.perf_counter() - started}


async def timed_publish(publish: Publish, seq: int, size: int) -> dict[str, object]:
    """Event ``seq`` through the app's ``publish``, timed: the /publish answer."""
    data, stamp = payload(seq, size)
    started = time.perf_counter()
    n = await publish(TOPIC, data)
    return result(n, stamp, started)


async def timed_publish_each(publish: Publish, base: int, count: int, size: int) -> dict[str, object]:
    """Event ``base + i`` to topic ``u<i>`` for each ``i`` below ``count``, in a loop, each stamped
    just before its publish call: the /publish_each answer (``stamp`` is the first event's)."""
    first: float | None = None
    started = time.perf_counter()
    for i in range(count):
        data, stamp = payload(base + i, size)
        if first is None:
            first = stamp
        await publish(user_topic(i), data)
    return result(count, first or time.time(), started)


def query_int(query: bytes, name: str, default: int) -> int:
    for part in query.split(b"&"):
        key, _, value = part.partition(b"=")
        if key == name.encode():
            return int(value)
    return default
