"""One hub run's settings, read from the command line once and passed to whatever needs them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.settings import UNRECORDED, recorded


@dataclass(frozen=True)
class HubConfig:
    sizes: list[int]  # idle streams per latency/memory run
    repeats: int
    apps: list[str]
    publishes: int  # events per latency measurement
    spacing: float  # seconds between those publishes
    size: int  # event data bytes for latency and throughput
    tput_sizes: list[int]  # sizes with a throughput phase
    tput_seconds: float
    slow_n: int  # streams in the slow-client runs, the slow one included
    slow_rate: float  # publishes per second in the slow-client runs
    slow_size: int  # event data bytes in the slow-client runs
    slow_seconds: list[float]  # readers only, then with the slow client
    topic_sizes: list[int]  # streams (each on a topic of its own) per 1,000-topic run; [] for none
    topic_rounds: int  # rounds of one publish per topic, per run
    no_slow: bool = field(metadata=UNRECORDED)
    only_slow: bool = field(metadata=UNRECORDED)
    only_topics: bool = field(metadata=UNRECORDED)
    scenario_apps: list[str] = field(metadata=UNRECORDED)  # of the topic and slow-client runs
    client_procs: int  # load-client processes (streams split)
    inflight: int  # streams between connect and first bytes
    max_other: float  # measure again when other processes used more than this share of the CPU
    retries: int  # at most this many times per run
    quiet_wait: float = field(metadata=UNRECORDED)  # seconds to wait for a quiet machine, at most
    out: Path = field(metadata=UNRECORDED)  # results directory
    redis_url: str | None = field(default=None, metadata=UNRECORDED)  # a private redis-server's, or --redis

    @property
    def logs(self) -> Path:
        return self.out / "logs"

    def settings(self) -> dict[str, Any]:
        """The settings as the results file's ``meta`` records them."""
        return recorded(self)
