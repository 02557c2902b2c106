"""Issue 15 item 1: a record nested past any encoder's limit never stops a batch, a replay or the daemon."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import orjson
import pytest

from temporal_siem.detections.factory import build_detector
from temporal_siem.ingest.replay import ReplaySource
from temporal_siem.kernel.flatten import MAX_KEY_PARTS, flatten, unflatten
from temporal_siem.kernel.records import Origin, RawRecord
from temporal_siem.parsers.router import ParserRouter
from temporal_siem.pipeline import Pipeline
from temporal_siem.sinks.base import Sink, to_json_line
from tests.conftest import ROOT
from tests.hostile.records import ALERTING, deep_list, deep_records


def test_to_json_line_survives_every_depth() -> None:
    deep: Any = "v"
    for _ in range(2000):
        deep = [deep]
    for document in ({"a": deep}, {".".join(["k"] * 300): 1}, {"a": {"b": deep}}):
        line = to_json_line(document)
        assert isinstance(json.loads(line), dict)


def test_dotted_key_with_many_parts_stays_dotted() -> None:
    key = ".".join(["k"] * (MAX_KEY_PARTS + 1))
    assert unflatten({key: 1}) == {key: 1}
    assert unflatten({"a.b": 1}) == {"a": {"b": 1}}


def test_flatten_bounds_lists_of_lists() -> None:
    value = orjson.loads(deep_list(200))
    flat = flatten({"x": value})
    orjson.dumps(flat)  # raised "Recursion limit reached" before


@pytest.mark.parametrize("record", deep_records(), ids=lambda r: orjson.loads(r)["log_id"])
def test_every_deep_shape_parses_and_encodes(record: bytes) -> None:
    result = ParserRouter().parse(RawRecord(record, Origin("t")))
    assert len(result.events) == 1 and not result.dead
    json.loads(to_json_line(result.events[0]))


def test_replay_keeps_every_alert_of_a_batch_with_deep_records(tmp_path) -> None:
    good = orjson.dumps(ALERTING)
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"\n".join([good, *deep_records(), good]) + b"\n")
    alerts, events = tmp_path / "alerts.jsonl", tmp_path / "events.jsonl"
    result = subprocess.run([sys.executable, "-m", "temporal_siem", "replay", str(path), "--quiet", "--alerts", str(alerts),
                             "--events", str(events), "--dead-letter", str(tmp_path / "dead.jsonl"), "--keep-original"],
                            cwd=ROOT, capture_output=True, timeout=300)
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    event_lines = [json.loads(line) for line in events.read_bytes().splitlines()]
    assert len(event_lines) == 7
    alert_ids = {json.loads(line)["event"]["id"] for line in alerts.read_bytes().splitlines()}
    assert len(alert_ids) >= 6  # the good record and every deep one alert


class _Picky(Sink):
    """A sink whose encoder fails on one document (a bug or an unforeseen value), not a SinkError."""

    name = "picky"

    def __init__(self) -> None:
        self.written: list[dict[str, Any]] = []

    def write(self, documents: list[dict[str, Any]]) -> None:
        if any(d.get("bad") for d in documents):
            raise ValueError("cannot encode")
        self.written.extend(documents)


class _Collect(Sink):
    name = "collect"

    def __init__(self) -> None:
        self.written: list[dict[str, Any]] = []

    def write(self, documents: list[dict[str, Any]]) -> None:
        self.written.extend(documents)


def test_a_document_a_sink_cannot_encode_is_dead_lettered_and_the_rest_delivered() -> None:
    sink, dead = _Picky(), _Collect()
    pipeline = Pipeline(ReplaySource([]), ParserRouter(), build_detector([], builtin_rules=False),
                        alert_sinks=[sink], dead_letter=dead)
    pipeline._write(sink, [{"n": 1}, {"n": 2, "bad": True}, {"n": 3}])
    assert [d["n"] for d in sink.written] == [1, 3]
    assert [d["reason"] for d in dead.written] == ["unencodable document"]
    assert "ValueError: cannot encode" in dead.written[0]["detail"]
