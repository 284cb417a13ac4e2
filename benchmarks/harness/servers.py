"""App servers under test: ``uvicorn MODULE:app`` (or ``granian --interface asgi MODULE:app``) on
a free port in a session of its own, a blocking HTTP client for its control routes (/health, and
the hub's /publish and /rss), and a private ``redis-server``.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from harness.procs import BIN, child_env, kill_group
from harness.runinfo import free_port

PING_TIMEOUT = 2.0  # seconds a /health probe may take while the server starts


class Http:
    """A blocking HTTP/1.1 client for one server's JSON routes.

    With ``keep_alive`` (the hub) one connection serves every call, reconnecting once when
    uvicorn has closed it for idling; without (the shutdown benchmark) each call has its own
    connection with ``Connection: close``, so that none is left open when the server is stopped.
    """

    def __init__(self, port: int, keep_alive: bool = True) -> None:
        self.port = port
        self.keep_alive = keep_alive
        self.sock: socket.socket | None = None
        self.buf = b""
        self.answered = False

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
        self.sock, self.buf = None, b""

    def get(self, path: str, timeout: float = 5.0) -> dict[str, Any]:
        """The JSON answer of ``GET path``; raises on anything but a 200."""
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
        close = "" if self.keep_alive else "Connection: close\r\n"
        try:
            self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{close}\r\n".encode())
            status, body = self._response()
        except ConnectionError as e:
            e.answered = self.answered  # type: ignore[attr-defined]
            self.close()
            raise
        except BaseException:
            self.close()
            raise
        if not self.keep_alive:
            self.close()
        if status != 200:
            raise RuntimeError(f"GET {path}: status {status}: {body[:200]!r}")
        return dict(json.loads(body))

    def _response(self) -> tuple[int, bytes]:
        head = self._until(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        headers = {}
        for line in head.split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            headers[k.strip().lower()] = v.strip()
        if b"content-length" in headers:
            return status, self._exactly(int(headers[b"content-length"]))
        body = b""  # chunked
        while True:
            size = int(self._until(b"\r\n").split(b";")[0], 16)
            if size == 0:
                self._until(b"\r\n")
                return status, body
            body += self._exactly(size)
            self._exactly(2)

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


def uvicorn_command(target: str, port: int, options: Sequence[str]) -> list[str]:
    return [str(BIN / "uvicorn"), target, "--port", str(port), *options]


def granian_command(target: str, port: int, options: Sequence[str]) -> list[str]:
    """Granian's ASGI interface (its default is RSGI), one worker (its default), its default loop."""
    return [str(BIN / "granian"), "--interface", "asgi", "--port", str(port), *options, target]


# The servers an app can be served by: the command line for ``MODULE:app`` on a port.
SERVERS = {"uvicorn": uvicorn_command, "granian": granian_command}

# Granian's options in both benchmarks: its default loop and HTTP; for thousands of streams, a
# listen backlog as uvicorn's (2048; Granian's is 1024), and room for every stream (a Granian
# worker serves at most --backpressure requests at once, by default its backlog: the streams past
# it would wait).
GRANIAN_OPTIONS = ["--log-level", "warning", "--backlog", "2048", "--backpressure", "65536"]


class AppServer:
    """``uvicorn MODULE:app --port P OPTIONS`` (or the command of another of :data:`SERVERS`) run
    from ``apps_dir``, its output in ``log_path``."""

    def __init__(
        self,
        apps_dir: Path,
        module: str,
        log_path: Path,
        options: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        keep_alive: bool = True,
        server: str = "uvicorn",
    ) -> None:
        self.port = free_port()
        self.log_path = log_path
        self.log = log_path.open("wb")
        self.cmd = SERVERS[server](f"{module}:app", self.port, options)
        self.proc = subprocess.Popen(
            self.cmd,
            cwd=apps_dir,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=child_env({"PYTHONUNBUFFERED": "1", **(env or {})}),
            start_new_session=True,
        )
        self.http = Http(self.port, keep_alive)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_ready(self, timeout: float = 30.0) -> dict[str, Any]:
        """The app's /health answer (which loop and HTTP implementation the server picked), once it
        answers at all; raises if the server exits or stays silent for ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited at start-up with {self.proc.returncode}")
            with contextlib.suppress(OSError, ValueError, IndexError, RuntimeError):
                return self.http.get("/health", timeout=PING_TIMEOUT)
            time.sleep(0.05)
        raise RuntimeError("server did not answer in time")

    def pids(self) -> list[int]:
        """The server's process and, with --workers (and under Granian), its worker processes."""
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

    def stop(self) -> None:
        """SIGKILL the server's session (its workers too) and reap it."""
        self.http.close()
        if self.proc.poll() is None:
            kill_group(self.proc.pid)
            self.proc.wait()
        kill_group(self.proc.pid)  # anything left in the server's session
        self.log.close()


class PrivateRedis:
    """A ``redis-server`` of the benchmark's own on a free port, keeping nothing on disk."""

    def __init__(self, log: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("the Redis row needs redis-server (apt-get install redis-server) or --redis URL")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.log_path = log
        self.log = log.open("wb")
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._wait_pong()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _wait_pong(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=1) as s,
            ):
                s.sendall(b"PING\r\n")
                if s.recv(64).startswith(b"+PONG"):
                    return
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.stop()
                raise SystemExit(f"redis-server did not start; see {self.log_path}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(5)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
