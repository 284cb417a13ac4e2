"""Counters a deployment can scrape: as a plain dict, and as Prometheus metrics when installed.

The counters live on the hub that counts them (one per app and event loop); nothing here is
global. ``register_prometheus(hub)`` adds a collector that reads them at scrape time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["HubMetrics", "register_prometheus"]


@dataclass(slots=True)
class HubMetrics:
    """What one hub has done since it was made."""

    connections_opened: int = 0
    connections_closed: int = 0
    events_published: int = 0
    events_delivered: int = 0  # handed to a stream to write
    events_dropped: int = 0  # dropped from a full queue (drop-oldest)
    slow_client_restarts: int = 0  # streams ended with restart advice (restart policy)
    replays: int = 0  # resumptions served from the history
    resets: int = 0  # resumptions that could not be served exactly
    publish_failures: int = 0  # publishes the backend refused (Redis unavailable)
    streams_ended: int = 0  # subscriptions here that ``hub.end`` ended (an order from any worker)

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


# name, type, help; the values come from ``Hub.metrics()``.
_FAMILIES: tuple[tuple[str, str, str], ...] = (
    ("connections", "gauge", "Open SSE connections in this process"),
    ("connections_opened", "counter", "SSE connections opened"),
    ("connections_closed", "counter", "SSE connections closed"),
    ("events_published", "counter", "Events published through this process"),
    ("events_delivered", "counter", "Events handed to streams to write"),
    ("events_dropped", "counter", "Events dropped from full client queues"),
    ("slow_client_restarts", "counter", "Streams ended with restart advice because the client was slow"),
    ("replays", "counter", "Last-Event-ID resumptions served from the history"),
    ("resets", "counter", "Last-Event-ID resumptions answered with a reset event"),
    ("publish_failures", "counter", "Publishes refused because the backend was unavailable"),
    ("streams_ended", "counter", "Streams ended by the app's order (hub.end), in this process"),
    ("shutdowns", "counter", "Shutdown drains run"),
    ("streams_finished", "counter", "Streams given time to finish at a shutdown that finished in it"),
    ("streams_out_of_time", "counter", "Streams given time to finish that were told before they ended"),
    ("shutdown_seconds_last", "gauge", "How long the last shutdown drain took"),
)


def register_prometheus(source: Any, *, registry: Any = None, prefix: str = "graceful_sse") -> Any:
    """Expose ``source.metrics()`` (a ``Hub``) through ``prometheus_client``; returns the collector.

    ``registry`` defaults to ``prometheus_client.REGISTRY``. Needs ``pip install prometheus-client``.
    """
    try:
        from prometheus_client import REGISTRY
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
    except ImportError as exc:
        raise ImportError("Prometheus metrics need prometheus-client: pip install prometheus-client") from exc

    read: Callable[[], dict[str, Any]] = source.metrics

    class _Collector:
        def collect(self) -> Iterator[Any]:
            values = read()
            for name, kind, help_text in _FAMILIES:
                family = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
                metric = family(f"{prefix}_{name}", help_text, labels=["backend"])
                metric.add_metric([str(values["backend"])], float(values[name]))
                yield metric
            topics = GaugeMetricFamily(
                f"{prefix}_topic_connections", "Open SSE connections per topic", labels=["topic"]
            )
            for topic, count in values["topics"].items():
                topics.add_metric([topic], float(count))
            yield topics

    collector = _Collector()
    (registry or REGISTRY).register(collector)
    return collector
