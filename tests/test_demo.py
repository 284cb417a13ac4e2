"""The demo as a visitor meets it in Chromium: live stats and messages, a stop that looks
stopped, a restart that comes back, any text sent as a message, and a clean console throughout.

Each test runs the demo in a subprocess (``python -m graceful_sse.demo``, FastHTML's ``serve()``,
unless it needs a plain uvicorn to restart) and stops it with real signals.
"""

from __future__ import annotations

import contextlib
import functools
import queue
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from playwright.sync_api import BrowserContext, ConsoleMessage, Page, Request, Response, Route, expect

from graceful_sse import encode
from graceful_sse.demo import message_item, message_text, read_event

from browser import SCREENSHOTS, Watched, attempts_after_stop, live_demo, open_demo, running_demo
from harness import RunMode, Server, free_port, running
from redis_server import RedisServer
from sse_parser import SSEParser

pytestmark = [pytest.mark.browser, pytest.mark.servers]

STALE = "#server-card[data-stale]"
NOTE = "#send-note"
SEND = "#send button[name=send]"
REFUSED = "net::ERR_CONNECTION_REFUSED"
# The page closes its stream itself on `shutdown` (sse-close); when that beats the body's last
# bytes, Chromium lists the request as aborted (a network entry; no console line).
CLOSED = "net::ERR_ABORTED"
UNAVAILABLE = (
    "Messages are unavailable for a moment; try again.",
    "The message may have been sent; sending it again will not repeat it.",
)
# What HTML can hold of a posted text: trimmed (the demo's rule), NUL shown as U+FFFD.
SEPARATORS = ["\u2028", "\u2029", "\x85", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x1f", "\r", "\r\n", "\n"]


@dataclass
class Devtools:
    """What a developer would see in the browser's devtools: every console message (of any
    kind), uncaught errors, failed requests and error responses, of every page of a context."""

    lines: list[str] = field(default_factory=list)

    def besides(self, *reports: tuple[str, str]) -> list[str]:
        """The lines other than the browser's own reports (path, network error) given: the
        failed request, and the console line Chromium writes for some."""
        return [line for line in self.lines if not any(p in line and e in line for p, e in reports)]

    def watch(self, context: BrowserContext) -> None:
        def on_console(message: ConsoleMessage) -> None:
            where = message.location.get("url", "")
            self.lines.append(f"console {message.type}: {message.text} ({where})")

        def on_response(response: Response) -> None:
            if response.status >= 400:
                self.lines.append(f"HTTP {response.status}: {response.request.method} {response.url}")

        def on_failed(request: Request) -> None:
            self.lines.append(f"failed: {request.method} {request.url} ({request.failure})")

        context.on("console", on_console)
        context.on("weberror", lambda error: self.lines.append(f"uncaught: {error.error}"))
        context.on("response", on_response)
        context.on("requestfailed", on_failed)


@pytest.fixture
def devtools(context: BrowserContext) -> Devtools:
    tools = Devtools()
    tools.watch(context)
    return tools


def stale(page: Page) -> bool:
    """Whether the stats are shown as stale: marked, dimmed, and the badge says so."""
    marked = page.locator(STALE).count() == 1
    # One evaluation: the stats are swapped every second, and a replaced element has no style.
    opacity = page.evaluate("() => getComputedStyle(document.querySelector('#stats .stats')).opacity")
    dimmed = float(opacity) < 1
    badge = page.locator("#server-card .stale-badge").is_visible()
    assert marked == dimmed == badge, (marked, dimmed, badge)
    return marked


def clients_shown(page: Page) -> str:
    return page.locator("#stats .stats > div", has_text="Connected clients").locator(".v").inner_text()


def send(page: Watched, text: str) -> None:
    page.page.fill("input[name=text]", text)
    page.page.click(SEND)


def test_the_demo_streams_live_stats_and_messages_posted_from_another_page(
    context: BrowserContext, devtools: Devtools, tmp_path: Path
) -> None:
    with running_demo(tmp_path / "server.log") as server:
        a = open_demo(context, server)
        b = open_demo(context, server)
        a.wait_state("live")
        b.wait_state("live")
        a.screenshot_status("live")
        before = a.page.inner_text("#stats")
        a.page.wait_for_function(
            "t => document.querySelector('#stats').innerText !== t", arg=before, timeout=5000
        )
        a.page.wait_for_function(
            "() => [...document.querySelectorAll('#stats .stats > div')]"
            ".find(d => d.innerText.includes('clients')).querySelector('.v').innerText === '2'",
            timeout=5000,
        )
        assert not stale(a.page) and a.page.locator(NOTE).is_hidden()
        b.page.close()  # a page leaving is counted at once too
        expect(
            a.page.locator("#stats .stats > div", has_text="Connected clients").locator(".v")
        ).to_have_text("1", timeout=5000)
        b = open_demo(context, server)
        b.wait_state("live")
        icon = httpx.get(server.url + "/favicon.ico")  # asked for by pages that name no icon
        assert icon.status_code == 200 and icon.headers["content-type"] == "image/svg+xml"

        send(b, "Hello from B <b>not bold</b>")
        a.page.locator("#messages li", has_text="Hello from B <b>not bold</b>").wait_for(timeout=5000)
        assert a.page.locator("#messages b").count() == 0, "user text is escaped"
        expect(b.page.locator("input[name=text]")).to_have_value("")  # cleared after a success
        send(b, "a second message")  # the form has a fresh key after a success
        a.page.locator("#messages li", has_text="a second message").wait_for(timeout=5000)
        a.page.screenshot(path=str(SCREENSHOTS / "demo.png"))
        assert devtools.lines == [], "the console stays clean through load and use"


def test_ctrl_c_shows_the_demo_stopped_with_stale_stats_and_a_disabled_form(
    context: BrowserContext, devtools: Devtools, tmp_path: Path
) -> None:
    with live_demo(context, tmp_path / "server.log") as (server, page):
        send(page, "sent before the stop")
        page.page.locator("#messages li", has_text="sent before the stop").wait_for(timeout=5000)
        assert not stale(page.page)

        server.sigint_group()
        assert page.wait_state("stopped", timeout=2.0) < 2.0
        page.screenshot_status("stopped")
        server.wait_exit(10)
        assert stale(page.page)
        assert page.page.is_disabled("input[name=text]") and page.page.is_disabled(SEND)
        assert page.page.inner_text(NOTE) == "The server has stopped; reload the page when it is back."
        assert clients_shown(page.page) == "1", "the page counts itself, even before the first tick"
        page.page.screenshot(path=str(SCREENSHOTS / "demo-stopped.png"))

        # Sending cannot happen: not by Enter, not by a script submitting the form.
        page.page.evaluate("document.getElementById('send').requestSubmit()")
        # past the longest restart delay (5 s)
        connections, requests = attempts_after_stop(page, server.port, 6_000)
        assert connections == 0, "the browser tried the stopped server again"
        assert requests == 0
        assert page.status() == "stopped" and stale(page.page)
        assert devtools.besides(("/stream", CLOSED)) == [], (
            "the console stays clean through load, use and stop"
        )


def test_a_message_sent_as_the_server_stops_says_so_in_the_page(
    context: BrowserContext, devtools: Devtools, tmp_path: Path
) -> None:
    with live_demo(context, tmp_path / "server.log") as (server, page):

        def stop_first(route: Route) -> None:
            # The post leaves the page while the server is live, and arrives once it has stopped.
            server.sigint_group()
            server.wait_exit(10)
            route.continue_()

        page.page.route("**/messages", stop_first)
        send(page, "too late")
        page.page.wait_for_selector(f'{NOTE}[data-kind="error"]:not([hidden])', timeout=15_000)
        # The failure stays in the note, whatever the stream's state says after it.
        expect(page.page.locator(NOTE)).to_contain_text(
            "The server could not be reached: the message was not sent."
        )
        assert page.page.input_value("input[name=text]") == "too late", "the text is kept to send again"
        page.wait_state("stopped")
        expect(page.page.locator(NOTE)).to_contain_text("The server has stopped")  # after the failure
        assert page.page.is_disabled(SEND) and stale(page.page)
        # The browser itself reports the refused connection; the page's scripts report nothing.
        assert devtools.besides(("/messages", REFUSED), ("/stream", CLOSED)) == []


def test_a_post_the_server_does_not_answer_in_time_says_so_and_a_resend_goes_once(
    context: BrowserContext, devtools: Devtools, tmp_path: Path
) -> None:
    with live_demo(context, tmp_path / "server.log", demo_under_uvicorn) as (server, page):
        server.proc.send_signal(signal.SIGSTOP)  # a server that hangs
        try:
            send(page, "into the void")
            note = page.page.locator(f'{NOTE}[data-kind="error"]')
            note.wait_for(timeout=15_000)  # the page gives up after 10 s
            assert note.inner_text().startswith("No answer from the server: the message may have been sent")
        finally:
            server.proc.send_signal(signal.SIGCONT)
        # The visitor sends it again, as the note says, once the server is back.
        page.wait_state("live")
        page.page.click(SEND)
        message = page.page.locator("#messages li", has_text="into the void")
        message.wait_for(timeout=10_000)
        expect(page.page.locator(NOTE)).to_be_hidden()
        page.page.wait_for_timeout(500)
        assert message.count() == 1
        # The page gave up on the request: the browser notes it (no console line), nothing else.
        assert devtools.lines == [f"failed: POST {server.url}/messages (net::ERR_ABORTED)"]


@pytest.mark.redis
def test_a_message_refused_while_redis_is_down_says_so_and_goes_once_when_sent_again(
    context: BrowserContext, devtools: Devtools, redis: RedisServer, tmp_path: Path
) -> None:
    port = free_port()
    env = {"SSE_BROKER_URL": f"{redis.url}?prefix=demo{port}"}
    with live_demo(context, tmp_path / "server.log", port=port, env=env) as (server, page):
        redis.kill()
        try:
            send(page, "while redis is down")
            page.page.wait_for_selector(f'{NOTE}[data-kind="error"]:not([hidden])', timeout=10_000)
            # The demo's 503: NotPublished, or OutcomeUnknown if the command left before Redis died.
            assert page.page.inner_text(NOTE) in UNAVAILABLE
            assert page.page.input_value("input[name=text]") == "while redis is down"
        finally:
            redis.start()
        page.page.click(SEND)  # the visitor tries again, as the note says
        page.page.locator("#messages li", has_text="while redis is down").wait_for(timeout=10_000)
        expect(page.page.locator(NOTE)).to_be_hidden()  # the note goes once the message is sent
        assert page.page.locator("#messages li").count() == 1
        # The 503 is the page's one devtools line, and Chromium's own.
        assert [line.split(" (")[0] for line in devtools.lines] == [
            f"HTTP 503: POST {server.url}/messages",
            "console error: Failed to load resource: the server responded with a status of 503",
        ]


def demo_under_uvicorn(port: int) -> RunMode:
    """The demo's app under plain uvicorn: SIGTERM is a restart, and the test starts the next."""
    argv = [sys.executable, "-m", "uvicorn", "graceful_sse.demo:app", "--port", str(port)]
    return RunMode("demo under uvicorn", argv)


def test_stats_are_stale_while_the_demo_restarts_and_live_again_after(
    context: BrowserContext, devtools: Devtools, tmp_path: Path
) -> None:
    port = free_port()
    with live_demo(context, tmp_path / "first.log", demo_under_uvicorn, port) as (first, page):
        first.sigterm_main()  # a deploy: SIGTERM means restart
        page.wait_state("restarting", timeout=5)
        assert stale(page.page) and page.page.is_disabled(SEND)
        assert page.page.is_enabled("input[name=text]"), "the visitor can go on typing"
        assert "restarting" in page.page.inner_text(NOTE)
        first.wait_exit(10)
        assert stale(page.page)
    with running(demo_under_uvicorn(port), port, tmp_path / "second.log", ready_path="/") as second:
        page.wait_state("live", timeout=20)
        page.page.wait_for_function(
            "() => !document.querySelector('#server-card').hasAttribute('data-stale')", timeout=5000
        )
        assert not stale(page.page) and page.page.is_enabled(SEND) and page.page.locator(NOTE).is_hidden()
        page.page.wait_for_function(  # the new process's figures arrive
            "pid => document.querySelector('#stats').innerText.includes(pid)",
            arg=str(second.proc.pid),
            timeout=5000,
        )
        send(page, "after the restart")
        page.page.locator("#messages li", has_text="after the restart").wait_for(timeout=5000)
        # While the server was away the page's stream requests were refused: the browser's own lines.
        assert devtools.besides(("/stream", REFUSED), ("/stream", CLOSED)) == []


# ---- any text makes exactly one message --------------------------------------------------------


@contextlib.contextmanager
def chat_events(server: Server) -> Iterator[queue.Queue[str]]:
    """The data of every ``chat`` event on a stream of the demo, as an EventSource reads it."""
    events: queue.Queue[str] = queue.Queue()
    opened = threading.Event()

    def read() -> None:
        parser = SSEParser()
        with (
            contextlib.suppress(httpx.HTTPError),
            httpx.stream("GET", server.url + "/stream", timeout=30) as r,
        ):
            opened.set()
            for text in r.iter_text():
                for event in parser.feed(text):
                    if event.type == "chat":
                        events.put(event.data)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert opened.wait(10)
    try:
        yield events
    finally:
        server.kill()  # ends the stream, and so the reader
        reader.join(10)


TEXT_PARTS = st.sampled_from([*SEPARATORS, "\0", "<b>", "</li></ul>", "&amp;", "<!--", "a", " ", "é", "🙂"])
TEXTS = st.text(max_size=40) | st.lists(TEXT_PARTS | st.text(max_size=3), max_size=12).map("".join)
# The text content of the one element an HTML fragment parses into ([] if not one <li>).
MESSAGES_IN = """html => {
    const t = document.createElement('template');
    t.innerHTML = html;
    const text = li => li.tagName === 'LI' ? li.querySelector('span').textContent : null;
    return [...t.content.children].map(text);
}"""


MARKUP = "</span></li></ul><script>alert(1)</script><li>"


def with_examples(*texts: str) -> Callable[[Callable[[str], None]], Callable[[str], None]]:
    """Hypothesis's ``@example`` for each of ``texts``: always tried, before the generated ones."""
    return lambda test: functools.reduce(lambda t, text: example(text)(t), texts, test)


def expected(text: str) -> str:
    return text.strip().replace("\0", "\ufffd")


@settings(max_examples=300, deadline=None)
@given(TEXTS)
def test_the_stored_message_is_what_the_hub_encoded_for_any_text(text: str) -> None:
    html = message_item(message_text(text), "12:00:00").__html__()
    assert read_event(encode(html, event="chat")) == ("chat", html)


@pytest.mark.timeout(240)
def test_any_text_is_one_message_with_that_text_live_on_the_wire_and_for_later_visitors(
    context: BrowserContext, devtools: Devtools, tmp_path: Path
) -> None:
    sent: list[str] = []
    with running_demo(tmp_path / "server.log") as server, chat_events(server) as wire:
        live = open_demo(context, server)
        live.wait_state("live")
        items = live.page.locator("#messages > li")

        @settings(
            max_examples=60,
            deadline=None,
            derandomize=True,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        )
        @given(TEXTS)
        @with_examples(*(f"a{separator}b" for separator in SEPARATORS), "a\0b", "  \u2028 ", MARKUP)
        def one_message_each(text: str) -> None:
            before = items.count()
            answer = httpx.post(server.url + "/messages", data={"text": text}, timeout=10)
            if not expected(text):
                assert answer.status_code == 400, answer.text
                return
            assert answer.status_code == 204, answer.text
            sent.append(expected(text))
            data = wire.get(timeout=10)
            assert live.page.evaluate(MESSAGES_IN, data) == [expected(text)], repr(data)
            live.page.wait_for_function(
                "n => document.querySelectorAll('#messages > li').length > n", arg=before
            )
            assert items.count() == before + 1
            assert items.first.locator("span").evaluate("e => e.textContent") == expected(text)

        one_message_each()
        later = open_demo(context, server)
        later.wait_state("live")
        stored = later.page.locator("#messages > li span").evaluate_all(
            "spans => spans.map(s => s.textContent)"
        )
        assert stored == sent[::-1][:20], "a later visitor sees the last 20 messages, each whole"
        assert later.page.locator("#messages > li").count() == min(len(sent), 20)
        assert devtools.lines == []
