"""A run's settings as a frozen dataclass: built from the command line, recorded in the results.

Each runner declares its settings once, as the dataclass's fields (in the order the results
file lists them); a field marked :data:`UNRECORDED` (where the results go, switches that only
choose what runs) is left out of the record.
"""

from __future__ import annotations

import argparse
from dataclasses import fields
from typing import Any, TypeVar

UNRECORDED = {"recorded": False}  # as a field's metadata: not in the results file's record

C = TypeVar("C")


def from_args(cls: type[C], args: argparse.Namespace, **computed: Any) -> C:
    """``cls`` with each field from the option of its name, unless given in ``computed``."""
    names = [f.name for f in fields(cls)]  # type: ignore[arg-type]
    given = {name: getattr(args, name) for name in names if name not in computed and hasattr(args, name)}
    return cls(**given, **computed)


def recorded(cfg: Any) -> dict[str, Any]:
    """The settings the results file records, in the fields' order."""
    return {f.name: getattr(cfg, f.name) for f in fields(cfg) if f.metadata.get("recorded", True)}
