"""A notebook session, as a script: FastHTML's ``JupyUvi`` serving fh_app twice in one process.

``python notebook.py PORT CONTROL_DIR [thread|async]``: start, wait for CONTROL_DIR/stop-1, stop;
start again, wait for CONTROL_DIR/stop-2, stop; then say the process is still alive and end
normally. ``thread`` (the default) is ``JupyUvi``: uvicorn on a thread of its own, a new event loop
each time. ``async`` is ``JupyUviAsync``: uvicorn as a task on the notebook's own loop, the same
loop both times. Nothing calls ``hub.lifecycle.watch(server)``: the server must be found on its
own. (Run with IN_SOLVEIT=1: FastHTML then skips displaying its htmx script, which needs IPython.)
"""

import asyncio
import sys
import time
from pathlib import Path

from fasthtml.jupyter import JupyUvi, JupyUviAsync

from fh_app import app

port, control = int(sys.argv[1]), Path(sys.argv[2])
flavour = sys.argv[3] if len(sys.argv) > 3 else "thread"


def on_a_thread() -> None:
    for cell in (1, 2):
        server = JupyUvi(app, host="127.0.0.1", port=port, log_level="info")
        print(f"notebook: started {cell}", flush=True)
        while not (control / f"stop-{cell}").exists():
            time.sleep(0.05)
        server.stop()
        print(f"notebook: stopped {cell}", flush=True)


async def wait_for_file(path: Path) -> None:
    """Like a notebook cell run later: the loop stays free meanwhile."""
    while not await asyncio.to_thread(path.exists):  # noqa: ASYNC110 - a file says when
        await asyncio.sleep(0.05)


async def on_the_kernels_loop() -> None:
    for cell in (1, 2):
        server = JupyUviAsync(app, host="127.0.0.1", port=port, log_level="info")
        await server.start()
        print(f"notebook: started {cell}", flush=True)
        await wait_for_file(control / f"stop-{cell}")
        await server.stop()
        print(f"notebook: stopped {cell}", flush=True)
    await asyncio.sleep(1.0)  # the kernel goes on running its loop


if flavour == "async":
    asyncio.run(on_the_kernels_loop())
else:
    on_a_thread()
print("notebook: the kernel lives on", flush=True)
