"""HTTP/2: every stream of a connection gets its farewell, and the process ends within the bound.

Hypercorn (h2c with prior knowledge, and TLS with ALPN) and Granian ``--http 2`` (the same two),
a Ctrl+C (SIGINT to the group) or a SIGTERM to the main process. The client is the tests' raw
frame reader, which reads on after a GOAWAY: the GOAWAY names the last stream the server will
finish, and frames for those streams that follow it are valid HTTP/2.

Under Hypercorn the signal reaches its handler only once the farewells are written, so they come
before its GOAWAY. Granian's worker hears of the signal through asyncio's own signal wake-up,
which no handler can hold: its GOAWAY comes first and the farewells follow on the streams it lets
finish (browsers read them; clients built on ``h2``, such as httpx, stop at the GOAWAY). The
README says so; this test records which came first and holds that every farewell arrives.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import trustme
from h2_client import open_h2_streams

from harness import LIFESPAN_DONE, RunMode, Server, free_port, run_modes, running

if TYPE_CHECKING:
    from playwright.sync_api import Browser

pytestmark = pytest.mark.servers

STREAMS = ["/stream"] * 5 + ["/gen"] * 5
BOUND = 10.0


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    where = tmp_path_factory.mktemp("tls")
    cert = trustme.CA().issue_cert("127.0.0.1")
    cert_path, key_path = where / "cert.pem", where / "key.pem"
    cert.cert_chain_pems[0].write_to_path(cert_path)
    cert.private_key_pem.write_to_path(key_path)
    return cert_path, key_path


TLS_OPTIONS = {"hypercorn": ("--certfile", "--keyfile"), "granian": ("--ssl-certificate", "--ssl-keyfile")}


def _mode(server: str, port: int, tls: tuple[Path, Path] | None, app: str) -> RunMode:
    """The server's HTTP/1.1 run mode with HTTP/2 (Granian must be told) and TLS if asked."""
    argv = [app if arg == "fh_app:app" else arg for arg in run_modes(port)[server].argv]
    if server == "granian":
        argv += ["--http", "2"]
    if tls:
        cert_option, key_option = TLS_OPTIONS[server]
        argv += [cert_option, str(tls[0]), key_option, str(tls[1])]
    return RunMode(f"{server} HTTP/2{' TLS' if tls else ''}", argv)


@pytest.fixture
def h2_server(
    request: pytest.FixtureRequest, certificate: tuple[Path, Path], tmp_path: Path
) -> Iterator[Server]:
    server_name, tls, app = (*request.param, "fh_app:app")[:3]
    port = free_port()
    mode = _mode(server_name, port, certificate if tls else None, app)
    scheme = "https" if tls else "http"
    with running(mode, port, tmp_path / "server.log", scheme=scheme, http2=True) as server:
        yield server


SERVERS = [("hypercorn", False), ("hypercorn", True), ("granian", False), ("granian", True)]


@pytest.mark.parametrize("signal_name, farewell", [("SIGINT", "shutdown"), ("SIGTERM", "restart")])
@pytest.mark.parametrize(
    "h2_server", SERVERS, ids=["hypercorn-h2c", "hypercorn-tls", "granian-h2c", "granian-tls"], indirect=True
)
def test_every_stream_on_a_connection_gets_its_farewell(
    h2_server: Server, signal_name: str, farewell: str
) -> None:
    server = h2_server

    async def scenario() -> tuple[object, float]:
        record, reading = await open_h2_streams(
            "127.0.0.1", server.port, STREAMS, tls=server.url.startswith("https")
        )
        await asyncio.wait_for(record.connected.wait(), 20)
        start = time.monotonic()
        server.sigint_group() if signal_name == "SIGINT" else server.sigterm_main()
        await asyncio.wait_for(reading, BOUND)
        await asyncio.to_thread(server.wait_exit, BOUND)
        return record, time.monotonic() - start

    record, seconds = asyncio.run(scenario())
    log = server.log
    streams = list(record.streams.values())  # type: ignore[attr-defined]
    after = sum(s.farewell_after_goaway for s in streams)
    print(
        f"{server.mode.name}, {signal_name}: gone {seconds:.2f} s; {after} of {len(streams)} after the GOAWAY"
    )
    for stream in streams:
        assert stream.status == 200 and not stream.reset, (stream.path, stream.status, log[-2000:])
        assert stream.farewell == farewell and stream.ended, (stream.path, stream.names()[-3:], log[-2000:])
    assert record.goaway_seen, "the server said GOAWAY"  # type: ignore[attr-defined]
    if server.mode.name.startswith("hypercorn"):
        assert after == 0, "the signal reached Hypercorn only after the farewells were written"
    assert LIFESPAN_DONE in log and "Traceback" not in log, log[-2000:]


@pytest.mark.browser
@pytest.mark.parametrize(
    "h2_server", [("hypercorn", True, "page_app:app"), ("granian", True, "page_app:app")], indirect=True
)
@pytest.mark.parametrize("signal_name, state", [("SIGINT", "stopped"), ("SIGTERM", "restarting")])
def test_a_page_over_http2_shows_the_farewell(
    browser: Browser, h2_server: Server, signal_name: str, state: str
) -> None:
    """Chromium honours a GOAWAY as HTTP/2 means it: the streams it lets finish are read."""
    from browser import fresh_context, open_page

    with fresh_context(browser, ignore_https_errors=True) as context:
        page = open_page(context, h2_server.url + "/")
        page.wait_state("live")
        protocol = page.page.evaluate("performance.getEntriesByType('navigation')[0].nextHopProtocol")
        assert protocol == "h2", protocol
        h2_server.sigint_group() if signal_name == "SIGINT" else h2_server.sigterm_main()
        page.wait_state(state, timeout=BOUND)
        h2_server.wait_exit(BOUND)
