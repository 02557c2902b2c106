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


def test_a_stop_signal_that_reaches_quix_s_handler_is_the_daemon_s_stop_request() -> None:
    """Quix puts its own SIGTERM/SIGINT handlers in place each time an application runs; the daemon put its own back
    only on its first loop. A SIGTERM in between stopped the application but not the daemon, which saw the stream
    end "without a stop request" and started it again: a member told to stop (its sibling had died) kept running
    (a CI run timed out on it). With ``on_signal`` the application's handlers are the daemon's stop request."""
    import os
    import signal

    received: list[int] = []
    app = BatchingApplication(broker_address="127.0.0.1:1", consumer_group="g", batch_topics=frozenset({"in"}), batch_size=10,
                              batch_handler=lambda messages: None, on_signal=lambda signum, frame: received.append(signum))
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        app._setup_signal_handlers()  # what Application.run() does first
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGINT)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    assert received == [signal.SIGTERM, signal.SIGINT]
    assert not app._stop_event.is_set()  # the daemon's request stops the application, through the runtime


def test_without_on_signal_quix_s_handlers_stop_the_application() -> None:
    import os
    import signal

    app = BatchingApplication(broker_address="127.0.0.1:1", consumer_group="g", batch_topics=frozenset({"in"}), batch_size=10,
                              batch_handler=lambda messages: None)
    previous = signal.getsignal(signal.SIGTERM)
    try:
        app._setup_signal_handlers()
        os.kill(os.getpid(), signal.SIGTERM)
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, signal.default_int_handler)
    assert app._stop_event.is_set()
