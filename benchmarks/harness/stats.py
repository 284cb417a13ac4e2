"""The few statistics the benchmarks report: nearest-rank quantiles, medians that skip missing
figures, ratios to a floor."""

from __future__ import annotations

import statistics
from collections.abc import Iterable


def nearest_rank(ordered: list[float], p: float) -> float:
    """The ``p`` quantile of an already sorted, non-empty list (the load clients call it per
    report, on lists they sorted anyway)."""
    return ordered[min(len(ordered) - 1, int(p * (len(ordered) - 1) + 0.5))]


def quantile(values: Iterable[float], p: float) -> float | None:
    """The ``p`` quantile (nearest rank), ``None`` for no values."""
    ordered = sorted(values)
    return nearest_rank(ordered, p) if ordered else None


def percentiles(values: list[float]) -> dict[str, float] | None:
    """min, p50, p90, p99 and max, ``None`` for no values."""
    if not values:
        return None
    v = sorted(values)
    return {
        "min": v[0],
        "p50": nearest_rank(v, 0.5),
        "p90": nearest_rank(v, 0.9),
        "p99": nearest_rank(v, 0.99),
        "max": v[-1],
    }


def median(values: Iterable[float | None]) -> float | None:
    """The median of the figures there are (a failed run has ``None``), ``None`` if none."""
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def ratio(value: float | None, floor: float | None) -> float | None:
    """``value`` as a multiple of the floor's figure, to two places (``None`` without both)."""
    return round(value / floor, 2) if value is not None and floor else None


def ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)
