"""The shutdown benchmark's report: shutdown.json (raw runs and their summary), shutdown.md (the
table and its legend) and shutdown.png (exit time against N, and the share notified)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from contenders import APPS
from summary import aggregate

from harness.report import colors as app_colors
from harness.report import granian_note, pyplot, sizes_axis, write_markdown
from harness.servers import GRANIAN_OPTIONS


def report(out: Path, data: dict[str, Any]) -> str:
    """Summarise the raw ``data``, write shutdown.json, shutdown.md and shutdown.png; the table."""
    meta, runs = data["meta"], data["runs"]
    rows = aggregate(runs, meta["apps"], meta["sizes"], meta["cap"])
    (out / "shutdown.json").write_text(json.dumps({"meta": meta, "summary": rows, "runs": runs}, indent=1))
    return replot(out, meta, rows)


def replot(out: Path, meta: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    """shutdown.md and shutdown.png from the summary rows; the table."""
    table = write_table(out / "shutdown.md", rows, meta, meta["cap"])
    write_plot(out / "shutdown.png", rows, meta["apps"], meta["sizes"], meta["cap"])
    return table


def fmt_exit(row: dict[str, Any], cap: float) -> str:
    if row["killed"] == row["repeats"]:
        return f"did not exit (killed at {cap:g} s)"
    s = f"{row['exit_s_median']:.2f}"
    if row["killed"]:
        s += f" ({row['killed']}/{row['repeats']} killed at {cap:g} s)"
    return s


def write_table(path: Path, rows: list[dict[str, Any]], meta: dict[str, Any], cap: float) -> str:
    out = [
        "| App | Open streams | Exit time after SIGINT (s) | × raw floor | × floor in its framework "
        "| Clients notified | Clean end of response |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        dead = r["killed"] == r["repeats"]
        ratio = "—" if dead or not r["vs_floor"] else f"{r['vs_floor']:.2f}×"
        fw = "—" if dead or not r.get("vs_framework_floor") else f"{r['vs_framework_floor']:.2f}×"
        out.append(
            f"| {r['label']} | {r['n']:,} | {fmt_exit(r, cap)} | {ratio} | {fw} | "
            f"{r['pct_notified_median']:.0f}% | {r['pct_clean_median']:.0f}% |"
        )
    m = meta
    legend = (
        f"Median of {m['repeats']} runs per cell, all in one run of `benchmarks/shutdown/run.py` on a "
        f"{m['machine']['cpu_count']}-core machine ({m['machine']['cpu_model']}), "
        f"Python {m['machine']['python']}, "
        f"uvicorn {m['versions'].get('uvicorn')} with {m['server']['loop']} and {m['server']['http']}; "
        "each app is served by `uvicorn MODULE:app --log-level warning` as one process"
        f"{granian_note(m, 'graceful_granian', GRANIAN_OPTIONS)}. "
        "*Exit time* is from sending SIGINT to the server's process group (what Ctrl+C in its terminal "
        "does) to the server process being gone; an app still running "
        f'{cap:g} s after SIGINT is SIGKILLed ("did not exit"). *× raw floor* divides by the exit time of a '
        "minimal raw-ASGI app that only chains a signal handler and writes one farewell per stream; "
        "*× floor in its framework* divides by the same logic written as a route of the app's framework "
        "(for the FastHTML apps, a FastHTML route with FastHTML's default middleware), which separates "
        "what a library costs from what its framework's request stack costs. "
        "*Clients notified* is the share of streams that received the app's farewell event "
        "(graceful_sse, the floor and sse-starlette with its `shutdown_event`: `event: shutdown`; the seed "
        "recipe: `event: close`; sse-starlette with its defaults, FastAPI's EventSourceResponse and "
        "FastHTML's EventStream send none); *clean end* is the share whose chunked body ended with its "
        "`0\\r\\n\\r\\n` terminator before the connection closed, rather than being cut off. "
        "All streams are idle; the load client is a separate uvloop process reading raw sockets."
    )
    return write_markdown(path, out, legend)


COLORS = app_colors(APPS)
Row = dict[str, Any]


def write_plot(path: Path, rows: list[Row], apps: list[str], sizes: list[int], cap: float) -> None:
    plt = pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 6.2), gridspec_kw={"width_ratios": [1.15, 1]})
    exit_plot(ax1, rows, apps, sizes, cap)
    notified_plot(ax2, rows, apps, sizes)
    fig.suptitle(
        "uvicorn, one process (one row: Granian, one worker), N idle SSE streams, one SIGINT", fontsize=11
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def exit_plot(ax: Any, rows: list[Row], apps: list[str], sizes: list[int], cap: float) -> None:
    """Exit time against N, log-log; a cross where most repeats were SIGKILLed at the cap."""
    for key in apps:
        rs = sorted((r for r in rows if r["app"] == key), key=lambda r: r["n"])
        if not rs:
            continue
        xs = [r["n"] for r in rs]
        ys = [r["exit_s_median"] for r in rs]
        ax.plot(xs, ys, marker=APPS[key].marker, label=APPS[key].label, color=COLORS[key])
        for r in rs:
            if r["killed"] and r["killed"] * 2 >= r["repeats"]:
                ax.scatter([r["n"]], [r["exit_s_median"]], marker="x", s=110, color="black", zorder=5)
    ax.axhline(cap, color="grey", ls=":", lw=1)
    ax.text(
        sizes[-1],
        cap * 0.78,
        f"× = did not exit: SIGKILLed at the {cap:g} s cap",
        fontsize=8,
        color="dimgrey",
        ha="right",
    )
    sizes_axis(ax, sizes)
    ax.set_xlabel("open SSE streams at SIGINT (log scale)")
    ax.set_yscale("log")
    ax.set_ylabel("SIGINT → server process gone (s, median)")
    ticks = [t for t in (0.1, 0.2, 0.5, 1, 2, 5, 10, 20) if t <= cap * 1.3]
    ax.set_yticks(ticks)
    ax.set_yticklabels([f"{t:g}" for t in ticks])
    ax.minorticks_off()
    ax.set_title("Exit time")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8, loc="center left")


def notified_plot(ax: Any, rows: list[Row], apps: list[str], sizes: list[int]) -> None:
    """% notified: grouped bars per N (lines would hide each other at 0% and 100%)."""
    shown = [k for k in apps if any(r["app"] == k for r in rows)]
    width = 0.8 / max(len(shown), 1)
    for i, key in enumerate(shown):
        by_n = {r["n"]: r for r in rows if r["app"] == key}
        xs = [j + (i - (len(shown) - 1) / 2) * width for j in range(len(sizes))]
        vals = [by_n[n]["pct_notified_median"] if n in by_n else 0 for n in sizes]
        ax.bar(xs, vals, width * 0.92, label=APPS[key].label, color=COLORS[key])
        for x, v in zip(xs, vals, strict=True):
            ax.text(x, v + 1.5, f"{v:.0f}", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(sizes)))
    ax.set_xticklabels([f"{s:,}" for s in sizes])
    ax.set_xlabel("open SSE streams at SIGINT")
    ax.set_ylabel("clients that got a farewell event (%, median)")
    ax.set_ylim(0, 112)
    ax.set_yticks(range(0, 101, 20))
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=3)
    ax.set_title("Clients notified")
    ax.grid(True, axis="y", alpha=0.3)
