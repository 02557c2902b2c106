"""The per-field value memo of the candidate index gives the same candidates as computing them afresh,
whether the memo is warm, full, or switched off for a field whose values do not repeat."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from temporal_siem.detections.sigma import index as index_module
from temporal_siem.detections.sigma.ruleset import Ruleset
from temporal_siem.detections.sigma.values import EventFolds
from tests.sigma.generators import rule_events, windows_events

SIGMAHQ = Path(__file__).parent / "data" / "sigmahq"
RULES = """
title: needles in a low-cardinality field
id: 3f0c2b9e-1d7a-4e5b-8c6f-9a0b1c2d3e41
logsource: {product: windows, category: process_creation}
detection:
  a: {Image|endswith: ['\\\\cmd.exe', '\\\\powershell.exe']}
  b: {IntegrityLevel: High}
  c: {CommandLine|contains: ['whoami', ' -enc ']}
  d: {EventID: 1}
  condition: (a and b) or c or d
level: high
"""


def _ruleset(tmp_path: Path, with_sample: bool = False) -> Ruleset:
    """Our rule alone (a lane without keyword rules: the memoised path), or with the SigmaHQ sample, whose
    keyword rules make the lane scan every value instead."""
    (tmp_path / "r.yml").write_text(RULES)
    return Ruleset.from_paths([SIGMAHQ, tmp_path / "r.yml"] if with_sample else [tmp_path / "r.yml"], builtin_rules=False)


def _events(ruleset: Ruleset) -> list[dict]:
    rng = random.Random(5)
    events = windows_events(600)
    for rule in ruleset.rules:
        assert rule.rule is not None
        events.extend(rule_events(rule.rule, rng, count=2))
    return events


def _fresh(ruleset: Ruleset, event: dict) -> set[int]:
    """Candidates with every memo off: the path without memoisation."""
    event = ruleset.view(event)
    lane = ruleset.lane_for(event)
    slots = list(lane.index.fields.values())
    saved = [slot.memo for slot in slots]
    for slot in slots:
        slot.memo = None
    try:
        return lane.index.candidates(event, EventFolds(event))
    finally:
        for slot, memo in zip(slots, saved, strict=True):
            slot.memo = memo


@pytest.mark.parametrize("with_sample", [False, True])
def test_warm_memo_same_candidates(tmp_path: Path, with_sample: bool) -> None:
    ruleset = _ruleset(tmp_path, with_sample)
    events = _events(ruleset)
    memoised = 0
    for round_ in range(3):  # the second and third rounds hit the memo
        for event in events:
            got = ruleset.candidates(event)
            assert got == _fresh(ruleset, event)
            assert set(ruleset.match_indices(event)) <= got
        if round_:
            memoised = sum(len(slot.memo or ()) for lane in ruleset.lanes for slot in lane.index.fields.values())
    assert memoised > 10 or with_sample


def test_memo_turns_off_for_unique_values(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(index_module, "MEMO_WINDOW", 50)
    monkeypatch.setattr(index_module, "MEMO_SIZE", 20)
    ruleset = _ruleset(tmp_path)
    for n in range(200):
        event = {"Image": f"C:\\x{n}\\cmd.exe", "IntegrityLevel": "High", "CommandLine": f"whoami {n}", "EventID": 1}
        assert ruleset.candidates(event) == _fresh(ruleset, event)
    lane = ruleset.lane_for({"Image": "x"})
    assert lane.index.fields["CommandLine"].memo is None  # never repeats: switched off
    assert len(lane.index.fields["IntegrityLevel"].memo or {}) == 1


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["Image", "CommandLine", "IntegrityLevel", "User", "EventID"]),
                          st.sampled_from(["C:\\Windows\\System32\\cmd.exe", "whoami /all", "High", "x -enc AA", "1",
                                           "POWERSHELL.EXE", "\\powershell.exe", "\u017f", "\u0130"])), min_size=1, max_size=6))
def test_memo_property(tmp_path_factory, pairs: list[tuple[str, str]]) -> None:
    ruleset = _memo_ruleset(tmp_path_factory)
    event = dict(pairs)
    for _ in range(2):
        assert ruleset.candidates(event) == _fresh(ruleset, event)


_CACHED: list[Ruleset] = []


def _memo_ruleset(tmp_path_factory) -> Ruleset:
    if not _CACHED:
        _CACHED.append(_ruleset(tmp_path_factory.mktemp("memo")))
    return _CACHED[0]


IDLE_RULE = """
title: a filter field no witness names
id: 5b1d0c8e-2f3a-4b6c-9d7e-0a1b2c3d4e52
logsource: {product: windows, category: process_creation}
detection:
  selection: {Image|endswith: '\\\\cmd.exe'}
  filter: {CurrentDirectory|startswith: 'C:\\\\Windows\\\\'}
  condition: selection and not filter
level: high
"""


@pytest.mark.parametrize(("value", "matches"), [("C:\\Users\\bob\\", True), (None, True), (["C:\\a\\", "C:\\b\\"], True),
                                                (7, True), ("C:\\Windows\\Temp\\", False)])
def test_a_field_no_witness_names_is_marked_seen_then_no_longer_probed(tmp_path: Path, value: object, matches: bool) -> None:
    """CurrentDirectory is read by the rule (its filter) but gives no token: the first event holding it marks it
    seen (rule health's "missing fields"), after which the lane does not probe it; candidates are unchanged."""
    (tmp_path / "r.yml").write_text(IDLE_RULE)
    ruleset = Ruleset.from_paths([tmp_path / "r.yml"], builtin_rules=False)
    event = {"EventID": 1, "Channel": "Microsoft-Windows-Sysmon/Operational", "Image": "C:\\Windows\\System32\\cmd.exe",
             "CurrentDirectory": value}
    lane = ruleset.lane_for(ruleset.view(event))
    index = lane.index
    assert "CurrentDirectory" in index._idle and "Image" not in index._idle
    assert not index.fields["CurrentDirectory"].seen
    before = _fresh(ruleset, event)
    assert index.fields["CurrentDirectory"].seen  # even with the memo off
    assert "CurrentDirectory" not in index._slot_set and "Image" in index._slot_set
    assert lane.index.candidates(event, EventFolds(event)) == before == {ruleset.rules[0].index}
    assert len(ruleset.match_indices(event)) == int(matches)
