"""Fixtures shared by the browser tests: one Chromium per module, a fresh profile per test."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext


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
