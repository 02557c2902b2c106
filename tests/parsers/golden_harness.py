"""Golden files: each sample file parses to the checked-in expected normalized events.

samples/<format>/<file> -> tests/parsers/golden/<format>/<file>.expected.jsonl (nested JSON, one event a line,
``event.ingested`` removed since it is the time of parsing). Regenerate after a deliberate change with
``UPDATE_GOLDEN=1 .venv/bin/pytest tests/parsers -k golden`` and review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson

from temporal_siem.ingest.replay import ReplaySource
from temporal_siem.kernel.flatten import unflatten
from temporal_siem.parsers.router import ParserRouter

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples"
GOLDEN = Path(__file__).resolve().parent / "golden"
VOLATILE = ("event.ingested", "temporal.clock_skew_seconds")


def parse_file(path: Path, format_name: str = "auto") -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    router = ParserRouter(format_name)
    events: list[dict[str, Any]] = []
    dead: list[dict[str, Any]] = []
    source = ReplaySource([str(path)])
    for batch in source.batches():
        for record in batch:
            result = router.parse(record)
            events.extend(result.events)
            dead.extend(d.as_dict() for d in result.dead)
    dead.extend(d.as_dict() for d in source.take_dead_letters())
    for event in events:
        for key in VOLATILE:
            event.pop(key, None)
    return [unflatten(e) for e in events], dead


def sample_files(format_name: str) -> list[Path]:
    folder = SAMPLES / format_name
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".") and p.suffix != ".md")


def golden_path(sample: Path) -> Path:
    relative = sample.relative_to(SAMPLES)
    return GOLDEN / relative.parent / (relative.name + ".expected.jsonl")


def check_golden(sample: Path) -> None:
    events, dead = parse_file(sample)
    assert not dead, f"{sample.name}: dead-lettered records in a sample: {dead[:3]}"
    assert events, f"{sample.name}: no events"
    text = b"".join(orjson.dumps(e, option=orjson.OPT_SORT_KEYS) + b"\n" for e in events)
    expected_path = golden_path(sample)
    if os.environ.get("UPDATE_GOLDEN"):
        expected_path.parent.mkdir(parents=True, exist_ok=True)
        expected_path.write_bytes(text)
    assert expected_path.exists(), f"no golden file {expected_path}; run UPDATE_GOLDEN=1 pytest -k golden and review it"
    expected = [orjson.loads(line) for line in expected_path.read_bytes().splitlines() if line.strip()]
    actual = [orjson.loads(line) for line in text.splitlines()]
    assert len(actual) == len(expected), f"{sample.name}: {len(actual)} events, golden has {len(expected)}"
    for index, (got, want) in enumerate(zip(actual, expected, strict=True)):
        assert got == want, f"{sample.name} event {index} differs from golden"
