"""What a benchmark knows of each app it compares: its key, its module in ``apps/``, its label
in the tables and plots, one line on what it is, and its plot marker. Each benchmark subclasses
:class:`Contender` with what it needs besides."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TypeVar


@dataclass(frozen=True)
class Contender:
    key: str
    module: str  # served as ``uvicorn MODULE:app`` from the benchmark's apps/ folder
    label: str
    what: str
    marker: str = "o"  # in the line plots
    server: str = "uvicorn"  # or another of harness.servers.SERVERS ("granian")


C = TypeVar("C", bound=Contender)


def by_key(contenders: Iterable[C]) -> dict[str, C]:
    """The contenders by key, in the order given (the order of the tables and plot colours)."""
    return {c.key: c for c in contenders}
