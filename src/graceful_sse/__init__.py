"""graceful-sse: Server-Sent Events for FastHTML and Starlette that end gracefully.

    hub = Hub()
    app, rt = fast_app(lifespan=hub.lifespan)

    @rt("/updates")
    def updates():
        return EventStream(hub.subscribe("updates"))

Everything an app uses is imported from here. The FastHTML components (``SSEScripts``,
``SSEStatus``, ``SSEStream``, ``sse_assets``) are imported on first use, so that a Starlette or
FastAPI app needs no FastHTML.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._backends import Backend, BackendUnavailable, NotPublished, OutcomeUnknown, Replay, ResetReason
from ._drain import Kind, ShutdownReport
from ._history import EventId
from ._hub import Hub, InvalidIdentity, InvalidTopic, Overflow, Subscription, TopicPolicy
from ._lifecycle import Lifecycle
from ._limits import Authorize, Limits
from ._metrics import HubMetrics, register_prometheus
from ._response import EventStream, last_event_id
from ._sources import Source
from ._wire import Encoded, Event, encode

if TYPE_CHECKING:
    from ._components import SSEScripts, SSEStatus, SSEStream, sse_assets

__all__ = [
    "Authorize",
    "Backend",
    "BackendUnavailable",
    "Encoded",
    "Event",
    "EventId",
    "EventStream",
    "Hub",
    "HubMetrics",
    "InvalidIdentity",
    "InvalidTopic",
    "Kind",
    "Lifecycle",
    "Limits",
    "NotPublished",
    "OutcomeUnknown",
    "Overflow",
    "Replay",
    "ResetReason",
    "SSEScripts",
    "SSEStatus",
    "SSEStream",
    "ShutdownReport",
    "Source",
    "Subscription",
    "TopicPolicy",
    "encode",
    "last_event_id",
    "register_prometheus",
    "sse_assets",
]

__version__ = "0.1.0"

_FASTHTML_COMPONENTS = frozenset({"SSEScripts", "SSEStatus", "SSEStream", "sse_assets"})


def __getattr__(name: str) -> Any:
    # The components need FastHTML (the [fasthtml] extra): imported only when an app asks.
    if name in _FASTHTML_COMPONENTS:
        return getattr(importlib.import_module("._components", __name__), name)
    raise AttributeError(f"module 'graceful_sse' has no attribute {name!r}")
