"""Witness soundness: whatever a rule's needles are, every event it matches contains one of them."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from temporal_siem.detections.sigma.witness import regex_literals

atoms = st.sampled_from(["ab", "Cd", "e", "xyz", "[a-c]", ".", "\\d", "\\b", "^", "$", "(?i:Qr)", "é"])
patterns = st.recursive(
    atoms,
    lambda inner: st.one_of(
        st.tuples(inner, inner).map("".join),
        st.tuples(inner, inner).map(lambda t: f"(?:{t[0]}|{t[1]})"),
        st.tuples(inner, st.sampled_from(["*", "+", "?", "{2}", "{0,2}", "{1,3}"])).map(lambda t: f"(?:{t[0]}){t[1]}"),
        inner.map(lambda p: f"({p})"),
    ),
    max_leaves=6,
)


@settings(max_examples=400, deadline=None)
@given(pattern=patterns, text=st.text(alphabet="abCdexyzQqRré0 1", max_size=24))
def test_regex_needles_are_necessary(pattern: str, text: str) -> None:
    compiled = re.compile(pattern)
    for min_bytes in (None, 1):  # the index takes one-byte regex needles (issue 19); the compiler's prefilter too
        needles = regex_literals(pattern, min_bytes=min_bytes)
        if needles is not None and compiled.search(text):
            assert any(n in text.lower() for n in needles), (pattern, text, needles, min_bytes)


@given(pattern=patterns)
@settings(max_examples=200, deadline=None)
def test_regex_needles_match_something_the_regex_matches(pattern: str) -> None:
    # sanity: needles are folded and non-empty
    needles = regex_literals(pattern)
    assert needles is None or all(n and n == n.lower() for n in needles)


def test_examples() -> None:
    assert regex_literals("(?i)invoke-(expression|webrequest)") == {"expression", "webrequest"}
    assert regex_literals("a|b") is None
    assert regex_literals("[a-z]+\\.exe") == {".exe"}
    assert regex_literals("x{0,3}hello") == {"hello"}
    assert regex_literals("(") is None  # invalid: no witness, the rule stays a presence candidate


@settings(max_examples=300, deadline=None)
@given(data=st.data(), pattern=patterns)
def test_regex_needles_on_generated_matches(data: st.DataObject, pattern: str) -> None:
    needles = regex_literals(pattern, min_bytes=1)
    if needles is None:
        return
    text = data.draw(st.from_regex(re.compile(pattern)))
    if re.search(pattern, text):
        assert any(n in text.lower() for n in needles), (pattern, text, needles)
