"""The soak benchmark's report: soak-LABEL.json (the run, raw), soak-LABEL.png and soak.md
(one row per result file of the folder)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.report import pyplot


def report(out: Path, result: dict[str, Any]) -> str:
    """Write the run's JSON and plot, and soak.md again; the table."""
    (out / f"soak-{result['label']}.json").write_text(json.dumps(result, indent=1))
    write_plot(out, result)
    return write_markdown(out)


def at(samples: list[dict[str, Any]], fraction: float) -> dict[str, Any]:
    """The sample nearest to ``fraction`` of the churn."""
    end = samples[-1]["t"]
    return min(samples, key=lambda s: abs(s["t"] - fraction * end))


def row(result: dict[str, Any]) -> str:
    samples, c, args = result["samples"], result["clients"], result["args"]
    warm, end = at(samples, 0.25), samples[-1]
    peak_rss = max(s["rss"] for s in samples)
    open_at = c.get("open at SIGINT", 0)
    exit_s = result["exit_seconds"]

    def pct(key: str) -> str:
        return f"{100 * c.get(key, 0) / open_at:.1f}%" if open_at else "—"

    def spare(s: dict[str, Any], key: str, per: int) -> int:
        return int(s[key] - per * s["streams"])

    cells = [
        result["label"],
        f"{args['clients']:,}",
        f"{args['duration']:.0f} s",
        f"{c.get('streams', 0):,}",
        f"{c.get('events', 0):,}",
        f"{warm['rss'] / 1e6:.0f} → {end['rss'] / 1e6:.0f} (peak {peak_rss / 1e6:.0f})",
        f"{spare(warm, 'tasks', 2)} → {spare(end, 'tasks', 2)}",
        f"{spare(warm, 'fds', 1)} → {spare(end, 'fds', 1)}",
        f"{exit_s:.2f} s" if exit_s is not None else "did not exit",
        f"{open_at:,}",
        pct("notified"),
        pct("clean end"),
        f"{sum(v for k, v in c.items() if k.startswith('connect ') and 'SIGINT' not in k):,}",
        f"{c.get('no opening', 0):,}",  # hung up before the server answered
    ]
    return "| " + " | ".join(cells) + " |"


def write_markdown(out: Path) -> str:
    """soak.md: one row per result file in ``out`` (this run's and the earlier ones')."""
    results = [json.loads(p.read_text()) for p in sorted(out.glob("soak-*.json"))]
    lines = [
        "| Run | Clients | Churn | Streams opened | Events received | RSS MB, ¼ → end (peak) "
        "| Tasks − 2 × streams, ¼ → end | FDs − streams, ¼ → end | Exit after SIGINT "
        "| Open at SIGINT | Got `shutdown` | Clean end | Failed connects | No answer in time |",
        "|---|---:|---:|---:|---:|---|---|---|---:|---:|---:|---:|---:|---:|",
        *(row(r) for r in results),
    ]
    text = "\n".join(lines) + "\n"
    (out / "soak.md").write_text(text)
    return text


def write_plot(out: Path, result: dict[str, Any]) -> None:
    """soak-LABEL.png: memory, tasks and descriptors over time; SIGINT is the dashed line."""
    plt = pyplot()
    samples = result["samples"]
    ts = [s["t"] for s in samples]
    fig, axes = plt.subplots(3, 1, figsize=(10, 9), sharex=True)
    axes[0].plot(ts, [s["rss"] / 1e6 for s in samples], color="C0")
    axes[0].set_ylabel("RSS (MB)")
    axes[1].plot(ts, [s["tasks"] for s in samples], color="C1", label="asyncio tasks")
    axes[1].plot(ts, [s["streams"] for s in samples], color="C2", label="open streams")
    axes[1].legend(fontsize=8)
    axes[1].set_ylabel("count")
    axes[2].plot(ts, [s["fds"] for s in samples], color="C3", label="open file descriptors")
    axes[2].plot(ts, [s["streams"] for s in samples], color="C2", ls=":", label="open streams")
    axes[2].legend(fontsize=8)
    axes[2].set_ylabel("count")
    axes[2].set_xlabel("seconds")
    for ax in axes:
        ax.axvline(result["sigint_at"], color="grey", ls="--")
        ax.grid(alpha=0.3)
    exit_s = result["exit_seconds"]
    gone = f"gone {exit_s:.2f} s later" if exit_s is not None else "did not exit"
    args = result["args"]
    title = f"Soak: {args['clients']:,} churning clients, {args['rate']:g} events/s"
    fig.suptitle(f"{title}; SIGINT at the dashed line ({gone})", fontsize=11)
    fig.tight_layout()
    fig.savefig(out / f"soak-{result['label']}.png", dpi=110)
    plt.close(fig)
