"""Property tests: the compiled matcher agrees with a direct reading of the Sigma specification.

The reference below re-implements Sigma string matching from the spec text, independently of pySigma's
string parser and of our compiler: escapes (``\\*``, ``\\?``, ``\\\\``; a backslash before anything else is
literal), wildcards, modifiers, case-insensitivity via ``str.lower()`` on both sides.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from temporal_siem.detections.sigma import SigmaEngine
from tests.sigma.test_witness import patterns

ALPHABET = "ab*?\\Xé.İß -"
texts = st.text(alphabet=ALPHABET, max_size=8)
modifiers = st.sampled_from(["", "|contains", "|startswith", "|endswith", "|cased", "|contains|cased"])


def reference_regex(value: str, modifier: str) -> re.Pattern[str]:
    cased = "cased" in modifier
    out = []
    i = 0
    while i < len(value):
        ch = value[i]
        if ch == "\\" and i + 1 < len(value) and value[i + 1] in "*?\\":
            literal = value[i + 1]
            out.append(re.escape(literal if cased else literal.lower()))
            i += 2
            continue
        if ch == "*":
            out.append(".*")
        elif ch == "?":
            out.append(".")
        else:
            out.append(re.escape(ch if cased else ch.lower()))
        i += 1
    body = "".join(out)
    if "contains" in modifier:
        body = f".*(?:{body}).*"
    elif "startswith" in modifier:
        body = f"(?:{body}).*"
    elif "endswith" in modifier:
        body = f".*(?:{body})"
    return re.compile(body, re.S)


def reference_match(value: str, modifier: str, event_value: Any) -> bool:
    if not isinstance(event_value, str):
        return False
    text = event_value if "cased" in modifier else event_value.lower()
    return reference_regex(value, modifier).fullmatch(text) is not None


def build(field_modifier: str, value: Any) -> SigmaEngine:
    rule = {"title": "p", "id": "7c0de000-0000-4000-8000-000000000001", "logsource": {"product": "test"},
            "detection": {"sel": {f"f{field_modifier}": value}, "condition": "sel"}}
    return SigmaEngine.from_yaml(yaml.safe_dump(rule), builtin_pipeline=False)


@settings(max_examples=300, deadline=None)
@given(value=texts, modifier=modifiers, event_value=texts)
def test_strings_match_the_specification(value: str, modifier: str, event_value: str) -> None:
    engine = build(modifier, value)
    if engine.errors:  # pySigma refuses some values (none expected here): then nothing to compare
        raise AssertionError(engine.errors)
    expected = reference_match(value, modifier, event_value)
    assert bool(engine.match({"f": event_value})) is expected
    # the same value built to hit: the rule's own literal text, case flipped where allowed
    assert bool(engine.ruleset.match_indices({"f": event_value})) == bool(engine.ruleset.match_indices({"f": event_value}, full_scan=True))


@settings(max_examples=150, deadline=None)
@given(values=st.lists(texts, min_size=1, max_size=4), all_=st.booleans(), modifier=modifiers,
       event_value=st.one_of(texts, st.lists(texts, max_size=3)))
def test_lists_or_and_all(values: list[str], all_: bool, modifier: str, event_value: Any) -> None:
    engine = build(modifier + ("|all" if all_ else ""), values)
    assert not engine.errors
    members = event_value if isinstance(event_value, list) else [event_value]

    def one(v: str) -> bool:
        return any(reference_match(v, modifier, m) for m in members)

    expected = all(one(v) for v in values) if all_ else any(one(v) for v in values)
    assert bool(engine.match({"f": event_value})) is expected


@settings(max_examples=150, deadline=None)
@given(number=st.integers(-10**6, 10**6), event_value=st.one_of(st.integers(-10**6, 10**6), st.floats(allow_nan=True),
                                                                  st.text(alphabet="0123456789.-+ e", max_size=8), st.booleans()))
def test_numbers(number: int, event_value: Any) -> None:
    engine = build("", number)
    if isinstance(event_value, bool):
        expected = False
    elif isinstance(event_value, int | float):
        expected = event_value == number
    else:
        try:
            parsed = float(event_value.strip()) if re.fullmatch(r"\s*[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?\s*", event_value) else None
        except ValueError:
            parsed = None
        expected = parsed is not None and parsed == number
    assert bool(engine.match({"f": event_value})) is expected
    for op, test in (("gt", lambda a, b: a > b), ("lte", lambda a, b: a <= b)):
        compare = build(f"|{op}", number)
        if isinstance(event_value, int | float) and not isinstance(event_value, bool) and event_value == event_value:
            assert bool(compare.match({"f": event_value})) is test(event_value, number)


@settings(max_examples=200, deadline=None)
@given(data=st.data(), insensitive=st.booleans())
def test_regex_matches_python_re(data: st.DataObject, insensitive: bool) -> None:
    """The compiled regex test (with its literal prefilter and RE2 guard) agrees with ``re.search``."""
    pattern = data.draw(patterns)
    flags = re.IGNORECASE if insensitive else 0
    compiled = re.compile(pattern, flags)
    text = data.draw(st.one_of(st.from_regex(compiled), st.text(alphabet="abCdexyzQqRré0 1", max_size=20)))
    engine = build("|re|i" if insensitive else "|re", pattern)
    assert not engine.errors
    assert bool(engine.match({"f": text})) is (compiled.search(text) is not None), (pattern, text)


@pytest.mark.parametrize(("pattern", "value", "expected"), [
    ("\\d(?:ab)*", "\u0660", True),          # ARABIC-INDIC DIGIT ZERO is a digit to Python's re (hypothesis found it)
    ("x\\d+", "x\u0661\u0662", True),
    ("^\\D+$", "\u0660", False),
    ("^\\w+$", "\u00e9t\u00e9", True),        # letters beyond ASCII are word characters
    ("^\\W+$", "\u00e9", False),
    ("a\\s+b", "a\u00a0b", True),            # NO-BREAK SPACE is whitespace to str.isspace()
    ("a\\s+b", "a\x0bb", True),              # so is the vertical tab (not RE2's \s)
    ("^\\S+$", "\u3000", False),
    ("^[\\d]+$", "\u0660\u0661", True),       # inside a class too
    ("^[^\\d]+$", "\u0660", False),
    ("^[]\\w]+$", "]\u00e9", True),           # a leading ']' is a member, the class goes on
    ("\\\\d+", "\\dd", True),                # an escaped backslash followed by a letter d is not a class
    ("(?:ab)*ab$", "ab\n", True),           # Python's $ also matches before a final newline (hypothesis found it)
    ("a+$", "aa\n", True),
    ("a+$", "aa\nb", False),                # ... only a final one
    ("a+$", "aa\n\n", False),
    ("x|a+$", "aa\n", True),
    ("(a+$)+", "aa\n", True),
    ("a+\\Z", "aa\n", False),              # \Z is the very end (RE2 spells it \z and has no \Z)
    ("a+\\Z", "aa", True),
    ("(?m)a+$", "aa\nb", True),              # MULTILINE: before every newline, in both engines
    ("a+[$]", "a$", True),                   # a $ in a class or escaped is a character
    ("a+\\$", "aa$", True),
])
def test_unbounded_regex_classes_mean_what_python_means(pattern: str, value: str, expected: bool) -> None:
    """An unbounded pattern runs on RE2, a bounded one on Python's re: ``\\d \\w \\s`` must mean the same in both."""
    assert bool(re.search(pattern, value)) is expected
    engine = build("|re", pattern)
    assert not engine.errors
    assert bool(engine.match({"f": value})) is expected, (pattern, value)
