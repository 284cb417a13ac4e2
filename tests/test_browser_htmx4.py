"""htmx 4 in a real browser (Debian's Chromium): FastHTML's own htmx 4 headers, a hidden tab that
resumes, tabs sharing one connection, one event updating two targets; and the stream URL htmx 2's
EventSource opens.

The pages are tests/apps/htmx4_app.py (``fast_app(htmx4=True, exts="sse4")``, htmx and hx-sse
4.0.0 from the CDN, answered from tests/apps/cdn/) and, with HTMX4_FASTHTML=0, the same page on
our vendored htmx 4 with its own defaults.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import BrowserContext, Page

from browser import (
    Watched,
    answer_cdn,
    attempts_after_stop,
    live_page,
    live_tabs,
    publish,
    publish_both,
    running_htmx4_app,
    running_page_app,
    stats,
)
from harness import Server

pytestmark = [pytest.mark.browser, pytest.mark.servers]


@pytest.fixture(params=["1", "0"], ids=["FastHTML htmx4=True (4.0.0, CDN)", "SSEScripts(htmx=4) (vendored)"])
def fasthtml(request: pytest.FixtureRequest) -> str:
    """Whose htmx 4 the page loads: FastHTML's headers' (HTMX4_FASTHTML=1) or our vendored one."""
    return str(request.param)


@pytest.fixture
def cdn(context: BrowserContext) -> list[str]:
    """The CDN answered from tests/apps/cdn/: the URLs the pages asked it for."""
    return answer_cdn(context)


@pytest.fixture
def start_app(cdn: list[str], tmp_path: Path, fasthtml: str) -> Iterator[Callable[..., Server]]:
    """Starts the htmx 4 app with the test's htmx (``env``: its other HTMX4_* settings); it is
    stopped after the test."""
    with contextlib.ExitStack() as started:

        def start(**env: str) -> Server:
            app = running_htmx4_app(tmp_path / "server.log", HTMX4_FASTHTML=fasthtml, **env)
            return started.enter_context(app)

        yield start


@pytest.fixture
def server(start_app: Callable[..., Server]) -> Server:
    """The htmx 4 app, each tab with its own connection."""
    return start_app()


@pytest.fixture
def page(context: BrowserContext, server: Server) -> Watched:
    """A page of ``server``, live."""
    return live_page(context, server.url + "/")


def set_hidden(page: Page, hidden: bool) -> None:
    """The tab goes to the background (or comes back): what the page sees of it, and the event."""
    page.evaluate(
        """hidden => {
            if (hidden) {
                Object.defineProperty(document, "visibilityState", {configurable: true, get: () => "hidden"});
                Object.defineProperty(document, "hidden", {configurable: true, get: () => true});
            } else {
                delete document.visibilityState;
                delete document.hidden;
            }
            document.dispatchEvent(new Event("visibilitychange"));
        }""",
        hidden,
    )


def wait_streams(url: str, page: Watched, count: int, timeout_ms: int = 10_000) -> None:
    """Until the server has ``count`` streams open (polled from the page's side, no sleeps here)."""
    for _ in range(timeout_ms // 100):
        if stats(url)["streams"] == count:
            return
        page.page.wait_for_timeout(100)
    raise AssertionError(f"the server has {stats(url)['streams']} streams open, not {count}")


def test_htmx4_page_goes_live_streams_and_ctrl_c_says_stopped_for_good(
    server: Server, page: Watched, cdn: list[str], fasthtml: str
) -> None:
    version = page.page.evaluate("htmx.version")
    if fasthtml == "1":
        assert version == "4.0.0"
        assert "https://cdn.jsdelivr.net/npm/htmx.org@4.0.0/dist/ext/hx-sse.min.js" in cdn
        assert page.page.locator("[hx-sse-connect]").count() == 1, "FastHTML's metaCharacter '-'"
        assert "/_sse/vendor/" not in page.page.content(), "htmx and hx-sse are FastHTML's alone"
    else:
        assert version == "4.0.1"
    publish(server.url, "first")
    publish(server.url, "second")
    page.wait_feed("second")
    assert page.feed() == ["first", "second"]
    server.sigint_group()
    page.wait_state("stopped", timeout=5)
    assert page.page.inner_text("#sse-status").startswith("Server stopped")
    server.wait_exit(10)
    assert attempts_after_stop(page, server.port, 5000) == (0, 0), "no reconnection after a stop"
    assert page.feed() == ["first", "second"]
    assert page.problems == []


def test_a_hidden_tab_closes_its_stream_and_resumes_without_losing_events(
    server: Server, page: Watched
) -> None:
    seen = publish(server.url, "before")
    page.wait_feed("before")
    set_hidden(page.page, True)
    wait_streams(server.url, page, 0)  # hx-sse's pauseOnBackground really closed it
    for n in range(1, 6):
        publish(server.url, f"hidden {n}")
    set_hidden(page.page, False)
    page.wait_feed("hidden 5")
    publish(server.url, "after")
    page.wait_feed("after")
    assert page.feed() == ["before", *(f"hidden {n}" for n in range(1, 6)), "after"], "once, in order"
    assert stats(server.url)["resumed_from"] == [seen], "it came back with Last-Event-ID"
    assert page.status() == "live"
    assert page.problems == []


def test_htmx4_tabs_share_one_connection_even_hidden_a_new_leader_takes_over_and_a_stop_stops_it(
    context: BrowserContext, start_app: Callable[..., Server]
) -> None:
    server = start_app(HTMX4_SHARED="1")
    tabs = live_tabs(context, server.url + "/", 2)
    assert stats(server.url)["streams"] == 1
    publish(server.url, "to both")
    for tab in tabs:
        tab.wait_feed("to both")
    leader, follower = tabs if tabs[0].stream_requests else tabs[::-1]
    assert follower.stream_requests == [], "the follower opens no connection of its own"
    set_hidden(leader.page, True)  # hx-sse would pause it: the others depend on it
    publish(server.url, "leader hidden")
    follower.wait_feed("leader hidden")
    assert stats(server.url)["streams"] == 1
    leader.page.close()
    publish(server.url, "during the hand-over")
    follower.wait_feed("during the hand-over", timeout=10)
    publish(server.url, "after the hand-over")
    follower.wait_feed("after the hand-over")
    assert follower.feed() == ["to both", "leader hidden", "during the hand-over", "after the hand-over"]
    assert stats(server.url)["streams"] == 1
    assert len(follower.stream_requests) == 1, "the new leader opened the one connection"
    assert follower.status() == "live"
    server.sigint_group()
    follower.wait_state("stopped", timeout=5)
    server.wait_exit(10)
    assert attempts_after_stop(follower, server.port, 3000) == (0, 0), "hx-sse does not fetch by itself"
    assert follower.problems == []


def test_one_event_updates_two_targets_with_hx_partial(server: Server, page: Watched) -> None:
    publish_both(server.url, "p1")
    page.wait_feed("p1")
    assert page.page.inner_text("#latest") == "p1"
    publish_both(server.url, "p2")
    page.wait_feed("p2")
    assert page.feed() == ["p1", "p2"]
    assert page.page.inner_text("#latest") == "p2"
    assert page.page.locator("template, hx-partial").count() == 0, "no partial left in the page"
    assert page.status() == "live"
    assert page.problems == []


def test_htmx2s_event_source_asks_for_status_fragments_with_htmx_1(
    context: BrowserContext, tmp_path: Path
) -> None:
    """htmx 2's EventSource cannot send htmx 4's HX-Request header: the monitor's URLs carry
    ?htmx=1, beside the URL's own query and the lastEventId it resumes from."""
    with running_page_app(tmp_path / "first.log") as first:
        page = live_page(context, first.url + "/")
        publish(first.url, "m1")
        page.wait_feed("m1")
        assert parse_qs(urlsplit(page.stream_requests[0]).query) == {"htmx": ["1"]}
        page.page.evaluate("new gracefulSSE.EventSource('/feed?topic=a&x=1', {htmx: true})")
        page.page.wait_for_function("() => gracefulSSE.streams().every(s => s.state === 'live')")
        assert parse_qs(urlsplit(page.stream_requests[-1]).query) == {
            "topic": ["a"],
            "x": ["1"],
            "htmx": ["1"],
        }
        seen = publish(first.url, "m2")  # both streams have it
        page.wait_feed("m2")
        page.page.wait_for_timeout(200)
    # SIGKILL: no farewell. The browser's own retry (same URL, Last-Event-ID header) fails on the
    # closed port; then the monitor's own attempts, which carry the id in the URL.
    page.wait_state("reconnecting", timeout=10)

    def resumed() -> list[dict[str, list[str]]]:
        return [parse_qs(urlsplit(url).query) for url in page.stream_requests if "lastEventId=" in url]

    wanted = [
        {"htmx": ["1"], "lastEventId": [seen]},
        {"topic": ["a"], "x": ["1"], "htmx": ["1"], "lastEventId": [seen]},
    ]
    for _ in range(200):
        if all(w in resumed() for w in wanted):
            break
        page.page.wait_for_timeout(100)
    assert [w for w in wanted if w not in resumed()] == [], resumed()
    assert page.script_problems() == []
