"""What the runners' reports share: number formatting, the Markdown file, matplotlib set up
for files, and the axes and colours every plot uses alike."""

from __future__ import annotations

import textwrap
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any


def fmt(x: float | None, spec: str = ".1f", suffix: str = "") -> str:
    """A table cell: the figure, or a dash where there is none."""
    return "—" if x is None else f"{x:{spec}}{suffix}"


def table_head(title: str, columns: Sequence[str]) -> list[str]:
    """A Markdown table's first lines: its ``###`` title, a blank line, the header row and the
    alignment row (the first column, the app, left; the figures right)."""
    return [title, "", "| " + " | ".join(columns) + " |", "|---|" + "---:|" * (len(columns) - 1)]


def write_markdown(path: Path, lines: Sequence[str], legend: str) -> str:
    """Write the tables and their legend paragraph to ``path``; the text, to print as well."""
    text = "\n".join(lines) + "\n\n" + legend + "\n"
    path.write_text(text)
    return text


def pyplot() -> Any:
    """matplotlib's pyplot drawing to files only (no display on a benchmark machine)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def colors(keys: Iterable[str]) -> dict[str, str]:
    """One colour per app, by its place in the benchmark's list, so it is the same in every plot."""
    return {key: f"C{i}" for i, key in enumerate(keys)}


def sizes_axis(ax: Any, sizes: Sequence[int]) -> None:
    """A log x axis with a tick at each number of streams measured."""
    ax.set_xscale("log")
    ax.set_xticks(sizes)
    ax.set_xticklabels([f"{s:,}" for s in sizes])


def wrapped(label: str, width: int = 14) -> str:
    """A label on two or three lines, for a plot's axis."""
    return textwrap.fill(label, width, break_long_words=False)


def granian_note(meta: dict[str, Any], key: str, options: Sequence[str]) -> str:
    """For a legend: what the Granian row ``key`` ran on, as its /health reported ("" if it did
    not run)."""
    probe = meta["server"].get("per_app", {}).get(key)
    if not probe:
        return ""
    return (
        f"; the Granian row: `granian --interface asgi MODULE:app {' '.join(options)}` (granian "
        f"{meta['versions'].get('granian')}), one worker under its supervisor, {probe.get('loop')} (its "
        "default loop) and its own HTTP/1.1 (Rust); the backlog is uvicorn's, and the backpressure leaves "
        "room for every stream (a Granian worker serves at most that many requests at once; by default "
        "1,024, its backlog)"
    )
