"""No process a test starts outlives it: not when the test fails, not when it times out (by either
of pytest-timeout's methods), not when the run is interrupted (Ctrl+C, once or twice, ``-x``).

Each case runs tests of ``leaky_session.py`` in a pytest of its own, in a session of its own,
with a unique mark in its environment; every process they start inherits it, so that afterwards
psutil finds whatever is left, however it was started and wherever it was reparented.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from harness import describe, kill_tree, marked_processes, reap

pytestmark = [pytest.mark.servers, pytest.mark.redis, pytest.mark.browser]

ROOT = Path(__file__).resolve().parents[1]
LEAKY = "tests/leaky_session.py"
PROBE = "LEAKY_PROBE"
# What a holding test has running: the server, redis-server, a CPU burner, Chromium.
HELD = ("uvicorn fh_app:app", "redis-server", "while True: pass", "chromium")
STACKS_AFTER_30_S = ("-o", "faulthandler_timeout=30")
# pytest as a terminal starts it: a child inherits its parent's blocked and ignored signals, and
# the test process starting it (an xdist worker, after other tests) is not a terminal.
AS_FROM_A_TERMINAL = (
    "import signal, sys; signal.pthread_sigmask(signal.SIG_SETMASK, ()); "
    "signal.signal(signal.SIGINT, signal.default_int_handler); "
    "import pytest; raise SystemExit(pytest.main(sys.argv[1:]))"
)


def signal_state(pid: int) -> str:
    """A process's group and its blocked, ignored and caught signals (hex masks, /proc)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text().splitlines()
        masks = " ".join(
            line.replace("\t", "") for line in status if line.startswith(("SigBlk", "SigIgn", "SigCgt"))
        )
        return f"pid {pid} pgid {os.getpgid(pid)} {masks}"
    except OSError:
        return f"pid {pid} (gone)"


@dataclass
class InnerRun:
    proc: subprocess.Popen[bytes]
    probe: str
    ready: Path
    log: Path

    def wait_holding(self, count: int, within: float = 60.0) -> list[str]:
        """What the holding tests had running, once ``count`` of them hold theirs."""
        deadline = time.monotonic() + within
        while len(files := sorted(f for f in self.ready.iterdir() if f.suffix != ".part")) < count:
            assert self.proc.poll() is None, self.output()
            assert time.monotonic() < deadline, f"not {count} holding in {within} s:\n{self.output()}"
            time.sleep(0.1)
        return [line for f in files for line in json.loads(f.read_text())]

    def finish(self, within: float = 60.0) -> int:
        try:
            return self.proc.wait(timeout=within)
        except subprocess.TimeoutExpired:
            alive = [f"{describe(p)} [{signal_state(p.pid)}]" for p in marked_processes({PROBE: self.probe})]
            self.dump_stacks()
            raise AssertionError(
                f"the run did not end in {within} s; alive: {alive}\n{self.output(20_000)}"
            ) from None

    def dump_stacks(self) -> None:
        """Each of the run's Python processes writes its threads' stacks to the log (SIGABRT
        with faulthandler on): where a run that does not end is stuck."""
        for proc in marked_processes({PROBE: self.probe}):
            with contextlib.suppress(psutil.Error):
                if proc.name().startswith("python"):
                    proc.send_signal(signal.SIGABRT)
        time.sleep(1.0)

    def ctrl_c(self) -> None:
        """A terminal's Ctrl+C: SIGINT to the run's process group (pytest and xdist's workers)."""
        os.killpg(self.proc.pid, signal.SIGINT)

    def left(self, within: float = 10.0) -> list[str]:
        """What still carries the run's mark ``within`` seconds after it ended (a watchdog's
        reaping takes a moment)."""
        deadline = time.monotonic() + within
        while (procs := marked_processes({PROBE: self.probe})) and time.monotonic() < deadline:
            time.sleep(0.1)
        return [describe(p) for p in procs]

    def output(self, last: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-last:]


@contextlib.contextmanager
def inner_pytest(tmp_path: Path, *args: str) -> Iterator[InnerRun]:
    probe = uuid.uuid4().hex
    ready = tmp_path / "ready"
    ready.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_XDIST", "PYTEST_CURRENT"))}
    env.update({PROBE: probe, "LEAKY_READY": str(ready), "PYTHONFAULTHANDLER": "1"})
    log = tmp_path / "inner.log"
    with log.open("wb") as out:
        out.write(f"started from: {signal_state(os.getpid())}\n".encode())
        out.flush()
        proc = subprocess.Popen(
            # A test still running after 30 s (only a holding one the run failed to end) has
            # its threads' stacks written to the log, which a failure shows.
            [sys.executable, "-c", AS_FROM_A_TERMINAL, "-p", "no:cacheprovider", *STACKS_AFTER_30_S, *args],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield InnerRun(proc, probe, ready, log)
        finally:  # this test's own failure leaves nothing either
            kill_tree(proc)
            reap(marked_processes({PROBE: probe}))


def assert_held(held: list[str], chromium: bool = False) -> None:
    for what in HELD if chromium else HELD[:-1]:
        assert any(what in line for line in held), (what, held)


@pytest.mark.timeout(120)
def test_a_failing_test_and_one_that_times_out_leave_nothing_behind(tmp_path: Path) -> None:
    """Their teardown runs (pytest-timeout's signal method raises in the test)."""
    with inner_pytest(tmp_path, f"{LEAKY}::test_fails", f"{LEAKY}::test_times_out_by_signal") as run:
        assert run.finish() == pytest.ExitCode.TESTS_FAILED, run.output()
        assert "2 failed" in run.output() and "Timeout" in run.output()
        assert_held(run.wait_holding(2))
        assert run.left() == []
        assert "left behind" not in run.output()  # the tests' own teardown ended them


@pytest.mark.timeout(120)
def test_a_test_that_times_out_by_the_thread_method_leaves_nothing_behind(tmp_path: Path) -> None:
    """pytest-timeout's thread method ends pytest with ``os._exit``: no teardown runs at all, and
    the session's watchdog reaps what the test had (Chromium too)."""
    with inner_pytest(tmp_path, f"{LEAKY}::test_times_out_by_thread") as run:
        assert run.finish() != pytest.ExitCode.OK, run.output()
        assert "Timeout" in run.output()
        assert_held(run.wait_holding(1), chromium=True)
        assert run.left() == []


@pytest.mark.timeout(180)  # 43 s at most so far, beside other tests on a busy machine
def test_a_run_stopped_by_x_then_ctrl_c_twice_leaves_nothing_behind(tmp_path: Path) -> None:
    """``-x`` under xdist stops after the first failure but lets the other worker's test go on,
    holding its processes (Chromium too); an impatient user presses Ctrl+C twice, the second one
    in the middle of the teardowns the first one started."""
    tests = [f"{LEAKY}::test_fails", f"{LEAKY}::test_holds[a]"]
    with inner_pytest(tmp_path, "-x", "-n", "2", *tests) as run:
        held = run.wait_holding(2)
        run.ctrl_c()
        time.sleep(0.3)
        run.ctrl_c()
        assert run.finish() != pytest.ExitCode.OK, run.output()
        assert_held(held, chromium=True)
        assert run.left() == []


@pytest.mark.timeout(60)
def test_a_passing_test_that_leaves_a_process_fails_the_run_which_names_and_ends_it(tmp_path: Path) -> None:
    with inner_pytest(tmp_path, f"{LEAKY}::test_forgets_a_process") as run:
        assert run.finish() == pytest.ExitCode.TESTS_FAILED, run.output()
        assert "1 passed" in run.output()
        assert "processes left behind by the tests (killed now)" in run.output()
        assert "time.sleep(60)" in run.output()
        assert run.left() == []
