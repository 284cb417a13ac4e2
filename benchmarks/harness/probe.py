"""The /health answer every benchmark app gives: which event loop and HTTP implementation
uvicorn picked for it (recorded with the results, since uvicorn falls back silently when uvloop
or httptools is missing; under Granian, whose HTTP is its own Rust code, ``http`` is
``"granian"``), and its process id (the hub's two-worker row tells its workers apart by it).

The apps import it as ``harness.probe``: the runners put the benchmarks folder on the servers'
``PYTHONPATH``.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys


def probe() -> dict[str, object]:
    loop = asyncio.get_running_loop()
    if "granian" in sys.modules:  # imported only by Granian's worker, which runs the app
        http = "granian"
    elif "uvicorn.protocols.http.httptools_impl" in sys.modules:
        http = "httptools"
    elif "uvicorn.protocols.http.h11_impl" in sys.modules:
        http = "h11"
    else:
        http = "unknown"
    return {"pid": os.getpid(), "loop": f"{type(loop).__module__}.{type(loop).__qualname__}", "http": http}


def probe_bytes() -> bytes:
    return json.dumps(probe()).encode()
