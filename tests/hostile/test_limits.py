"""Issue 15 items 6, 7 (records), 8: label values, events per record, state decompression are bounded."""

from __future__ import annotations

import orjson

from temporal_siem.detections.factory import build_detector
from temporal_siem.ingest.replay import ReplaySource
from temporal_siem.kernel import metrics
from temporal_siem.kernel.records import Origin, RawRecord
from temporal_siem.parsers.router import ParserRouter
from temporal_siem.pipeline import Pipeline
from temporal_siem.sinks.base import Sink


class _Null(Sink):
    name = "null"

    def write(self, documents):  # type: ignore[no-untyped-def]
        pass


def test_dataset_labels_are_bounded() -> None:
    pipeline = Pipeline(ReplaySource([]), ParserRouter(), build_detector([], builtin_rules=False), alert_sinks=[],
                        dead_letter=_Null())
    records = [RawRecord(orjson.dumps({"@timestamp": "2025-01-01T00:00:00Z", "event": {"dataset": f"{i}-" + "d" * 100_000},
                                       "message": "x"}), Origin("t", line=i)) for i in range(300)]
    records += [RawRecord(orjson.dumps({"@timestamp": "2025-01-01T00:00:00Z", "event": {"dataset": f"custom.set{i}"},
                                        "message": "x"}), Origin("t", line=i)) for i in range(300)]
    pipeline.process_batch(records)
    labels = {sample.labels["dataset"] for metric in metrics.EVENTS.collect() for sample in metric.samples}
    assert all(len(label) <= 64 for label in labels)
    assert len(labels) <= metrics.DATASET_LABEL.limit + len(metrics.DATASET_LABEL.known) + 1
    assert "other" in labels
    assert metrics.DATASET_LABEL("okta.system") == "okta.system"


def test_events_per_record_are_capped_with_a_clear_dead_letter() -> None:
    router = ParserRouter(max_events_per_record=1_000)
    result = router.parse(RawRecord(b"[" + b",".join([b"{}"] * 5_000) + b"]", Origin("t", line=1)))
    assert result.events == []
    assert [(d.reason, d.detail) for d in result.dead] == [("too many events in one record", "5000 elements > limit 1000")]
    small = router.parse(RawRecord(orjson.dumps([{"time": "2025-01-01T00:00:00Z", "msg": f"m{i}"} for i in range(10)]), Origin("t")))
    assert len(small.events) == 10


def test_a_rule_with_too_many_regexes_is_a_load_error_before_compiling() -> None:
    import time

    from temporal_siem.detections.sigma.ruleset import Ruleset

    values = "\n".join(f"      - 'abc{i}.*x'" for i in range(1_500))
    text = (f"title: big\nid: 3f2a9c1e-0000-4000-8000-00000000cc01\nlogsource: {{product: test}}\ndetection:\n  sel:\n"
            f"    f|re:\n{values}\n  condition: sel\n")
    start = time.perf_counter()
    ruleset = Ruleset.from_yaml(text)
    assert len(ruleset.rules) == 0
    assert any("rule too large: 1500 regular expressions (limit 1000)" in e.error for e in ruleset.errors)
    assert time.perf_counter() - start < 30


def test_a_rule_file_with_too_many_lines_is_refused_before_yaml(tmp_path) -> None:
    from temporal_siem.detections.sigma.loader import MAX_RULE_FILE_LINES, load_rules

    path = tmp_path / "long.yml"
    path.write_text("title: long\n" + "# x\n" * (MAX_RULE_FILE_LINES + 1))
    loaded = load_rules([tmp_path], [])
    assert any("lines, limit" in e.error for e in loaded.errors)
