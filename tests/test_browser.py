"""What a user sees in a real browser (Debian's Chromium): live pages, stops, restarts, drops.

Each test starts real servers in subprocesses and drives headless Chromium with playwright.
The indicator's screenshots land in docs/screenshots/ (the README shows them).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, Route

import graceful_sse

from browser import (
    attempts_after_stop,
    live_page,
    live_tabs,
    open_page,
    page_app,
    proxied,
    publish,
    running_page_app,
    stats,
)
from harness import APPS, RunMode, Server, free_port, running

pytestmark = [pytest.mark.browser, pytest.mark.servers]


def test_sigterm_says_restarting_then_live_and_later_messages_arrive(
    context: BrowserContext, tmp_path: Path
) -> None:
    port = free_port()
    with running(page_app(port), port, tmp_path / "first.log") as first:
        page = live_page(context, first.url + "/")
        publish(first.url, "before the restart")
        page.wait_feed("before the restart")
        first.sigterm_main()  # a rolling deploy: SIGTERM means restart
        page.wait_state("restarting", timeout=5)
        page.screenshot_status("restarting")
        first.wait_exit(10)
    with running(page_app(port), port, tmp_path / "second.log") as second:
        page.wait_state("live", timeout=20)
        publish(second.url, "after the restart")
        page.wait_feed("after the restart")
    assert page.states[-2:] == ["restarting", "live"] or page.states[-3:] == [
        "restarting",
        "reconnecting",
        "live",
    ]
    assert page.feed() == ["before the restart", "after the restart"]
    assert page.script_problems() == []


def test_a_code_change_under_serve_reload_restarts_the_page_back_to_live(
    context: BrowserContext, tmp_path: Path
) -> None:
    app_file = tmp_path / "page_app.py"
    shutil.copy(APPS / "page_app.py", app_file)
    port = free_port()
    mode = RunMode("serve()", [sys.executable, str(app_file)], env={"PORT": str(port)})
    server = Server(mode, port, tmp_path / "server.log", cwd=tmp_path)  # serve() watches its cwd
    try:
        server.wait_ready()
        page = live_page(context, server.url + "/")
        app_file.write_text(app_file.read_text() + "\n# a change\n")
        page.wait_state("restarting", timeout=10)
        page.wait_state("live", timeout=20)
        publish(server.url, "after the reload")
        page.wait_feed("after the reload")
        assert "Reloading" in server.log
        assert page.script_problems() == []
    finally:
        server.kill()


def test_a_dropped_connection_resumes_with_last_event_id_and_loses_nothing(
    context: BrowserContext, tmp_path: Path
) -> None:
    with running_page_app(tmp_path / "server.log") as server:
        with proxied(server) as (proxy, url):
            page = live_page(context, url)
            publish(server.url, "m1")
            last = publish(server.url, "m2")
            page.wait_feed("m2")
            proxy.cut()  # the server stays up; the connection is gone
            page.wait_state("reconnecting", timeout=5)
            page.screenshot_status("reconnecting")
            publish(server.url, "m3")
            publish(server.url, "m4")
            page.wait_feed("m4", timeout=15)
            publish(server.url, "m5")
            page.wait_feed("m5")
        assert page.feed() == ["m1", "m2", "m3", "m4", "m5"], "each missed message exactly once"
        assert stats(server.url)["resumed_from"] == [last], "the browser sent Last-Event-ID"
        assert page.script_problems() == []


def test_after_max_attempts_it_gives_up_and_reconnect_brings_it_back(
    context: BrowserContext, tmp_path: Path
) -> None:
    port = free_port()
    mode = page_app(port, PAGE_MAX_ATTEMPTS="2")
    with running(mode, port, tmp_path / "first.log") as first:
        page = live_page(context, first.url + "/")
    # running() ends with SIGKILL: no farewell, the connection just breaks
    page.wait_state("given-up", timeout=20)
    page.screenshot_status("given-up")
    assert "reconnecting" in page.states
    assert page.requests_during(3000) == 0, "given up means no more attempts"
    with running(mode, port, tmp_path / "second.log") as second:
        page.press_reconnect()
        page.wait_state("live", timeout=10)
        publish(second.url, "back")
        page.wait_feed("back")


def test_stopped_then_reconnect_after_the_server_is_back(context: BrowserContext, tmp_path: Path) -> None:
    port = free_port()
    with running(page_app(port), port, tmp_path / "first.log") as first:
        page = live_page(context, first.url + "/")
        first.sigint_group()
        page.wait_state("stopped", timeout=2)
        first.wait_exit(10)
    with running(page_app(port), port, tmp_path / "second.log") as second:
        page.page.wait_for_timeout(1000)
        assert page.status() == "stopped", "nothing reconnects by itself after a stop"
        page.press_reconnect()
        page.wait_state("live", timeout=10)
        publish(second.url, "hello again")
        page.wait_feed("hello again")
        assert page.problems == []


@pytest.mark.parametrize(
    "htmx,monitor",
    [(2, "0"), (4, "1"), (4, "0")],
    ids=["htmx2 without script", "htmx4", "htmx4 without script"],
)
def test_the_stop_path_without_our_script_and_with_htmx4(
    context: BrowserContext, tmp_path: Path, htmx: int, monitor: str
) -> None:
    with running_page_app(tmp_path / "server.log", htmx, PAGE_MONITOR=monitor) as server:
        page = live_page(context, server.url + "/")
        publish(server.url, "live message")
        page.wait_feed("live message")
        server.sigint_group()
        page.wait_state("stopped", timeout=5)
        server.wait_exit(10)
        assert attempts_after_stop(page, server.port, 5000) == (0, 0)
        assert page.feed() == ["live message"]
        assert page.problems == []


def test_tabs_share_one_connection_and_a_new_leader_takes_over(
    context: BrowserContext, tmp_path: Path
) -> None:
    with running_page_app(tmp_path / "server.log", PAGE_SHARED="1") as server:
        tabs = live_tabs(context, server.url + "/", 3)
        assert stats(server.url)["streams"] == 1
        publish(server.url, "to all")
        for tab in tabs:
            tab.wait_feed("to all")
        leader = next(t for t in tabs if t.stream_requests)
        leader.page.close()
        rest = [t for t in tabs if t is not leader]
        publish(server.url, "during the hand-over")
        for tab in rest:
            tab.wait_feed("during the hand-over", timeout=10)
        publish(server.url, "after the hand-over")
        for tab in rest:
            tab.wait_feed("after the hand-over")
            assert tab.feed() == ["to all", "during the hand-over", "after the hand-over"]
            assert tab.problems == []
        assert stats(server.url)["streams"] == 1
        assert sum(1 for t in rest if t.stream_requests) == 1


def test_offline_pauses_and_online_resumes(context: BrowserContext, tmp_path: Path) -> None:
    with running_page_app(tmp_path / "server.log") as server:
        page = live_page(context, server.url + "/")
        context.set_offline(True)
        page.wait_state("offline", timeout=5)
        page.screenshot_status("offline")
        publish(server.url, "while offline")
        context.set_offline(False)
        page.wait_state("live", timeout=10)
        page.wait_feed("while offline")
        assert page.script_problems() == []


def test_connecting_state_screenshot(context: BrowserContext, tmp_path: Path) -> None:
    """The indicator as the page first renders it, before the stream opens."""
    with running_page_app(tmp_path / "server.log") as server:
        context.route("**/feed*", lambda route: None)  # hold the stream request
        page = open_page(context, server.url + "/")
        page.page.wait_for_selector('#sse-status[data-state="connecting"]')
        page.screenshot_status("connecting")


def test_it_works_beside_fasthtmls_default_headers(context: BrowserContext, tmp_path: Path) -> None:
    """``fast_app()`` as FastHTML users write it loads htmx from a CDN; SSEScripts(include_htmx=False)
    adds only the extension and the monitor. The CDN is answered locally (this machine is offline):
    htmx with the vendored build, FastHTML's other default scripts and styles with empty files."""
    htmx = (Path(graceful_sse.__file__).parent / "static/vendor/htmx-2/htmx.min.js").read_text()

    def cdn(route: Route) -> None:
        if "htmx.org" in route.request.url:
            route.fulfill(body=htmx, content_type="text/javascript")
        else:
            route.fulfill(
                body="", content_type="text/css" if route.request.url.endswith(".css") else "text/javascript"
            )

    context.route("https://cdn.jsdelivr.net/**", cdn)
    with running_page_app(tmp_path / "server.log", PAGE_DEFAULT_HDRS="1") as server:
        page = open_page(context, server.url + "/")
        assert "cdn.jsdelivr.net/npm/htmx.org" in page.page.content()
        page.wait_state("live")
        publish(server.url, "beside the defaults")
        page.wait_feed("beside the defaults")
        server.sigint_group()
        page.wait_state("stopped", timeout=5)
        assert page.problems == []
