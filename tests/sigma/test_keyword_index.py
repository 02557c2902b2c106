"""Keyword lanes: the index searches the keyword needles once per event in all its values joined (index.py
``_keywords``). It may only over-approximate, so indexed matching must equal a full scan, including for list
members, whose ``str()`` escapes exactly the characters (backslash, quotes, control characters) a needle can hold."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

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
"""

NEEDLES = ["C:\\TEMP\\Evil", "it's \"quoted\"", "tab\there", "MimiKatz"]

_CACHED: list[Ruleset] = []


def _ruleset(tmp_path_factory) -> Ruleset:
    if not _CACHED:
        path = tmp_path_factory.mktemp("kw") / "r.yml"
        path.write_text(RULE)
        ruleset = Ruleset.from_paths([path], builtin_rules=False)
        assert len(ruleset.rules) == 2 and not ruleset.errors
        _CACHED.append(ruleset)
    return _CACHED[0]


def _check(ruleset: Ruleset, event: dict) -> list[int]:
    indexed = ruleset.match_indices(event)
    assert indexed == ruleset.match_indices(event, full_scan=True), event
    return indexed


def test_needles_in_list_members_are_found(tmp_path_factory) -> None:
    """A list's str() doubles backslashes and escapes quotes and tabs: each needle here would be missed if the
    joined str() text were scanned as it is."""
    ruleset = _ruleset(tmp_path_factory)
    for needle in NEEDLES:
        for event in ({"tags": ["x", f"run {needle} now"], "EventID": 1},
                      {"a": f"run {needle} now"},
                      {"n": 4, "b": True, "c": None, "d": {"k": "v"}, "e": [f"{needle}"]}):
            assert _check(ruleset, event) == [0], (needle, event)
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
@given(st.dictionaries(st.sampled_from(["Image", "CommandLine", "msg", "tags", "n"]), _VALUE, min_size=1, max_size=5))
def test_keyword_lane_equals_full_scan(tmp_path_factory, event: dict) -> None:
    _check(_ruleset(tmp_path_factory), event)
