"""``LinearRegex``: unbounded ``|re`` patterns run on RE2 by asking its C++ matcher whether there is a match,
not through google-re2's Python ``search``. The answer must be the wrapper's on every text (ASCII or not, with
Python's Unicode classes translated, with each inline flag), a lone surrogate must fail as it did, and a
google-re2 without the internal matcher must give the same answers through the wrapper."""

from __future__ import annotations

import pickle
import re

import pytest
import re2
from hypothesis import given, settings
from hypothesis import strategies as st

from temporal_siem.detections.sigma import runtime
from temporal_siem.detections.sigma.compiler import LinearRegex, guarded_regex

#: Unbounded patterns (so RE2 runs them), with classes, anchors, alternations and each flag.
PATTERNS = [
    (r"\s-e(c|nc|ncodedcommand)?\s+[a-z0-9+/=]{20,}", re.IGNORECASE),
    (r"^\w+@[\w.]+$", 0),
    (r"a+b*c", 0),
    (r"(?:\d+\.){3}\d+", 0),
    (r"x.*y$", re.DOTALL),
    (r"^end\s*$", re.MULTILINE),
    (r"\S+\\\w+\.exe", re.IGNORECASE),
    (r"ä+ö*", re.IGNORECASE),
]

_TEXT = st.text(alphabet=st.sampled_from([*"abcxyz ABC019.@\\-+/=_\n\t", "ä", "Ö", "\u2003", "\u0660", "é", "e"]),
                max_size=60)


def _wrapper(regex: LinearRegex, text: str) -> bool:
    return regex._compiled.search(text) is not None


@pytest.mark.parametrize(("pattern", "flags"), PATTERNS)
def test_every_pattern_here_runs_on_re2(pattern: str, flags: int) -> None:
    assert isinstance(guarded_regex(pattern, flags), LinearRegex)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(PATTERNS), _TEXT, _TEXT)
def test_search_is_the_wrappers_and_pythons_answer(case: tuple[str, int], head: str, tail: str) -> None:
    pattern, flags = case
    regex = guarded_regex(pattern, flags)
    assert isinstance(regex, LinearRegex)
    for text in (head + tail, head + "-enc " + "A" * 24 + tail, head + "user@host.example" + tail, "end\n" + tail):
        found = regex.search(text)
        assert found in (True, None)
        assert (found is True) == _wrapper(regex, text)
        assert (found is True) == (re.search(pattern, text, flags) is not None), (pattern, text)


def test_a_lone_surrogate_fails_as_before() -> None:
    regex = guarded_regex(r"a+b", 0)
    with pytest.raises(UnicodeEncodeError):
        regex._compiled.search("aab\ud800")
    with pytest.raises(UnicodeEncodeError):
        regex.search("aab\ud800")


def test_without_the_internal_matcher_the_wrapper_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    texts = ("aab", "xab", "ba", "", "äaab")
    fast = guarded_regex(r"a+b", 0)
    answers = [fast.search(text) for text in texts]
    assert fast._match is not None and answers == [True, True, None, None, True]
    monkeypatch.setattr(runtime, "_UNANCHORED", None)
    slow = guarded_regex(r"a+b", 0)
    assert slow._match is None
    assert [slow.search(text) for text in texts] == answers


def test_pickles_as_its_pattern() -> None:
    regex = guarded_regex(r"(?i)x\w+y", 0)
    again = pickle.loads(pickle.dumps(regex))
    assert isinstance(again, LinearRegex) and again.pattern == regex.pattern
    assert again.search("xAy") and again.search("XaaY") and again.search("xy") is None
    assert re2.compile(regex.pattern).search("xAy") is not None
