"""What every app of the hub benchmark shares: the /health probe, /rss, and the event payload.

The payload of event ``seq`` is ``~E<seq>:<time.time()>|`` padded with ``x`` to ``size`` bytes:
the client finds the marker in the raw bytes, so it needs no SSE parsing per event, and the
stamp is taken just before the app's publish call, so the latency it gives is the app's fan-out
(publish call to the last client) and not the publisher's HTTP round trip.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import sys
import time

PAGE = os.sysconf("SC_PAGE_SIZE")
_pads: dict[int, str] = {}


def probe() -> dict[str, object]:
    """Which event loop and HTTP implementation uvicorn picked."""
    loop = asyncio.get_running_loop()
    if "uvicorn.protocols.http.httptools_impl" in sys.modules:
        http = "httptools"
    elif "uvicorn.protocols.http.h11_impl" in sys.modules:
        http = "h11"
    else:
        http = "unknown"
    return {"pid": os.getpid(), "loop": f"{type(loop).__module__}.{type(loop).__qualname__}", "http": http}


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


def result(n: int | None, stamp: float, started: float) -> dict[str, object]:
    """The /publish answer: subscribers reached (if the library says), the stamp, the call's time."""
    return {"n": n, "stamp": stamp, "call_s": time.perf_counter() - started}


def dumps(obj: object) -> bytes:
    return json.dumps(obj).encode()


def query_int(query: bytes, name: str, default: int) -> int:
    for part in query.split(b"&"):
        key, _, value = part.partition(b"=")
        if key == name.encode():
            return int(value)
    return default
