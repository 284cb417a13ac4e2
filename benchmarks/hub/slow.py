"""The slow-client scenario: ``--slow-n`` - 1 reading streams, events of ``--slow-size`` bytes at
``--slow-rate`` per second, first with only those, then with one more connection that sends its
request and never reads; the publisher's latency, the readers' fan-out latency and the server's
RSS over time, in both phases."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from typing import Any

from config import HubConfig
from contenders import App
from quiet import CpuLedger
from rig import Clients, HubServer, open_stream, warm_up
from summary import rss_slope

from harness.servers import Http
from harness.stats import ms, quantile

PHASES = ("readers_only", "with_slow")


class RssSampler:
    """Samples the server's RSS (no gc) on its own connection every ``every`` seconds."""

    def __init__(self, port: int, every: float) -> None:
        self.http = Http(port)
        self.every = every
        self.samples: list[tuple[float, int]] = []
        self.stop_event = threading.Event()
        self.t0 = time.monotonic()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def now(self) -> float:
        """Seconds since sampling began: the time axis of the samples and the phases."""
        return time.monotonic() - self.t0

    def _run(self) -> None:
        while not self.stop_event.is_set():
            with contextlib.suppress(OSError, ValueError, RuntimeError, ConnectionError):
                rss = int(self.http.get("/rss", timeout=2.0)["rss"])
                self.samples.append((round(self.now(), 3), rss))
            self.stop_event.wait(self.every)

    def stop(self) -> list[tuple[float, int]]:
        self.stop_event.set()
        self.thread.join(5)
        self.http.close()
        return self.samples


def publish_paced(
    server: HubServer, first_seq: int, rate: float, seconds: float, size: int
) -> tuple[list[dict[str, Any]], bool]:
    """Publish at ``rate`` per second for ``seconds``; stop at a publish that takes over 3 s."""
    calls: list[dict[str, Any]] = []
    t_next = time.monotonic()
    end = t_next + seconds
    seq = first_seq
    while time.monotonic() < end:
        t = time.monotonic()
        try:
            answer = server.publish(seq, size, timeout=3.0)
        except (OSError, ConnectionError):
            return calls, True
        answer["rtt_s"] = time.monotonic() - t
        answer["seq"] = seq
        calls.append(answer)
        seq += 1
        t_next += 1.0 / rate
        time.sleep(max(0.0, t_next - time.monotonic()))
    return calls, False


def slow_phase_stats(
    calls: list[dict[str, Any]], merged: dict[str, Any], n: int, blocked: bool
) -> dict[str, Any]:
    per = merged["per_seq"]
    seqs = [c["seq"] for c in calls]
    lasts = [per[s]["last"] for s in seqs if s in per and per[s]["count"] >= n]
    return {
        "published": len(calls),
        "blocked": blocked,
        "publish_rtt_p50_ms": ms(quantile([c["rtt_s"] for c in calls], 0.5)),
        "publish_rtt_p99_ms": ms(quantile([c["rtt_s"] for c in calls], 0.99)),
        "publish_rtt_max_ms": ms(max((c["rtt_s"] for c in calls), default=None)),
        "publish_call_p50_ms": ms(quantile([c["call_s"] for c in calls], 0.5)),
        "publish_call_p99_ms": ms(quantile([c["call_s"] for c in calls], 0.99)),
        "fanout_p50_ms": ms(quantile(lasts, 0.5)),
        "fanout_p99_ms": ms(quantile(lasts, 0.99)),
        "complete_publishes": len(lasts),
        "incomplete_publishes": len(seqs) - len(lasts),
        "deliveries": merged["deliveries"],
        "expected_deliveries": n * len(seqs),
        "missed_notices": merged["missed_notices"],
        "lost": merged["lost"],
        "client_cpu_s": round(merged["client_cpu_s"], 3),
    }


def add_rss(phases: dict[str, Any], samples: list[tuple[float, int]]) -> None:
    """Each phase's RSS at its start and end, its peak, growth and growth rate."""
    for stats in phases.values():
        inside = [r for t, r in samples if stats["start_s"] <= t <= stats["end_s"]]
        if inside:
            stats["rss_start"] = inside[0]
            stats["rss_end"] = inside[-1]
            stats["rss_max"] = max(inside)
            stats["rss_growth"] = inside[-1] - inside[0]
            stats["rss_slope"] = rss_slope(samples, stats["start_s"], stats["end_s"])


class SlowRun:
    """One app's slow-client run: the server, its readers, the RSS sampler and the slow socket,
    and what they measured so far (``run``, as hub.json keeps it)."""

    def __init__(self, app: App, rep: int, cfg: HubConfig) -> None:
        self.cfg = cfg
        self.n = cfg.slow_n - 1  # the readers; the slow connection makes it slow_n
        self.tag = f"{app.key}_slow_r{rep}"
        self.server = HubServer(app, self.tag, cfg)
        self.run: dict[str, Any] = {"app": app.key, "n": cfg.slow_n, "repeat": rep, "readers": self.n}
        self.clients: Clients | None = None
        self.sampler: RssSampler | None = None
        self.slow: socket.socket | None = None

    def measure(self) -> None:
        run, server, cfg = self.run, self.server, self.cfg
        run["probe"] = server.wait_ready()
        warm_up(server)
        clients = self.clients = Clients(server.port, self.n, cfg, self.tag)
        ok = sum(r.get("ok", 0) for r in clients.wait_ready(120))
        run["ready_ok"] = ok
        time.sleep(0.5)
        sampler = self.sampler = RssSampler(server.port, 0.25)
        phases: dict[str, Any] = {}
        seq = 1
        for name, seconds in zip(PHASES, cfg.slow_seconds, strict=False):
            if name == "with_slow":
                self.slow = open_stream(server.port)  # and never recv()
                time.sleep(0.3)
                run["slow_joined_s"] = round(sampler.now(), 3)
            phases[name] = stats = self.phase(clients, seq, seconds, ok)
            seq += stats["published"] + 1
            if stats["blocked"]:
                break
        run["phases"] = phases
        samples = run["rss_samples"] = sampler.stop()
        self.sampler = None
        add_rss(phases, samples)

    def phase(self, clients: Clients, seq: int, seconds: float, ok: int) -> dict[str, Any]:
        assert self.sampler is not None
        clients.reset()
        cpu0 = self.server.cpu()
        t_phase = self.sampler.now()
        calls, blocked = publish_paced(self.server, seq, self.cfg.slow_rate, seconds, self.cfg.slow_size)
        time.sleep(1.0)  # let the last events reach the readers
        stats = slow_phase_stats(calls, clients.report(), ok, blocked)
        stats["server_cpu_s"] = round(self.server.cpu() - cpu0, 3)
        stats["start_s"] = round(t_phase, 3)
        stats["end_s"] = round(self.sampler.now(), 3)
        return stats

    def close(self, ledger: CpuLedger) -> None:
        if self.sampler is not None:
            self.run["rss_samples"] = self.sampler.stop()
        if self.clients is not None:
            self.clients.stop()
        if self.slow is not None:
            self.slow.close()
        self.server.stop_charged(ledger)


def slow_run(app: App, n: int, rep: int, cfg: HubConfig, ledger: CpuLedger) -> dict[str, Any]:
    """One slow-client run (``n`` is ``--slow-n``, the slow connection included)."""
    slow = SlowRun(app, rep, cfg)
    try:
        slow.measure()
    except Exception as e:  # record it and go on with the next run
        slow.run["error"] = repr(e)
        print(f"    error: {e!r}", flush=True)
    finally:
        slow.close(ledger)
    return slow.run
