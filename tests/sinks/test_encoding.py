"""What every sink sends is valid JSON whatever a document holds; the optional-sink policy; batch resumption."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from temporal_siem.kernel import metrics
from temporal_siem.sinks.base import Sink, SinkError, to_json_line
from temporal_siem.sinks.delivery import PartialBatch
from temporal_siem.sinks.factory import OptionalSink
from temporal_siem.sinks.splunk_hec import SplunkHecSink

scalars = st.one_of(st.text(alphabet=st.characters(), max_size=20), st.integers(), st.floats(allow_nan=True),
                    st.booleans(), st.none())
flat_documents = st.dictionaries(st.text(min_size=1, max_size=15), st.one_of(scalars, st.lists(scalars, max_size=3)), max_size=8)


@settings(max_examples=300, deadline=None)
@given(document=flat_documents)
def test_any_flat_document_encodes_as_one_json_line(document: dict[str, Any]) -> None:
    line = to_json_line(document)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert isinstance(json.loads(line), dict)


@settings(max_examples=200, deadline=None)
@given(document=flat_documents)
def test_any_flat_document_is_a_valid_hec_event(document: dict[str, Any]) -> None:
    sink = SplunkHecSink(url="http://127.0.0.1:8088", token="token")
    event = json.loads(sink.encode(document))
    assert set(event) >= {"event", "host", "source", "sourcetype"} and isinstance(event["event"], dict)


class _Flaky(Sink):
    name = "flaky"

    def __init__(self) -> None:
        self.calls = 0
        self.down = True

    def write(self, documents: list[dict[str, Any]]) -> None:
        self.calls += 1
        if self.down:
            raise SinkError("down")


def test_optional_sink_drops_counts_and_cools_down() -> None:
    inner = _Flaky()
    sink = OptionalSink(inner, cooldown=0.2)
    before = metrics.SINK_FAILURES.labels("flaky")._value.get()
    sink.write([{"a": 1}])
    sink.write([{"a": 2}, {"a": 3}])  # within the cool-down: not even tried
    assert inner.calls == 1 and sink.dropped_documents == 3 and sink.dropped_batches == 2
    assert metrics.SINK_FAILURES.labels("flaky")._value.get() == before + 2
    import time

    time.sleep(0.25)
    inner.down = False
    sink.write([{"a": 4}])
    assert inner.calls == 2 and sink.dropped_documents == 3


def test_partial_batch_resumes_only_the_same_batch() -> None:
    progress = PartialBatch()
    batch = [{"i": i} for i in range(4)]
    assert progress.pending(batch) == [0, 1, 2, 3]
    progress.delivered(0)
    progress.delivered(2)
    assert progress.pending(batch) == [1, 3]  # the pipeline's retry of the same list
    assert progress.pending([{"i": 0}]) == [0]  # another batch starts afresh
    progress.complete()
    assert progress.pending(batch) == [0, 1, 2, 3]
