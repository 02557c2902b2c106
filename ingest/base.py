"""The source protocol: where raw records come from, and how their position is acknowledged."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator

from temporal_siem.kernel.records import DeadLetter, RawRecord


class Source(ABC):
    """Yields batches of raw records. ``commit`` is called once every sink has acknowledged a batch,
    so a source with durable positions (Kafka offsets, a replay checkpoint) only moves past data that
    is safely delivered (at-least-once)."""

    name: str = "source"

    @abstractmethod
    def batches(self) -> Iterator[list[RawRecord]]:
        """Batches of records, in arrival order."""

    def take_dead_letters(self) -> list[DeadLetter]:
        """Records the source itself could not frame (binary file, oversized line)."""
        return []

    def commit(self, batch: list[RawRecord]) -> None:  # noqa: B027 - optional hook
        """Acknowledge that a batch is fully processed."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources."""
