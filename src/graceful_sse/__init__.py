"""graceful-sse: Server-Sent Events for FastHTML and Starlette that end gracefully.

hub = Hub()
app, rt = fast_app(lifespan=hub.lifespan)

@rt("/updates")
def updates():
    return EventStream(hub.subscribe("updates"))
"""

from ._backends import BackendUnavailable, NotPublished, OutcomeUnknown
from ._drain import Kind, ShutdownReport
from ._hub import Hub, Overflow, Subscription, TopicPolicy
from ._lifecycle import Lifecycle
from ._limits import Limits
from ._response import EventStream
from ._wire import Encoded, Event, encode

__all__ = [
    "BackendUnavailable",
    "Encoded",
    "Event",
    "EventStream",
    "Hub",
    "Kind",
    "Lifecycle",
    "Limits",
    "NotPublished",
    "OutcomeUnknown",
    "Overflow",
    "ShutdownReport",
    "Subscription",
    "TopicPolicy",
    "encode",
]

__version__ = "0.1.0"
