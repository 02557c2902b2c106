"""Replay source + router against hostile files: every bad record gets a reason with file and line/index,
the good records around it still parse, memory stays bounded."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path
from typing import Any

import orjson
import pytest

from temporal_siem.ingest.replay import ReplaySource
from temporal_siem.parsers.router import ParserRouter

GOOD = [{"operation": "UpdateNamespace", "log_id": f"good-{i}", "emit_time": f"2025-01-01T00:00:0{i}Z", "status": "OK"} for i in range(3)]
GOOD_LINES = [orjson.dumps(r) for r in GOOD]


def replay(*paths: Path | str, max_record_bytes: int = 8 * 1024 * 1024) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    """(events, [(reason, origin text with the tmp dir stripped)])."""
    source = ReplaySource([str(p) for p in paths], batch_size=100, max_record_bytes=max_record_bytes)
    router = ParserRouter(max_record_bytes=max_record_bytes)
    events: list[dict[str, Any]] = []
    dead = []
    for batch in source.batches():
        for record in batch:
            result = router.parse(record)
            events.extend(result.events)
            dead.extend(result.dead)
    dead.extend(source.take_dead_letters())
    return events, [(d.reason, Path(str(d.origin)).name) for d in dead]


def ids(events: list[dict[str, Any]]) -> list[str]:
    return [e["event.id"] for e in events]


def test_invalid_utf8_line(tmp_path):
    path = tmp_path / "utf8.jsonl"
    path.write_bytes(GOOD_LINES[0] + b"\n" + b'{"operation":"x\xff\xfe","log_id":"b"}\n' + GOOD_LINES[1] + b"\n")
    events, dead = replay(path)
    assert ids(events) == ["good-0", "good-1"]
    assert dead == [("invalid UTF-8", "utf8.jsonl:2")]


def test_invalid_utf8_text_line(tmp_path):
    path = tmp_path / "server.log"
    path.write_bytes(b"2025/03/04 10:17:11 INFO: grpc: \xc3\x28 broken\n" + GOOD_LINES[0] + b"\n")
    events, dead = replay(path)
    assert ids(events) == ["good-0"] and dead == [("invalid UTF-8", "server.log:1")]


def test_truncated_json_and_crlf(tmp_path):
    path = tmp_path / "trunc.jsonl"
    path.write_bytes(GOOD_LINES[0] + b"\r\n" + GOOD_LINES[1][:30] + b"\r\n\r\n" + GOOD_LINES[2] + b"\r\n")
    events, dead = replay(path)
    assert ids(events) == ["good-0", "good-2"]
    assert dead == [("invalid JSON", "trunc.jsonl:2")]


@pytest.mark.parametrize("position", ["first", "middle"])
def test_50_mb_line_costs_bounded_memory(tmp_path, position):
    big = b'{"operation":"UpdateNamespace","log_id":"big","emit_time":"2025-01-01T00:00:00Z","pad":"' + b"A" * (50 * 1024 * 1024) + b'"}\n'
    path = tmp_path / "big.jsonl"
    with path.open("wb") as handle:
        lines = [big, GOOD_LINES[0] + b"\n", GOOD_LINES[1] + b"\n"] if position == "first" else [GOOD_LINES[0] + b"\n", big, GOOD_LINES[1] + b"\n"]
        for line in lines:
            handle.write(line)
    del big, lines
    tracemalloc.start()
    try:
        events, dead = replay(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert ids(events) == ["good-0", "good-1"]
    assert dead == [("record too large", f"big.jsonl:{1 if position == 'first' else 2}")]
    assert peak < 40 * 1024 * 1024, f"peak {peak / 1e6:.0f} MB for a 50 MB line"


def test_binary_file_next_to_good_files(tmp_path):
    (tmp_path / "a.bin").write_bytes(os.urandom(2000) + b"\x00" * 16 + os.urandom(2000))
    (tmp_path / "b.jsonl").write_bytes(b"\n".join(GOOD_LINES) + b"\n")
    events, dead = replay(tmp_path)
    assert ids(events) == ["good-0", "good-1", "good-2"]
    assert dead == [("binary file", "a.bin")]


def test_gzip_valid(tmp_path):
    path = tmp_path / "audit.jsonl.gz"
    path.write_bytes(gzip.compress(b"\n".join(GOOD_LINES) + b"\n"))
    events, dead = replay(path)
    assert ids(events) == ["good-0", "good-1", "good-2"] and dead == []


def test_gzip_json_document(tmp_path):
    path = tmp_path / "page.json.gz"
    path.write_bytes(gzip.compress(orjson.dumps(GOOD, option=orjson.OPT_INDENT_2)))
    events, dead = replay(path)
    assert ids(events) == ["good-0", "good-1", "good-2"] and dead == []


def test_gzip_corrupt_keeps_what_was_read_and_says_where(tmp_path):
    payload = b"".join(orjson.dumps(GOOD[0] | {"log_id": f"id-{i}"}) + b"\n" for i in range(3000))
    compressed = gzip.compress(payload)
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(compressed[: len(compressed) // 2])
    events, dead = replay(path)
    assert 0 < len(events) < 3000
    assert ids(events) == [f"id-{i}" for i in range(len(events))]  # in order, nothing skipped before the cut
    assert dead == [("read error", f"cut.jsonl.gz:{len(events) + 1}")]


def test_gzip_garbage_after_magic(tmp_path):
    path = tmp_path / "fake.gz"
    path.write_bytes(b"\x1f\x8b" + b"not really gzip" * 10)
    events, dead = replay(path)
    assert events == [] and [d[0] for d in dead] == ["read error"] and dead[0][1].startswith("fake.gz")


def test_json_array_file_with_a_bad_element(tmp_path):
    path = tmp_path / "export.json"
    path.write_bytes(orjson.dumps([GOOD[0], {"operation": 5, "log_id": "z"}, "just a string", GOOD[1]], option=orjson.OPT_INDENT_2))
    events, dead = replay(path)
    assert ids(events) == ["good-0", "good-1"]
    assert dead == [("missing operation", "export.json:1#1"), ("no parser accepts the text line", "export.json:1#2")]


def test_cloudtrail_records_with_one_bad_element(tmp_path):
    record = {"eventVersion": "1.08", "eventSource": "kms.amazonaws.com", "eventName": "Decrypt", "awsRegion": "us-east-1",
              "sourceIPAddress": "192.0.2.10", "userIdentity": {"type": "AssumedRole", "accountId": "111122223333"}, "recipientAccountId": "111122223333"}
    doc = {"Records": [record | {"eventID": "e1", "eventTime": "2025-01-01T00:00:00Z"}, record | {"eventID": "e2", "eventTime": "not a time"},
                       record | {"eventID": "e3", "eventTime": "2025-01-01T00:00:02Z"}]}
    path = tmp_path / "111122223333_CloudTrail_us-east-1_20250101T0000Z_abc.json.gz"
    path.write_bytes(gzip.compress(orjson.dumps(doc)))
    events, dead = replay(path)
    assert ids(events) == ["e1", "e3"]
    assert dead == [("no timestamp", f"{path.name}:1#1")]


def test_pretty_printed_document_over_the_limit_is_one_dead_letter(tmp_path):
    path = tmp_path / "huge.json"
    path.write_bytes(orjson.dumps([GOOD[0]] * 200, option=orjson.OPT_INDENT_2))
    events, dead = replay(path, max_record_bytes=4096)
    assert events == [] and dead == [("record too large", "huge.json:1")]


def test_jsonl_with_a_long_first_line_is_read_as_lines(tmp_path):
    path = tmp_path / "long.jsonl"
    first = orjson.dumps(GOOD[0] | {"raw_details": {"pad": "x" * 20000}})
    path.write_bytes(first + b"\n" + b"\n".join(GOOD_LINES[1:]) + b"\n")
    events, dead = replay(path)
    assert ids(events) == ["good-0", "good-1", "good-2"] and dead == []


def test_broken_json_array_file_falls_back_to_lines(tmp_path):
    path = tmp_path / "broken.json"
    path.write_bytes(b"[\n" + GOOD_LINES[0] + b",\n" + GOOD_LINES[1][:20])
    events, dead = replay(path)
    assert events == []
    assert [d[1] for d in dead] == ["broken.json:1", "broken.json:2", "broken.json:3"]
    assert {d[0] for d in dead} == {"invalid JSON"}


def test_empty_and_missing_files(tmp_path):
    (tmp_path / "empty.jsonl").write_bytes(b"")
    (tmp_path / "blank.jsonl").write_bytes(b"\n \n\t\n")
    events, dead = replay(tmp_path / "empty.jsonl", tmp_path / "blank.jsonl", tmp_path / "missing.jsonl")
    assert events == [] and dead == [("file not found", "missing.jsonl")]


def test_stdin_mixed_input(tmp_path):
    out, dead_path = tmp_path / "out.jsonl", tmp_path / "dead.jsonl"
    stdin = GOOD_LINES[0] + b"\n{broken\n\xff\xfe\n" + GOOD_LINES[1] + b"\n"
    cli = [sys.executable, "-m", "temporal_siem", "parse", "-", "--out", str(out), "--dead-letter", str(dead_path)]
    done = subprocess.run(cli, input=stdin, capture_output=True, timeout=120, cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    events = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert [e["event"]["id"] for e in events] == ["good-0", "good-1"]
    dead = [orjson.loads(line) for line in dead_path.read_bytes().splitlines()]
    assert [(d["reason"], d["origin_text"]) for d in dead] == [("invalid JSON", "-:2"), ("invalid UTF-8", "-:3")]
    assert dead[1]["raw_base64"]  # undecodable bytes are kept, base64


@pytest.mark.parametrize("shape", ["lines", "array", "pretty", "gzip"])
def test_utf8_bom_at_file_start_keeps_the_first_record(tmp_path, shape):
    """Editors and PowerShell's Out-File write a UTF-8 byte-order mark: the first record used to be "not a JSON object"."""
    bom = b"\xef\xbb\xbf"
    body = {"lines": b"\n".join(GOOD_LINES) + b"\n", "array": orjson.dumps(GOOD),
            "pretty": orjson.dumps(GOOD, option=orjson.OPT_INDENT_2), "gzip": b"\n".join(GOOD_LINES)}[shape]
    path = tmp_path / f"bom-{shape}.json"
    path.write_bytes(gzip.compress(bom + body) if shape == "gzip" else bom + body)
    events, dead = replay(path)
    assert not dead
    assert sorted(e["event.id"] for e in events) == ["good-0", "good-1", "good-2"]


def test_utf8_bom_on_a_single_record_is_ignored():
    from temporal_siem.kernel.records import Origin, RawRecord

    result = ParserRouter().parse(RawRecord(b"\xef\xbb\xbf" + GOOD_LINES[0], Origin("kafka", line=1)))
    assert not result.dead and len(result.events) == 1
