"""Chaining our handler in front of the process's own, with real signals in this process."""

from __future__ import annotations

import signal
import threading
from types import FrameType

import pytest

from graceful_sse._signals import Disposition, SignalChain

SIG = signal.SIGUSR1


def test_ours_runs_first_then_the_servers_own_handler() -> None:
    calls: list[str] = []

    def server_handler(signum: int, frame: FrameType | None) -> None:
        calls.append("server")

    signal.signal(SIG, server_handler)
    chain = SignalChain([SIG], lambda sig, disposition: calls.append(f"ours {disposition.value}") or False)
    assert chain.install()
    signal.raise_signal(SIG)
    assert calls == ["ours handled", "server"]

    chain.uninstall()
    assert signal.getsignal(SIG) is server_handler


def test_an_ignored_signal_stays_ignored() -> None:
    seen: list[Disposition] = []
    signal.signal(SIG, signal.SIG_IGN)
    chain = SignalChain([SIG], lambda sig, d: seen.append(d) or False)
    chain.install()
    signal.raise_signal(SIG)  # would end the process were it not ignored
    assert seen == [Disposition.IGNORED]
    chain.uninstall()
    assert signal.getsignal(SIG) == signal.SIG_IGN


def test_a_default_sigint_is_delivered_after_us_unless_we_defer_it() -> None:
    signal.signal(signal.SIGINT, signal.default_int_handler)
    chain = SignalChain([signal.SIGINT], lambda sig, d: False)
    chain.install()
    with pytest.raises(KeyboardInterrupt):
        signal.raise_signal(signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler

    deferring = SignalChain([signal.SIGINT], lambda sig, d: True)
    deferring.install()
    signal.raise_signal(signal.SIGINT)  # nothing yet: the lifecycle tells its streams first
    with pytest.raises(KeyboardInterrupt):
        deferring.redeliver(signal.SIGINT)


def test_uninstall_leaves_a_handler_chained_after_ours_in_place() -> None:
    chain = SignalChain([SIG], lambda sig, d: False)
    chain.install()

    def later(signum: int, frame: FrameType | None) -> None:
        pass

    signal.signal(SIG, later)
    chain.uninstall()
    assert signal.getsignal(SIG) is later


def test_install_is_refused_off_the_main_thread() -> None:
    result: list[bool] = []
    thread = threading.Thread(target=lambda: result.append(SignalChain([SIG], lambda s, d: False).install()))
    thread.start()
    thread.join()
    assert result == [False]
