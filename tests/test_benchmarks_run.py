"""The benchmarks still run end to end (at tiny sizes: the figures come from full runs, not CI)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.servers, pytest.mark.bench]

ROOT = Path(__file__).resolve().parents[1]


def _run(args: list[str], out: Path) -> str:
    done = subprocess.run(
        [sys.executable, *args, "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return (out / next(p.name for p in out.iterdir() if p.suffix == ".md")).read_text()


@pytest.mark.redis
@pytest.mark.timeout(300)  # about 90 s beside another test's servers: well clear of the bound
def test_the_hub_benchmark_runs_and_writes_its_tables(tmp_path: Path) -> None:
    tiny = "--sizes 100 --repeats 1 --publishes 5 --spacing 0.05 --tput-seconds 0.5 --client-procs 1"
    tiny += " --slow-n 50 --slow-seconds 0.5,1 --topic-sizes 50 --topic-rounds 1"
    table = _run(["benchmarks/hub/run.py", *tiny.split(), "--quiet-wait", "0", "--retries", "0"], tmp_path)
    labels = ("floor (raw ASGI)", "graceful_sse in FastHTML", "sse-starlette + broadcaster", "Redis, 2 work")
    labels += ("graceful_sse in FastHTML, Granian", "FastAPI EventSourceResponse + broadcaster")
    for label in labels:
        assert label in table
    assert "### One event per topic" in table
    assert (tmp_path / "hub.png").exists()


def test_the_shutdown_benchmark_runs_and_writes_its_table(tmp_path: Path) -> None:
    table = _run(["benchmarks/shutdown/run.py", "--sizes", "50", "--repeats", "1", "--cap", "5"], tmp_path)
    assert "graceful_sse in FastHTML" in table and "| 100% | 100% |" in table
    for label in ("FastHTML, Granian", "sse-starlette, shutdown_event", "FastAPI EventSourceResponse"):
        assert label in table
    assert (tmp_path / "shutdown.png").exists()
