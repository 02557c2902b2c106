"""Exponential backoff: the one retry schedule of the project (sinks, the pipeline, the Kafka source, the daemon).

Each caller used to double its own delay by hand; they differ only in the numbers, so the numbers are the
parameters: the first delay, the cap, how many retries (``None``: forever, for loops that wait for a
service to come back), and whether to add jitter. Jitter (full jitter over the upper half of the delay)
spreads many clients retrying one server; a single loop waiting for its broker logs plain delays instead.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass


@dataclass
class Backoff:
    """Delays ``initial``, doubling up to ``maximum``; ``attempts`` retries after the first try (None: no limit)."""

    attempts: int | None = 5
    initial: float = 0.5
    maximum: float = 10.0
    jitter: bool = True
    sleep: Callable[[float], None] = time.sleep

    def delays(self) -> Iterator[float]:
        """The delay before each retry; exhausted after ``attempts`` of them (never, when attempts is None)."""
        delay = self.initial
        retries = 0
        while self.attempts is None or retries < self.attempts:
            yield random.uniform(delay / 2, delay) if self.jitter else delay
            delay = min(delay * 2, self.maximum)
            retries += 1

    def pause(self, delay: float) -> None:
        self.sleep(delay)
