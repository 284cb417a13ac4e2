"""The README's quickstart is real code: run it under uvicorn and use it as a reader would."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import httpx
import pytest

from harness import RunMode, free_port, open_streams, running

README = Path(__file__).parent.parent / "README.md"

pytestmark = pytest.mark.servers


def quickstart() -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    return next(b for b in blocks if "fast_app(" in b and "serve()" in b)


def test_the_quickstart_streams_broadcasts_and_stops_gracefully(tmp_path: Path) -> None:
    (tmp_path / "quickstart.py").write_text(quickstart())
    port = free_port()
    mode = RunMode(
        "quickstart",
        [
            str(Path(__import__("sys").executable).parent / "uvicorn"),
            "quickstart:app",
            "--port",
            str(port),
            "--app-dir",
            str(tmp_path),
        ],
    )
    with running(mode, port, tmp_path / "server.log", ready_path="/") as server:

        async def scenario() -> list[str]:
            async with httpx.AsyncClient() as client:
                page = (await client.get(server.url + "/")).text
                assert 'sse-connect="/updates"' in page and 'id="sse-status"' in page
                for src in re.findall(r'src="([^"]+)"', page):
                    assert (await client.get(server.url + src)).status_code == 200, src
            async with open_streams([server.url + "/updates"]) as (streams, tasks):
                async with httpx.AsyncClient() as client:
                    await client.post(server.url + "/say", data={"text": "hello"})
                await asyncio.sleep(0.3)
                server.sigint_group()
                await asyncio.wait_for(asyncio.gather(*tasks), 10)
                await asyncio.to_thread(server.wait_exit, 10)
            return [e.data for e in streams[0].events if e.type == "message"] + streams[0].names()[-1:]

        received = asyncio.run(scenario())
    assert received == ["<li>hello</li>", "shutdown"]
