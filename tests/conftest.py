"""Fixtures shared by the tests: the async runner, signal handlers, Redis, Chromium."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

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
