"""Fixtures shared by the tests: the async runner, signal handlers, Redis, HTTP/2 servers, Chromium;
session's guard against processes left behind."""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from xdist import is_xdist_worker

from harness import (
    OWNER_VAR,
    SESSION_VAR,
    Server,
    Watchdog,
    describe,
    free_port,
    h2_mode,
    reap,
    running,
    session_processes,
)
from redis_server import RedisServer

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext


@pytest.fixture
def anyio_backend() -> str:
    """``@pytest.mark.anyio`` tests run on asyncio, as the servers our users run do."""
    return "asyncio"


@pytest.fixture(autouse=True)
def restore_signals() -> Iterator[None]:
    """Every test leaves the signals it may handle as it found them."""
    signals = (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT, signal.SIGUSR1)
    before = {sig: signal.getsignal(sig) for sig in signals}
    yield
    for sig, handler in before.items():
        signal.signal(sig, handler)


@pytest.fixture(scope="module")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A private redis-server on a free port, shared by a module's tests (each uses its own keys)."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server
    server.kill()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, for the TLS HTTP/2 servers."""
    import trustme  # only where a test asks for TLS

    where = tmp_path_factory.mktemp("tls")
    cert = trustme.CA().issue_cert("127.0.0.1")
    cert_path, key_path = where / "cert.pem", where / "key.pem"
    cert.cert_chain_pems[0].write_to_path(cert_path)
    cert.private_key_pem.write_to_path(key_path)
    return cert_path, key_path


@pytest.fixture
def h2_server(
    request: pytest.FixtureRequest, certificate: tuple[Path, Path], tmp_path: Path
) -> Iterator[Server]:
    """An HTTP/2 server, parametrised (indirectly) by (server, tls[, app]): one of ``H2_SERVERS``."""
    server_name, tls, app = (*request.param, "fh_app:app")[:3]
    port = free_port()
    mode = h2_mode(server_name, port, certificate if tls else None, app)
    scheme = "https" if tls else "http"
    with running(mode, port, tmp_path / "server.log", scheme=scheme, http2=True) as server:
        yield server


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    from browser import chromium  # playwright only where a test asks for a browser

    with chromium() as b:
        yield b


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    """A fresh browser profile per test, closed after it (pages of old tests do not linger)."""
    ctx = browser.new_context(viewport={"width": 1100, "height": 800})
    yield ctx
    ctx.close()


class ProcessGuard:
    """No process a test started outlives the session, and a session that leaves one fails.

    Each pytest process (xdist's controller and workers alike) marks the environment its tests'
    processes inherit, and starts a :class:`harness.Watchdog` that reaps them if it dies without
    tearing down. At the end of the session, after every fixture's teardown (and, on the
    controller, after xdist has ended its workers), whatever still carries the mark is named in
    the summary and killed, and a run that had passed fails.
    """

    def __init__(self) -> None:
        self.session_id = ""
        self.watchdog: Watchdog | None = None
        self.left_behind: list[str] = []

    @pytest.hookimpl(tryfirst=True)  # before xdist starts its workers (they inherit the mark)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        # The environment is the one channel that reaches every descendant, however it is started.
        if not (is_xdist_worker(session) and SESSION_VAR in os.environ):
            os.environ[SESSION_VAR] = uuid.uuid4().hex
        self.session_id = os.environ[SESSION_VAR]
        os.environ[OWNER_VAR] = str(os.getpid())
        self.watchdog = Watchdog(self.session_id, os.getpid())

    @pytest.hookimpl(hookwrapper=True, trylast=True)  # innermost: after the session's teardown
    def pytest_sessionfinish(self, session: pytest.Session) -> Generator[None, None, None]:
        yield
        worker = is_xdist_worker(session)
        # A worker answers for its own tests; the controller (or a run without xdist) for all.
        left = session_processes(self.session_id, os.getpid() if worker else None)
        self.left_behind += [describe(p) for p in left]
        reap(left)
        if worker:
            workeroutput: dict[str, Any] = session.config.workeroutput  # type: ignore[attr-defined]
            workeroutput["left_behind"] = self.left_behind
        elif self.left_behind and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    @pytest.hookimpl(optionalhook=True)  # an xdist hook: a run with -p no:xdist has none
    def pytest_testnodedown(self, node: Any, error: object) -> None:
        """xdist's controller: what a worker that finished its session found left behind."""
        if error is None:
            self.left_behind += node.workeroutput.get("left_behind", [])

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if self.left_behind:
            terminalreporter.section("processes left behind by the tests (killed now)", sep="!", red=True)
            for line in self.left_behind:
                terminalreporter.line(line, red=True)

    def pytest_unconfigure(self) -> None:
        if self.watchdog is not None:
            self.watchdog.close()


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(ProcessGuard(), "graceful_sse_process_guard")
