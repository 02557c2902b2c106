"""Keyword lanes (index.py ``_keywords``): the keyword needles are searched once per event in all its values
joined. It may only over-approximate, so indexed matching must equal a full scan wherever the keyword sits (a
field with needles, a field with exact values only, a field no rule names, a list member, whose ``str()``
escapes exactly the characters a needle can hold: backslash, quotes, control characters), with the field memo
cold and warm, with Hyperscan and with the Aho-Corasick fallback."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from temporal_siem.detections.sigma import index as index_module
from temporal_siem.detections.sigma.ruleset import Ruleset

RULE = """
title: keywords with backslashes and quotes
id: 6c1d2e3f-4a5b-4c6d-8e7f-8091a2b3c4d5
logsource: {product: windows}
detection:
  keywords:
    - 'c:\\\\temp\\\\evil'
    - "it's \\"quoted\\""
    - "tab\\there"
    - mimikatz
  condition: keywords
level: high
---
title: a field rule in the same lane
id: 7d2e3f4a-5b6c-4d7e-9f80-91a2b3c4d5e6
logsource: {product: windows}
detection:
  sel: {Image|endswith: '\\\\cmd.exe'}
  condition: sel
level: low
---
title: an exact-only field in the same lane
id: 8e3f4a5b-6c7d-4e8f-a091-a2b3c4d5e6f7
logsource: {product: windows}
detection:
  sel: {IntegrityLevel: High}
  condition: sel
level: low
"""

NEEDLES = ["C:\\TEMP\\Evil", "it's \"quoted\"", "tab\there", "MimiKatz"]

_CACHED: dict[bool, Ruleset] = {}


def _ruleset(tmp_path_factory, hyperscan: bool = True) -> Ruleset:
    """The rules, their lanes built with Hyperscan or (``hyperscan=False``) with the Aho-Corasick fallback."""
    if hyperscan not in _CACHED:
        path = tmp_path_factory.mktemp("kw") / "r.yml"
        path.write_text(RULE)
        ruleset = Ruleset.from_paths([path], builtin_rules=False)
        assert len(ruleset.rules) == 3 and not ruleset.errors
        with pytest.MonkeyPatch.context() as patch:
            if not hyperscan:
                patch.setattr(index_module, "hyperscan", None)
            ruleset.match_indices({"Image": "x"})  # lanes are built on first use: now, under the patch
        lane = ruleset.lane_for({"Image": "x"})
        assert (lane.index.keyword_scanner._database is not None) == hyperscan
        _CACHED[hyperscan] = ruleset
    return _CACHED[hyperscan]


def _check(ruleset: Ruleset, event: dict) -> list[int]:
    indexed = ruleset.match_indices(event)
    assert indexed == ruleset.match_indices(event, full_scan=True), event
    assert ruleset.match_indices(event) == indexed, event  # again, from the memo the first call filled
    return indexed


def _memo_off(ruleset: Ruleset, event: dict) -> set[int]:
    lane = ruleset.lane_for(ruleset.view(event))
    slots = list(lane.index.fields.values())
    saved = [slot.memo for slot in slots]
    for slot in slots:
        slot.memo = None
    try:
        return ruleset.candidates(event)
    finally:
        for slot, memo in zip(slots, saved, strict=True):
            slot.memo = memo


def test_needles_in_list_members_are_found(tmp_path_factory) -> None:
    """A list's str() doubles backslashes and escapes quotes and tabs: each needle here would be missed if the
    joined str() text were scanned as it is."""
    ruleset = _ruleset(tmp_path_factory)
    for needle in NEEDLES:
        for event in ({"tags": ["x", f"run {needle} now"], "EventID": 1},
                      {"a": f"run {needle} now"},
                      {"n": 4, "b": True, "c": None, "d": {"k": "v"}, "e": [f"{needle}"]}):
            assert _check(ruleset, event) == [0], (needle, event)


@pytest.mark.parametrize("hyperscan", [True, False])
def test_needles_in_every_kind_of_field_are_found(tmp_path_factory, hyperscan: bool) -> None:
    """Each way a value reaches the keyword search: a field with needles (Image: its scan), a field with exact
    values only (IntegrityLevel: memoised with its keyword hits, or joined when the memo is off), a field no
    rule names (msg), a list member; in any case, ASCII or not."""
    ruleset = _ruleset(tmp_path_factory, hyperscan)
    for needle in [*NEEDLES, "MIMI\u212aATZ"]:  # the Kelvin sign lowers to an ASCII k: never left unlowered
        for key in ("Image", "IntegrityLevel", "msg"):
            for value in (f"run {needle} now", [f"run {needle}", 3]):
                event = {key: value, "EventID": 1}
                assert _check(ruleset, event) == [0], (needle, event)
                assert 0 in _memo_off(ruleset, event)
        assert _check(ruleset, {"Image": "x\\cmd.exe", "IntegrityLevel": "high", "msg": needle}) == [0, 1, 2]
    for quiet in ({"Image": "mimi katz", "IntegrityLevel": "mimi", "msg": "katz"}, {"IntegrityLevel": 7, "n": None}):
        assert _check(ruleset, quiet) == []
    assert _check(ruleset, {"tags": ["c:\\temp", "evil"], "msg": "nothing"}) == []
    assert _check(ruleset, {"n": 5, "flag": True, "msg": "[bracket] only"}) == []


def test_values_str_cannot_spell_take_the_exact_join(tmp_path_factory) -> None:
    """An integer past str()'s digit limit (ValueError) or a hostile nesting depth (RecursionError) in any value
    must not cost the event its keyword candidates: the exact join reads only string values and members."""
    ruleset = _ruleset(tmp_path_factory)
    deep: list = []
    for _ in range(100_000):
        deep = [deep]
    for odd in (10**5000, {"x": 10**5000}, [10**5000, "pad"], deep):
        event = {"odd": odd, "msg": "run MIMIKATZ now"}
        assert ruleset.candidates(event) >= {0}
        assert _check(ruleset, {"odd": odd, "msg": "nothing here"}) == []


_TEXT = st.lists(st.sampled_from([*"ab\\'\" \t[]{}", "mimikatz", "c:\\temp\\evil", "it's \"quoted\"", "tab\there",
                                   "MIMIKATZ", "\u212a", "\u0130"]), max_size=8).map("".join)
_VALUE = st.one_of(_TEXT, st.integers(), st.booleans(), st.none(), st.floats(allow_nan=False),
                   st.lists(st.one_of(_TEXT, st.integers()), max_size=3), st.dictionaries(st.text(max_size=2), _TEXT, max_size=2))


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["Image", "CommandLine", "IntegrityLevel", "msg", "tags", "n"]), _VALUE,
                       min_size=1, max_size=6))
def test_keyword_lane_equals_full_scan(tmp_path_factory, event: dict) -> None:
    for hyperscan in (True, False):
        ruleset = _ruleset(tmp_path_factory, hyperscan)
        _check(ruleset, event)
        assert set(ruleset.match_indices(event, full_scan=True)) <= _memo_off(ruleset, event)
