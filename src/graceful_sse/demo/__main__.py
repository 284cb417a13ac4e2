"""``python -m graceful_sse.demo [--port P] [--host H]``: the demo through FastHTML's ``serve()``."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from fasthtml.common import serve


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m graceful_sse.demo", description=__doc__)
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "5001")))
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    args = parser.parse_args()
    # serve() with its default reload, watching the demo's own files.
    serve(
        appname="graceful_sse.demo",
        app="app",
        host=args.host,
        port=args.port,
        reload_dirs=[str(Path(__file__).parent)],
    )


if __name__ == "__main__":
    main()
