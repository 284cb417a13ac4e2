"""What a user sees when the server will not open a stream: full (503) and not allowed (403).

An EventSource cannot read a status code; the monitor asks once with HEAD. Real servers in
subprocesses, headless Debian Chromium through playwright.
"""

from __future__ import annotations

import itertools
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import BrowserContext, Page, Request

from browser import Watched, open_page
from harness import BIN, RunMode, free_port, running

pytestmark = [pytest.mark.browser, pytest.mark.servers]

# Chromium notes every answer with an error status on the console itself ("Failed to load
# resource: the server responded with a status of 503"): that is the server's answer, not the
# page's scripts. Anything else on the console is a problem.
REFUSED = re.compile(r"^error: Failed to load resource: the server responded with a status of (403|503) ")


def page_app(port: int, **env: str) -> RunMode:
    return RunMode("page app", [str(BIN / "uvicorn"), "page_app:app", "--port", str(port)], env=env)


@dataclass
class FeedRequests:
    """The page's requests to its stream, with their method and when they were made."""

    seen: list[tuple[str, float]] = field(default_factory=list)

    def __call__(self, request: Request) -> None:
        if "/feed" in request.url:
            self.seen.append((request.method, time.monotonic()))

    def times(self, method: str) -> list[float]:
        return [t for m, t in self.seen if m == method]


def watch(context: BrowserContext, url: str) -> tuple[Watched, FeedRequests]:
    requests = FeedRequests()

    def follow(page: Page) -> None:
        page.on("request", requests)

    context.on("page", follow)  # before the page loads, so its first request is seen
    try:
        return open_page(context, url), requests
    finally:
        context.remove_listener("page", follow)


def script_problems(page: Watched) -> list[str]:
    return [p for p in page.problems if not REFUSED.match(p)]


def test_a_full_server_makes_the_page_wait_at_least_retry_after_then_it_gets_in(
    context: BrowserContext, tmp_path: Path
) -> None:
    port = free_port()
    mode = page_app(port, PAGE_MAX_STREAMS="1", PAGE_RETRY_AFTER="2")
    with running(mode, port, tmp_path / "server.log") as server:
        first = open_page(context, server.url + "/")
        first.wait_state("live")
        second, requests = watch(context, server.url + "/")
        second.wait_state("reconnecting")
        second.page.wait_for_timeout(5000)
        gets = requests.times("GET")
        assert len(requests.times("HEAD")) >= 1, "the monitor asked why"
        assert len(gets) >= 2, requests.seen
        gaps = [b - a for a, b in itertools.pairwise(gets)]
        assert min(gaps) >= 2.0, f"a retry came before Retry-After: {gaps}"
        assert second.status() == "reconnecting"
        assert httpx.get(server.url + "/stats").json()["refused"] >= 2
        first.page.close()  # its place frees up
        second.wait_state("live", timeout=20)
        assert "stopped" not in second.states and "given-up" not in second.states
        httpx.get(server.url + "/publish", params={"text": "in at last"})
        second.wait_feed("in at last")
        assert script_problems(second) == [] and first.problems == []


def test_a_refused_topic_stops_the_page_with_the_reason_until_reconnect(
    context: BrowserContext, tmp_path: Path
) -> None:
    port = free_port()
    with running(page_app(port, PAGE_MEMBERS_ONLY="1"), port, tmp_path / "server.log") as server:
        page, requests = watch(context, server.url + "/")
        page.wait_state("stopped")
        indicator = page.page.locator("#sse-status")
        assert indicator.get_attribute("data-reason") == "forbidden"
        assert indicator.locator(".sse-label").inner_text() == "Not allowed"
        assert indicator.locator("[data-sse-reconnect]").count() == 1
        page.screenshot_status("not-allowed")
        count = len(requests.seen)
        assert [m for m, _ in requests.seen] == ["GET", "HEAD"]
        page.page.wait_for_timeout(5000)
        assert len(requests.seen) == count, "nothing more until the user asks"
        context.add_cookies([{"name": "member", "value": "yes", "url": server.url}])
        page.page.click("#sse-status [data-sse-reconnect]")
        page.wait_state("live", timeout=10)
        assert indicator.get_attribute("data-reason") is None
        httpx.get(server.url + "/publish", params={"text": "welcome"})
        page.wait_feed("welcome")
        assert script_problems(page) == []
