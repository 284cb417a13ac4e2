"""The hub benchmark's report: hub.json (raw runs and their summary), hub.md (five tables and a
legend) and the plots hub.png and hub_slow.png, all from the raw results alone (``--replot``
redoes them from hub.json)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from contenders import APPS, label
from summary import aggregate

from harness.report import colors, fmt, granian_note, pyplot, sizes_axis, table_head, wrapped, write_markdown
from harness.servers import GRANIAN_OPTIONS

COLORS = colors(APPS)
PHASES_SHOWN = "readers only → with the slow one"
FLOOR = "× floor"
LATENCY_COLUMNS = (
    "App",
    "Streams",
    "p50 (ms)",
    FLOOR,
    "p99 (ms)",
    FLOOR,
    "server CPU per publish (ms)",
    FLOOR,
    "server busy",
    "client busy",
)
THROUGHPUT_COLUMNS = (
    "App",
    "Streams",
    "deliveries/s",
    FLOOR,
    "publishes/s",
    "delivered in window",
    "`missed` notices",
    "server CPU",
    "client CPU (per process)",
)
MEMORY_COLUMNS = ("App", "Streams", "RSS growth (MB)", "per connection (KB)", FLOOR)
TOPIC_COLUMNS = (
    "App",
    "Streams (one topic each)",
    "all have their event (ms, p50)",
    FLOOR,
    "publish loop in the app (ms)",
    "server CPU (ms)",
    FLOOR,
)
Row = dict[str, Any]


def report(out: Path, data: dict[str, Any]) -> str:
    """Summarise ``data`` into it, write hub.json, hub.md and the plots; the tables' text."""
    summary = aggregate(data)
    data["summary"] = summary
    (out / "hub.json").write_text(json.dumps(data, indent=1))
    table = write_markdown(out / "hub.md", tables(summary, data["meta"]), legend(data["meta"]))
    write_plots(out, summary, data)
    return table


def app_ticks(ax: Any, xs: list[int], keys: list[str]) -> None:
    """One tick per app under its bars, slanted so that long labels fit."""
    ax.set_xticks(xs)
    ax.set_xticklabels([wrapped(label(k), 30) for k in keys], fontsize=7, rotation=30, ha="right")


# -- hub.md -------------------------------------------------------------------------------------


def tables(summary: dict[str, Any], m: dict[str, Any]) -> list[str]:
    """The tables of the scenarios that ran (``--only-slow``, ``--only-topics``: not the others)."""
    sections = [
        (summary["latency"], lambda rows: latency_table(rows, m)),
        (summary["throughput"], lambda rows: throughput_table(rows, m)),
        (summary["memory"], memory_table),
        (summary.get("topics", []), lambda rows: topic_table(rows, m)),
        (summary["slow"], lambda rows: slow_table(rows, m)),
    ]
    out: list[str] = []
    for rows, table in sections:
        if rows:
            out += [*table(rows), ""]
    return out[:-1]


def latency_table(rows: list[Row], m: dict[str, Any]) -> list[str]:
    out = table_head(
        f"### Fan-out latency (publish call → the last of N idle streams has the event; {m['publishes']} "
        f"publishes, each {m['spacing'] * 1000:.0f} ms after every stream had the previous one; "
        f"{m['size']}-byte events)",
        LATENCY_COLUMNS,
    )
    for r in rows:
        flag = "" if r["complete"] else " (incomplete)"
        out.append(
            f"| {label(r['app'])} | {r['n']:,} | {fmt(r['p50_ms'])}{flag} "
            f"| {fmt(r['p50_vs_floor'], '.2f', '×')} | {fmt(r['p99_ms'])} "
            f"| {fmt(r['p99_vs_floor'], '.2f', '×')} | {fmt(r['server_cpu_per_publish_ms'])} "
            f"| {fmt(r['cpu_vs_floor'], '.2f', '×')} | {fmt(r['server_busy_share'], '.2f')} "
            f"| {fmt(r['client_busy_share'], '.2f')} |"
        )
    return out


def throughput_table(rows: list[Row], m: dict[str, Any]) -> list[str]:
    out = table_head(
        f"### Sustained throughput (publishes back to back for {m['tput_seconds']:g} s; deliveries that "
        "reached the clients within that window)",
        THROUGHPUT_COLUMNS,
    )
    for r in rows:
        out.append(
            f"| {label(r['app'])} | {r['n']:,} | {fmt(r['deliveries_per_s'], ',.0f')} "
            f"| {fmt(r['vs_floor'], '.2f', '×')} | {fmt(r['published_per_s'], ',.1f')} "
            f"| {fmt(None if r['delivered_share'] is None else r['delivered_share'] * 100, '.0f', '%')} "
            f"| {fmt(r['missed_notices'], ',.0f')} | {fmt(r['server_cpu_share'], '.2f')} "
            f"| {fmt(r['client_cpu_share'], '.2f')} |"
        )
    return out


def memory_table(rows: list[Row]) -> list[str]:
    out = table_head(
        "### Memory per idle connection (RSS after N streams connected and a gc, minus RSS before, ÷ N)",
        MEMORY_COLUMNS,
    )
    for r in rows:
        growth = None if r["rss_growth_bytes"] is None else r["rss_growth_bytes"] / 1e6
        per = None if r["per_conn_bytes"] is None else r["per_conn_bytes"] / 1024
        ratio = fmt(r["vs_floor"], ".2f", "×")
        out.append(f"| {label(r['app'])} | {r['n']:,} | {fmt(growth)} | {fmt(per)} | {ratio} |")
    return out


def topic_table(rows: list[Row], m: dict[str, Any]) -> list[str]:
    out = table_head(
        "### One event per topic (N streams, each on a topic of its own; one publish to each topic, in a "
        f"loop inside the app; rounds per run: {m.get('topic_rounds')}; {m['size']}-byte events: first "
        "publish call → every stream has its own event)",
        TOPIC_COLUMNS,
    )
    for r in rows:
        flag = "" if r["complete"] else " (incomplete)"
        out.append(
            f"| {label(r['app'])} | {r['n']:,} | {fmt(r['total_p50_ms'])}{flag} "
            f"| {fmt(r['vs_floor'], '.2f', '×')} | {fmt(r['publish_loop_ms'])} | {fmt(r['server_cpu_ms'])} "
            f"| {fmt(r['cpu_vs_floor'], '.2f', '×')} |"
        )
    return out


def mb(x: float | None, spec: str = "+.1f") -> str:
    return fmt(None if x is None else x / 1e6, spec)


def slow_table(rows: list[Row], m: dict[str, Any]) -> list[str]:
    first, then = m["slow_seconds"][0], m["slow_seconds"][1]
    sizes = f"{m['slow_size']:,}-byte events at {m['slow_rate']:g}/s, {first:g} s + {then:g} s"
    title = (
        f"### One slow client ({m['slow_n'] - 1:,} reading streams, then one more that never reads; {sizes})"
    )
    columns = [
        "App",
        f"publish round trip p99 (ms): {PHASES_SHOWN}",
        FLOOR,
        f"readers' fan-out p99 (ms): {PHASES_SHOWN}",
        FLOOR,
        f"events published with the slow one (of {m['slow_rate'] * then:.0f})",
        "server RSS growth with the slow one (MB)",
        f"RSS growth rate (MB/s, last half of each phase): {PHASES_SHOWN}",
    ]
    out = table_head(title, columns)
    for r in rows:
        a, b = r["readers_only"], r["with_slow"]
        blocked = b["blocked"]
        if blocked:
            rtt_b = fan_b = f"blocked ({blocked}/{r['repeats']} runs)"
        else:
            rtt_b, fan_b = fmt(b["publish_rtt_p99_ms"]), fmt(b["fanout_p99_ms"])
        out.append(
            f"| {label(r['app'])} | {fmt(a['publish_rtt_p99_ms'])} → {rtt_b} "
            f"| {fmt(r['rtt_p99_vs_floor'], '.2f', '×')} | {fmt(a['fanout_p99_ms'])} → {fan_b} "
            f"| {fmt(r['fanout_p99_vs_floor'], '.2f', '×')} | {fmt(b['published'], '.0f')} "
            f"| {mb(b['rss_growth'])} | {mb(a['rss_slope'], '+.2f')} → {mb(b['rss_slope'], '+.2f')} |"
        )
    return out


def legend(m: dict[str, Any]) -> str:
    mach, v = m["machine"], m["versions"]
    text = (
        f"Medians of {m['repeats']} runs per cell, all in one run of `benchmarks/hub/run.py` "
        f"({m['total_seconds'] / 60:.0f} min) on a {mach['cpu_count']}-core machine ({mach['cpu_model']}; "
        "the server and the load clients share these 2 cores), "
        f"Python {mach['python']}, uvicorn {v.get('uvicorn')} with {m['server']['loop']} and "
        f"{m['server']['http']} (as reported by every uvicorn app's /health), one process per app except "
        "the Redis row (uvicorn --workers 2 and a private redis-server on the same machine: its CPU is "
        "both workers' summed, its memory both workers' RSS after a gc in each; not in the slow-client "
        "scenario, which samples one process)"
        f"{granian_note(m, 'graceful_granian', GRANIAN_OPTIONS)}, "
        f"{m['client_procs']} load-client processes (uvloop, raw sockets). "
        "*× floor* divides by the raw-ASGI floor's median in the same cell (for the slow-client table: by "
        "the floor's figure with readers only, since the floor itself blocks). "
        "*server busy* / *client busy*: CPU seconds used during the latency phase divided by the summed "
        "fan-out times (for the clients, per process): near 1.0 means that process was saturated while "
        "events were in flight. Throughput: server CPU and client CPU are shares of one core over the "
        "window. One event per topic: the last stream's arrival minus the first event's stamp (taken in "
        "the app right before its first publish call), p50 over the rounds of a run, median over the "
        "runs; *publish loop*: what the app's loop over the N publish calls took (a library whose "
        "publish only queues returns before the deliveries); *server CPU*: per round, from the "
        "/publish_each request until the runner saw every stream's event (it polls the clients every "
        "0.25 s; the server is idle meanwhile). The seed's manager is not in it: its broadcast reaches "
        "every connection (no topics); nor is the Redis row."
    )
    other = m.get("other_cpu")
    if other:
        text += (
            f" Other processes on the machine used {other['share_of_machine'] * 100:.1f}% of its CPU "
            "over the whole run; each measurement waited for a quiet machine, and a measurement during "
            f"which they used more than {m.get('max_other', 0) * 100:.0f}% was taken again "
            f"({m.get('remeasured_runs', 0)} were)."
        )
    return text


# -- hub.png and hub_slow.png ---------------------------------------------------------------------


def write_plots(out: Path, summary: dict[str, Any], data: dict[str, Any]) -> None:
    plt = pyplot()
    meta = data["meta"]
    apps, sizes = meta["apps"], meta["sizes"]
    layout = [["latency", "throughput", "memory"], ["topics", "slow", "slow"]]
    fig, axes = plt.subplot_mosaic(layout, figsize=(19, 9.5))
    latency_plot(axes["latency"], summary["latency"], apps, sizes)
    big = max(sizes)
    topic_n = max(meta.get("topic_sizes") or [0])
    for panel, table, n, value, title, ylabel, scale in (
        (
            "throughput",
            "throughput",
            big,
            "deliveries_per_s",
            f"Sustained throughput at {big:,} streams",
            "deliveries per second (median)",
            1.0,
        ),
        (
            "memory",
            "memory",
            big,
            "per_conn_bytes",
            f"Memory per idle connection at {big:,} streams",
            "RSS growth per connection (KB)",
            1 / 1024,
        ),
        (
            "topics",
            "topics",
            topic_n,
            "total_p50_ms",
            f"One event to each of {topic_n:,} topics: until every stream has its own",
            "first publish call → every stream has its event (ms, p50)",
            1.0,
        ),
    ):
        rows = [r for r in summary.get(table, []) if r["n"] == n]
        bars(axes[panel], rows, apps, value, title, ylabel, scale)
    slow_memory_plot(axes["slow"], data.get("slow_runs", []), meta["slow_n"])
    fig.suptitle(
        "Hub benchmark: uvicorn + uvloop + httptools, one process per app (Redis row: 2 workers; "
        f"Granian row: one worker), {os.cpu_count()} cores",
        fontsize=11,
    )
    fig.tight_layout()
    fig.savefig(out / "hub.png", dpi=110)
    plt.close(fig)
    if summary["slow"]:
        write_slow_plot(out / "hub_slow.png", summary["slow"])


def legend_if_any(ax: Any) -> None:
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)


def latency_plot(ax: Any, rows: list[Row], apps: list[str], sizes: list[int]) -> None:
    for key in apps:
        rs = sorted((r for r in rows if r["app"] == key), key=lambda r: r["n"])
        if rs:
            xs = [r["n"] for r in rs]
            marker = APPS[key].marker
            ax.plot(xs, [r["p50_ms"] for r in rs], marker=marker, color=COLORS[key], label=label(key))
            ax.plot(xs, [r["p99_ms"] for r in rs], ls=":", color=COLORS[key], marker=marker, ms=3)
    sizes_axis(ax, sizes)
    ax.set_yscale("log")
    ax.minorticks_off()
    ax.set_xlabel("idle streams")
    ax.set_ylabel("publish → last stream has it (ms; solid p50, dotted p99)")
    ax.set_title("Fan-out latency")
    ax.grid(True, alpha=0.3)
    legend_if_any(ax)


def bars(
    ax: Any, rows: list[Row], apps: list[str], value: str, title: str, ylabel: str, scale: float = 1.0
) -> None:
    """One bar per app at the largest size, labelled with its figure and its ratio to the floor."""
    keys = [k for k in apps if any(r["app"] == k for r in rows)]
    vals = [next(r[value] for r in rows if r["app"] == k) or 0 for k in keys]
    ratios = [next(r.get("vs_floor") or r.get("p50_vs_floor") for r in rows if r["app"] == k) for k in keys]
    xs = range(len(keys))
    ax.bar(xs, [v * scale for v in vals], color=[COLORS[k] for k in keys])
    for x, v, rt in zip(xs, vals, ratios, strict=True):
        ax.text(
            x,
            v * scale,
            f"{v * scale:,.{0 if v * scale >= 100 else 1}f}\n{rt or 0:.2f}× floor",
            ha="center",
            va="bottom",
            fontsize=8,
        )
    app_ticks(ax, list(xs), keys)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.margins(y=0.2)
    ax.grid(True, axis="y", alpha=0.3)


def slow_memory_plot(ax: Any, slow_runs: list[dict[str, Any]], slow_n: int) -> None:
    """The server's RSS over the first repeat of each app's slow-client run."""
    for r in slow_runs:
        if r.get("repeat") != 0 or not r.get("rss_samples"):
            continue
        ts = [t for t, _ in r["rss_samples"]]
        base = r["rss_samples"][0][1]
        ax.plot(
            ts, [(x - base) / 1e6 for _, x in r["rss_samples"]], color=COLORS[r["app"]], label=label(r["app"])
        )
        if "slow_joined_s" in r:
            ax.axvline(r["slow_joined_s"], color=COLORS[r["app"]], ls=":", lw=0.8)
    ax.set_xlabel("seconds (dotted: the slow client connects)")
    ax.set_ylabel("server RSS growth (MB)")
    ax.set_title(f"One slow client among {slow_n:,}: server memory (first repeat)")
    ax.grid(True, alpha=0.3)
    legend_if_any(ax)


def write_slow_plot(path: Path, rows: list[Row]) -> None:
    """The slow client's effect on the readers: fan-out p99 and publish round trip, both phases."""
    plt = pyplot()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(13, 4.8))
    for ax, metric, title in (
        (a1, "fanout_p99_ms", "Readers' fan-out latency p99 (ms)"),
        (a2, "publish_rtt_p99_ms", "Publisher's /publish round trip p99 (ms)"),
    ):
        phase_bars(ax, rows, metric, title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def phase_bars(ax: Any, rows: list[Row], metric: str, title: str) -> None:
    """Readers only (grey) next to with the slow one (the app's colour), log scale."""
    keys = [r["app"] for r in rows]
    xs = list(range(len(keys)))
    before = [r["readers_only"][metric] or 0 for r in rows]
    # a phase that blocked has no figure of its own: no bar, the word instead
    after = [0 if r["with_slow"]["blocked"] else r["with_slow"][metric] or 0 for r in rows]
    for shift, values, name, color in (
        (-0.2, before, "readers only", "lightgrey"),
        (0.2, after, "with one slow client", [COLORS[k] for k in keys]),
    ):
        ax.bar([x + shift for x in xs], values, 0.4, label=name, color=color)
    ax.set_yscale("log")
    low = min(v for v in before + after if v > 0) / 1.5
    ax.set_ylim(bottom=low)
    for x, r in zip(xs, rows, strict=True):
        if r["with_slow"]["blocked"]:
            ax.text(x + 0.2, low * 1.1, "blocked", rotation=90, ha="center", va="bottom", fontsize=9)
    app_ticks(ax, xs, keys)
    ax.set_title(title)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8)
