"""The pipeline loop: counting, dead letters with origins, sink backpressure without loss."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from temporal_siem.detections.factory import NullDetector
from temporal_siem.ingest.replay import ReplaySource
from temporal_siem.parsers.router import ParserRouter
from temporal_siem.pipeline import Pipeline
from temporal_siem.sinks.base import Sink, SinkError
from temporal_siem.sinks.file import FileSink


class FlakySink(Sink):
    """Refuses the first N batches, like a sink whose server is down, then accepts."""

    name = "flaky"

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.accepted: list[dict[str, Any]] = []

    def write(self, documents: list[dict[str, Any]]) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise SinkError("down")
        self.accepted.extend(documents)


def test_dead_letters_carry_reason_and_origin(tmp_path):
    data = tmp_path / "mixed.jsonl"
    data.write_bytes(b'{"a": 1, "time": "2025-01-01T00:00:00Z"}\n{"broken": \n\xff\xfe\n[]\n{"b": 2}\n')
    dead = tmp_path / "dead.jsonl"
    events = FlakySink(0)
    stats = Pipeline(ReplaySource([str(data)]), ParserRouter(), NullDetector(), alert_sinks=[], event_sinks=[events],
                     dead_letter=FileSink(path=str(dead), append=False)).run()
    assert stats.records_read == 5
    assert stats.events == 2
    assert dict(stats.dead_lettered) == {"invalid JSON": 1, "invalid UTF-8": 1, "empty envelope": 1}
    letters = [orjson.loads(line) for line in dead.read_bytes().splitlines()]
    assert sorted(d["origin"]["line"] for d in letters) == [2, 3, 4]
    assert all(d["origin"]["source"] == str(data) for d in letters)
    assert {e["a"] if "a" in e else e["b"] for e in events.accepted} == {1, 2}


def test_sink_down_holds_the_batch_until_it_returns(tmp_path):
    data = tmp_path / "events.jsonl"
    data.write_bytes(b"".join(orjson.dumps({"n": i}) + b"\n" for i in range(50)))
    sink = FlakySink(3)
    pipeline = Pipeline(ReplaySource([str(data)], batch_size=10), ParserRouter(), NullDetector(), alert_sinks=[],
                        event_sinks=[sink], dead_letter=FileSink(path=str(tmp_path / "dead.jsonl"), append=False), retry_initial=0.01)
    stats = pipeline.run()
    assert stats.sink_retries == 3
    assert sorted(e["n"] for e in sink.accepted) == list(range(50))


_DATASETS = st.one_of(st.sampled_from(["okta.system", "json", "aws.cloudtrail", "other", "", "Bad Value!", "x" * 70]),
                      st.text(alphabet="abc._-", max_size=4), st.none(), st.integers(0, 3), st.booleans(), st.floats(0, 2),
                      st.lists(st.text(max_size=2), max_size=2))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.fixed_dictionaries({"event.dataset": _DATASETS}), st.just({})), max_size=30), st.integers(0, 4))
def test_dataset_labels_count_what_a_label_per_event_counted(events: list[dict[str, Any]], limit: int) -> None:
    """The per-batch event metric: values counted first, then labelled once each, with the label's bound and its
    first-seen order intact (a fresh bounded label for each side)."""
    from collections import Counter

    from temporal_siem.kernel import metrics
    from temporal_siem.pipeline import dataset_labels

    reference_label = metrics.BoundedLabel(frozenset({"okta.system"}), limit)
    reference = Counter(reference_label(e.get("event.dataset", "")) for e in events)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(metrics, "DATASET_LABEL", metrics.BoundedLabel(frozenset({"okta.system"}), limit))
        ours = dataset_labels(events)
        assert metrics.DATASET_LABEL._seen == reference_label._seen
    assert ours == reference


_ALERT_VALUE = st.one_of(st.sampled_from(["r1", "r2", "high", "low", ""]), st.integers(0, 2), st.none(),
                         st.lists(st.sampled_from(["a", "b"]), max_size=2))


@settings(max_examples=200, deadline=None)
@given(alerts=st.lists(st.dictionaries(st.sampled_from(["rule.id", "rule.name", "alert.level", "alert.id"]), _ALERT_VALUE),
                       max_size=12),
       complete=st.booleans())
def test_alerts_are_counted_by_rule_and_level_as_their_text(alerts: list[dict[str, Any]], complete: bool,
                                                            tmp_path_factory: pytest.TempPathFactory) -> None:
    """The batch's alerts are grouped in C when every alert has the three fields (ours always do); alerts
    missing one, holding a list or a number there, are counted by the fields' text, as before."""
    if complete:
        alerts = [{"rule.id": "r1", "rule.name": "R", "alert.level": "high", **a} for a in alerts]
    dead = FileSink(path=str(tmp_path_factory.mktemp("dead") / "dead.jsonl"), append=False)
    pipeline = Pipeline(ReplaySource([]), ParserRouter(), NullDetector(), alert_sinks=[], dead_letter=dead)
    pipeline._deliver_alerts(alerts)
    pipeline._deliver_alerts(alerts)  # twice: the counts add up
    by_rule: dict[str, int] = {}
    by_level: dict[str, int] = {}
    for alert in alerts * 2:
        rule_id, level = str(alert.get("rule.id")), str(alert.get("alert.level", ""))
        by_rule[rule_id] = by_rule.get(rule_id, 0) + 1
        by_level[level] = by_level.get(level, 0) + 1
    assert dict(pipeline.stats.alerts_by_rule) == by_rule
    assert dict(pipeline.stats.alerts_by_level) == by_level
    assert list(pipeline.stats.alerts_by_rule) == list(by_rule)  # first-seen order, as the summary lists them
