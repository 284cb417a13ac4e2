"""The README's quickstarts are real code: each is a file under docs/examples/, shown in the README
as it is, and run here under uvicorn the way a reader would use it."""

from __future__ import annotations

import ast
import asyncio
import contextlib
import enum
import importlib
import inspect
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

import graceful_sse

from harness import BIN, FORBIDDEN_LOG_LINES, RunMode, Server, free_port, open_streams, running

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext

ROOT = Path(__file__).parent.parent
README = ROOT / "README.md"
EXAMPLES = ROOT / "docs" / "examples"

# The reference's tables: a heading naming a callable, then rows of `parameter` | `default`.
TABLED = ("EventStream", "Hub", "Lifecycle", "Limits", "SSEStream")


@dataclass(frozen=True)
class Quickstart:
    """One quickstart: its module, how a client posts "hello" to it, and what its stream receives."""

    module: str
    post: dict[str, Any] = field(hash=False)
    received: str
    needs: str

    @property
    def path(self) -> Path:
        return EXAMPLES / f"{self.module}.py"


QUICKSTARTS = [
    Quickstart("fasthtml_app", {"data": {"text": "hello"}}, "<li>hello</li>", needs="fasthtml"),
    Quickstart("starlette_app", {"content": "hello"}, "hello", needs="starlette"),
    Quickstart("fastapi_app", {"json": {"text": "hello"}}, "hello", needs="fastapi"),
]


@contextlib.contextmanager
def serving(quickstart: Quickstart, log: Path) -> Iterator[Server]:
    """The quickstart under plain uvicorn, answering requests; killed after, whatever happened."""
    importlib.import_module(quickstart.needs)  # in the test extra: a missing one fails, never skips
    port = free_port()
    argv = [str(BIN / "uvicorn"), f"{quickstart.module}:app", "--port", str(port), "--app-dir", str(EXAMPLES)]
    mode = RunMode(quickstart.module, argv)
    # Not every quickstart has a page to GET: any answer will do.
    with running(mode, port, log, ready_path="/not-a-route", any_status=True) as server:
        yield server


def reference() -> str:
    text = README.read_text()
    return text[text.index("\n## Parameter reference\n") : text.index("\n## Benchmarks\n")]


def documented(name: str) -> Callable[..., Any]:
    """``Hub``, ``hub.subscribe``, ``lifecycle.shutdown``: what the reference's name stands for."""
    owner, _, method = name.rpartition(".")
    if owner:
        return getattr(getattr(graceful_sse, owner.capitalize()), method)  # type: ignore[no-any-return]
    return getattr(graceful_sse, name)  # type: ignore[no-any-return]


def documented_defaults(text: str) -> Iterator[tuple[str, str, str]]:
    """(callable, parameter, default as written) for every default the reference states."""
    for name, args in re.findall(r"`(?:await |@)?((?:hub\.|lifecycle\.)?\w+)\(([^`]*)\)`", text):
        if name.split(".")[-1] in graceful_sse.__all__ or "." in name:
            for part in args.split(", "):
                parameter, equals, default = part.partition("=")
                if equals and default not in ("", "..."):  # `Hub(authorize=)` names a parameter
                    yield name, parameter, default
    current = None
    for line in text.splitlines():
        if heading := re.fullmatch(r"#{3,4} `(\w+)`", line):
            current = heading.group(1)
        elif line.startswith("#"):
            current = None
        elif current and (row := re.match(r"\| `(\w+)` \| `([^`]+)` \|", line)):
            yield current, row.group(1), row.group(2)


def test_the_parameter_reference_names_every_public_name() -> None:
    missing = [n for n in graceful_sse.__all__ if f"`{n}`" not in reference() and f"`{n}(" not in reference()]
    assert missing == []


@pytest.mark.parametrize("module", ["graceful_sse", "graceful_sse.testing"])
def test_the_api_pages_show_every_public_name(module: str) -> None:
    shown = set(re.findall(r"^::: ([\w.]+)$", (ROOT / "docs" / "api.md").read_text(), re.M))
    missing = {f"{module}.{name}" for name in importlib.import_module(module).__all__} - shown
    assert not missing, f"docs/api.md does not show {sorted(missing)}"


def test_the_parameter_reference_states_the_codes_defaults() -> None:
    wrong = []
    for name, parameter, written in documented_defaults(reference()):
        parameters = inspect.signature(documented(name)).parameters
        assert parameter in parameters, f"{name} has no parameter {parameter!r}"
        default = parameters[parameter].default
        default = default.value if isinstance(default, enum.Enum) else default
        if ast.literal_eval(written) != default:
            wrong.append(f"{name}({parameter}=...): README says {written}, the code {default!r}")
    assert wrong == []


@pytest.mark.parametrize("name", TABLED)
def test_the_parameter_reference_has_a_row_for_every_parameter(name: str) -> None:
    rows = re.findall(rf"\n#{{3,4}} `{name}`\n(.*?)(?=\n#)", reference(), flags=re.S)
    assert rows, f"no section for {name}"
    listed = set(re.findall(r"^\| `\*{0,2}(\w+)`", rows[0], flags=re.M))
    assert set(inspect.signature(documented(name)).parameters) - listed == set()


@pytest.mark.parametrize("quickstart", QUICKSTARTS, ids=lambda q: q.module)
def test_the_readme_shows_the_quickstart_as_it_is(quickstart: Quickstart) -> None:
    code = quickstart.path.read_text()
    assert f"```python\n{code}```" in README.read_text(), f"README's copy of {quickstart.path.name} differs"


@pytest.mark.servers
@pytest.mark.parametrize("quickstart", QUICKSTARTS, ids=lambda q: q.module)
def test_the_quickstart_streams_a_posted_message_and_says_goodbye_on_ctrl_c(
    quickstart: Quickstart, tmp_path: Path
) -> None:
    with serving(quickstart, tmp_path / "server.log") as server:

        async def scenario() -> list[str]:
            async with open_streams([server.url + "/updates"]) as (streams, tasks):
                async with httpx.AsyncClient() as client:
                    answer = await client.post(server.url + "/say", **quickstart.post)
                    assert answer.status_code in (200, 204), answer.text
                await asyncio.sleep(0.3)
                server.sigint_group()
                await asyncio.wait_for(asyncio.gather(*tasks), 10)
                await asyncio.to_thread(server.wait_exit, 10)
            assert streams[0].clean_end, streams[0].error
            got: list[str] = [e.data for e in streams[0].events if e.type == "message"]
            last: list[str] = streams[0].names()[-1:]
            return got + last

        received = asyncio.run(scenario())
        log = server.log
    assert received == [quickstart.received, "shutdown"]
    assert log.count("graceful-sse: SIGINT: stopping") == 1, log  # one lifecycle for the app
    assert not [line for line in FORBIDDEN_LOG_LINES if line in log], log


@pytest.mark.servers
def test_the_fasthtml_quickstart_serves_its_page_and_every_file_it_loads(tmp_path: Path) -> None:
    with serving(QUICKSTARTS[0], tmp_path / "server.log") as server:
        page = httpx.get(server.url + "/")
        assert page.status_code == 200
        assert 'sse-connect="/updates?htmx=1"' in page.text and 'id="sse-status"' in page.text
        assert 'hx-post="/say"' in page.text
        assets = re.findall(r'(?:src|href)="(/[^"]+)"', page.text)
        files = [a.split("?")[0] for a in assets]
        assert any(f.endswith(".js") for f in files) and any(f.endswith(".css") for f in files), assets
        for asset in assets:
            assert httpx.get(server.url + asset).status_code == 200, asset


@pytest.mark.servers
@pytest.mark.browser
def test_the_fasthtml_quickstart_in_chromium_posts_receives_and_stops_with_a_clean_console(
    context: BrowserContext, tmp_path: Path
) -> None:
    from browser import open_page

    with serving(QUICKSTARTS[0], tmp_path / "server.log") as server:
        page = open_page(context, server.url + "/", stream_path="/updates")
        page.wait_state("live")
        page.page.fill("input[name=text]", "hello from the form")
        page.page.click("button")
        page.wait_feed("hello from the form")
        assert page.page.input_value("input[name=text]") == ""  # the form is ready for the next one
        server.sigint_group()
        page.wait_state("stopped", timeout=5)
        assert page.page.locator("#sse-status").inner_text().startswith("Server stopped")
        assert "Live" not in page.page.locator("h1").inner_text()
        assert page.problems == []
