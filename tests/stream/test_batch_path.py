"""The daemon's poll-batch step (``StreamRuntime._stateless_batch``) against its record-by-record step (``_record``).

The batch step parses a poll in one ``parse_batch`` and runs the stateless enrichers over all its events in one
call; matching, partition marks and scope messages stay per record. Whatever the poll's size, it must hand the
sinks, the dead-letter topic and the scopes topic exactly what the record-by-record step hands them: the same
alerts with the same (topic, partition, offset), the same dead letters with their original record, the same
events output (as parsed, before enrichment), and each scope message with the mark its own record left.

The runtime is built against the test broker (Quix reads topic metadata while it wires the topology), but nothing
is consumed or produced: the batch step is called directly and the producer is a recorder. Compared
without ``event.ingested`` (a poll shares one stamp where records each read the clock) and what the clock-skew
enricher derives from it.
"""

from __future__ import annotations

import uuid
import warnings
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from temporal_siem.detections.enrichment.clock_skew import OUTPUT_FIELD as SKEW_FIELD
from temporal_siem.kernel.config import load_settings
from tests.stream.helpers import workload

with warnings.catch_warnings(record=True):
    from temporal_siem.stream.runtime import StreamRuntime

pytestmark = pytest.mark.services

RUN = uuid.uuid4().hex[:8]
IDP, INFRA = f"batch-idp-{RUN}", f"batch-infra-{RUN}"
TOPICS = {IDP: 2, INFRA: 3}
DLQ = f"batch-dlq-{RUN}"
VOLATILE = ("event.ingested", SKEW_FIELD)


class Recorder:
    """Stands for the Kafka producer and for every sink adapter: keeps what it is given, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.on_written: Any = None

    def produce(self, topic: str, key: Any = None, value: Any = None, headers: Any = None, **_: Any) -> None:
        self.calls.append(("produce", topic, key, _stable_bytes(value), tuple(headers or ())))

    def add(self, value: Any, key: Any, timestamp: int, headers: Any, topic: str, partition: int, offset: int) -> None:
        self.calls.append(("add", _stable(value), key, headers, topic, partition, offset))


class RecordingRuntime(StreamRuntime):
    recorder: Recorder

    @property
    def producer(self) -> Any:
        return self.recorder


class FakeMessage:
    """What confluent-kafka's ``Message`` gives the batch step."""

    def __init__(self, topic: str, partition: int, offset: int, value: bytes | None, key: bytes | None) -> None:
        self._topic, self._partition, self._offset, self._value, self._key = topic, partition, offset, value, key
        self._headers = [("trace", str(offset).encode())]

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def value(self) -> bytes | None:
        return self._value

    def key(self) -> bytes | None:
        return self._key

    def headers(self) -> list[tuple[str, bytes]]:
        return self._headers

    def timestamp(self) -> tuple[int, int]:
        return (1, 1_700_000_000_000 + self._offset)

    def leader_epoch(self) -> int:
        return 0

    def __len__(self) -> int:
        return len(self._value or b"")


def _stable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _stable(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [_stable(v) for v in value]
    return value


def _stable_bytes(value: Any) -> Any:
    if not isinstance(value, bytes):
        return value
    try:
        return _stable(orjson.loads(value))
    except orjson.JSONDecodeError:
        return value


def _runtime(bootstrap: str, tmp_path: Path, events_out: bool) -> RecordingRuntime:
    settings = load_settings(None, ingest={"kafka": {
        "bootstrap_servers": [bootstrap], "group_id": f"batch-path-{RUN}", "topics": [{"name": t} for t in TOPICS],
        "dead_letter_topic": DLQ, "stream": {"state_dir": str(tmp_path / "state")}}},
        metrics={"enabled": False})
    runtime = RecordingRuntime(settings, _ruleset(), alerts=Recorder(), events=Recorder() if events_out else None,  # type: ignore[arg-type]
                               input_partitions=TOPICS)
    runtime.recorder = Recorder()
    return runtime


_RULESET: list[Any] = []


def _ruleset() -> Any:
    if not _RULESET:
        from temporal_siem.detections.factory import build_ruleset

        _RULESET.append(build_ruleset([], builtin_rules=True))
    return _RULESET[0]


HOSTILE: list[bytes | None] = [
    None, b"", b"not json at all \x00", b"{\"broken\": ", b"[1, 2, 3]", b"\xff\xfe{}", b"{}",
    b'{"Records": [{"eventSource": "kms.amazonaws.com", "eventName": "Decrypt", "eventTime": "2026-01-01T00:00:00Z"}, 7]}',
    b'{"@timestamp": "2999-01-01T00:00:00Z", "event": {"dataset": "x.y", "id": "future"}, "message": "from the future"}',
    b'{"@timestamp": "2026-03-01T00:00:00Z", "event": {"dataset": "x.y"}, "password": "hunter2", "message": "secret"}',
]


@pytest.fixture(scope="module")
def records() -> list[bytes | None]:
    values: list[bytes | None] = [m.value for m in workload()]
    # hostile records spread through the stream, so a poll mixes them with real ones
    for i, bad in enumerate(HOSTILE):
        values.insert((i * 37) % len(values), bad)
    return values


def _messages(values: list[bytes | None]) -> list[FakeMessage]:
    offsets: dict[tuple[str, int], int] = {}
    out = []
    for i, value in enumerate(values):
        topic = IDP if i % 3 == 0 else INFRA
        partition = (i // 3) % TOPICS[topic]
        offset = offsets.get((topic, partition), 0)
        offsets[(topic, partition)] = offset + 1
        out.append(FakeMessage(topic, partition, offset, value, f"k{i % 5}".encode() if i % 4 else None))
    return out


def _by_record(runtime: RecordingRuntime, messages: list[FakeMessage]) -> None:
    import time

    for message in messages:
        alerts = runtime._record(message.value(), message.key(), message.headers(), message.topic(), message.partition(), message.offset(),
                                 time.time_ns() // 1000 + runtime.max_future_us, time.monotonic())
        for alert in alerts:
            runtime.alert_adapter.add(alert, message.key(), 0, message.headers(), message.topic(), message.partition(), message.offset())


def _by_polls(runtime: RecordingRuntime, messages: list[FakeMessage], sizes: list[int]) -> None:
    start, i = 0, 0
    while start < len(messages):
        size = sizes[i % len(sizes)]
        runtime._stateless_batch(messages[start:start + size])  # type: ignore[arg-type]
        start += size
        i += 1


def _outcome(runtime: RecordingRuntime) -> tuple[Any, ...]:
    stats = runtime.stats
    marks = {source: mark.mark for source, mark in runtime.owned.marks.items()}
    produced: dict[str, list[Any]] = {}
    for call in runtime.recorder.calls:  # in order per topic; topics are independent streams
        produced.setdefault(call[1], []).append(call)
    events = runtime.event_adapter.calls if runtime.event_adapter is not None else None  # type: ignore[attr-defined]
    return (produced, runtime.alert_adapter.calls, events, stats.records, stats.events, stats.scope_messages, stats.dead_lettered, marks,
            runtime.stateless.events, runtime.stateless.matched)


@pytest.mark.parametrize("events_out", [False, True])
def test_polls_of_every_size_give_what_records_one_by_one_give(kafka_bootstrap: str, tmp_path: Path, records: list[bytes | None], events_out: bool) -> None:
    messages = _messages(records)
    expected_runtime = _runtime(kafka_bootstrap, tmp_path / "one", events_out)
    _by_record(expected_runtime, messages)
    expected = _outcome(expected_runtime)
    produced, alerts = expected[0], expected[1]
    assert any(c[1].get("rule.id") for c in alerts), "the workload raises rule alerts"
    assert produced.get(DLQ), "the hostile records are dead-lettered"
    assert any(topic.endswith("scopes") for topic in produced), "the workload sends scope messages"
    assert expected[2] is None or len(expected[2]) > 100, "events are forwarded"
    for sizes in ([len(messages)], [1], [7, 1, 500, 2]):
        runtime = _runtime(kafka_bootstrap, tmp_path / f"poll-{sizes[0]}", events_out)
        _by_polls(runtime, messages, sizes)
        outcome = _outcome(runtime)
        for part, (got, want) in enumerate(zip(outcome, expected, strict=True)):
            assert got == want, f"polls of {sizes}: part {part} differs"


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_cut_of_any_slice_of_the_stream_matches_records_one_by_one(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory,
                                                                      records: list[bytes | None], data: st.DataObject) -> None:
    start = data.draw(st.integers(0, len(records) - 1))
    values = records[start:start + data.draw(st.integers(1, 60))]
    values += data.draw(st.lists(st.sampled_from(HOSTILE), max_size=3))
    messages = _messages(values)
    sizes = data.draw(st.lists(st.integers(1, 12), min_size=1, max_size=5))
    tmp = tmp_path_factory.mktemp("cut")
    expected_runtime = _runtime(kafka_bootstrap, tmp / "one", True)
    _by_record(expected_runtime, messages)
    runtime = _runtime(kafka_bootstrap, tmp / "polls", True)
    _by_polls(runtime, messages, sizes)
    assert _outcome(runtime) == _outcome(expected_runtime)
