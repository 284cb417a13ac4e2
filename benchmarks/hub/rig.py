"""The hub benchmark's rig: the app under test (uvicorn or Granian, its /publish, /publish_each and
/rss) and the load clients (``client.py`` processes, each holding a share of the streams)."""

from __future__ import annotations

import contextlib
import socket
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from config import HubConfig
from contenders import App
from quiet import CpuLedger

from harness.clients import ClientProcess, note_ready, shares
from harness.servers import GRANIAN_OPTIONS, AppServer, Http

HERE = Path(__file__).resolve().parent
APPS_DIR = HERE / "apps"
CLIENT = HERE / "client.py"
# Each server's options (Granian: its default loop, uvloop when installed, and its own HTTP).
SERVER_OPTIONS = {
    "uvicorn": ["--loop", "uvloop", "--http", "httptools", "--log-level", "warning"],
    "granian": GRANIAN_OPTIONS,
}


class HubServer(AppServer):
    """One app under ``uvicorn --loop uvloop --http httptools`` (with ``--workers`` for the
    Redis row, whose hub then goes through ``SSE_BROKER_URL`` with a key prefix of its own), or
    under ``granian --interface asgi`` (one worker)."""

    def __init__(self, app: App, tag: str, cfg: HubConfig) -> None:
        options = list(SERVER_OPTIONS[app.server])
        if app.workers > 1:
            options += ["--workers", str(app.workers)]
        env = {}
        if app.redis:
            if cfg.redis_url is None:
                raise RuntimeError("no Redis for this app (see --redis)")
            env["SSE_BROKER_URL"] = f"{cfg.redis_url}?prefix=bench{uuid.uuid4().hex[:8]}"
        log = cfg.logs / f"{tag}.server.log"
        super().__init__(APPS_DIR, app.module, log, options, env, server=app.server)
        self.workers = app.workers

    def publish(self, seq: int, size: int, timeout: float) -> dict[str, Any]:
        return self.http.get(f"/publish?seq={seq}&size={size}", timeout=timeout)

    def publish_each(self, base: int, count: int, size: int, timeout: float) -> dict[str, Any]:
        """One event to each of the topics u0 … u<count-1> (events base … base+count-1)."""
        return self.http.get(f"/publish_each?count={count}&base={base}&size={size}", timeout=timeout)

    def rss(self, gc: bool) -> int:
        if self.workers == 1:
            return int(self.http.get("/rss?gc=1" if gc else "/rss", timeout=30.0)["rss"])
        return self._workers_rss(gc)

    def _workers_rss(self, gc: bool) -> int:
        """The sum over the workers: new connections until each worker has answered (the kernel
        hands a connection to one of them), so that each ran its own collection."""
        seen: dict[int, int] = {}
        for _ in range(200):
            http = Http(self.port)
            try:
                answer = http.get("/rss?gc=1" if gc else "/rss", timeout=30.0)
            finally:
                http.close()
            seen[int(answer["pid"])] = int(answer["rss"])
            if len(seen) == self.workers:
                return sum(seen.values())
        raise RuntimeError(f"only {len(seen)} of {self.workers} workers answered /rss")

    def stop_charged(self, ledger: CpuLedger) -> None:
        """Stop it, counting its workers' CPU as ours first (nobody reaps them)."""
        ledger.charge(self.pids()[1:])
        self.stop()


class Clients:
    """N streams split over K ``client.py`` processes, driven by its stdin commands; with
    ``topics``, stream ``i`` of the N on topic ``u<i>``."""

    def __init__(self, port: int, n: int, cfg: HubConfig, tag: str, topics: bool = False) -> None:
        inflight = max(1, cfg.inflight // cfg.client_procs)
        self.procs = []
        offset = 0
        for i, share in enumerate(shares(n, cfg.client_procs)):
            argv = [sys.executable, str(CLIENT), "--port", str(port), "-n", str(share)]
            argv += ["--inflight", str(inflight)]
            if topics:
                argv += ["--topics", "--topic-offset", str(offset)]
            self.procs.append(ClientProcess(argv, cfg.logs / f"{tag}.client{i}.log", cwd=HERE))
            offset += share

    def wait_ready(self, timeout: float) -> list[dict[str, Any]]:
        return [c.expect("ready", timeout) or {} for c in self.procs]

    def wait_got(self, seq: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        return all(
            c.expect(f"got {seq}", max(0.0, deadline - time.monotonic())) is not None for c in self.procs
        )

    def reset(self) -> None:
        for c in self.procs:
            c.command("reset")
        for c in self.procs:
            c.expect("reset", 10)

    def report(self, window: tuple[float, float] | None = None) -> dict[str, Any]:
        """Every process's report for the phase, merged (see :func:`merge_reports`)."""
        cmd = "report" if window is None else f"report {window[0]!r} {window[1]!r}"
        for c in self.procs:
            c.command(cmd)
        return merge_reports([c.expect("report", 60) or {} for c in self.procs])

    def stop(self) -> None:
        for c in self.procs:
            c.stop()


def merge_reports(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """Per event: streams that got it, its publish stamp, and the latency until the first, median
    and last one."""
    per_seq: dict[int, dict[str, Any]] = {}
    for rep in reports:
        for key, v in rep.get("per_seq", {}).items():
            seq = int(key)
            m = per_seq.setdefault(
                seq, {"count": 0, "stamp": v["stamp"], "first": v["first"], "last": v["last"], "_p50": []}
            )
            m["count"] += v["count"]
            m["first"] = min(m["first"], v["first"])
            m["last"] = max(m["last"], v["last"])
            m["_p50"].append((v["p50"], v["count"]))
    for m in per_seq.values():
        # the median client: count-weighted mean of each process's median (an approximation)
        total = sum(c for _, c in m["_p50"])
        m["p50"] = sum(p * c for p, c in m.pop("_p50")) / total if total else None
    return {
        "per_seq": per_seq,
        "deliveries": sum(r.get("deliveries", 0) for r in reports),
        "in_window": sum(r.get("in_window") or 0 for r in reports),
        "missed_notices": sum(r.get("missed_notices", 0) for r in reports),
        "lost": sum(r.get("lost", 0) for r in reports),
        "open": sum(r.get("open", 0) for r in reports),
        "errors": {k: v for r in reports for k, v in r.get("errors", {}).items()},
        "client_cpu_s": sum(r.get("cpu_s", 0.0) for r in reports),
        "client_wall_s": max((r.get("wall_s", 0.0) for r in reports), default=0.0),
    }


def open_stream(port: int) -> socket.socket:
    """A stream's request on a socket of our own (read or not, as the caller pleases)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"GET /stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    return s


def warm_up(server: HubServer) -> None:
    """A few streams and one publish, so that code paths imported lazily are in the baseline RSS
    (with --workers, several streams, so that every worker is likely to have had one)."""
    with contextlib.ExitStack() as stack:
        streams = []
        for _ in range(1 if server.workers == 1 else 4 * server.workers):
            s = stack.enter_context(open_stream(server.port))
            s.recv(65536)
            streams.append(s)
        server.publish(0, 64, timeout=5.0)
        time.sleep(0.05)
        for s in streams:
            with contextlib.suppress(OSError):
                s.recv(65536)
    time.sleep(0.3)


def wait_delivered(clients: Clients, seqs: list[int], n: int, timeout: float) -> dict[str, Any]:
    """Poll the clients until every stream has every event in ``seqs`` (or ``timeout``)."""
    deadline = time.monotonic() + timeout
    while True:
        merged = clients.report()
        got = merged["per_seq"]
        if all(got.get(s, {}).get("count", 0) >= n for s in seqs) or time.monotonic() > deadline:
            return merged
        time.sleep(0.25)


# What a server run measures: given the server (started, warmed up), the run's record, and
# ``connect(topics)``, which opens the run's N streams and returns them once ready.
Measure = Callable[[HubServer, dict[str, Any], Callable[[bool], Clients]], None]


def served_run(
    app: App, n: int, rep: int, tag: str, cfg: HubConfig, ledger: CpuLedger, measure: Measure
) -> dict[str, Any]:
    """One server for ``measure``: started and warmed up; its clients and itself stopped after,
    whatever happens; an error is recorded in the run's record, not raised. The record."""
    server = HubServer(app, tag, cfg)
    run: dict[str, Any] = {"app": app.key, "n": n, "repeat": rep, "server_cmd": " ".join(server.cmd[1:])}
    started: list[Clients] = []

    def connect(topics: bool) -> Clients:
        t0 = time.monotonic()
        clients = Clients(server.port, n, cfg, tag, topics)
        started.append(clients)
        note_ready(run, clients.wait_ready(180), t0, n)
        return clients

    try:
        run["probe"] = server.wait_ready()
        warm_up(server)
        measure(server, run, connect)
    except Exception as e:  # record it and go on with the next run
        run["error"] = repr(e)
        print(f"    error: {e!r}", flush=True)
    finally:
        for clients in started:
            clients.stop()
        server.stop_charged(ledger)
    return run
