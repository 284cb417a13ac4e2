"""The connection-status fragment the server sends inside the stream (plain HTML, no I/O).

A stream tells the page's status indicator how things stand even where no script of ours
runs: its opening says "live", its farewell "stopped" or "restarting". Each is an out-of-band
swap (``hx-swap-oob``) of the indicator element. For htmx 2 it is an event named
``sse-status``, which ``SSEStream`` swaps with ``hx-swap="none"`` (only the indicator changes)
and other clients ignore; htmx 4 (whose requests carry ``HX-Request``) swaps unnamed messages
and never lets an out-of-band-only one clear its target, so there it is an unnamed message.
A stream the app ended (``Hub.end``) shows the app's reason instead of the state's label.
"""

from __future__ import annotations

import functools
import html
from typing import Literal

from ._wire import Encoded, Event

__all__ = ["DEFAULT_STATUS_ID", "LABELS", "STATUS_EVENT", "State", "status_event", "status_html"]

State = Literal["connecting", "live", "reconnecting", "restarting", "stopped", "offline", "given-up"]

DEFAULT_STATUS_ID = "sse-status"
STATUS_EVENT = "sse-status"

# One place for the words the page shows; the client monitor reads them from the indicator.
LABELS: dict[str, str] = {
    "connecting": "Connecting…",
    "live": "Live",
    "reconnecting": "Reconnecting…",
    "restarting": "Server restarting…",
    "stopped": "Server stopped",
    "offline": "Offline",
    "given-up": "Disconnected",
}
RECONNECT_LABEL = "Reconnect"


def status_html(
    state: State, status_id: str = DEFAULT_STATUS_ID, *, oob: bool = False, message: str | None = None
) -> str:
    """The indicator element in ``state``; a "Reconnect" link where the user must act.

    ``message`` (the app's text, escaped here) replaces the state's label.
    """
    sid = html.escape(status_id, quote=True)
    label = html.escape(LABELS[state] if message is None else message)
    # Without our script the link reloads the page; with it, the monitor reconnects in place.
    action = ""
    if state in ("stopped", "given-up"):
        action = f'<a class="sse-reconnect" href="" data-sse-reconnect>{RECONNECT_LABEL}</a>'
    swap = ' hx-swap-oob="true"' if oob else ""
    return (
        f'<div id="{sid}" class="sse-status" data-state="{state}" role="status" aria-live="polite"{swap}>'
        f'<span class="sse-dot" aria-hidden="true"></span><span class="sse-label">{label}</span>'
        f"{action}</div>"
    )


def status_event(
    state: State,
    status_id: str = DEFAULT_STATUS_ID,
    *,
    named: bool = True,
    event_id: str | None = None,
    message: str | None = None,
) -> Encoded:
    """The event that swaps the indicator out of band: ``sse-status``, or unnamed (htmx 4).

    ``event_id`` gives the client a place to resume from even before its first real event;
    ``message`` is shown instead of the state's label (the app's text: not cached).
    """
    event = STATUS_EVENT if named else None
    if message is None:
        html = _status_html(state, status_id)
    else:
        html = status_html(state, status_id, oob=True, message=message)
    return Encoded(Event(event=event, id=event_id, data=html).encode())


@functools.lru_cache(maxsize=64)
def _status_html(state: State, status_id: str) -> str:
    return status_html(state, status_id, oob=True)
