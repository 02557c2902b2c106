"""The candidate index over a batch (``CandidateIndex.candidates_many``, what the detector calls) gives each event
the candidates it gets alone (``candidates``): the batch scan of unmemoised values and keywords finds a needle in
a value exactly when the value's own scan does, with non-ASCII text, NULs in values, lists and numbers, with
Hyperscan or Aho-Corasick, and when a dense field falls back to scanning value by value."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from temporal_siem.detections.sigma import index as index_module
from temporal_siem.detections.sigma.index import LiteralScanner
from temporal_siem.detections.sigma.ruleset import Ruleset
from temporal_siem.detections.sigma.values import EventFolds
from tests.sigma.generators import rule_events, windows_events

SIGMAHQ = Path(__file__).parent / "data" / "sigmahq"
RULES = """
title: needles in fields without a memo
id: 5b0c2b9e-1d7a-4e5b-8c6f-9a0b1c2d3e42
logsource: {product: windows, category: process_creation}
detection:
  a: {CommandLine|contains: ['whoami', ' -enc ', 'é€']}
  b: {Hashes|contains: 'imphash=8d1'}
  c: {Image|endswith: '\\\\cmd.exe'}
  condition: a or b or c
level: high
---
title: a keyword
id: 5b0c2b9e-1d7a-4e5b-8c6f-9a0b1c2d3e43
logsource: {product: windows}
detection:
  keywords: ['mimikatz', 'sekurlsa::']
  condition: keywords
level: high
"""

ALPHABET = st.sampled_from([*"ab\\. é€\x00", "\ud800", "whoami", " -enc ", "mimikatz", "imphash=8d1", "CMD.EXE"])
TEXT = st.lists(ALPHABET, max_size=8).map("".join)
VALUE = st.one_of(TEXT, st.lists(TEXT, max_size=3), st.integers(-5, 5), st.none(), st.booleans())
EVENT = st.dictionaries(st.sampled_from(["CommandLine", "Hashes", "Image", "User", "EventID", "Channel"]), VALUE,
                        max_size=6).map(lambda e: {"Channel": "Microsoft-Windows-Sysmon/Operational", **e})


def _ruleset(tmp_path: Path, with_sample: bool = False) -> Ruleset:
    (tmp_path / "r.yml").write_text(RULES)
    paths = [SIGMAHQ, tmp_path / "r.yml"] if with_sample else [tmp_path / "r.yml"]
    return Ruleset.from_paths(paths, builtin_rules=False)


def _one_by_one(ruleset: Ruleset, events: list[dict]) -> list[set[int]]:
    return [ruleset.lane_for(e).index.candidates(e, EventFolds(e)) for e in events]


def _batched(ruleset: Ruleset, events: list[dict]) -> list[set[int]]:
    """Per lane, as the detector does, back in the events' order."""
    out: list[set[int] | None] = [None] * len(events)
    groups: dict[int, list[int]] = {}
    for position, event in enumerate(events):
        groups.setdefault(ruleset.lane_for(event).key, []).append(position)
    for positions in groups.values():
        lane = ruleset.lane_for(events[positions[0]])
        batch = [events[p] for p in positions]
        for p, found in zip(positions, lane.index.candidates_many(batch, [EventFolds(e) for e in batch]), strict=True):
            out[p] = found
    return out  # type: ignore[return-value]


def _no_memo(ruleset: Ruleset) -> None:
    for lane in ruleset.lanes:
        for slot in lane.index.fields.values():
            slot.memo = None


@pytest.mark.parametrize("with_sample", [False, True])
def test_batch_gives_each_event_its_own_candidates(tmp_path: Path, with_sample: bool) -> None:
    ruleset = _ruleset(tmp_path, with_sample)
    rng = random.Random(3)
    events = [ruleset.view(e) for e in windows_events(400)]
    for rule in ruleset.rules:
        assert rule.rule is not None
        events.extend(rule_events(rule.rule, rng, count=2))
    rng.shuffle(events)
    _one_by_one(ruleset, events[:50])
    _no_memo(ruleset)  # every value through the batch scan
    expected = _one_by_one(ruleset, events)
    assert any(expected)
    for size in (1, 7, len(events)):
        got = [found for start in range(0, len(events), size) for found in _batched(ruleset, events[start:start + size])]
        assert got == expected


@settings(max_examples=150, deadline=None)
@given(st.lists(EVENT, min_size=1, max_size=12), st.sampled_from([1 << 20, 1, 9]))
def test_batch_property(tmp_path_factory, events: list[dict], budget: int) -> None:
    """``budget``: the characters one scan joins (BATCH_SCAN_CHARS), small ones to scan the batch in parts."""
    ruleset = _ruleset(tmp_path_factory.mktemp("batch"))
    expected = _one_by_one(ruleset, events)
    _no_memo(ruleset)
    saved = index_module.BATCH_SCAN_CHARS
    index_module.BATCH_SCAN_CHARS = budget
    try:
        assert _batched(ruleset, events) == expected
    finally:
        index_module.BATCH_SCAN_CHARS = saved


@settings(max_examples=60, deadline=None)
@given(st.lists(EVENT, min_size=1, max_size=12))
def test_batch_property_aho_corasick(tmp_path_factory, events: list[dict]) -> None:
    saved = index_module.hyperscan
    index_module.hyperscan = None
    try:
        ruleset = _ruleset(tmp_path_factory.mktemp("batch-ac"))
        expected = _one_by_one(ruleset, events)
        _no_memo(ruleset)
        got = _batched(ruleset, events)
    finally:
        index_module.hyperscan = saved
    assert got == expected


NEEDLES = st.lists(st.text(st.sampled_from([*"ab\\. é€", "\ud800", "\U0001f600"]), min_size=1, max_size=5),
                   min_size=1, max_size=20, unique=True)
TEXTS = st.lists(st.text(st.sampled_from([*"ab\\. é€\x00", "\ud800", "\U0001f600"]), max_size=30), max_size=20)


@settings(max_examples=300, deadline=None)
@given(needles=NEEDLES, texts=TEXTS, hyperscan=st.booleans(), budget=st.sampled_from([1 << 20, 1, 5, 40]))
def test_hits_many_is_hits_of_each_text(needles: list[str], texts: list[str], hyperscan: bool, budget: int) -> None:
    """One scan of all texts (or of parts of about ``budget`` characters) gives (text, needle) exactly for each
    needle the text's own scan finds: a match is given to the text holding its last character, whatever the byte
    length of the characters before it."""
    saved = index_module.hyperscan, index_module.BATCH_SCAN_CHARS
    if not hyperscan:
        index_module.hyperscan = None
    index_module.BATCH_SCAN_CHARS = budget
    try:
        scanner = LiteralScanner(needles)
        assert not scanner.holds_nul
        assert scanner.hits_many(texts) == {(i, nid) for i, text in enumerate(texts) for nid in scanner.hits(text)}
    finally:
        index_module.hyperscan, index_module.BATCH_SCAN_CHARS = saved


def test_a_needle_holding_nul_keeps_the_scan_per_event(tmp_path: Path) -> None:
    """A NUL in a needle could match across two joined texts: such a lane scans each event alone."""
    (tmp_path / "r.yml").write_text(
        "title: t\nid: 5b0c2b9e-1d7a-4e5b-8c6f-9a0b1c2d3e44\nlogsource: {product: windows}\n"
        'detection:\n  a: {CommandLine|contains: "a\\0b"}\n  condition: a\nlevel: low\n')
    ruleset = Ruleset.from_paths([tmp_path / "r.yml"], builtin_rules=False)
    events = [{"Channel": "Microsoft-Windows-Sysmon/Operational", "CommandLine": text} for text in ("xa", "b", "a\x00b", "zz")]
    lane = ruleset.lane_for(events[0])
    assert lane.index.scanner is not None and lane.index.scanner.holds_nul
    assert not lane.index._batch_scan
    _no_memo(ruleset)
    assert _batched(ruleset, events) == _one_by_one(ruleset, events)


def test_dense_field_is_scanned_value_by_value_then_measured_again(tmp_path: Path, monkeypatch) -> None:
    """A field whose values hold many needle hits costs more in the batch scan (a Python call per hit) than alone:
    after one such batch it is scanned value by value for PER_VALUE_BATCHES batches, then in the batch again."""
    monkeypatch.setattr(index_module, "PER_VALUE_BATCHES", 2)
    ruleset = _ruleset(tmp_path)
    dense = [{"Channel": "Microsoft-Windows-Sysmon/Operational", "CommandLine": f"whoami -enc x -enc é€ {n}"}
             for n in range(20)]
    index = ruleset.lane_for(dense[0]).index
    _no_memo(ruleset)
    slot = index.fields["CommandLine"]
    scans: list[int] = []
    real = LiteralScanner.hits_many
    def counted(self: LiteralScanner, texts: list[str]) -> set[tuple[int, int]]:
        if self is index.scanner:  # the field needles' scanner (the keyword one scans every batch)
            scans.append(len(texts))
        return real(self, texts)

    monkeypatch.setattr(LiteralScanner, "hits_many", counted)
    expected = _one_by_one(ruleset, dense)
    assert _batched(ruleset, dense) == expected
    assert slot.per_value == 2 and scans == [20]
    assert _batched(ruleset, dense) == expected  # value by value: no batch scan of the field
    assert _batched(ruleset, dense) == expected
    assert scans == [20] and slot.per_value == 0
    assert _batched(ruleset, dense) == expected  # measured again
    assert scans == [20, 20]


def test_a_failing_batch_call_costs_only_the_failing_event_its_index(tmp_path: Path, monkeypatch) -> None:
    """Hostile values must not stop the stream: when the lane's batch call raises, each event gets its own call,
    and the one whose call raises is evaluated against the whole lane; every event keeps its alerts."""
    from temporal_siem.detections.factory import new_detector
    from temporal_siem.detections.sigma.index import CandidateIndex

    ruleset = _ruleset(tmp_path)
    events = [{"Channel": "Microsoft-Windows-Sysmon/Operational", "CommandLine": text, "event.id": str(n)}
              for n, text in enumerate(["whoami /all", "benign", "HOSTILE whoami"])]
    real = CandidateIndex.candidates

    def batch_fails(self: CandidateIndex, batch: list[dict], caches: list) -> list[set[int]]:
        raise RuntimeError("hostile batch")

    def one_fails(self: CandidateIndex, event: dict, cache: dict) -> set[int]:
        if str(event.get("CommandLine", "")).startswith("HOSTILE"):
            raise RuntimeError("hostile value")
        return real(self, event, cache)

    monkeypatch.setattr(CandidateIndex, "candidates_many", batch_fails)
    monkeypatch.setattr(CandidateIndex, "candidates", one_fails)
    detector = new_detector(ruleset)
    alerts = detector.process([dict(e) for e in events])
    assert sorted(a["event.id"] for a in alerts) == ["0", "2"]  # the hostile one through the whole lane
    assert {a["rule.name"] for a in alerts} == {"needles in fields without a memo"}
