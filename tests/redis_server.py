"""A private redis-server for the tests, on a free port, that a test may kill and start again."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from harness import free_port, kill_tree

DISKLESS = ("--save", "", "--appendonly", "no")
# redis-server writes its title over its environment, where the test session's mark is (harness's
# SESSION_VAR): without this, a redis-server left behind could not be found.
OWN_TITLE = ("--set-proc-title", "no")


class RedisServer:
    """``redis-server`` keeping nothing on disk (like the machine's own); ``url`` for the hub."""

    def __init__(self, workdir: Path, port: int | None = None, args: tuple[str, ...] = ()) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed: ./scripts/test installs it")
        self.binary = binary
        self.port = port or free_port()
        self.workdir = workdir
        self.args = args  # more of redis-server's options ("--replicaof", host, port)
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self) -> list[str]:
        return [
            self.binary,
            *("--port", str(self.port), "--bind", "127.0.0.1"),
            *DISKLESS,
            *OWN_TITLE,
            *self.args,
        ]

    def start(self) -> None:
        argv = self.command()
        # A session of its own, like the servers: a Ctrl+C to the test run's group leaves it to
        # the teardown (which a second Ctrl+C may cut short: then the session's watchdog reaps it).
        self.proc = subprocess.Popen(
            argv,
            cwd=self.workdir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.ping():
                return
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"{' '.join(argv)} did not answer on port {self.port}")

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def pause(self) -> None:
        """``kill -STOP``: connections stay open and every command hangs (a Redis that hangs)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGCONT)  # a paused one too
            kill_tree(self.proc)
            self.proc = None

    def restart(self) -> None:
        self.kill()
        self.start()


class SentinelServer(RedisServer):
    """A Redis Sentinel watching ``primary`` as service ``mymaster``, quick to fail over."""

    SERVICE = "mymaster"

    def __init__(self, workdir: Path, primary_port: int, quorum: int = 1) -> None:
        self.primary_port = primary_port
        self.quorum = quorum
        super().__init__(workdir)

    def command(self) -> list[str]:
        config = self.workdir / f"sentinel-{self.port}.conf"  # a Sentinel rewrites its own file
        config.write_text(
            f"port {self.port}\nbind 127.0.0.1\n"
            f"sentinel monitor {self.SERVICE} 127.0.0.1 {self.primary_port} {self.quorum}\n"
            f"sentinel down-after-milliseconds {self.SERVICE} 500\n"
            f"sentinel failover-timeout {self.SERVICE} 3000\n"
        )
        return [self.binary, str(config), "--sentinel", *OWN_TITLE]

    def primary(self) -> int:
        """The port of the primary it names now."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
            sock.sendall(f"SENTINEL get-master-addr-by-name {self.SERVICE}\r\n".encode())
            reply = sock.recv(256).decode()
        return int(reply.split("\r\n")[-2])
