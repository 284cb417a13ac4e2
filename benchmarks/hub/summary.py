"""The hub benchmark's figures from its raw runs: medians per app and size, each next to the
floor's in the same cell (``summary`` in hub.json; the tables and plots are drawn from it)."""

from __future__ import annotations

from typing import Any

from harness.stats import median, ratio

SLOW_FIGURES = (
    "publish_rtt_p50_ms",
    "publish_rtt_p99_ms",
    "publish_rtt_max_ms",
    "publish_call_p50_ms",
    "fanout_p50_ms",
    "fanout_p99_ms",
    "rss_growth",
    "rss_slope",
    "rss_max",
    "missed_notices",
    "published",
    "incomplete_publishes",
)


def rss_slope(samples: list[tuple[float, int]], start: float, end: float) -> float | None:
    """RSS growth (bytes/s) over the last half of a phase: about the rate of an unbounded
    backlog, or of what grows anyway (graceful_sse's history: the last 1,000 events), once the
    start-up transients are over."""
    tail = [(t, r) for t, r in samples if start + (end - start) / 2 <= t <= end]
    if len(tail) < 2 or tail[-1][0] <= tail[0][0]:
        return None
    return (tail[-1][1] - tail[0][1]) / (tail[-1][0] - tail[0][0])


Run = dict[str, Any]


def aggregate(data: dict[str, Any]) -> dict[str, Any]:
    """The five tables' rows: latency, memory and throughput per app and size, the topic scenario
    per app and size, and the slow client."""
    meta, runs = data["meta"], data["runs"]
    ok = [r for r in runs if not r.get("error")]
    latency, memory, tput = [], [], []
    for n in meta["sizes"]:
        at_n = [r for r in ok if r["n"] == n]
        floor = [r for r in at_n if r["app"] == "floor"]
        for key in meta["apps"]:
            rs = [r for r in at_n if r["app"] == key]
            if not rs:
                continue
            latency.append(latency_row(key, n, rs, floor))
            memory.append(memory_row(key, n, rs, floor))
            if any("throughput" in r for r in rs):
                tput.append(throughput_row(key, n, rs, floor))
    slow = slow_rows(data.get("slow_runs", []), meta["apps"])
    topics = topic_rows(data.get("topic_runs", []), meta["apps"], meta.get("topic_sizes", []))
    return {"latency": latency, "memory": memory, "throughput": tput, "topics": topics, "slow": slow}


def latency_row(key: str, n: int, rs: list[Run], floor: list[Run]) -> dict[str, Any]:
    lat = [r["latency"] for r in rs]
    f50 = median([r["latency"]["p50_ms"] for r in floor])
    f99 = median([r["latency"]["p99_ms"] for r in floor])
    fcpu = median([r["latency"]["server_cpu_per_publish_ms"] for r in floor])
    p50, p99 = median([x["p50_ms"] for x in lat]), median([x["p99_ms"] for x in lat])
    cpu = median([x["server_cpu_per_publish_ms"] for x in lat])
    return {
        "app": key,
        "n": n,
        "repeats": len(rs),
        "p50_ms": p50,
        "p99_ms": p99,
        "p50_vs_floor": ratio(p50, f50),
        "p99_vs_floor": ratio(p99, f99),
        "p50_ms_all": [x["p50_ms"] for x in lat],
        "server_cpu_per_publish_ms": cpu,
        "cpu_vs_floor": ratio(cpu, fcpu),
        "complete": all(x["complete_publishes"] == x["publishes"] for x in lat),
        "server_busy_share": median([x["server_busy_share"] for x in lat]),
        "client_busy_share": median([x["client_busy_share"] for x in lat]),
    }


def memory_row(key: str, n: int, rs: list[Run], floor: list[Run]) -> dict[str, Any]:
    per_conn = median([r["memory"]["per_conn_bytes"] for r in rs])
    return {
        "app": key,
        "n": n,
        "per_conn_bytes": per_conn,
        "vs_floor": ratio(per_conn, median([r["memory"]["per_conn_bytes"] for r in floor])),
        "rss_growth_bytes": median([r["memory"]["rss_after"] - r["memory"]["rss_before"] for r in rs]),
        "per_conn_all": [r["memory"]["per_conn_bytes"] for r in rs],
    }


def throughput_row(key: str, n: int, rs: list[Run], floor: list[Run]) -> dict[str, Any]:
    ts = [r["throughput"] for r in rs if "throughput" in r]
    dps = median([t["deliveries_per_s"] for t in ts])
    ftp = median([r["throughput"]["deliveries_per_s"] for r in floor if "throughput" in r])
    return {
        "app": key,
        "n": n,
        "deliveries_per_s": dps,
        "vs_floor": ratio(dps, ftp),
        "published_per_s": median([t["published_per_s"] for t in ts]),
        "delivered_share": median([t["delivered_share"] for t in ts]),
        "missed_notices": median([t["missed_notices"] for t in ts]),
        "server_cpu_share": median([t["server_cpu_share"] for t in ts]),
        "client_cpu_share": median([t["client_cpu_share"] for t in ts]),
        "deliveries_per_s_all": [t["deliveries_per_s"] for t in ts],
    }


def slow_rows(slow: list[Run], apps: list[str]) -> list[dict[str, Any]]:
    sok = [r for r in slow if not r.get("error") and "phases" in r]
    fl = [r for r in sok if r["app"] == "floor"]
    f_fan = median([r["phases"]["readers_only"]["fanout_p99_ms"] for r in fl])
    f_rtt = median([r["phases"]["readers_only"]["publish_rtt_p99_ms"] for r in fl])
    rows = []
    for key in apps:
        rs = [r for r in sok if r["app"] == key]
        if not rs:
            continue
        fill_rss_slopes(rs)
        row: dict[str, Any] = {"app": key, "repeats": len(rs)}
        for phase in ("readers_only", "with_slow"):
            row[phase] = slow_phase_row(rs, phase)
        row["fanout_p99_vs_floor"] = ratio(row["with_slow"]["fanout_p99_ms"], f_fan)
        row["rtt_p99_vs_floor"] = ratio(row["with_slow"]["publish_rtt_p99_ms"], f_rtt)
        row["slowdown_fanout_p99"] = ratio(
            row["with_slow"]["fanout_p99_ms"], row["readers_only"]["fanout_p99_ms"]
        )
        rows.append(row)
    return rows


def fill_rss_slopes(rs: list[Run]) -> None:
    """Growth rates for results written before the runs recorded them."""
    for r in rs:
        for p in r["phases"].values():
            if p.get("rss_slope") is None and r.get("rss_samples"):
                p["rss_slope"] = rss_slope(r["rss_samples"], p["start_s"], p["end_s"])


def slow_phase_row(rs: list[Run], phase: str) -> dict[str, Any]:
    """A phase's medians over the repeats, and how many repeats blocked in it (or before it)."""
    ph = [r["phases"][phase] for r in rs if phase in r["phases"]]
    row: dict[str, Any] = {k: median([p.get(k) for p in ph]) for k in SLOW_FIGURES}
    row["blocked"] = sum(1 for p in ph if p["blocked"]) + sum(1 for r in rs if phase not in r["phases"])
    return row


def topic_rows(topic_runs: list[Run], apps: list[str], sizes: list[int]) -> list[dict[str, Any]]:
    """Per size and app: the median over the repeats of each run's p50 total time (first publish
    call until every stream has its event) and of its server CPU per round, next to the floor's."""
    ok = [r for r in topic_runs if not r.get("error") and r.get("rounds")]
    rows = []
    for n in sizes:
        at_n = [r for r in ok if r["n"] == n]
        floor = [r for r in at_n if r["app"] == "floor"]
        f_total = median([r["total_p50_ms"] for r in floor])
        f_cpu = median([r["server_cpu_p50_ms"] for r in floor])
        for key in apps:
            rs = [r for r in at_n if r["app"] == key]
            if not rs:
                continue
            total, cpu = median([r["total_p50_ms"] for r in rs]), median([r["server_cpu_p50_ms"] for r in rs])
            rows.append(
                {
                    "app": key,
                    "n": n,
                    "repeats": len(rs),
                    "total_p50_ms": total,
                    "vs_floor": ratio(total, f_total),
                    "publish_loop_ms": median([r["publish_loop_p50_ms"] for r in rs]),
                    "server_cpu_ms": cpu,
                    "cpu_vs_floor": ratio(cpu, f_cpu),
                    "complete": all(r["complete_rounds"] == len(r["rounds"]) for r in rs),
                    "total_p50_ms_all": [r["total_p50_ms"] for r in rs],
                }
            )
    return rows
