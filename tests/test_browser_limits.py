"""What a user sees when the server will not open a stream: full (503) and not allowed (403).

Both when the page first opens the stream and when it comes back after a dropped connection, with
htmx 2 (an EventSource cannot read a status code: the monitor asks once with HEAD) and htmx 4
(hx-sse streams with fetch and reconnects by itself: the monitor takes over those two answers),
and for tabs that share one stream. Real servers in subprocesses, headless Debian Chromium.
"""

from __future__ import annotations

import itertools
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, Page, Request, Route

from browser import Watched, open_page, proxied, publish, running_page_app, stats

pytestmark = [pytest.mark.browser, pytest.mark.servers]

HTMX = pytest.mark.parametrize("htmx", [2, 4], ids=["htmx2", "htmx4"])

# Chromium notes every answer with an error status on the console itself ("Failed to load
# resource: the server responded with a status of 503"): that is the server's answer, not the
# page's scripts. Anything else on the console is a problem.
REFUSED = re.compile(r"^error: Failed to load resource: the server responded with a status of (403|503) ")
NETWORK = re.compile(r"^error: Failed to load resource: net::ERR_")
# htmx 4 logs every event whose detail carries an error, hx-sse's network errors and refusals too.
HTMX4_LOG = re.compile(r"^error: htmx: htmx:sse:error: ")


@dataclass
class FeedRequests:
    """The page's requests to its stream, with their method and when they were made."""

    seen: list[tuple[str, float]] = field(default_factory=list)

    def __call__(self, request: Request) -> None:
        if "/feed" in request.url:
            self.seen.append((request.method, time.monotonic()))

    def times(self, method: str) -> list[float]:
        return [t for m, t in self.seen if m == method]

    def methods(self) -> list[str]:
        return [m for m, _ in self.seen]


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
    return page.problems_except(REFUSED, NETWORK, HTMX4_LOG)


def assert_feed_holds_only_messages(page: Watched) -> None:
    """No refusal's body ("Too many open streams", "Not allowed") was swapped into the page."""
    assert page.page.inner_text("#feed").split() == " ".join(page.feed()).split()


def assert_not_allowed(page: Watched) -> None:
    indicator = page.page.locator("#sse-status")
    assert indicator.get_attribute("data-reason") == "forbidden"
    assert indicator.locator(".sse-label").inner_text() == "Not allowed"
    assert indicator.locator("[data-sse-reconnect]").count() == 1
    assert_feed_holds_only_messages(page)


@HTMX
def test_a_full_server_makes_the_page_wait_at_least_retry_after_then_it_gets_in(
    context: BrowserContext, tmp_path: Path, htmx: int
) -> None:
    with running_page_app(
        tmp_path / "server.log", htmx, PAGE_MAX_STREAMS="1", PAGE_RETRY_AFTER="2"
    ) as server:
        first = open_page(context, server.url + "/")
        first.wait_state("live")
        second, requests = watch(context, server.url + "/")
        second.wait_state("reconnecting")
        second.page.wait_for_timeout(5000)
        gets = requests.times("GET")
        if htmx == 2:
            assert len(requests.times("HEAD")) >= 1, "the monitor asked why"
        assert len(gets) >= 2, requests.seen
        gaps = [b - a for a, b in itertools.pairwise(gets)]
        assert min(gaps) >= 2.0, f"a retry came before Retry-After: {gaps}"
        assert second.status() == "reconnecting"
        assert stats(server.url)["refused"] >= 2
        first.page.close()  # its place frees up
        second.wait_state("live", timeout=20)
        assert "stopped" not in second.states and "given-up" not in second.states
        publish(server.url, "in at last")
        second.wait_feed("in at last")
        assert second.feed() == ["in at last"]
        assert_feed_holds_only_messages(second)
        assert script_problems(second) == [] and first.problems == []


@HTMX
def test_a_refused_topic_stops_the_page_with_the_reason_until_reconnect(
    context: BrowserContext, tmp_path: Path, htmx: int
) -> None:
    with running_page_app(tmp_path / "server.log", htmx, PAGE_MEMBERS_ONLY="1") as server:
        page, requests = watch(context, server.url + "/")
        page.wait_state("stopped")
        assert_not_allowed(page)
        if htmx == 2:
            page.screenshot_status("not-allowed")
        # htmx 4 reads the status from its own request; an EventSource needs one HEAD to learn it
        assert requests.methods() == (["GET", "HEAD"] if htmx == 2 else ["GET"])
        assert page.requests_during(5000) == 0, "nothing more until the user asks"
        context.add_cookies([{"name": "member", "value": "yes", "url": server.url}])
        page.press_reconnect()
        page.wait_state("live", timeout=10)
        assert page.page.locator("#sse-status").get_attribute("data-reason") is None
        publish(server.url, "welcome")
        page.wait_feed("welcome")
        assert script_problems(page) == []


@HTMX
def test_a_reconnection_refused_with_403_stops_and_asks_nothing_more(
    context: BrowserContext, tmp_path: Path, htmx: int
) -> None:
    with (
        running_page_app(tmp_path / "server.log", htmx, PAGE_MEMBERS_ONLY="1") as server,
        proxied(server) as (proxy, url),
    ):
        context.add_cookies([{"name": "member", "value": "yes", "url": url}])
        page = open_page(context, url)
        page.wait_state("live")
        publish(server.url, "before")
        page.wait_feed("before")
        context.clear_cookies()  # membership ends while the stream is open
        proxy.cut()
        page.wait_state("stopped", timeout=15)
        assert_not_allowed(page)
        assert page.requests_during(5000) == 0, "nothing more until the user asks"
        assert page.feed() == ["before"]
        assert script_problems(page) == []


@HTMX
def test_a_reconnection_refused_with_503_waits_retry_after_and_resumes_where_it_was(
    context: BrowserContext, tmp_path: Path, htmx: int
) -> None:
    """A load balancer (here: the browser's own request routing) answers 503 for a while."""
    with running_page_app(tmp_path / "server.log", htmx) as server, proxied(server) as (proxy, url):
        page, requests = watch(context, url)
        page.wait_state("live")
        publish(server.url, "m1")
        page.wait_feed("m1")

        def busy(route: Route) -> None:
            route.fulfill(status=503, headers={"Retry-After": "2"}, body="Service busy")

        context.route("**/feed*", busy)
        proxy.cut()
        page.wait_state("reconnecting", timeout=10)
        publish(server.url, "m2")  # missed while refused
        deadline = time.monotonic() + 30
        while len(refused := requests.times("GET")[1:]) < 3 and time.monotonic() < deadline:
            page.page.wait_for_timeout(250)
        assert len(refused) >= 3, requests.seen
        gaps = [b - a for a, b in itertools.pairwise(refused)]
        assert min(gaps) >= 2.0, f"a retry came before Retry-After: {gaps}"
        assert page.status() == "reconnecting"
        context.unroute("**/feed*", busy)
        page.wait_state("live", timeout=20)
        publish(server.url, "m3")
        page.wait_feed("m3")
        assert page.feed() == ["m1", "m2", "m3"], "resumed where it was: each message once"
        assert page.page.locator("#sse-status").get_attribute("data-reason") is None
        assert_feed_holds_only_messages(page)
        assert script_problems(page) == []


def test_tabs_sharing_a_stream_all_say_not_allowed_and_reconnect_together(
    context: BrowserContext, tmp_path: Path
) -> None:
    with running_page_app(tmp_path / "server.log", 2, PAGE_MEMBERS_ONLY="1", PAGE_SHARED="1") as server:
        tabs = [open_page(context, server.url + "/") for _ in range(2)]
        for tab in tabs:
            tab.wait_state("stopped")
            assert_not_allowed(tab)
        context.add_cookies([{"name": "member", "value": "yes", "url": server.url}])
        follower = next(t for t in tabs if not t.stream_requests)
        follower.press_reconnect()
        for tab in tabs:
            tab.wait_state("live", timeout=10)
        assert stats(server.url)["streams"] == 1
        publish(server.url, "welcome both")
        for tab in tabs:
            tab.wait_feed("welcome both")
            assert script_problems(tab) == []
