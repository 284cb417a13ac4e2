"""One shutdown of one event loop's streams, as the drain counts it.

What a drain tells each stream (``Kind``), how each told stream ended (``Outcome``), the stream
as the drain sees it (``StreamHandle``), the count while it runs (``Drain``) and what it
achieved (``ShutdownReport``). A finite stream that asked for time to finish (``finish``) is
told only when its time runs out, if it has not ended by then. No signals and no I/O here:
``_run`` drives a drain.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from ._run import Run

__all__ = [
    "Drain",
    "Kind",
    "KindName",
    "Outcome",
    "ShutdownReport",
    "StreamHandle",
    "as_kind",
    "kind_from_env",
]


class Kind(enum.StrEnum):
    """What a farewell tells the client."""

    STOP = "stop"  # the service is going away: do not reconnect
    RESTART = "restart"  # it is coming back: reconnect after a random delay


KindName = Kind | Literal["stop", "restart"]  # what the public API accepts

MIN_FLUSH = 0.25  # even a stream opened at the end of the drain gets this long to take its notice
CUT_SHOWN = 5  # the drain's log line names this many of the streams it had to close


def as_kind(value: str, what: str = "kind") -> Kind:
    try:
        return Kind(value)
    except ValueError:
        raise ValueError(f"{what} must be 'stop' or 'restart', not {value!r}") from None


def kind_from_env(name: str, default: Kind) -> Kind:
    return as_kind(os.environ.get(name, default).strip().lower(), name)


class Outcome(enum.Enum):
    """How a stream ended, as its drain counts it; the value is what the drain's log line says."""

    TOOK = "took the farewell"
    GONE = "the client had gone"
    ENDED = "ended by its source"
    # Missed: the client did not get its farewell, and its connection was closed under the server.
    NOT_READING = "took no data for send_timeout"
    TOO_SLOW = "did not take the farewell within the bound"
    DROPPED = "dropped by the server"

    @property
    def missed(self) -> bool:
        return self in (Outcome.NOT_READING, Outcome.TOO_SLOW, Outcome.DROPPED)


@dataclass(frozen=True, slots=True)
class ShutdownReport:
    """What a drain achieved: one line of the log, as a value."""

    kind: Kind
    cause: str
    told: int  # streams open when the drain began
    took: int  # ... that received the whole farewell
    gone: int  # ... whose client had already left
    missed: int  # ... that did not take the notice within the drain bound
    late: int  # streams opened during the drain (each got the farewell at once)
    seconds: float
    cut: tuple[str, ...] = ()  # each missed stream: its request (no query string) and why
    finishing: int = 0  # ... that were given time to finish (``EventStream(finish=...)``)
    finished: int = 0  # ... of which ended by themselves within it
    out_of_time: int = 0  # ... of which were told when it ran out (or at a second Ctrl+C)

    def describe(self) -> str:
        """The drain's log line, after "graceful-sse: "."""
        finished = ""
        if self.finishing:
            out_of_time = f" ({self.out_of_time} ran out of time)" if self.out_of_time else ""
            finished = f"{self.finished} of {self.finishing} finishing finished{out_of_time}, "
        line = (
            f"drain took {self.seconds:.3f} s: {finished}{self.took} of {self.told} stream(s) took the "
            f"notice, {self.gone} had gone, {self.missed} did not take it; {self.late} opened during "
            "the drain"
        )
        if self.cut:
            shown = "; ".join(self.cut[:CUT_SHOWN])
            more = f"; and {len(self.cut) - CUT_SHOWN} more" if len(self.cut) > CUT_SHOWN else ""
            line += f". Closed: {shown}{more}"
        return line


class StreamHandle:
    """One open stream as the lifecycle sees it: told once, then it reports how it ended.

    ``EventStream`` subclasses it: ``notice`` wakes the stream (and interrupts a write the
    client is not taking), ``abandon`` gives up writing the farewell (a second Ctrl+C).
    ``finish`` is how long a shutdown lets it go on before telling it (0: told at once).
    """

    __slots__ = ("finish", "kind", "label", "late", "run")

    def __init__(self, label: str = "stream", *, finish: float = 0.0) -> None:
        self.finish = finish
        self.kind: Kind | None = None
        self.late = False  # opened during a drain: told at once
        self.label = label  # how the drain's log line names it: "GET /updates from 10.0.0.7"
        self.run: Run | None = None  # the event loop's run it was opened in (``Run.open_stream``)

    def tell(self, kind: Kind) -> None:
        if self.kind is None:
            self.kind = kind
            self.notice()

    def notice(self) -> None:
        """Called once, when the stream is told to end."""

    def abandon(self) -> None:
        """Stop waiting for the client to take the farewell."""


class Drain:
    """One shutdown on one loop: its bound, and how each stream it told ended.

    ``told`` streams are told at once; those in ``finishing`` keep streaming, each until it ends
    or its own time runs out (then it is told). The bound counts after the longest finish time.
    """

    def __init__(self, kind: Kind, cause: str, *, told: int, bound: float, finish: float = 0.0) -> None:
        self.kind = kind
        self.cause = cause
        self.started_at = time.monotonic()
        self.deadline = self.started_at + finish + bound
        self.told = told
        self.took = self.gone = self.late = self.finished = 0
        self.finishing: dict[StreamHandle, asyncio.TimerHandle] = {}  # each one's time running out
        self.given_time = 0
        self.out_of_time = 0
        self.waiting_told = 0  # streams told and still writing their farewell
        self.cut: list[str] = []  # the told streams that missed their farewell, and why
        self.done = asyncio.Event()  # every stream ended (or a second Ctrl+C gave up on them)
        self.told_done = asyncio.Event()  # every told stream ended: only finishing ones are left
        self.report: ShutdownReport | None = None
        self.task: asyncio.Task[None] | None = None

    def tell(self, handle: StreamHandle) -> None:
        """Tell ``handle`` now: it writes its farewell and ends."""
        self.waiting_told += 1
        handle.tell(self.kind)

    def let_finish(self, handle: StreamHandle, seconds: float) -> None:
        """Let ``handle`` go on for up to ``seconds``; then it is told."""
        loop = asyncio.get_running_loop()
        self.finishing[handle] = loop.call_later(seconds, self._time_is_up, handle)
        self.given_time += 1

    def _time_is_up(self, handle: StreamHandle) -> None:
        if self.finishing.pop(handle, None) is not None:
            self.out_of_time += 1
            self.tell(handle)

    def tell_finishing(self) -> None:
        """A second Ctrl+C: the streams still finishing are told now."""
        for handle, timer in list(self.finishing.items()):
            timer.cancel()
            self._time_is_up(handle)

    def opened_late(self, handle: StreamHandle) -> None:
        handle.late = True
        handle.kind = self.kind
        self.late += 1

    def count(self, handle: StreamHandle, outcome: Outcome) -> None:
        """A stream ended; the streams opened during the drain, and any after its report, do not count."""
        if handle.late or self.report is not None:
            return
        timer = self.finishing.pop(handle, None)
        if timer is not None:  # it ended within its time: by itself, or its client left
            timer.cancel()
            self.finished += outcome is Outcome.ENDED
        else:
            self.waiting_told -= 1
            if self.waiting_told <= 0:
                self.told_done.set()
        if outcome is Outcome.TOOK:
            self.took += 1
        elif outcome is Outcome.GONE:
            self.gone += 1
        elif outcome.missed:
            self.cut.append(f"{handle.label} ({outcome.value})")

    async def wait(self, until: float, *, told_only: bool = False) -> None:
        """Until every stream (``told_only``: every told one) has ended, or ``until`` at the latest."""
        event = self.told_done if told_only else self.done
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout=max(until - time.monotonic(), 0))

    def give_up(self, handles: list[StreamHandle]) -> None:
        """The bound passed: stop writing to the told streams still open, and count them missed."""
        for handle in handles:
            handle.abandon()
            self.cut.append(f"{handle.label} ({Outcome.TOO_SLOW.value})")

    def end_now(self) -> None:
        """A second Ctrl+C: the drain gives up on the streams still writing."""
        self.tell_finishing()
        self.deadline = time.monotonic()
        self.told_done.set()
        self.done.set()

    def flush_timeout(self) -> float:
        """How long a told stream may still take to write its farewell."""
        return max(self.deadline - time.monotonic(), MIN_FLUSH)

    def finish(self) -> ShutdownReport:
        self.report = ShutdownReport(
            kind=self.kind,
            cause=self.cause,
            told=self.told,
            took=self.took,
            gone=self.gone,
            missed=len(self.cut),
            late=self.late,
            seconds=time.monotonic() - self.started_at,
            cut=tuple(self.cut),
            finishing=self.given_time,
            finished=self.finished,
            out_of_time=self.out_of_time,
        )
        return self.report
