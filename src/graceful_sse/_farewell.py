"""The last bytes of a stream told to end: a status update, the app's extras, then the farewell.

A ``shutdown`` event (``stop``) carries a day-long ``retry:``, so that a client without our script
(a bare EventSource that ignores the event) does not hammer a dead port; a ``restart`` event
carries a ``retry:`` drawn at random from the restart window, so that clients come back spread
out rather than all at once. A farewell the app asked for (``Hub.end``) carries its ``reason``:
in the status the page shows, and as ``reason`` in the event's data.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from typing import Any

from ._drain import Kind
from ._status import State, status_event
from ._wire import Event, encode_item

__all__ = ["Farewells"]

STOP_RETRY_MS = 24 * 60 * 60 * 1000

FarewellExtra = Callable[[Kind], Iterable[Any]]


class Farewells:
    """Builds farewells from the lifecycle's settings; a stop farewell once per drain."""

    def __init__(
        self,
        *,
        restart_window: tuple[float, float],
        stop_message: str,
        restart_message: str,
        extra: FarewellExtra | None,
    ) -> None:
        self.restart_window = restart_window
        self.stop_message = stop_message
        self.restart_message = restart_message
        self.extra = extra
        self._rng = random.Random()
        self._stops: dict[tuple[str | None, bool], bytes] = {}

    def new_drain(self) -> None:
        """A drain begins: the extras are asked again (they may say when it happened)."""
        self._stops.clear()

    def build(
        self,
        kind: Kind,
        status_id: str | None = None,
        *,
        named_status: bool = True,
        reason: str | None = None,
    ) -> bytes:
        """The bytes that end a stream: the status update, extra events, then ``shutdown``/``restart``.

        ``status_id`` names the page's status indicator (see ``_status``); ``None`` leaves it out.
        ``reason`` (the app's, from ``Hub.end``) is what the status shows and the event says.
        A stop farewell is the same for every stream, so it is built once per drain.
        """
        if kind is not Kind.STOP or reason is not None:
            return self._build(kind, status_id, named_status, reason)
        key = (status_id, named_status)
        built = self._stops.get(key)
        if built is None:
            built = self._stops[key] = self._build(kind, status_id, named_status, None)
        return built

    def restart_event(self, body: dict[str, Any]) -> bytes:
        """A ``restart`` event whose ``retry:`` is random in ``restart_window`` (also in ``body``)."""
        delay = round(self._rng.uniform(*self.restart_window) * 1000)
        return Event(event="restart", retry=delay, data={**body, "retry": delay}).encode()

    def _build(self, kind: Kind, status_id: str | None, named_status: bool, reason: str | None) -> bytes:
        parts: list[bytes] = []
        if status_id is not None:
            state: State = "stopped" if kind is Kind.STOP else "restarting"
            parts.append(status_event(state, status_id, named=named_status, message=reason))
        if self.extra is not None:
            parts.extend(encode_item(item) for item in self.extra(kind))
        message = self.stop_message if kind is Kind.STOP else self.restart_message
        body: dict[str, Any] = {"kind": str(kind), "message": message if reason is None else reason}
        if reason is not None:
            body["reason"] = reason  # the app ended it: the page's script shows this
        if kind is Kind.STOP:
            parts.append(Event(event="shutdown", retry=STOP_RETRY_MS, data=body).encode())
        else:
            parts.append(self.restart_event(body))
        return b"".join(parts)
