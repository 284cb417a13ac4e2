"""The hub benchmark's measurements: for each size, repeat and app, one server run (memory per
connection, fan-out latency, throughput), then the 1,000-topic scenario (:mod:`topics`), then the
slow-client scenario (:mod:`slow`); each run on a quiet machine (:mod:`quiet`). The raw results,
as ``hub.json`` keeps them."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from config import HubConfig
from contenders import APPS, DISTRIBUTIONS, App
from quiet import CpuLedger, guarded
from rig import CLIENT, Clients, HubServer, served_run, wait_delivered
from slow import slow_run
from topics import topic_line, topic_run

from harness.clients import selftest
from harness.runinfo import RunRecord
from harness.stats import ms, quantile


def latency_phase(server: HubServer, clients: Clients, n: int, cfg: HubConfig) -> dict[str, Any]:
    clients.reset()
    cpu0 = server.cpu()
    calls: list[dict[str, Any]] = []
    seqs = list(range(1, cfg.publishes + 1))
    for seq in seqs:
        t = time.monotonic()
        answer = server.publish(seq, cfg.size, timeout=30)
        answer["rtt_s"] = time.monotonic() - t
        calls.append(answer)
        # The next publish goes out --spacing s after every stream has this one (or 10 s), so
        # that fan-outs never overlap: the latency measured is one publish's, not a queue's.
        clients.wait_got(seq, 10.0)
        time.sleep(cfg.spacing)
    merged = wait_delivered(clients, seqs, n, timeout=max(10.0, cfg.spacing * 10))
    server_cpu = server.cpu() - cpu0
    per = merged["per_seq"]
    lasts = [per[s]["last"] for s in seqs if s in per]
    complete = [s for s in seqs if per.get(s, {}).get("count", 0) >= n]
    busy = sum(lasts)  # seconds during which a fan-out was in progress
    procs = len(clients.procs)
    return {
        "publishes": len(seqs),
        "complete_publishes": len(complete),
        "deliveries": merged["deliveries"],
        "expected_deliveries": n * len(seqs),
        "last_ms": [ms(x) for x in lasts],
        "p50_ms": ms(quantile(lasts, 0.5)),
        "p99_ms": ms(quantile(lasts, 0.99)),
        "median_client_p50_ms": ms(quantile([per[s]["p50"] for s in seqs if s in per], 0.5)),
        "first_p50_ms": ms(quantile([per[s]["first"] for s in seqs if s in per], 0.5)),
        "publish_call_p50_ms": ms(quantile([c["call_s"] for c in calls], 0.5)),
        "publish_rtt_p50_ms": ms(quantile([c["rtt_s"] for c in calls], 0.5)),
        "server_cpu_s": round(server_cpu, 3),
        "server_cpu_per_publish_ms": round(server_cpu / len(seqs) * 1000, 2),
        "client_cpu_s": round(merged["client_cpu_s"], 3),
        # Busy shares: CPU used / time fan-outs were in progress (summed latencies), per process.
        "server_busy_share": round(server_cpu / busy, 3) if busy else None,
        "client_busy_share": round(merged["client_cpu_s"] / procs / busy, 3) if busy else None,
        "missed_notices": merged["missed_notices"],
        "lost": merged["lost"],
        "errors": merged["errors"],
    }


def throughput_phase(server: HubServer, clients: Clients, n: int, cfg: HubConfig) -> dict[str, Any]:
    clients.reset()
    time.sleep(0.2)
    cpu0 = server.cpu()
    seq = 100_000
    t_start = time.time()
    t_end = t_start + cfg.tput_seconds
    published = 0
    blocked = False
    while time.time() < t_end:
        seq += 1
        try:
            server.publish(seq, cfg.size, timeout=max(5.0, cfg.tput_seconds))
        except (OSError, ConnectionError):
            blocked = True
            break
        published += 1
    t_stop = time.time()
    server_cpu = server.cpu() - cpu0
    time.sleep(0.3)  # arrivals stamped before t_end may still be on their way out of the clients
    merged = clients.report((t_start, t_end))
    window = t_end - t_start
    procs = len(clients.procs)
    return {
        "seconds": round(window, 3),
        "published": published,
        "published_per_s": round(published / (t_stop - t_start), 1),
        "deliveries_in_window": merged["in_window"],
        "deliveries_per_s": round(merged["in_window"] / window, 1),
        "delivered_share": round(merged["in_window"] / (published * n), 4) if published else None,
        "deliveries_total": merged["deliveries"],
        "missed_notices": merged["missed_notices"],
        "blocked": blocked,
        "server_cpu_share": round(server_cpu / (t_stop - t_start), 3),
        "client_cpu_share": round(merged["client_cpu_s"] / procs / merged["client_wall_s"], 3)
        if merged["client_wall_s"]
        else None,
        "lost": merged["lost"],
    }


def one_run(app: App, n: int, rep: int, cfg: HubConfig, ledger: CpuLedger) -> dict[str, Any]:
    """One server with ``n`` idle streams: RSS before and after they connect, then the latency
    phase and, at the throughput sizes, the throughput phase."""

    def measure(server: HubServer, run: dict[str, Any], connect: Callable[[bool], Clients]) -> None:
        rss0 = server.rss(gc=True)
        clients = connect(False)
        ok = run["ready_ok"]
        time.sleep(1.0)
        rss1 = server.rss(gc=True)
        run["memory"] = {
            "rss_before": rss0,
            "rss_after": rss1,
            "per_conn_bytes": round((rss1 - rss0) / max(ok, 1), 1),
        }
        run["latency"] = latency_phase(server, clients, ok, cfg)
        if n in cfg.tput_sizes:
            run["throughput"] = throughput_phase(server, clients, ok, cfg)

    return served_run(app, n, rep, f"{app.key}_n{n}_r{rep}", cfg, ledger, measure)


def run_line(r: dict[str, Any]) -> str:
    """One server run's figures, for the progress output."""
    lat, mem, tp = r.get("latency", {}), r.get("memory", {}), r.get("throughput")
    line = (
        f"    connect {r.get('connect_s')} s; {mem.get('per_conn_bytes', 0) / 1024:.1f} KB/conn; "
        f"fan-out p50 {lat.get('p50_ms')} ms p99 {lat.get('p99_ms')} ms "
        f"({lat.get('complete_publishes')}/{lat.get('publishes')} complete); "
        f"server CPU/publish {lat.get('server_cpu_per_publish_ms')} ms; "
        f"busy server {lat.get('server_busy_share')} client {lat.get('client_busy_share')}"
    )
    if tp:
        line += (
            f"\n    throughput {tp['deliveries_per_s']:,.0f}/s "
            f"({tp['published_per_s']} publishes/s, "
            f"{tp['delivered_share']} delivered, missed {tp['missed_notices']}); "
            f"CPU server {tp['server_cpu_share']} client {tp['client_cpu_share']}"
        )
    return line


def slow_lines(r: dict[str, Any]) -> list[str]:
    """One slow-client run's figures per phase, for the progress output."""
    return [
        f"    {name:12s} published {ph['published']}{' BLOCKED' if ph['blocked'] else ''}; "
        f"publish rtt p50 {ph['publish_rtt_p50_ms']} p99 {ph['publish_rtt_p99_ms']} ms; "
        f"fan-out p50 {ph['fanout_p50_ms']} p99 {ph['fanout_p99_ms']} ms; "
        f"incomplete {ph['incomplete_publishes']}; missed {ph['missed_notices']}; "
        f"RSS +{(ph.get('rss_growth') or 0) / 1e6:.1f} MB"
        for name, ph in r.get("phases", {}).items()
    ]


# One run of a scenario: the app, the size, the repeat; its raw record.
RunOne = Callable[[App, int, int, HubConfig, CpuLedger], dict[str, Any]]


def runs_of(
    scenario: str,
    sizes: list[int],
    keys: list[str],
    run_one: RunOne,
    lines: Callable[[dict[str, Any]], list[str]],
    cfg: HubConfig,
    ledger: CpuLedger,
    record: RunRecord,
) -> list[dict[str, Any]]:
    """For each size, then each repeat, then each app (so that the apps alternate under the same
    conditions), one run on a quiet machine (:func:`quiet.guarded`), announced, then its figures."""
    runs: list[dict[str, Any]] = []
    for n in sizes:
        for rep in range(cfg.repeats):
            for key in keys:
                what = f"{scenario} N={n:<6}".strip()
                print(f"{record.stamp()} {key:18s} {what} repeat {rep + 1}/{cfg.repeats}", flush=True)
                r = guarded(
                    lambda key=key, n=n, rep=rep: run_one(APPS[key], n, rep, cfg, ledger),
                    ledger,
                    cfg.max_other,
                    cfg.retries,
                    cfg.quiet_wait,
                )
                for line in lines(r):
                    print(line, flush=True)
                runs.append(r)
    return runs


def server_runs(cfg: HubConfig, ledger: CpuLedger, record: RunRecord) -> list[dict[str, Any]]:
    sizes = [] if cfg.only_slow or cfg.only_topics else cfg.sizes
    return runs_of("", sizes, cfg.apps, one_run, lambda r: [run_line(r)], cfg, ledger, record)


def topic_runs(cfg: HubConfig, ledger: CpuLedger, record: RunRecord) -> list[dict[str, Any]]:
    sizes = [] if cfg.only_slow else cfg.topic_sizes
    keys = [a for a in cfg.scenario_apps if APPS[a].topics]
    return runs_of("topics", sizes, keys, topic_run, lambda r: [topic_line(r)], cfg, ledger, record)


def slow_runs(cfg: HubConfig, ledger: CpuLedger, record: RunRecord) -> list[dict[str, Any]]:
    sizes = [] if cfg.no_slow or cfg.only_topics else [cfg.slow_n]
    # one process only: its RSS is sampled on one connection, its publishes timed in-process
    keys = [a for a in cfg.scenario_apps if APPS[a].workers == 1]
    return runs_of("slow client", sizes, keys, slow_run, slow_lines, cfg, ledger, record)


def run_all(cfg: HubConfig, ledger: CpuLedger) -> dict[str, Any]:
    """Every run of the benchmark; the raw results with their ``meta``."""
    selftest(CLIENT)
    record = RunRecord()
    load_before = os.getloadavg()
    if load_before[0] > 0.5:
        print(f"warning: load average {load_before} before the run: something else is running", flush=True)
    cpu_before = ledger.accounting()
    runs = server_runs(cfg, ledger, record)
    topics = topic_runs(cfg, ledger, record)
    slow = slow_runs(cfg, ledger, record)
    total_s = record.elapsed()
    other_cpu = ledger.other_between(cpu_before, ledger.accounting())
    settings = cfg.settings() | {
        "remeasured_runs": sum(1 for r in runs + topics + slow if r.get("discarded_attempts_other_cpu"))
    }
    # CPU the rest of the machine used meanwhile (other people's processes share these cores)
    other = {
        "seconds": round(other_cpu, 1),
        "share_of_machine": round(other_cpu / (total_s * (os.cpu_count() or 1)), 3),
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
    }
    probes = {r["app"]: r["probe"] for r in runs + topics + slow if r.get("probe")}
    meta = record.meta(settings, DISTRIBUTIONS, probes, after_machine={"other_cpu": other})
    return {"meta": meta, "runs": runs, "topic_runs": topics, "slow_runs": slow}
