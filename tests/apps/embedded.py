"""uvicorn embedded in a program: ``server.should_exit = True`` ends it (no signal involved).

``python embedded.py PORT`` runs the server on the main thread; ``--thread`` runs it on a
worker thread, where no signal handler can be installed, and uses ``lifecycle.watch(server)``.
``GET /exit`` sets ``should_exit`` from inside the app, as an admin action would.
"""

import sys
import threading

import uvicorn

from fh_app import app, hub, rt

server: uvicorn.Server


@rt("/exit")
def exit_server():
    server.should_exit = True
    return {"exiting": True}


def main() -> None:
    global server
    port = int(sys.argv[1])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="info"))
    if "--thread" in sys.argv:
        hub.lifecycle.watch(server)
        thread = threading.Thread(target=server.run)
        thread.start()
        thread.join()
    else:
        server.run()
    print("embedded program: server returned", flush=True)


if __name__ == "__main__":
    main()
