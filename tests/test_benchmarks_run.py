"""The benchmarks still run end to end (at tiny sizes: the figures come from full runs, not CI).

Every app of both benchmarks runs once; the hub's topic and slow-client scenarios run with the
floor and graceful_sse only (their code is the same for every app). The benchmarks need their own
extra; without it these tests fail and say so, rather than skip.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness import kill_tree

pytestmark = [pytest.mark.servers, pytest.mark.bench]

ROOT = Path(__file__).resolve().parents[1]
BENCH_EXTRA = ("sse_starlette", "fastapi", "broadcaster", "cjm_fasthtml_sse", "matplotlib")
# Smaller than --quick: enough to run each phase once, figures aside.
HUB_SMOKE = (
    "--sizes 50 --repeats 1 --publishes 3 --spacing 0.05 --tput-seconds 0.3 --client-procs 1"
    " --slow-n 20 --slow-seconds 0.3,0.5 --topic-sizes 20 --topic-rounds 1 --quiet-wait 0 --retries 0"
)


@dataclass(frozen=True)
class HubHalf:
    """Half of the hub's apps, each half with the floor (the tables' ratios divide by it), so that
    two xdist workers share them; the slow-client scenario runs in one half, the topics in the
    other, each with the floor and graceful_sse only (its code is the same for every app)."""

    apps: str
    scenario: tuple[str, ...]  # the run.py options that leave the other scenario out
    labels: tuple[str, ...]  # the rows of the apps besides the floor
    heading: str  # the scenario's table


HUB_HALVES = {
    "graceful_sse": HubHalf(
        "floor,graceful_sse,graceful_redis,graceful_granian",
        ("--topic-sizes", "none"),
        (
            "graceful_sse in FastHTML",
            "graceful_sse in FastHTML, Redis, 2 workers",
            "graceful_sse in FastHTML, Granian",
        ),
        "### One slow client",
    ),
    "the others": HubHalf(
        "floor,graceful_starlette,seed,sse_starlette,fastapi_sse",
        ("--no-slow",),
        (
            "graceful_sse in Starlette",
            "seed: cjm SSEBroadcastManager",
            "sse-starlette + broadcaster",
            "FastAPI EventSourceResponse + broadcaster",
        ),
        "### One event per topic",
    ),
}


@pytest.fixture(scope="module", autouse=True)
def bench_extra() -> None:
    missing = [name for name in BENCH_EXTRA if importlib.util.find_spec(name) is None]
    if missing:
        pytest.fail(
            f"the benchmarks need their extra ({', '.join(missing)} not installed):"
            " pip install -e '.[bench]' (./scripts/test installs it when it runs them)",
            pytrace=False,
        )


def _run(args: list[str], out: Path, within: float) -> str:
    """``run.py`` in a session of its own; it, its servers and its clients are killed after, even
    when it times out or the test is interrupted."""
    log = out / "run.log"
    with log.open("wb") as output:
        proc = subprocess.Popen(
            [sys.executable, *args, "--out", str(out)],
            cwd=ROOT,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            returncode = proc.wait(timeout=within)
        finally:
            kill_tree(proc)
    assert returncode == 0, log.read_text(errors="replace")[-6000:]
    return (out / next(p.name for p in out.iterdir() if p.suffix == ".md")).read_text()


@pytest.mark.redis
@pytest.mark.timeout(240)  # 20 to 56 s beside other tests' servers on a busy machine
@pytest.mark.parametrize("half", list(HUB_HALVES))
def test_the_hub_benchmark_runs_and_writes_its_tables(tmp_path: Path, half: str) -> None:
    part = HUB_HALVES[half]
    options = ["--apps", part.apps, "--scenario-apps", "floor,graceful_sse", *part.scenario]
    table = _run(["benchmarks/hub/run.py", *HUB_SMOKE.split(), *options], tmp_path, within=200)
    for label in ("floor (raw ASGI)", *part.labels):  # each with its figures for the 50 streams
        assert f"| {label} | 50 |" in table, label
    assert part.heading in table
    assert (tmp_path / "hub.png").exists()


@pytest.mark.timeout(180)  # 26 to 57 s on a busy machine (the most beside the hub's halves)
def test_the_shutdown_benchmark_runs_and_writes_its_table(tmp_path: Path) -> None:
    args = ["benchmarks/shutdown/run.py", "--sizes", "50", "--repeats", "1", "--cap", "5"]
    table = _run(args, tmp_path, within=160)
    assert "graceful_sse in FastHTML" in table and "| 100% | 100% |" in table
    for label in ("FastHTML, Granian", "sse-starlette, shutdown_event", "FastAPI EventSourceResponse"):
        assert label in table
    assert (tmp_path / "shutdown.png").exists()
