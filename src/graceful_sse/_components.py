"""FastHTML components: the stream element, the status indicator, and the scripts they need.

    app, rt = fast_app(default_hdrs=False, hdrs=SSEScripts(), routes=[sse_assets()])

    def index():
        return Titled("Live", SSEStatus(), SSEStream("/updates", Div(id="feed"), target="#feed"))

Named in capitals, as FastHTML's own components are. Requires ``python-fasthtml`` (the
``fasthtml`` extra).
"""

from __future__ import annotations

import json
from typing import Any

try:
    from fasthtml.common import FT, Div, Link, NotStr, Script
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "graceful_sse's FastHTML components need FastHTML: install the fasthtml extra "
        "(pip install -e '.[fasthtml]' in a clone, or the wheel with [fasthtml])"
    ) from exc
from starlette.routing import Mount

from ._assets import DEFAULT_PREFIX, STYLES, HtmxVersion, asset_url, assets_route, script_paths
from ._status import DEFAULT_STATUS_ID, LABELS, STATUS_EVENT, status_html

__all__ = ["SSEScripts", "SSEStatus", "SSEStream", "sse_assets"]

SHUTDOWN_EVENT = "shutdown"


def sse_assets(prefix: str = DEFAULT_PREFIX) -> Mount:
    """The route that serves the package's scripts: ``fast_app(routes=[sse_assets()])``."""
    return assets_route(prefix)


def SSEScripts(
    *,
    htmx: HtmxVersion = 2,
    include_htmx: bool = True,
    include_extension: bool = True,
    monitor: bool = True,
    styles: bool = True,
    prefix: str = DEFAULT_PREFIX,
) -> tuple[FT, ...]:
    """``<head>`` tags: htmx, its SSE extension, the client monitor and the indicator styles.

    ``include_htmx=False`` when the page already loads htmx (FastHTML's default headers do);
    ``include_extension=False`` when it loads the SSE extension too (``fast_app(htmx4=True,
    exts="sse4")`` does: then ``SSEScripts(htmx=4, include_htmx=False, include_extension=False)``).
    """
    tags: list[FT] = [Link(rel="stylesheet", href=asset_url(STYLES, prefix))] if styles else []
    paths = script_paths(
        htmx, include_htmx=include_htmx, monitor=monitor, include_extension=include_extension
    )
    tags += [Script(src=asset_url(p, prefix)) for p in paths]
    return tuple(tags)


def SSEStream(
    url: str,
    *content: Any,
    id: str = "sse-stream",
    events: str | None = "message",
    target: str | None = None,
    swap: str | None = None,
    status: str | None = DEFAULT_STATUS_ID,
    max_attempts: int | None = None,
    shared: bool = False,
    htmx: HtmxVersion = 2,
    meta_character: str = ":",
    **attrs: Any,
) -> FT:
    """The element that holds the stream.

    htmx 2 (htmx-ext-sse): events named in ``events`` (comma-separated; ``None``: only children
    with their own ``sse_swap``) are swapped into ``target`` (default: this element) with
    ``swap``. htmx 4 (hx-sse): unnamed messages are swapped (``hx-partial`` elements in one
    update several targets), named ones become DOM events; ``meta_character`` is htmx 4's
    ``metaCharacter`` (FastHTML's ``htmx4=True`` sets ``-``). Either way ``shutdown`` closes the
    stream for good; ``status`` is the id of the ``SSEStatus`` it updates; ``max_attempts``
    failed reconnections make the monitor give up; ``shared`` shares one connection between the
    tabs of an origin (with htmx 4, ``events`` other than ``message`` are the named events the
    tabs pass on).
    """
    extra: dict[str, Any] = {}
    if target is not None:
        extra["hx_target"] = target
    if swap is not None:
        extra["hx_swap"] = swap
    if status is not None:
        extra["data_sse_status"] = status
    if max_attempts is not None:
        extra["data_sse_max_attempts"] = str(max_attempts)
    labels = json.dumps(LABELS, ensure_ascii=False)
    if shared:
        extra["data_sse_shared"] = "true"
    if htmx == 4:
        if shared and events not in (None, "message"):
            extra["data_sse_events"] = events
        if max_attempts is not None:
            extra["hx_config"] = json.dumps({"sse": {"reconnectMaxAttempts": max_attempts}})
        return Div(
            *content,
            id=id,
            data_sse_labels=labels,
            **{f"hx-sse{meta_character}connect": url, f"hx-sse{meta_character}close": SHUTDOWN_EVENT},
            **extra,
            **attrs,
        )
    if status is not None:
        # Out-of-band status updates from the server; "none" swaps nothing else. htmx 2's
        # EventSource cannot send HX-Request: the URL says that an htmx page is asking.
        content = (*content, Div(sse_swap=STATUS_EVENT, hx_swap="none", hidden=True))
        url = f"{url}{'&' if '?' in url else '?'}htmx=1"
    return Div(
        *content,
        id=id,
        hx_ext="sse",
        sse_connect=url,
        sse_swap=events or None,
        sse_close=SHUTDOWN_EVENT,
        data_sse_labels=labels,
        **extra,
        **attrs,
    )


def SSEStatus(id: str = DEFAULT_STATUS_ID) -> FT:
    """The connection status indicator ("Connecting…" until the stream says otherwise)."""
    return NotStr(status_html("connecting", id))
