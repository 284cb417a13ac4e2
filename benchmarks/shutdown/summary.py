"""The shutdown benchmark's figures from its raw runs: medians per app and size, each exit time
next to the raw floor's and to the floor written in the app's own framework."""

from __future__ import annotations

import statistics
from typing import Any

from contenders import APPS

from harness.stats import median, ratio

Run = dict[str, Any]
FLOORS = ("floor", "floor_fasthtml")


def floor_exit_medians(runs: list[Run], sizes: list[int]) -> dict[str, dict[int, float]]:
    """Per floor and size, the median exit time of the runs that exited (none: no entry)."""
    medians: dict[str, dict[int, float]] = {key: {} for key in FLOORS}
    for floor_key, by_n in medians.items():
        for n in sizes:
            fr = [r for r in runs if r["app"] == floor_key and r["n"] == n and not r.get("error")]
            times = [r["exit_s"] for r in fr if r.get("exit_s") is not None and not r.get("killed")]
            if times:
                by_n[n] = statistics.median(times)
    return medians


def median_of(rs: list[Run], key: str, stat: str) -> float | None:
    vals = [r[key][stat] for r in rs if r.get(key, {}).get(stat) is not None]
    return round(statistics.median(vals), 4) if vals else None


def aggregate(runs: list[Run], apps: list[str], sizes: list[int], cap: float) -> list[dict[str, Any]]:
    """One row per app and size (the table's and the plot's)."""
    floors = floor_exit_medians(runs, sizes)
    rows = []
    for key in apps:
        for n in sizes:
            rs = [r for r in runs if r["app"] == key and r["n"] == n and not r.get("error")]
            if rs:
                rows.append(row(key, n, rs, floors, cap))
    return rows


def row(key: str, n: int, rs: list[Run], floors: dict[str, dict[int, float]], cap: float) -> dict[str, Any]:
    """A killed run counts as exiting at ``cap`` in the median."""
    killed = sum(1 for r in rs if r.get("killed"))
    med = statistics.median([r["exit_s"] if r.get("exit_s") is not None else cap for r in rs])
    shares = [r["client_cpu"]["shutdown_share"] for r in rs if r.get("client_cpu", {}).get("shutdown_share")]
    return {
        "app": key,
        "label": APPS[key].label,
        "n": n,
        "repeats": len(rs),
        "killed": killed,
        "exit_s_median": round(med, 3),
        "exit_s_all": [r.get("exit_s") for r in rs],
        "exit_codes": [r.get("exit_code") for r in rs],
        "exited_median": killed * 2 < len(rs),
        "vs_floor": ratio(med, floors["floor"].get(n)),
        "vs_framework_floor": ratio(med, floors[APPS[key].framework_floor].get(n)),
        "pct_notified_median": statistics.median(r["pct_notified"] for r in rs),
        "pct_clean_median": statistics.median(r["pct_clean"] for r in rs),
        "last_eof_s_median": median_of(rs, "eof_s", "last"),
        "first_notice_s_median": median_of(rs, "notice_s", "first"),
        "last_notice_s_median": median_of(rs, "notice_s", "last"),
        "client_share_median": median(shares),
        "server_cpu_shutdown_s_median": statistics.median(
            [r["server_cpu_shutdown_s"] for r in rs if "server_cpu_shutdown_s" in r] or [0]
        ),
    }
