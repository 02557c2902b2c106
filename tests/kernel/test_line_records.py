"""Replay's records build their origin (file, line) only when something reads it (kernel.records.LineRecord):
most records parse cleanly and never do, and an Origin was ~0.45 us of each. A LineRecord must still be, to every
reader, the RawRecord it replaces."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from temporal_siem.ingest.replay import ReplaySource
from temporal_siem.kernel import records
from temporal_siem.kernel.records import LineRecord, Origin, RawRecord


def test_a_line_record_is_the_raw_record_it_replaces() -> None:
    line = LineRecord(b'{"a": 1}', "f.jsonl", 7, "json")
    raw = RawRecord(b'{"a": 1}', Origin("f.jsonl", line=7), "json")
    assert line.origin == Origin("f.jsonl", line=7) and str(line.origin) == "f.jsonl:7"
    assert line == raw and raw == line
    assert line != RawRecord(b'{"a": 1}', Origin("f.jsonl", line=8), "json")
    assert repr(line) == repr(raw)
    assert line.origin is line.origin  # made once
    for record in (line, raw):
        copy = pickle.loads(pickle.dumps(record))
        assert copy == record and copy.origin == record.origin and copy.format_hint == "json"


def test_replay_makes_no_origin_for_records_nobody_asks_about(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join(b'{"n": %d}\n' % n for n in range(500)) + b"\n  \n" + b'{"n": "last"}')
    made: list[tuple[object, ...]] = []
    real = records.Origin.__init__

    def counting(self: Origin, *args: object, **kwargs: object) -> None:
        made.append(args)
        real(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(records.Origin, "__init__", counting)
    batches = list(ReplaySource([str(path)], batch_size=100).batches())
    got = [record for batch in batches for record in batch]
    assert len(got) == 501
    assert len(made) <= len(batches) + 1  # the framer reads the last line of each read block, nothing per record
    made.clear()
    assert [(r.origin.source, r.origin.line) for r in (got[10], got[20])] == [(str(path), 11), (str(path), 21)]
    assert len(made) == 2  # asked for: made then, with the file's line numbers
    assert (got[-1].origin.line, got[-2].origin.line) == (503, 500)  # past a blank line, and a last line with no newline
