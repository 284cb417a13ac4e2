"""The soak benchmark's server: a FastHTML app as users write one, with the hardening options on.

One hub topic fed by a producer (``SOAK_RATE`` events per second), ``EventStream`` with a send
timeout, and ``/stats`` for the runner: resident memory, asyncio tasks, open file descriptors and
open streams, read by the process itself.
"""

import asyncio
import os
import resource
import time
from pathlib import Path

from fasthtml.common import fast_app

from graceful_sse import EventStream, Hub, Limits

RATE = float(os.environ.get("SOAK_RATE", "2"))
PAGE = os.sysconf("SC_PAGE_SIZE")

hub = Hub(limits=Limits(max_connections=int(os.environ.get("SOAK_MAX_STREAMS", "0")) or None))
app, rt = fast_app(lifespan=hub.lifespan, default_hdrs=False)


@hub.producer(every=1 / RATE)
async def tick():
    await hub.publish("soak", {"t": round(time.time(), 3)}, event="tick")


@rt("/stream")
def stream():
    return EventStream(hub.subscribe("soak"), send_timeout=30.0)


def process_figures():
    """Resident memory and open descriptors, from /proc (virtual files: nothing waits on a disk)."""
    rss = int(Path("/proc/self/statm").read_text().split()[1]) * PAGE
    return rss, len(os.listdir("/proc/self/fd"))


@rt("/stats")
async def stats():  # on the loop: asyncio.all_tasks() needs it
    rss, fds = process_figures()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "pid": os.getpid(),
        "rss": rss,
        "tasks": len(asyncio.all_tasks()),
        "fds": fds,
        "streams": hub.lifecycle.open_streams,
        "subscriptions": hub.connections(),
        "published": hub.counters.events_published,
        "cpu": usage.ru_utime + usage.ru_stime,
    }
