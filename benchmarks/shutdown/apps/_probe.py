"""What the benchmark's /health route answers: which event loop and HTTP implementation uvicorn picked."""

from __future__ import annotations

import asyncio
import json
import os
import sys


def probe() -> dict[str, object]:
    loop = asyncio.get_running_loop()
    if "uvicorn.protocols.http.httptools_impl" in sys.modules:
        http = "httptools"
    elif "uvicorn.protocols.http.h11_impl" in sys.modules:
        http = "h11"
    else:
        http = "unknown"
    return {"pid": os.getpid(), "loop": f"{type(loop).__module__}.{type(loop).__qualname__}", "http": http}


def probe_bytes() -> bytes:
    return json.dumps(probe()).encode()
