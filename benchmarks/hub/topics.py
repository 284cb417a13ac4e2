"""The 1,000-topic scenario (the per-user notification case): N streams, each on a topic of its
own (``/stream?topic=u<i>``), then one event to each topic, published in a loop inside the app
(``/publish_each``, so that the publisher's HTTP round trip is not measured); the time from the
first publish call until every stream has its own event, and the server's CPU for it."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from config import HubConfig
from contenders import App
from quiet import CpuLedger
from rig import Clients, HubServer, served_run, wait_delivered

from harness.stats import ms, quantile


def topic_round(server: HubServer, clients: Clients, n: int, base: int, cfg: HubConfig) -> dict[str, Any]:
    """One event to each of the ``n`` topics (events ``base`` … ``base + n - 1``), until every
    stream has its own: the total time (the last arrival minus the first event's stamp)."""
    clients.reset()
    seqs = list(range(base, base + n))
    cpu0 = server.cpu()
    t = time.monotonic()
    answer = server.publish_each(base, n, cfg.size, timeout=60.0)
    rtt = time.monotonic() - t
    merged = wait_delivered(clients, seqs, 1, timeout=max(10.0, n / 100))
    server_cpu = server.cpu() - cpu0
    per = merged["per_seq"]
    got = [per[s] for s in seqs if s in per]
    last_arrival = max((p["stamp"] + p["last"] for p in got), default=None)
    return {
        "complete": len(got) == n,
        "delivered": len(got),
        "extra_deliveries": sum(p["count"] - 1 for p in got),  # a stream given another's event
        "total_ms": ms(last_arrival - float(answer["stamp"])) if last_arrival is not None else None,
        "publish_loop_ms": ms(float(answer["call_s"])),
        "publish_rtt_ms": ms(rtt),
        "server_cpu_ms": round(server_cpu * 1000, 2),
        "missed_notices": merged["missed_notices"],
        "lost": merged["lost"],
    }


def topic_run(app: App, n: int, rep: int, cfg: HubConfig, ledger: CpuLedger) -> dict[str, Any]:
    """One server with ``n`` streams on ``n`` topics and ``--topic-rounds`` rounds of publishes."""

    def measure(server: HubServer, run: dict[str, Any], connect: Callable[[bool], Clients]) -> None:
        clients = connect(True)
        time.sleep(0.5)
        rounds = []
        for k in range(cfg.topic_rounds):
            rounds.append(topic_round(server, clients, n, 1 + k * n, cfg))
            time.sleep(cfg.spacing)
        run["rounds"] = rounds
        totals = [r["total_ms"] for r in rounds if r["complete"]]
        run["total_p50_ms"] = quantile(totals, 0.5)
        run["complete_rounds"] = len(totals)
        run["server_cpu_p50_ms"] = quantile([r["server_cpu_ms"] for r in rounds], 0.5)
        run["publish_loop_p50_ms"] = quantile([r["publish_loop_ms"] for r in rounds], 0.5)

    return served_run(app, n, rep, f"{app.key}_topics{n}_r{rep}", cfg, ledger, measure)


def topic_line(r: dict[str, Any]) -> str:
    """One topic run's figures, for the progress output."""
    return (
        f"    connect {r.get('connect_s')} s; all {r.get('n')} topics had their event after "
        f"p50 {r.get('total_p50_ms')} ms ({r.get('complete_rounds')}/{len(r.get('rounds', []))} rounds "
        f"complete); publish loop p50 {r.get('publish_loop_p50_ms')} ms; "
        f"server CPU per round p50 {r.get('server_cpu_p50_ms')} ms"
    )
