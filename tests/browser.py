"""Debian's Chromium driven by playwright, a page that records what a user would notice, and the
servers the browser tests open pages on (the page app, the demo)."""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, Request, Route, sync_playwright

from harness import BIN, RunMode, Server, demo, free_port, running
from tcp_proxy import Listener, Proxy

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
RECONNECT = "#sse-status [data-sse-reconnect]"
# Chromium reports a refused connection itself; that is the network, not the page's scripts.
NETWORK = re.compile("net::ERR_CONNECTION_REFUSED|Failed to load resource")


@contextlib.contextmanager
def chromium() -> Iterator[Browser]:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield browser
        finally:
            browser.close()


@contextlib.contextmanager
def fresh_context(browser: Browser, **options: Any) -> Iterator[BrowserContext]:
    """A fresh browser profile with playwright's ``options``, closed after."""
    context = browser.new_context(**options)
    try:
        yield context
    finally:
        context.close()


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

    def press_reconnect(self) -> None:
        """The user presses the indicator's Reconnect."""
        self.page.click(RECONNECT)

    def problems_except(self, *expected: re.Pattern[str]) -> list[str]:
        """The console problems that match none of the ``expected`` ones (the network's, say)."""
        return [p for p in self.problems if not any(e.search(p) for e in expected)]

    def script_problems(self) -> list[str]:
        """The console problems of the page's scripts: the network's (``NETWORK``) left out."""
        return self.problems_except(NETWORK)

    def requests_during(self, ms: int) -> int:
        """How many stream requests the page makes in the next ``ms`` milliseconds."""
        before = len(self.stream_requests)
        self.page.wait_for_timeout(ms)
        return len(self.stream_requests) - before


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


def live_page(context: BrowserContext, url: str) -> Watched:
    """The page at ``url``, once its indicator shows live."""
    page = open_page(context, url)
    page.wait_state("live")
    return page


def live_tabs(context: BrowserContext, url: str, count: int) -> list[Watched]:
    """``count`` tabs of the page at ``url``, each once its indicator shows live."""
    tabs = [open_page(context, url) for _ in range(count)]
    for tab in tabs:
        tab.wait_state("live")
    return tabs


def attempts_after_stop(page: Watched, port: int, ms: int) -> tuple[int, int]:
    """Take the stopped server's ``port`` for ``ms`` milliseconds: the connections anyone made to
    it, and the stream requests the page made."""
    listener = Listener(port)
    try:
        requests = page.requests_during(ms)
    finally:
        listener.close()
    return listener.connections, requests


# ---- the servers the pages are on -----------------------------------------------------------


def page_app(port: int, htmx: int = 2, **env: str) -> RunMode:
    """tests/apps/page_app.py under uvicorn; ``env``: its PAGE_* settings."""
    cmd = [str(BIN / "uvicorn"), "page_app:app", "--port", str(port)]
    return RunMode("page app", cmd, env={"PAGE_HTMX": str(htmx), **env})


@contextlib.contextmanager
def running_page_app(log: Path, htmx: int = 2, **env: str) -> Iterator[Server]:
    """The page app on a free port, ready."""
    port = free_port()
    with running(page_app(port, htmx, **env), port, log) as server:
        yield server


@contextlib.contextmanager
def running_demo(log: Path) -> Iterator[Server]:
    """The demo (``python -m graceful_sse.demo``) on a free port, ready once its page is."""
    port = free_port()
    with running(demo(port), port, log, ready_path="/") as server:
        yield server


def open_demo(context: BrowserContext, server: Server) -> Watched:
    """The demo's page (its stream is /stream)."""
    return open_page(context, server.url + "/", stream_path="/stream")


@contextlib.contextmanager
def live_demo(
    context: BrowserContext,
    log: Path,
    mode: Callable[[int], RunMode] = demo,
    port: int | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[tuple[Server, Watched]]:
    """The demo run by ``mode`` (FastHTML's ``serve()`` by default) on ``port`` (a free one by
    default), and a page of it once its stream is live."""
    port = port or free_port()
    with running(mode(port), port, log, env=env, ready_path="/") as server:
        page = open_demo(context, server)
        page.wait_state("live")
        yield server, page


def publish(url: str, text: str) -> str:
    """Publish ``text`` to the page app's feed; the event's id."""
    return str(httpx.get(url + "/publish", params={"text": text}).json()["id"])


def stats(url: str) -> dict[str, Any]:
    """The page app's /stats: open streams, the Last-Event-IDs it resumed from, refusals."""
    data: dict[str, Any] = httpx.get(url + "/stats").json()
    return data


@contextlib.contextmanager
def proxied(server: Server) -> Iterator[tuple[Proxy, str]]:
    """A TCP proxy in front of ``server`` (to cut connections), and the page's URL through it."""
    proxy = Proxy(free_port(), server.port)
    try:
        yield proxy, f"http://127.0.0.1:{proxy.listen_port}/"
    finally:
        proxy.close()


# ---- htmx 4 pages (tests/apps/htmx4_app.py) and the CDN FastHTML loads them from ---------------

CDN = "https://cdn.jsdelivr.net/"
CDN_COPIES = Path(__file__).parent / "apps" / "cdn"  # scripts/vendor_assets.py keeps them


def answer_cdn(context: BrowserContext) -> list[str]:
    """Answer the jsdelivr CDN (unreachable here) from ``tests/apps/cdn/``, the files it serves at
    the same paths (htmx.org@4.0.0 for FastHTML's htmx 4), and FastHTML's other default scripts
    (surreal, fasthtml-js, css-scope-inline: not ours to test) with empty ones. The URLs asked for,
    in order."""
    asked: list[str] = []

    def cdn(route: Route) -> None:
        url = route.request.url
        asked.append(url)
        copy = CDN_COPIES / url.removeprefix(CDN).split("?")[0]
        if copy.is_file() and copy.resolve().is_relative_to(CDN_COPIES.resolve()):
            route.fulfill(body=copy.read_bytes(), content_type="text/javascript")
        else:
            route.fulfill(body="", content_type="text/css" if url.endswith(".css") else "text/javascript")

    context.route(CDN + "**", cdn)
    return asked


def htmx4_app(port: int, **env: str) -> RunMode:
    """tests/apps/htmx4_app.py under uvicorn; ``env``: its HTMX4_* settings."""
    cmd = [str(BIN / "uvicorn"), "htmx4_app:app", "--port", str(port)]
    return RunMode("htmx 4 app", cmd, env=env)


@contextlib.contextmanager
def running_htmx4_app(log: Path, **env: str) -> Iterator[Server]:
    """The htmx 4 app on a free port, ready."""
    port = free_port()
    with running(htmx4_app(port, **env), port, log) as server:
        yield server


def publish_both(url: str, text: str) -> str:
    """Publish one event to the htmx 4 app that updates two targets (``hx-partial``); its id."""
    return str(httpx.get(url + "/publish-both", params={"text": text}).json()["id"])
