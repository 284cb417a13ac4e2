"""Hub benchmark: fan-out latency, throughput, memory per connection and one slow client, for
graceful_sse and the alternatives, each as a ratio to a raw-ASGI floor, all in one run.

For each size N, repeat and app (apps alternate, so they share the machine's conditions): start
``uvicorn MODULE:app --loop uvloop --http httptools --log-level warning`` (one process), measure
its RSS (after a gc), connect N idle streams from ``client.py`` processes, measure RSS again
(memory per connection), publish ``--publishes`` events, each ``--spacing`` s after every
stream had the previous one, and time each until the last stream has it (fan-out latency),
then, at the throughput sizes, publish back to back for ``--tput-seconds`` and count the
deliveries that arrive in that window. Separately, for each repeat and app, the slow-client
scenario: ``--slow-n`` - 1 reading streams, events of ``--slow-size`` bytes at ``--slow-rate``
per second, first with only those, then with one more connection that sends its request and
never reads; publisher latency, the readers' fan-out latency and the server's RSS over time, in
both phases.

The row "graceful_sse in FastHTML, Redis, 2 workers" runs the same app as graceful_sse with
``SSE_BROKER_URL`` pointing at a private ``redis-server`` (started on a free port for the run, or
``--redis URL``) under ``uvicorn --workers 2``: the kernel spreads the streams over both workers,
a publish goes to one of them and reaches the other's streams through Redis. Its CPU is summed
over both workers and its memory is both workers' RSS; it is not in the slow-client scenario
(which samples one process).

    .venv/bin/python benchmarks/hub/run.py            # the full run (about 20 minutes)
    .venv/bin/python benchmarks/hub/run.py --quick    # smoke run (about 2 minutes)
    .venv/bin/python benchmarks/hub/run.py --replot   # table and plots again from results/hub.json

Writes results/hub.json (every run, raw), results/hub.md (tables) and results/hub.png,
results/hub_slow.png (plots), and each server's and client's output under results/logs/.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import queue
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # runinfo, shared by the benchmarks

import runinfo  # noqa: E402
from runinfo import free_port, library_state, machine_info, raise_nofile  # noqa: E402

APPS_DIR = HERE / "apps"
RESULTS = HERE / "results"
LOGS = RESULTS / "logs"
BIN = Path(sys.executable).parent
REDIS_URL: str | None = None  # set by main(): a private redis-server, or --redis
# CPU seconds of our processes that the kernel will not charge to this runner (workers of a
# --workers server, which their supervisor does not reap when killed; the private redis-server):
# counted as ours, so the check for other people's load does not blame them.
UNREAPED_CPU = 0.0
OWN_LIVE_PIDS: set[int] = set()


@dataclass(frozen=True)
class App:
    key: str
    module: str
    label: str
    what: str
    workers: int = 1
    redis: bool = False  # the hub on Redis (SSE_BROKER_URL), with a key prefix of its own per run


APPS: dict[str, App] = {
    a.key: a
    for a in [
        App(
            "floor",
            "floor_app",
            "floor (raw ASGI)",
            "raw ASGI: a set of send callables; publish awaits send() of one pre-encoded chunk for each",
        ),
        App(
            "graceful_sse",
            "graceful_app",
            "graceful_sse in FastHTML",
            "fast_app(lifespan=hub.lifespan); EventStream(hub.subscribe(...)); await hub.publish(...)",
        ),
        App(
            "graceful_redis",
            "graceful_app",
            "graceful_sse in FastHTML, Redis, 2 workers",
            "the same FastHTML app with SSE_BROKER_URL=redis://… under uvicorn --workers 2: the streams "
            "spread over both workers; a publish goes to one and reaches the other's streams through Redis",
            workers=2,
            redis=True,
        ),
        App(
            "graceful_starlette",
            "graceful_starlette_app",
            "graceful_sse in Starlette",
            "the same Hub and EventStream in a plain Starlette app",
        ),
        App(
            "seed",
            "seed_app",
            "seed: cjm SSEBroadcastManager",
            "FastHTML route over cjm_fasthtml_sse.SSEBroadcastManager (defaults), the design document's "
            "generator: wait_for(queue.get(), 30), yield sse_message(...)",
        ),
        App(
            "sse_starlette",
            "sse_starlette_app",
            "sse-starlette + broadcaster",
            "Starlette app: sse_starlette.EventSourceResponse over broadcaster's Broadcast('memory://')",
        ),
    ]
}


# -- processes and HTTP ----------------------------------------------------------------------------


class Http:
    """A blocking HTTP/1.1 keep-alive client for /publish, /rss and /health (reconnects if needed)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock: socket.socket | None = None
        self.buf = b""
        self.answered = False

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
        self.sock, self.buf = None, b""

    def get(self, path: str, timeout: float = 5.0) -> dict[str, Any]:
        reused = self.sock is not None
        try:
            return self._get(path, timeout)
        except ConnectionError as e:
            # uvicorn closes a keep-alive connection idle for 5 s; nothing was answered: again once
            if not reused or getattr(e, "answered", False):
                raise
            return self._get(path, timeout)

    def _get(self, path: str, timeout: float) -> dict[str, Any]:
        if self.sock is None:
            self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.settimeout(timeout)
        self.answered = False
        try:
            self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            head = self._until(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            headers = {}
            for line in head.split(b"\r\n")[1:]:
                k, _, v = line.partition(b":")
                headers[k.strip().lower()] = v.strip()
            if b"content-length" in headers:
                body = self._exactly(int(headers[b"content-length"]))
            else:  # chunked
                body = b""
                while True:
                    size = int(self._until(b"\r\n").split(b";")[0], 16)
                    if size == 0:
                        self._until(b"\r\n")
                        break
                    body += self._exactly(size)
                    self._exactly(2)
        except ConnectionError as e:
            e.answered = self.answered  # type: ignore[attr-defined]
            self.close()
            raise
        except BaseException:
            self.close()
            raise
        if status != 200:
            raise RuntimeError(f"GET {path}: status {status}: {body[:200]!r}")
        return dict(json.loads(body))

    def _fill(self) -> None:
        assert self.sock is not None
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("server closed the connection")
        self.answered = True
        self.buf += data

    def _until(self, sep: bytes) -> bytes:
        while (i := self.buf.find(sep)) < 0:
            self._fill()
        out, self.buf = self.buf[:i], self.buf[i + len(sep) :]
        return out

    def _exactly(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out


class Server:
    def __init__(self, app: App, tag: str) -> None:
        self.port = free_port()
        self.log_path = LOGS / f"{tag}.server.log"
        self.log = self.log_path.open("wb")
        self.cmd = [
            str(BIN / "uvicorn"),
            f"{app.module}:app",
            "--port",
            str(self.port),
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--log-level",
            "warning",
        ]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.workers = app.workers
        if app.workers > 1:
            self.cmd += ["--workers", str(app.workers)]
        if app.redis:
            if REDIS_URL is None:
                raise RuntimeError("no Redis for this app (see --redis)")
            env["SSE_BROKER_URL"] = f"{REDIS_URL}?prefix=bench{uuid.uuid4().hex[:8]}"
        self.proc = subprocess.Popen(
            self.cmd, cwd=APPS_DIR, stdout=self.log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        self.http = Http(self.port)

    def wait_ready(self, timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited at start-up with {self.proc.returncode}")
            with contextlib.suppress(OSError, ValueError, IndexError, RuntimeError):
                return self.http.get("/health", timeout=2.0)
            time.sleep(0.05)
        raise RuntimeError("server did not answer in time")

    def pids(self) -> list[int]:
        """The server's process and, with --workers, its worker processes."""
        import psutil

        with contextlib.suppress(psutil.Error):
            return [self.proc.pid, *(c.pid for c in psutil.Process(self.proc.pid).children(recursive=True))]
        return [self.proc.pid]

    def cpu(self) -> float:
        """CPU seconds of all the server's threads, in every process (schedstat: nanoseconds)."""
        total = 0
        for pid in self.pids():
            with contextlib.suppress(OSError):
                for task in Path(f"/proc/{pid}/task").iterdir():
                    with contextlib.suppress(OSError, ValueError):
                        total += int((task / "schedstat").read_text().split()[0])
        return total / 1e9

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

    def stop(self) -> None:
        global UNREAPED_CPU
        self.http.close()
        UNREAPED_CPU += sum(process_cpu(pid) for pid in self.pids()[1:])
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.log.close()


class PrivateRedis:
    """A ``redis-server`` of the benchmark's own on a free port, keeping nothing on disk."""

    def __init__(self, log: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("the Redis row needs redis-server (apt-get install redis-server) or --redis URL")
        port = free_port()
        self.url = f"redis://127.0.0.1:{port}/0"
        self.log = log.open("wb")
        self.proc = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        OWN_LIVE_PIDS.add(self.proc.pid)
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                if s.recv(64).startswith(b"+PONG"):
                    return
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.stop()
                raise SystemExit(f"redis-server did not start; see {log}")
            time.sleep(0.05)

    def stop(self) -> None:
        OWN_LIVE_PIDS.discard(self.proc.pid)
        if self.proc.poll() is None:
            self.proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(5)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


class ClientProc:
    """One client.py process: commands on its stdin, its stdout lines read on a thread."""

    def __init__(self, port: int, n: int, inflight: int, log: Path) -> None:
        self.stderr = log.open("wb")
        args = [sys.executable, str(HERE / "client.py"), "--port", str(port), "-n", str(n)]
        args += ["--inflight", str(inflight)]
        self.proc = subprocess.Popen(
            args,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            cwd=HERE,
            start_new_session=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self.lines.put(raw.decode(errors="replace").strip())
        self.lines.put(None)

    def expect(self, prefix: str, timeout: float) -> dict[str, Any] | None:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                return None
            if line is None:
                return None
            if line == prefix or line.startswith(prefix + " "):
                rest = line[len(prefix) :].strip()
                return dict(json.loads(rest)) if rest else {}

    def command(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text.encode() + b"\n")
        self.proc.stdin.flush()

    def stop(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.command("quit")
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.stderr.close()


class Clients:
    """N streams split over K client processes."""

    def __init__(self, port: int, n: int, procs: int, inflight: int, tag: str) -> None:
        shares = [n // procs + (1 if i < n % procs else 0) for i in range(procs)]
        self.procs = [
            ClientProc(port, share, max(1, inflight // procs), LOGS / f"{tag}.client{i}.log")
            for i, share in enumerate(s for s in shares if s)
        ]

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

    def report(self, window: tuple[float, float] | None = None) -> list[dict[str, Any]]:
        cmd = "report" if window is None else f"report {window[0]!r} {window[1]!r}"
        for c in self.procs:
            c.command(cmd)
        return [c.expect("report", 60) or {} for c in self.procs]

    def stop(self) -> None:
        for c in self.procs:
            c.stop()


def merge_reports(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """Per event: streams that got it, and the latency until the first, median and last one."""
    per_seq: dict[int, dict[str, Any]] = {}
    for rep in reports:
        for key, v in rep.get("per_seq", {}).items():
            seq = int(key)
            m = per_seq.setdefault(seq, {"count": 0, "first": v["first"], "last": v["last"], "_p50": []})
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


def quantile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    v = sorted(values)
    return v[min(len(v) - 1, int(p * (len(v) - 1) + 0.5))]


def ms(x: float | None) -> float | None:
    return None if x is None else round(x * 1000, 3)


# -- one server run: memory, fan-out latency, throughput -----------------------------------------


def warm_up(server: Server) -> None:
    """A few streams and one publish, so that code paths imported lazily are in the baseline RSS
    (with --workers, several streams, so that every worker is likely to have had one)."""
    with contextlib.ExitStack() as stack:
        streams = []
        for _ in range(1 if server.workers == 1 else 4 * server.workers):
            s = stack.enter_context(socket.create_connection(("127.0.0.1", server.port), timeout=5))
            s.sendall(b"GET /stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            s.recv(65536)
            streams.append(s)
        server.http.get("/publish?seq=0&size=64")
        time.sleep(0.05)
        for s in streams:
            with contextlib.suppress(OSError):
                s.recv(65536)
    time.sleep(0.3)


def wait_delivered(clients: Clients, seqs: list[int], n: int, timeout: float) -> dict[str, Any]:
    """Poll the clients until every stream has every event in ``seqs`` (or ``timeout``)."""
    deadline = time.monotonic() + timeout
    while True:
        merged = merge_reports(clients.report())
        got = merged["per_seq"]
        if all(got.get(s, {}).get("count", 0) >= n for s in seqs) or time.monotonic() > deadline:
            return merged
        time.sleep(0.25)


def latency_phase(server: Server, clients: Clients, n: int, args: argparse.Namespace) -> dict[str, Any]:
    clients.reset()
    cpu0 = server.cpu()
    calls: list[dict[str, Any]] = []
    seqs = list(range(1, args.publishes + 1))
    for seq in seqs:
        t = time.monotonic()
        answer = server.http.get(f"/publish?seq={seq}&size={args.size}", timeout=30)
        answer["rtt_s"] = time.monotonic() - t
        calls.append(answer)
        # The next publish goes out --spacing s after every stream has this one (or 10 s), so
        # that fan-outs never overlap: the latency measured is one publish's, not a queue's.
        clients.wait_got(seq, 10.0)
        time.sleep(args.spacing)
    merged = wait_delivered(clients, seqs, n, timeout=max(10.0, args.spacing * 10))
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


def throughput_phase(server: Server, clients: Clients, n: int, args: argparse.Namespace) -> dict[str, Any]:
    clients.reset()
    time.sleep(0.2)
    cpu0 = server.cpu()
    seq = 100_000
    t_start = time.time()
    t_end = t_start + args.tput_seconds
    published = 0
    blocked = False
    while time.time() < t_end:
        seq += 1
        try:
            server.http.get(f"/publish?seq={seq}&size={args.size}", timeout=max(5.0, args.tput_seconds))
        except (OSError, ConnectionError):
            blocked = True
            break
        published += 1
    t_stop = time.time()
    server_cpu = server.cpu() - cpu0
    time.sleep(0.3)  # arrivals stamped before t_end may still be on their way out of the clients
    merged = merge_reports(clients.report((t_start, t_end)))
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


def one_run(app: App, n: int, rep: int, args: argparse.Namespace) -> dict[str, Any]:
    tag = f"{app.key}_n{n}_r{rep}"
    server = Server(app, tag)
    run: dict[str, Any] = {"app": app.key, "n": n, "repeat": rep, "server_cmd": " ".join(server.cmd[1:])}
    clients: Clients | None = None
    try:
        run["probe"] = server.wait_ready()
        warm_up(server)
        rss0 = server.rss(gc=True)
        t0 = time.monotonic()
        clients = Clients(server.port, n, args.client_procs, args.inflight, tag)
        readies = clients.wait_ready(180)
        run["connect_s"] = round(time.monotonic() - t0, 3)
        run["ready"] = readies
        ok = sum(r.get("ok", 0) for r in readies)
        run["ready_ok"] = ok
        if ok < n:
            print(f"    warning: only {ok}/{n} streams ready", flush=True)
        time.sleep(1.0)
        rss1 = server.rss(gc=True)
        run["memory"] = {
            "rss_before": rss0,
            "rss_after": rss1,
            "per_conn_bytes": round((rss1 - rss0) / max(ok, 1), 1),
        }
        run["latency"] = latency_phase(server, clients, ok, args)
        if n in args.tput_sizes:
            run["throughput"] = throughput_phase(server, clients, ok, args)
    except Exception as e:  # record it and go on with the next run
        run["error"] = repr(e)
        print(f"    error: {e!r}", flush=True)
    finally:
        if clients is not None:
            clients.stop()
        server.stop()
    return run


# -- the slow-client scenario -------------------------------------------------------------------


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

    def _run(self) -> None:
        while not self.stop_event.is_set():
            with contextlib.suppress(OSError, ValueError, RuntimeError, ConnectionError):
                rss = int(self.http.get("/rss", timeout=2.0)["rss"])
                self.samples.append((round(time.monotonic() - self.t0, 3), rss))
            self.stop_event.wait(self.every)

    def stop(self) -> list[tuple[float, int]]:
        self.stop_event.set()
        self.thread.join(5)
        self.http.close()
        return self.samples


def publish_paced(
    server: Server, first_seq: int, rate: float, seconds: float, size: int
) -> tuple[list[dict[str, Any]], bool]:
    """Publish at ``rate`` per second for ``seconds``; stop at a publish that takes over 3 s."""
    calls: list[dict[str, Any]] = []
    t_next = time.monotonic()
    end = t_next + seconds
    seq = first_seq
    while time.monotonic() < end:
        t = time.monotonic()
        try:
            answer = server.http.get(f"/publish?seq={seq}&size={size}", timeout=3.0)
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
    calls: list[dict[str, Any]], merged: dict[str, Any], n: int, blocked: bool, sent: int
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


def rss_slope(samples: list[tuple[float, int]], start: float, end: float) -> float | None:
    """RSS growth (bytes/s) over the last half of a phase: about the rate of an unbounded
    backlog, or of what grows anyway (graceful_sse's history: the last 1,000 events), once the
    start-up transients are over."""
    tail = [(t, r) for t, r in samples if start + (end - start) / 2 <= t <= end]
    if len(tail) < 2 or tail[-1][0] <= tail[0][0]:
        return None
    return (tail[-1][1] - tail[0][1]) / (tail[-1][0] - tail[0][0])


def slow_run(app: App, rep: int, args: argparse.Namespace) -> dict[str, Any]:
    n = args.slow_n - 1  # the readers; the slow connection makes it slow_n
    tag = f"{app.key}_slow_r{rep}"
    server = Server(app, tag)
    run: dict[str, Any] = {"app": app.key, "n": args.slow_n, "repeat": rep, "readers": n}
    clients: Clients | None = None
    sampler: RssSampler | None = None
    slow: socket.socket | None = None
    try:
        run["probe"] = server.wait_ready()
        warm_up(server)
        clients = Clients(server.port, n, args.client_procs, args.inflight, tag)
        ok = sum(r.get("ok", 0) for r in clients.wait_ready(120))
        run["ready_ok"] = ok
        time.sleep(0.5)
        sampler = RssSampler(server.port, 0.25)
        phases: dict[str, Any] = {}
        seq = 1
        for name, seconds in (("readers_only", args.slow_seconds[0]), ("with_slow", args.slow_seconds[1])):
            if name == "with_slow":
                slow = socket.create_connection(("127.0.0.1", server.port))
                slow.sendall(b"GET /stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")  # and never recv()
                time.sleep(0.3)
                run["slow_joined_s"] = round(time.monotonic() - sampler.t0, 3)
            clients.reset()
            cpu0 = server.cpu()
            t_phase = time.monotonic() - sampler.t0
            calls, blocked = publish_paced(server, seq, args.slow_rate, seconds, args.slow_size)
            seq += len(calls) + 1
            time.sleep(1.0)  # let the last events reach the readers
            merged = merge_reports(clients.report())
            stats = slow_phase_stats(calls, merged, ok, blocked, seq)
            stats["server_cpu_s"] = round(server.cpu() - cpu0, 3)
            stats["start_s"] = round(t_phase, 3)
            stats["end_s"] = round(time.monotonic() - sampler.t0, 3)
            phases[name] = stats
            if blocked:
                break
        run["phases"] = phases
        samples = sampler.stop()
        sampler = None
        run["rss_samples"] = samples
        for stats in phases.values():
            inside = [r for t, r in samples if stats["start_s"] <= t <= stats["end_s"]]
            if inside:
                stats["rss_start"] = inside[0]
                stats["rss_end"] = inside[-1]
                stats["rss_max"] = max(inside)
                stats["rss_growth"] = inside[-1] - inside[0]
                stats["rss_slope"] = rss_slope(samples, stats["start_s"], stats["end_s"])
    except Exception as e:
        run["error"] = repr(e)
        print(f"    error: {e!r}", flush=True)
    finally:
        if sampler is not None:
            run["rss_samples"] = sampler.stop()
        if clients is not None:
            clients.stop()
        if slow is not None:
            slow.close()
        server.stop()
    return run


# -- aggregation and reports --------------------------------------------------------------------


def med(values: list[Any]) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def ratio(value: float | None, floor: float | None) -> float | None:
    return round(value / floor, 2) if value is not None and floor else None


def aggregate(data: dict[str, Any]) -> dict[str, Any]:
    meta, runs, slow = data["meta"], data["runs"], data.get("slow_runs", [])
    apps, sizes = meta["apps"], meta["sizes"]
    ok = [r for r in runs if not r.get("error")]

    def cell(key: str, n: int) -> list[dict[str, Any]]:
        return [r for r in ok if r["app"] == key and r["n"] == n]

    latency, memory, tput = [], [], []
    for n in sizes:
        floor = cell("floor", n)
        f50 = med([r["latency"]["p50_ms"] for r in floor])
        f99 = med([r["latency"]["p99_ms"] for r in floor])
        fmem = med([r["memory"]["per_conn_bytes"] for r in floor])
        fcpu = med([r["latency"]["server_cpu_per_publish_ms"] for r in floor])
        ftp = med([r["throughput"]["deliveries_per_s"] for r in floor if "throughput" in r])
        for key in apps:
            rs = cell(key, n)
            if not rs:
                continue
            lat = [r["latency"] for r in rs]
            p50, p99 = med([x["p50_ms"] for x in lat]), med([x["p99_ms"] for x in lat])
            cpu = med([x["server_cpu_per_publish_ms"] for x in lat])
            latency.append(
                {
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
                    "server_busy_share": med([x["server_busy_share"] for x in lat]),
                    "client_busy_share": med([x["client_busy_share"] for x in lat]),
                }
            )
            per_conn = med([r["memory"]["per_conn_bytes"] for r in rs])
            memory.append(
                {
                    "app": key,
                    "n": n,
                    "per_conn_bytes": per_conn,
                    "vs_floor": ratio(per_conn, fmem),
                    "rss_growth_bytes": med(
                        [r["memory"]["rss_after"] - r["memory"]["rss_before"] for r in rs]
                    ),
                    "per_conn_all": [r["memory"]["per_conn_bytes"] for r in rs],
                }
            )
            ts = [r["throughput"] for r in rs if "throughput" in r]
            if ts:
                dps = med([t["deliveries_per_s"] for t in ts])
                tput.append(
                    {
                        "app": key,
                        "n": n,
                        "deliveries_per_s": dps,
                        "vs_floor": ratio(dps, ftp),
                        "published_per_s": med([t["published_per_s"] for t in ts]),
                        "delivered_share": med([t["delivered_share"] for t in ts]),
                        "missed_notices": med([t["missed_notices"] for t in ts]),
                        "server_cpu_share": med([t["server_cpu_share"] for t in ts]),
                        "client_cpu_share": med([t["client_cpu_share"] for t in ts]),
                        "deliveries_per_s_all": [t["deliveries_per_s"] for t in ts],
                    }
                )
    slow_rows = []
    sok = [r for r in slow if not r.get("error") and "phases" in r]
    fl = [r for r in sok if r["app"] == "floor"]
    f_fan = med([r["phases"]["readers_only"]["fanout_p99_ms"] for r in fl])
    f_rtt = med([r["phases"]["readers_only"]["publish_rtt_p99_ms"] for r in fl])
    for key in apps:
        rs = [r for r in sok if r["app"] == key]
        if not rs:
            continue
        row: dict[str, Any] = {"app": key, "repeats": len(rs)}
        for r in rs:
            for p in r["phases"].values():
                if p.get("rss_slope") is None and r.get("rss_samples"):
                    p["rss_slope"] = rss_slope(r["rss_samples"], p["start_s"], p["end_s"])
        for phase in ("readers_only", "with_slow"):
            ph = [r["phases"][phase] for r in rs if phase in r["phases"]]
            row[phase] = {
                k: med([p.get(k) for p in ph])
                for k in (
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
            }
            row[phase]["blocked"] = sum(1 for p in ph if p["blocked"]) + sum(
                1 for r in rs if phase not in r["phases"]
            )
        row["fanout_p99_vs_floor"] = ratio(row["with_slow"]["fanout_p99_ms"], f_fan)
        row["rtt_p99_vs_floor"] = ratio(row["with_slow"]["publish_rtt_p99_ms"], f_rtt)
        row["slowdown_fanout_p99"] = ratio(
            row["with_slow"]["fanout_p99_ms"], row["readers_only"]["fanout_p99_ms"]
        )
        slow_rows.append(row)
    return {"latency": latency, "memory": memory, "throughput": tput, "slow": slow_rows}


def fmt(x: float | None, spec: str = ".1f", suffix: str = "") -> str:
    return "—" if x is None else f"{x:{spec}}{suffix}"


def label(key: str) -> str:
    return APPS[key].label if key in APPS else key


def short_label(key: str) -> str:
    """The label on two or three lines, for a plot's axis."""
    return textwrap.fill(label(key), 14, break_long_words=False)


def write_markdown(path: Path, summary: dict[str, Any], meta: dict[str, Any]) -> str:
    m = meta
    out = [
        f"### Fan-out latency (publish call → the last of N idle streams has the event; {m['publishes']} "
        f"publishes, each {m['spacing'] * 1000:.0f} ms after every stream had the previous one; "
        f"{m['size']}-byte events)",
        "",
        "| App | Streams | p50 (ms) | × floor | p99 (ms) | × floor | server CPU per publish (ms) | × floor "
        "| server busy | client busy |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in summary["latency"]:
        flag = "" if r["complete"] else " (incomplete)"
        out.append(
            f"| {label(r['app'])} | {r['n']:,} | {fmt(r['p50_ms'])}{flag} "
            f"| {fmt(r['p50_vs_floor'], '.2f', '×')} | {fmt(r['p99_ms'])} "
            f"| {fmt(r['p99_vs_floor'], '.2f', '×')} | {fmt(r['server_cpu_per_publish_ms'])} "
            f"| {fmt(r['cpu_vs_floor'], '.2f', '×')} | {fmt(r['server_busy_share'], '.2f')} "
            f"| {fmt(r['client_busy_share'], '.2f')} |"
        )
    out += [
        "",
        f"### Sustained throughput (publishes back to back for {m['tput_seconds']:g} s; deliveries that "
        "reached the clients within that window)",
        "",
        "| App | Streams | deliveries/s | × floor | publishes/s | delivered in window | `missed` notices "
        "| server CPU | client CPU (per process) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in summary["throughput"]:
        out.append(
            f"| {label(r['app'])} | {r['n']:,} | {fmt(r['deliveries_per_s'], ',.0f')} "
            f"| {fmt(r['vs_floor'], '.2f', '×')} | {fmt(r['published_per_s'], ',.1f')} "
            f"| {fmt(None if r['delivered_share'] is None else r['delivered_share'] * 100, '.0f', '%')} "
            f"| {fmt(r['missed_notices'], ',.0f')} | {fmt(r['server_cpu_share'], '.2f')} "
            f"| {fmt(r['client_cpu_share'], '.2f')} |"
        )
    out += [
        "",
        "### Memory per idle connection (RSS after N streams connected and a gc, minus RSS before, ÷ N)",
        "",
        "| App | Streams | RSS growth (MB) | per connection (KB) | × floor |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in summary["memory"]:
        growth = None if r["rss_growth_bytes"] is None else r["rss_growth_bytes"] / 1e6
        per = None if r["per_conn_bytes"] is None else r["per_conn_bytes"] / 1024
        out.append(
            f"| {label(r['app'])} | {r['n']:,} | {fmt(growth)} | {fmt(per)} "
            f"| {fmt(r['vs_floor'], '.2f', '×')} |"
        )
    out += [
        "",
        f"### One slow client ({m['slow_n'] - 1:,} reading streams, then one more that never reads; "
        f"{m['slow_size']:,}-byte events at {m['slow_rate']:g}/s, {m['slow_seconds'][0]:g} s + "
        f"{m['slow_seconds'][1]:g} s)",
        "",
        "| App | publish round trip p99 (ms): readers only → with the slow one | × floor | "
        "readers' fan-out p99 (ms): readers only → with the slow one | × floor | events published with "
        f"the slow one (of {m['slow_rate'] * m['slow_seconds'][1]:.0f}) | server RSS growth with the slow "
        "one (MB) | RSS growth rate (MB/s, last half of each phase): readers only → with the slow one |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in summary["slow"]:
        a, b = r["readers_only"], r["with_slow"]

        def mb(x: float | None, spec: str = "+.1f") -> str:
            return fmt(None if x is None else x / 1e6, spec)

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
    mach, v = m["machine"], m["versions"]
    legend = (
        f"Medians of {m['repeats']} runs per cell, all in one run of `benchmarks/hub/run.py` "
        f"({m['total_seconds'] / 60:.0f} min) on a {mach['cpu_count']}-core machine ({mach['cpu_model']}; "
        "the server and the load clients share these 2 cores), "
        f"Python {mach['python']}, uvicorn {v.get('uvicorn')} with {m['server']['loop']} and "
        f"{m['server']['http']} (as reported by every app's /health), one process per app except "
        "the Redis row (uvicorn --workers 2 and a private redis-server on the same machine: its CPU is "
        "both workers' summed, its memory both workers' RSS after a gc in each; not in the slow-client "
        "scenario, which samples one process), "
        f"{m['client_procs']} load-client processes (uvloop, raw sockets). "
        "*× floor* divides by the raw-ASGI floor's median in the same cell (for the slow-client table: by "
        "the floor's figure with readers only, since the floor itself blocks). "
        "*server busy* / *client busy*: CPU seconds used during the latency phase divided by the summed "
        "fan-out times (for the clients, per process): near 1.0 means that process was saturated while "
        "events were in flight. Throughput: server CPU and client CPU are shares of one core over the window."
    )
    other = m.get("other_cpu")
    if other:
        legend += (
            f" Other processes on the machine used {other['share_of_machine'] * 100:.1f}% of its CPU "
            "over the whole run; each measurement waited for a quiet machine, and a measurement during "
            f"which they used more than {m.get('max_other', 0) * 100:.0f}% was taken again "
            f"({m.get('remeasured_runs', 0)} were)."
        )
    text = "\n".join(out) + "\n\n" + legend + "\n"
    path.write_text(text)
    return text


def write_plots(out: Path, summary: dict[str, Any], data: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    meta = data["meta"]
    apps, sizes = meta["apps"], meta["sizes"]
    colors = {key: f"C{i}" for i, key in enumerate(APPS)}
    markers = {
        "floor": "s",
        "graceful_sse": "o",
        "graceful_starlette": "o",
        "seed": "^",
        "sse_starlette": "D",
        "graceful_redis": "v",
    }
    fig, axes = plt.subplots(2, 2, figsize=(13, 9.5))
    ax = axes[0][0]
    for key in apps:
        rs = sorted((r for r in summary["latency"] if r["app"] == key), key=lambda r: r["n"])
        if rs:
            xs = [r["n"] for r in rs]
            ax.plot(
                xs,
                [r["p50_ms"] for r in rs],
                marker=markers.get(key, "o"),
                color=colors[key],
                label=label(key),
            )
            ax.plot(
                xs, [r["p99_ms"] for r in rs], ls=":", color=colors[key], marker=markers.get(key, "o"), ms=3
            )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(sizes)
    ax.set_xticklabels([f"{s:,}" for s in sizes])
    ax.minorticks_off()
    ax.set_xlabel("idle streams")
    ax.set_ylabel("publish → last stream has it (ms; solid p50, dotted p99)")
    ax.set_title("Fan-out latency")
    ax.grid(True, alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)

    def bars(
        ax: Any, rows: list[dict[str, Any]], value: str, title: str, ylabel: str, scale: float = 1.0
    ) -> None:
        keys = [k for k in apps if any(r["app"] == k for r in rows)]
        vals = [next(r[value] for r in rows if r["app"] == k) or 0 for k in keys]
        ratios = [
            next(r.get("vs_floor") or r.get("p50_vs_floor") for r in rows if r["app"] == k) for k in keys
        ]
        xs = range(len(keys))
        ax.bar(xs, [v * scale for v in vals], color=[colors[k] for k in keys])
        for x, v, rt in zip(xs, vals, ratios, strict=True):
            ax.text(
                x,
                v * scale,
                f"{v * scale:,.{0 if v * scale >= 100 else 1}f}\n{rt or 0:.2f}× floor",
                ha="center",
                va="bottom",
                fontsize=8,
            )
        ax.set_xticks(list(xs))
        ax.set_xticklabels([short_label(k) for k in keys], fontsize=7)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.margins(y=0.2)
        ax.grid(True, axis="y", alpha=0.3)

    big = max(sizes)
    bars(
        axes[0][1],
        [r for r in summary["throughput"] if r["n"] == big],
        "deliveries_per_s",
        f"Sustained throughput at {big:,} streams",
        "deliveries per second (median)",
    )
    bars(
        axes[1][0],
        [r for r in summary["memory"] if r["n"] == big],
        "per_conn_bytes",
        f"Memory per idle connection at {big:,} streams",
        "RSS growth per connection (KB)",
        1 / 1024,
    )
    ax = axes[1][1]
    for r in data.get("slow_runs", []):
        if r.get("repeat") != 0 or not r.get("rss_samples"):
            continue
        ts = [t for t, _ in r["rss_samples"]]
        base = r["rss_samples"][0][1]
        ax.plot(
            ts, [(x - base) / 1e6 for _, x in r["rss_samples"]], color=colors[r["app"]], label=label(r["app"])
        )
        if "slow_joined_s" in r:
            ax.axvline(r["slow_joined_s"], color=colors[r["app"]], ls=":", lw=0.8)
    ax.set_xlabel("seconds (dotted: the slow client connects)")
    ax.set_ylabel("server RSS growth (MB)")
    ax.set_title(f"One slow client among {meta['slow_n']:,}: server memory (first repeat)")
    ax.grid(True, alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    fig.suptitle(
        f"Hub benchmark: uvicorn + uvloop + httptools, one process per app (Redis row: 2 workers), "
        f"{os.cpu_count()} cores",
        fontsize=11,
    )
    fig.tight_layout()
    fig.savefig(out / "hub.png", dpi=110)
    plt.close(fig)

    # the slow client's effect on the readers: fan-out p99 and publish round trip, both phases
    if not summary["slow"]:
        return
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(13, 4.8))
    keys = [r["app"] for r in summary["slow"]]
    xs = list(range(len(keys)))
    for ax, metric, title in (
        (a1, "fanout_p99_ms", "Readers' fan-out latency p99 (ms)"),
        (a2, "publish_rtt_p99_ms", "Publisher's /publish round trip p99 (ms)"),
    ):
        before = [r["readers_only"][metric] or 0 for r in summary["slow"]]
        # a phase that blocked has no figure of its own: no bar, the word instead
        after = [0 if r["with_slow"]["blocked"] else r["with_slow"][metric] or 0 for r in summary["slow"]]
        ax.bar([x - 0.2 for x in xs], before, 0.4, label="readers only", color="lightgrey")
        ax.bar(
            [x + 0.2 for x in xs], after, 0.4, label="with one slow client", color=[colors[k] for k in keys]
        )
        ax.set_yscale("log")
        low = min(v for v in before + after if v > 0) / 1.5
        ax.set_ylim(bottom=low)
        for x, r in zip(xs, summary["slow"], strict=True):
            if r["with_slow"]["blocked"]:
                ax.text(x + 0.2, low * 1.1, "blocked", rotation=90, ha="center", va="bottom", fontsize=9)
        ax.set_xticks(xs)
        ax.set_xticklabels([short_label(k) for k in keys], fontsize=7)
        ax.set_title(title)
        ax.grid(True, axis="y", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "hub_slow.png", dpi=110)
    plt.close(fig)


# -- run info ----------------------------------------------------------------------------------------


def versions() -> dict[str, str | None]:
    return runinfo.versions(
        [
            "graceful-sse",
            "uvicorn",
            "uvloop",
            "httptools",
            "starlette",
            "python-fasthtml",
            "sse-starlette",
            "broadcaster",
            "cjm-fasthtml-sse",
            "anyio",
            "redis",
        ]
    )


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of one process (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_accounting() -> tuple[float, float]:
    """(CPU seconds busy on the whole machine, CPU seconds of this runner and its reaped children)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    busy = (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")  # minus idle, iowait
    ours = UNREAPED_CPU + sum(process_cpu(pid) for pid in OWN_LIVE_PIDS)
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        ru = resource.getrusage(who)
        ours += ru.ru_utime + ru.ru_stime
    return busy, ours


def wait_quiet(threshold: float, max_wait: float) -> float:
    """Wait until other processes use under ``threshold`` of the machine's CPU over one second
    (we run nothing between runs); returns the seconds waited."""
    cores = os.cpu_count() or 1
    t0 = time.monotonic()
    told = False
    while time.monotonic() - t0 < max_wait:
        busy0, ours0 = cpu_accounting()
        time.sleep(1.0)
        busy1, ours1 = cpu_accounting()
        if (busy1 - busy0) - (ours1 - ours0) < threshold * cores:
            break
        if not told:
            print("    the machine is busy with other processes: waiting for it to be quiet", flush=True)
            told = True
    return time.monotonic() - t0


def guarded(measure: Any, args: argparse.Namespace) -> dict[str, Any]:
    """One run on a quiet machine: wait for quiet, measure, and measure again (up to
    ``--retries`` times) when other processes used more than ``--max-other`` of the machine's CPU
    meanwhile (other people's benchmarks share these cores)."""
    cores = os.cpu_count() or 1
    discarded: list[float] = []
    waited = 0.0
    while True:
        waited += wait_quiet(args.max_other, args.quiet_wait)
        before, t0 = cpu_accounting(), time.monotonic()
        run: dict[str, Any] = measure()
        after, wall = cpu_accounting(), time.monotonic() - t0
        other = ((after[0] - before[0]) - (after[1] - before[1])) / (wall * cores)
        run["other_cpu_share"] = round(other, 3)
        if other <= args.max_other or len(discarded) >= args.retries:
            run["discarded_attempts_other_cpu"] = discarded
            run["waited_for_quiet_s"] = round(waited, 1)
            if other > args.max_other:
                print(
                    f"    warning: other processes used {other:.0%} of the machine; kept anyway", flush=True
                )
            return run
        discarded.append(round(other, 3))
        print(
            f"    other processes used {other:.0%} of the machine during this run: measuring again",
            flush=True,
        )


def report(out: Path, data: dict[str, Any]) -> str:
    summary = aggregate(data)
    data["summary"] = summary
    (out / "hub.json").write_text(json.dumps(data, indent=1))
    table = write_markdown(out / "hub.md", summary, data["meta"])
    write_plots(out, summary, data)
    return table


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="1000,5000,10000", help="idle streams per latency/memory run")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--apps", default="all", help=f"comma-separated, or all: {','.join(APPS)}")
    p.add_argument("--publishes", type=int, default=20, help="events per latency measurement")
    p.add_argument("--spacing", type=float, default=0.2, help="seconds between those publishes")
    p.add_argument("--size", type=int, default=64, help="event data bytes for latency and throughput")
    p.add_argument("--tput-sizes", default="max", help="sizes with a throughput phase ('max': the largest)")
    p.add_argument("--tput-seconds", type=float, default=3.0)
    p.add_argument(
        "--slow-n", type=int, default=1000, help="streams in the slow-client runs, the slow one included"
    )
    p.add_argument(
        "--slow-rate", type=float, default=25.0, help="publishes per second in the slow-client runs"
    )
    p.add_argument("--slow-size", type=int, default=16384, help="event data bytes in the slow-client runs")
    p.add_argument("--slow-seconds", default="3,22", help="readers only, then with the slow client (s)")
    p.add_argument("--no-slow", action="store_true", help="skip the slow-client scenario")
    p.add_argument("--only-slow", action="store_true", help="only the slow-client scenario")
    p.add_argument("--client-procs", type=int, default=2, help="load-client processes (streams split)")
    p.add_argument("--inflight", type=int, default=256, help="streams between connect and first bytes")
    p.add_argument(
        "--max-other",
        type=float,
        default=0.05,
        help="measure a run again when other processes used more than this share of the machine's CPU",
    )
    p.add_argument("--retries", type=int, default=3, help="at most this many times per run")
    p.add_argument(
        "--quiet-wait", type=float, default=900, help="seconds to wait for a quiet machine, at most"
    )
    p.add_argument("--quick", action="store_true", help="smoke run: small sizes, one repeat, short phases")
    p.add_argument(
        "--redis",
        default="private",
        help="for the Redis row: 'private' (a redis-server of our own on a free port), or a redis:// URL",
    )
    p.add_argument("--out", default=str(RESULTS), help="results directory")
    p.add_argument("--replot", action="store_true", help="rewrite hub.md and the plots from hub.json")
    args = p.parse_args()
    out = Path(args.out).resolve()
    if args.replot:
        data = json.loads((out / "hub.json").read_text())
        print(report(out, data))
        return
    if args.quick:
        args.sizes, args.repeats, args.publishes, args.tput_seconds = "200,1000", 1, 10, 2.0
        args.slow_n, args.slow_seconds = 200, "2,6"
    args.sizes = [int(s) for s in args.sizes.split(",")]
    args.tput_sizes = (
        [max(args.sizes)] if args.tput_sizes == "max" else [int(s) for s in args.tput_sizes.split(",")]
    )
    args.slow_seconds = [float(s) for s in args.slow_seconds.split(",")]
    apps = list(APPS) if args.apps == "all" else args.apps.split(",")
    for a in apps:
        if a not in APPS:
            p.error(f"unknown app {a!r}; known: {', '.join(APPS)}")
    global LOGS, REDIS_URL
    LOGS = out / "logs"
    LOGS.mkdir(parents=True, exist_ok=True)
    raise_nofile(max(args.sizes) + 1000)
    redis_server = None
    if any(APPS[a].redis for a in apps):
        if args.redis == "private":
            redis_server = PrivateRedis(LOGS / "redis-server.log")
            REDIS_URL = redis_server.url
        else:
            REDIS_URL = args.redis
    try:
        run_all(args, apps, out)
    finally:
        if redis_server is not None:
            redis_server.stop()


def run_all(args: argparse.Namespace, apps: list[str], out: Path) -> None:
    subprocess.run([sys.executable, str(HERE / "client.py"), "--selftest"], check=True)
    lib_before = library_state()
    load_before = os.getloadavg()
    if load_before[0] > 0.5:
        print(f"warning: load average {load_before} before the run: something else is running", flush=True)
    cpu_before = cpu_accounting()
    t_all = time.monotonic()
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    runs: list[dict[str, Any]] = []
    slow_runs: list[dict[str, Any]] = []

    def stamp() -> str:
        return f"[{time.monotonic() - t_all:7.1f}s]"

    for n in [] if args.only_slow else args.sizes:
        for rep in range(args.repeats):
            for key in apps:
                print(f"{stamp()} {key:18s} N={n:<6} repeat {rep + 1}/{args.repeats}", flush=True)
                r = guarded(lambda key=key, n=n, rep=rep: one_run(APPS[key], n, rep, args), args)
                runs.append(r)
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
                print(line, flush=True)
    if not args.no_slow:
        for rep in range(args.repeats):
            # one process only: its RSS is sampled on one connection, its publishes timed in-process
            for key in [a for a in apps if APPS[a].workers == 1]:
                print(
                    f"{stamp()} {key:18s} slow client, N={args.slow_n} repeat {rep + 1}/{args.repeats}",
                    flush=True,
                )
                r = guarded(lambda key=key, rep=rep: slow_run(APPS[key], rep, args), args)
                slow_runs.append(r)
                for name, ph in r.get("phases", {}).items():
                    print(
                        f"    {name:12s} published {ph['published']}{' BLOCKED' if ph['blocked'] else ''}; "
                        f"publish rtt p50 {ph['publish_rtt_p50_ms']} p99 {ph['publish_rtt_p99_ms']} ms; "
                        f"fan-out p50 {ph['fanout_p50_ms']} p99 {ph['fanout_p99_ms']} ms; "
                        f"incomplete {ph['incomplete_publishes']}; missed {ph['missed_notices']}; "
                        f"RSS +{(ph.get('rss_growth') or 0) / 1e6:.1f} MB",
                        flush=True,
                    )
    total_s = time.monotonic() - t_all
    cpu_after = cpu_accounting()
    other_cpu = (cpu_after[0] - cpu_before[0]) - (cpu_after[1] - cpu_before[1])
    lib_after = library_state()
    if lib_after != lib_before:
        print(f"warning: src/graceful_sse changed during the run: {lib_before} -> {lib_after}", flush=True)
    probes = {r["app"]: r["probe"] for r in runs + slow_runs if r.get("probe")}
    first = next(iter(probes.values()), {})
    meta = {
        "started": started,
        "total_seconds": round(total_s, 1),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "sizes": args.sizes,
        "repeats": args.repeats,
        "apps": apps,
        "publishes": args.publishes,
        "spacing": args.spacing,
        "size": args.size,
        "tput_sizes": args.tput_sizes,
        "tput_seconds": args.tput_seconds,
        "slow_n": args.slow_n,
        "slow_rate": args.slow_rate,
        "slow_size": args.slow_size,
        "slow_seconds": args.slow_seconds,
        "client_procs": args.client_procs,
        "inflight": args.inflight,
        "max_other": args.max_other,
        "retries": args.retries,
        "remeasured_runs": sum(1 for r in runs + slow_runs if r.get("discarded_attempts_other_cpu")),
        "machine": machine_info(),
        # CPU the rest of the machine used meanwhile (other people's processes share these cores)
        "other_cpu": {
            "seconds": round(other_cpu, 1),
            "share_of_machine": round(other_cpu / (total_s * (os.cpu_count() or 1)), 3),
            "loadavg_before": load_before,
            "loadavg_after": os.getloadavg(),
        },
        "versions": versions(),
        "graceful_sse_source": {
            "before": lib_before,
            "after": lib_after,
            "changed_during_run": lib_after != lib_before,
        },
        "server": {"loop": first.get("loop"), "http": first.get("http"), "per_app": probes},
    }
    table = report(out, {"meta": meta, "runs": runs, "slow_runs": slow_runs})
    print()
    print(table)
    print(f"total {total_s:.0f} s; wrote {out / 'hub.json'}, hub.md, hub.png, hub_slow.png")


if __name__ == "__main__":
    main()
