"""The browser files the package serves itself: vendored htmx builds, the monitor, its styles.

Everything comes from the package (no CDN), so pages work offline and the versions are the
pinned ones in ``static/vendor/manifest.json``. URLs carry the package version, so browsers may
cache them for long and still pick up a new release.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

__all__ = ["DEFAULT_PREFIX", "STATIC_DIR", "asset_url", "assets_route", "script_paths"]

STATIC_DIR = Path(__file__).parent / "static"
DEFAULT_PREFIX = "/_sse"
VERSION = "0.1.0"

HtmxVersion = Literal[2, 4]

_HTMX = {2: "vendor/htmx-2/htmx.min.js", 4: "vendor/htmx-4/htmx.min.js"}
_SSE_EXTENSION = {2: "vendor/htmx-ext-sse-2/sse.js", 4: "vendor/htmx-4/hx-sse.js"}
# The monitor's scripts, in load order (static/graceful-sse/page.js says what each one does).
MONITOR = tuple(
    f"graceful-sse/{name}.js" for name in ("page", "event-source", "states", "tabs", "htmx", "start")
)
STYLES = "graceful-sse.css"


def assets_route(prefix: str = DEFAULT_PREFIX) -> Mount:
    """A Starlette route serving the package's browser files under ``prefix``."""
    return Mount(prefix, app=StaticFiles(directory=STATIC_DIR), name="graceful_sse_assets")


def asset_url(path: str, prefix: str = DEFAULT_PREFIX) -> str:
    if not (STATIC_DIR / path).is_file():
        raise FileNotFoundError(f"graceful-sse ships no asset {path!r}")
    return f"{prefix.rstrip('/')}/{path}?v={VERSION}"


def script_paths(
    htmx: HtmxVersion, *, include_htmx: bool, monitor: bool, include_extension: bool = True
) -> list[str]:
    """The scripts a page needs, in load order: htmx, its SSE extension, the monitor's scripts."""
    if htmx not in _HTMX:
        raise ValueError(f"htmx must be 2 or 4, not {htmx!r}")
    paths = [_HTMX[htmx]] if include_htmx else []
    if include_extension:
        paths.append(_SSE_EXTENSION[htmx])
    if monitor:
        paths.extend(MONITOR)
    return paths
