"""The daemon's poll-batch path (stream/runtime.py BatchingApplication): which offsets a batch stores.

At-least-once rests on two of them per partition: the last (what the checkpoint commits, after the batch's
alerts were handed to the sinks) and the first (where a sink's backpressure rewinds the partition to; storing
only the last would skip the batch's earlier records on a rewind)."""

from __future__ import annotations

import warnings
from typing import Any

with warnings.catch_warnings(record=True):
    from temporal_siem.stream.runtime import BatchingApplication


class FakeMessage:
    def __init__(self, topic: str, partition: int, offset: int) -> None:
        self._tp = (topic, partition, offset)

    def topic(self) -> str:
        return self._tp[0]

    def partition(self) -> int:
        return self._tp[1]

    def offset(self) -> int:
        return self._tp[2]


class FakeContext:
    def __init__(self, calls: list[tuple[str, int, int]]) -> None:
        self.calls = calls

    def store_offset(self, topic: str, partition: int, offset: int) -> None:
        self.calls.append((topic, partition, offset))


def test_a_batch_stores_each_partitions_first_and_last_offset_after_its_handler_ran() -> None:
    calls: list[tuple[str, int, int]] = []
    handled: list[Any] = []

    def handler(messages: list[Any]) -> None:
        assert not calls, "offsets stored before the batch was processed"
        handled.extend(messages)

    app = BatchingApplication(broker_address="127.0.0.1:1", consumer_group="g", batch_topics=frozenset({"in"}), batch_size=10,
                              batch_handler=handler)
    app._processing_context = FakeContext(calls)  # type: ignore[assignment]
    batch = [FakeMessage("in", 0, 5), FakeMessage("in", 1, 9), FakeMessage("in", 0, 6), FakeMessage("in", 0, 7), FakeMessage("in", 2, 3)]
    app._process_batch(batch)
    assert handled == batch
    assert calls == [("in", 0, 5), ("in", 0, 7), ("in", 1, 9), ("in", 2, 3)]
