"""The acceptance helpers read files that running daemons are still writing: a poll between two writes of one
document must see the documents before it, not fail the test (a fresh-clone CI run failed on exactly that)."""

from __future__ import annotations

from pathlib import Path

from tests.daemon.helpers import read_jsonl


def test_a_document_still_being_written_is_left_for_the_next_read(tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"
    path.write_bytes(b'{"alert": {"id": "a1"}}\n\n{"alert": {"id": "a2"}}\n{"alert": {"id"')
    assert [d["alert"]["id"] for d in read_jsonl(path)] == ["a1", "a2"]
    with path.open("ab") as out:
        out.write(b': "a3"}}\n')
    assert [d["alert"]["id"] for d in read_jsonl(path, tmp_path / "absent.jsonl")] == ["a1", "a2", "a3"]
