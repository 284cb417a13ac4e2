"""Debian's Chromium driven by playwright, and a page that records what a user would notice."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, Request, sync_playwright

CHROMIUM = "/usr/bin/chromium"
# Without the background-networking flags Chromium keeps calling home, which this machine refuses.
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).parent.parent / "docs" / "screenshots"


@contextlib.contextmanager
def chromium() -> Iterator[Browser]:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class Watched:
    """A page with its console problems, its stream requests and its indicator's states."""

    page: Page
    problems: list[str] = field(default_factory=list)
    stream_requests: list[str] = field(default_factory=list)
    states: list[str] = field(default_factory=list)

    def status(self) -> str:
        return self.page.get_attribute("#sse-status", "data-state") or ""

    def wait_state(self, state: str, timeout: float = 10.0) -> float:
        """Seconds until the indicator shows ``state``."""
        start = time.monotonic()
        self.page.wait_for_selector(f'#sse-status[data-state="{state}"]', timeout=timeout * 1000)
        return time.monotonic() - start

    def feed(self) -> list[str]:
        return self.page.locator("#feed li").all_inner_texts()

    def wait_feed(self, text: str, timeout: float = 10.0) -> None:
        self.page.locator("#feed li", has_text=text).first.wait_for(timeout=timeout * 1000)

    def screenshot_status(self, name: str) -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.page.locator("#sse-status").screenshot(path=str(SCREENSHOTS / f"status-{name}.png"))


def open_page(context: BrowserContext, url: str, stream_path: str = "/feed") -> Watched:
    page = context.new_page()
    watched = Watched(page)

    def on_console(message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            watched.problems.append(f"{message.type}: {message.text}")

    def on_request(request: Request) -> None:
        if stream_path in request.url:
            watched.stream_requests.append(request.url)

    page.on("console", on_console)
    page.on("pageerror", lambda exc: watched.problems.append(f"pageerror: {exc}"))
    page.on("request", on_request)
    page.expose_function("gracefulSseNoteState", lambda state: watched.states.append(state))
    page.add_init_script(
        "document.addEventListener('sse:state', e => window.gracefulSseNoteState(e.detail.state))"
    )
    page.goto(url)
    return watched
