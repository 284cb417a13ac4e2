"""Real servers in subprocesses, and real streaming clients, for the behaviour tests."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

from sse_parser import ParsedEvent, SSEParser

APPS = Path(__file__).parent / "apps"
BIN = Path(sys.executable).parent
FORBIDDEN_LOG_LINES = ("Exception in ASGI application", "returned without completing response")
# What apps/fh_app.py prints once its lifespan (and so hub.stop()) has run to its end.
LIFESPAN_DONE = "test app: lifespan shutdown complete (hub stopped)"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RunMode:
    """One way of running the test app, and what each signal should mean there."""

    name: str
    argv: list[str]
    on_sigint: str = "stop"  # farewell expected after SIGINT to the process group (Ctrl+C)
    on_sigterm: str = "restart"  # farewell expected after SIGTERM to the main pid
    env: dict[str, str] = field(default_factory=dict)


def run_modes(port: int) -> dict[str, RunMode]:
    p = str(port)
    py = sys.executable
    return {
        m.name: m
        for m in [
            RunMode("uvicorn", [str(BIN / "uvicorn"), "fh_app:app", "--port", p]),
            RunMode(
                "uvicorn --reload",
                [str(BIN / "uvicorn"), "fh_app:app", "--port", p, "--reload", "--reload-dir", str(APPS)],
            ),
            RunMode(
                "uvicorn --workers 2", [str(BIN / "uvicorn"), "fh_app:app", "--port", p, "--workers", "2"]
            ),
            RunMode("serve()", [py, "fh_app.py"], env={"PORT": p}),
            RunMode(
                "gunicorn",
                [
                    str(BIN / "gunicorn"),
                    "-k",
                    "uvicorn_worker.UvicornWorker",
                    "-b",
                    f"127.0.0.1:{p}",
                    "-w",
                    "2",
                    "fh_app:app",
                ],
            ),
            RunMode("hypercorn", [str(BIN / "hypercorn"), "fh_app:app", "--bind", f"127.0.0.1:{p}"]),
            RunMode(
                "granian",
                [
                    str(BIN / "granian"),
                    "--interface",
                    "asgi",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    p,
                    "fh_app:app",
                ],
            ),
            RunMode("embedded uvicorn", [py, "embedded.py", p]),
        ]
    }


def demo(port: int) -> RunMode:
    """The package's demo, as its README runs it: FastHTML's ``serve()`` (a reloader and a child)."""
    return RunMode("demo under serve()", [sys.executable, "-m", "graceful_sse.demo", "--port", str(port)])


def notebook(port: int, control: Path, flavour: str) -> RunMode:
    """apps/notebook.py: FastHTML's ``JupyUvi`` (``thread``) or ``JupyUviAsync`` (``async``) serving
    fh_app, stopped when the file ``control``/stop-1 appears, started again, stopped at stop-2."""
    argv = [sys.executable, "notebook.py", str(port), str(control), flavour]
    return RunMode(f"notebook ({flavour})", argv, env={"IN_SOLVEIT": "1"})


class Server:
    """A server process in its own process group (so that SIGINT can go to the whole group)."""

    def __init__(
        self,
        mode: RunMode,
        port: int,
        log: Path,
        env: dict[str, str] | None = None,
        cwd: Path = APPS,
        scheme: str = "http",
    ) -> None:
        self.mode = mode
        self.port = port
        self.log_path = log
        self.url = f"{scheme}://127.0.0.1:{port}"
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **mode.env, **(env or {})}
        full_env["PYTHONPATH"] = os.pathsep.join([str(APPS), full_env.get("PYTHONPATH", "")])
        self._log = log.open("wb")
        self.proc = subprocess.Popen(
            mode.argv,
            cwd=cwd,
            env=full_env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def wait_ready(
        self, timeout: float = 30.0, path: str = "/stats", *, any_status: bool = False, http2: bool = False
    ) -> None:
        """Until ``path`` answers 200, or answers at all with ``any_status`` (not every app has a
        page to GET); asked over HTTP/2 with ``http2`` (its certificate unchecked), else HTTP/1.1.
        The connection is closed after: a kept-alive one would hold a server's shutdown."""
        options: dict[str, Any] = {"http1": False, "http2": True, "verify": False} if http2 else {}
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=2 if http2 else 1, **options) as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"{self.mode.name} exited early:\n{self.log}")
                with contextlib.suppress(httpx.HTTPError):
                    status = client.get(self.url + path).status_code
                    if any_status or status == 200:
                        return
                time.sleep(0.1)
        raise TimeoutError(f"{self.mode.name} not ready in {timeout} s:\n{self.log}")

    def wait_for_line(self, line: str, timeout: float = 10.0) -> None:
        """Until ``line`` is in the server's log (what a script prints as it goes)."""
        deadline = time.monotonic() + timeout
        while line not in self.log:
            assert time.monotonic() < deadline, (line, self.log[-3000:])
            time.sleep(0.05)

    def sigint_group(self) -> None:
        """What a terminal's Ctrl+C does: SIGINT to every process of the foreground group."""
        os.killpg(self.proc.pid, signal.SIGINT)

    def sigterm_main(self) -> None:
        """What docker, systemd and Kubernetes do: SIGTERM to the main process."""
        self.proc.send_signal(signal.SIGTERM)

    def wait_exit(self, timeout: float) -> float:
        """Seconds until the main process and every process of its group are gone."""
        start = time.monotonic()
        self.proc.wait(timeout=timeout)
        while time.monotonic() - start < timeout:
            if not _group_alive(self.proc.pid):
                return time.monotonic() - start
            time.sleep(0.05)
        raise TimeoutError(f"processes of {self.mode.name} still alive after {timeout} s")

    def kill(self) -> None:
        kill_tree(self.proc)
        self._log.close()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # killpg(…, 0) also succeeds for zombies; look for a live member.
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = (entry / "stat").read_text()
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                return True
    return False


@contextlib.contextmanager
def running(
    mode: RunMode,
    port: int,
    log: Path,
    env: dict[str, str] | None = None,
    ready_path: str = "/stats",
    *,
    scheme: str = "http",
    any_status: bool = False,
    http2: bool = False,
) -> Iterator[Server]:
    """The server, once ready (``Server.wait_ready``'s ``any_status`` and ``http2``); killed
    after, whatever happened."""
    server = Server(mode, port, log, env, scheme=scheme)
    try:
        server.wait_ready(path=ready_path, any_status=any_status, http2=http2)
        yield server
    finally:
        server.kill()


# ---- worker recycling: a request limit, and no signal -----------------------------------------


def recycling(mode: RunMode, limit: int) -> RunMode:
    """``mode`` (uvicorn or gunicorn) with its worker recycled after ``limit`` requests."""
    if mode.name == "gunicorn":  # one worker, so that every request counts towards its limit
        head = mode.argv[: mode.argv.index("-w")]
        return dataclasses.replace(mode, argv=[*head, "-w", "1", "--max-requests", str(limit), mode.argv[-1]])
    return dataclasses.replace(mode, argv=[*mode.argv, "--limit-max-requests", str(limit)])


async def pass_the_limit(server: Server, limit: int) -> list[int]:
    """Plain requests until the worker stops answering on its current listener; the status of each
    one answered."""
    statuses = []
    async with httpx.AsyncClient(timeout=2) as client:
        for _ in range(limit * 2):
            try:
                statuses.append((await client.get(server.url + "/stats")).status_code)
            except httpx.HTTPError:
                break
    return statuses


def worker_pid(server: Server) -> int:
    return int(httpx.get(server.url + "/stats", timeout=5).json()["pid"])


def wait_pid_gone(pid: int, timeout: float) -> float:
    """Seconds until process ``pid`` (not ours to wait for: a gunicorn worker) is gone."""
    start = time.monotonic()
    while Path(f"/proc/{pid}").exists() and "Z" not in _state(pid):
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"worker {pid} still alive after {timeout} s")
        time.sleep(0.05)
    return time.monotonic() - start


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"


# ---- HTTP/2: Hypercorn and Granian, h2c or TLS ------------------------------------------------

H2_SERVERS = [("hypercorn", False), ("hypercorn", True), ("granian", False), ("granian", True)]
H2_IDS = ["hypercorn-h2c", "hypercorn-tls", "granian-h2c", "granian-tls"]
TLS_OPTIONS = {"hypercorn": ("--certfile", "--keyfile"), "granian": ("--ssl-certificate", "--ssl-keyfile")}


def h2_mode(server: str, port: int, tls: tuple[Path, Path] | None, app: str) -> RunMode:
    """The server's HTTP/1.1 run mode with HTTP/2 (Granian must be told) and TLS if asked."""
    argv = [app if arg == "fh_app:app" else arg for arg in run_modes(port)[server].argv]
    if server == "granian":
        argv += ["--http", "2"]
    if tls:
        cert_option, key_option = TLS_OPTIONS[server]
        argv += [cert_option, str(tls[0]), key_option, str(tls[1])]
    return RunMode(f"{server} HTTP/2{' TLS' if tls else ''}", argv)


async def until(condition: Callable[[], bool], within: float = 10.0, step: float = 0.01) -> None:
    """Wait until ``condition()`` holds, looking every ``step`` seconds; fail after ``within``
    (by the clock: on a busy machine a step takes longer than ``step``)."""
    deadline = asyncio.get_running_loop().time() + within
    while not condition():
        if asyncio.get_running_loop().time() >= deadline:
            raise AssertionError(f"not within {within} s")
        await asyncio.sleep(step)


@dataclass
class Stream:
    """One client stream: what it received and how it ended."""

    url: str
    parser: SSEParser = field(default_factory=SSEParser)
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    clean_end: bool = False
    error: str | None = None
    status: int | None = None

    @property
    def events(self) -> list[ParsedEvent]:
        return self.parser.events

    def names(self) -> list[str]:
        """The events the page's content sees (status indicator updates aside)."""
        return [e.type for e in self.events if e.type != "sse-status"]

    async def run(self, client: httpx.AsyncClient) -> None:
        try:
            async with client.stream("GET", self.url) as response:
                self.status = response.status_code
                async for text in response.aiter_text():
                    self.parser.feed(text)
                    if " connected" in self.parser.comments:
                        self.connected.set()
            self.clean_end = True
        except (httpx.HTTPError, OSError) as exc:
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            self.connected.set()


@contextlib.asynccontextmanager
async def open_streams(urls: list[str], within: float = 20.0):  # type: ignore[no-untyped-def]
    """Open a stream to each of ``urls`` and wait until each has its opening comment."""
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=0)
    async with httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(60, connect=10)) as client:
        streams = [Stream(url) for url in urls]
        tasks = [asyncio.create_task(s.run(client)) for s in streams]
        await asyncio.wait_for(asyncio.gather(*(s.connected.wait() for s in streams)), within)
        failed = [s.error for s in streams if s.error]
        assert not failed, failed[:3]
        try:
            yield streams, tasks
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


def stuck_client(port: int, path: str = "/firehose") -> socket.socket:
    """A client that asks for a fast stream and never reads it: the server's send blocks."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n".encode())
    return sock


def trickling_post(port: int, path: str = "/say") -> socket.socket:
    """A client that starts a form POST and never sends the rest of its body."""
    sock = socket.create_connection(("127.0.0.1", port))
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
    sock.sendall(f"{head}Content-Length: 100\r\n\r\ntext=a".encode())
    return sock


BURN = "import signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True: pass"


@contextlib.contextmanager
def busy_machine(burners: int | None = None, niceness: int = 0) -> Iterator[int]:
    """CPU-burning processes keeping every core busy (one more than the cores), ended after.

    They run in a process group of their own, so that a Ctrl+C sent to a server's group does
    not reach them, and they ignore SIGINT in case one does. With ``niceness`` 19 they take only
    what nothing else wants (a test of the burners themselves, not of the code beside them).
    """
    count = burners if burners is not None else (os.cpu_count() or 2) + 1
    burn = [sys.executable, "-c", f"import os; os.nice({niceness})\n{BURN}"]
    procs = [subprocess.Popen(burn, start_new_session=True) for _ in range(count)]
    try:
        yield count
    finally:
        for proc in procs:
            kill_tree(proc)


# ---- what a test session starts, and what it leaves behind ------------------------------------
#
# conftest.py marks the session's environment with SESSION_VAR (one id for the whole run, xdist's
# workers included) and OWNER_VAR (the pid of the pytest process, controller or worker). Every
# process a test starts inherits both, however it is started (a server, redis-server, Chromium
# through playwright's driver, a benchmark's own servers and clients): so whatever is still alive
# at the end can be found by its environment, even in a session of its own, even orphaned.

SESSION_VAR = "GRACEFUL_SSE_TEST_SESSION"
OWNER_VAR = "GRACEFUL_SSE_TEST_OWNER"
KILL_WAIT = 5.0  # seconds a SIGKILLed process may take to be gone (a loaded machine, a big heap)


def kill_tree(proc: subprocess.Popen[bytes] | subprocess.Popen[str], wait: float = KILL_WAIT) -> None:
    """SIGKILL the process group ``proc`` leads and every descendant of ``proc`` (a benchmark's
    servers are in sessions of their own), then reap ``proc`` within ``wait`` seconds."""
    try:
        descendants = psutil.Process(proc.pid).children(recursive=True)
    except psutil.Error:
        descendants = []
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    reap(descendants, wait)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=wait)


def session_processes(session: str, owner: int | None = None) -> list[psutil.Process]:
    """The live processes marked with test session ``session`` (and started under pytest process
    ``owner``, if given), this one aside."""
    marks = {SESSION_VAR: session} if owner is None else {SESSION_VAR: session, OWNER_VAR: str(owner)}
    return marked_processes(marks)


def marked_processes(marks: dict[str, str]) -> list[psutil.Process]:
    """The live processes whose environment has every one of ``marks``, this one aside."""
    found = []
    for proc in psutil.process_iter():
        if proc.pid == os.getpid():
            continue
        try:
            env = proc.environ()
            if all(env.get(k) == v for k, v in marks.items()) and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except psutil.Error:  # gone meanwhile, or not ours to read
            continue
    return found


def describe(proc: psutil.Process) -> str:
    try:
        return f"pid {proc.pid}: {' '.join(proc.cmdline())[:160]}"
    except psutil.Error:
        return f"pid {proc.pid} (gone)"


def reap(procs: Iterable[psutil.Process], wait: float = KILL_WAIT) -> None:
    """SIGKILL ``procs`` and the process groups they lead, and wait up to ``wait`` s for them."""
    procs = list(procs)
    for proc in list(procs):  # and what they started, before a kill reparents it
        with contextlib.suppress(psutil.Error):
            procs += proc.children(recursive=True)
    procs = list({p.pid: p for p in procs}.values())
    pids = {p.pid for p in procs}
    for proc in procs:
        with contextlib.suppress(OSError):
            # A group only when its leader is one of them: never the group of the pytest run.
            if os.getpgid(proc.pid) in pids:
                os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(procs, timeout=wait)


_WATCHDOG = """
import signal, sys
import harness
signal.signal(signal.SIGINT, signal.SIG_IGN)
sys.stdin.buffer.read()  # returns when the owner closes the pipe or dies, however it dies
harness.reap(harness.session_processes(sys.argv[1], int(sys.argv[2])))
"""


class Watchdog:
    """A process of its own that reaps what pytest process ``owner`` started once ``owner`` ends.

    Teardown cannot run when pytest-timeout's thread method calls ``os._exit``, when xdist SIGKILLs
    a worker that does not stop within 10 s (``-x``, Ctrl+C), or on a second Ctrl+C in the middle
    of a teardown; the watchdog's end of a pipe closes in every one of those cases.
    """

    def __init__(self, session: str, owner: int) -> None:
        env = {k: v for k, v in os.environ.items() if k not in (SESSION_VAR, OWNER_VAR)}
        env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parent), env.get("PYTHONPATH", "")])
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _WATCHDOG, session, str(owner)],
            stdin=subprocess.PIPE,
            env=env,
            start_new_session=True,  # a Ctrl+C to the run's group does not reach it
        )

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=2 * KILL_WAIT)
