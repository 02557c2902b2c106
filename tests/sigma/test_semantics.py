"""Every modifier and condition form, with the edge cases (docs/engine.md "Semantics decisions")."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from temporal_siem.detections.sigma import SigmaEngine


def engine(detection: dict[str, Any], logsource: dict[str, str] | None = None) -> SigmaEngine:
    rule = {"title": "t", "id": "5b4e2d1c-0000-4000-8000-000000000001", "logsource": logsource or {"product": "test"},
            "detection": detection}
    built = SigmaEngine.from_yaml(yaml.safe_dump(rule))
    assert not built.errors, built.errors
    assert len(built.ruleset.rules) == 1
    return built


def hit(detection: dict[str, Any], event: dict[str, Any]) -> bool:
    built = engine(detection)
    indexed = bool(built.match(event))
    full = bool(built.ruleset.match_indices(event, full_scan=True))
    assert indexed == full, "candidate index disagrees with the full scan"
    return indexed


def sel(field: str, value: Any, condition: str = "sel") -> dict[str, Any]:
    return {"sel": {field: value}, "condition": condition}


@pytest.mark.parametrize(("value", "event_value", "expected"), [
    ("cmd.exe", "cmd.exe", True),
    ("cmd.exe", "CMD.EXE", True),               # case-insensitive by default
    ("cmd.exe", "xcmd.exe", False),             # plain value = whole value
    ("", "", True),                             # empty string matches only the empty string
    ("", "x", False),
    ("*", "anything", True),
    ("*", "", True),
    ("a*c", "abbbc", True),
    ("a*c", "abbbd", False),
    ("a?c", "abc", True),
    ("a?c", "abbc", False),
    ("*mid*", "xxMIDyy", True),
    ("pre*", "PREfix", True),
    ("*suf", "xSUF", True),
    ("*suf", "sufx", False),
    (r"a\*c", "a*c", True),                    # escaped wildcard is literal
    (r"a\*c", "abc", False),
    (r"a\?c", "abc", False),
    (r"a\?c", "a?c", True),
    (r"C:\Windows\*", "c:\\windows*", True),     # \* escapes the wildcard; \W stays a backslash
    (r"C:\Windows\*", "c:\\windows\\x", False),
    (r"a\\*", "a\\zzz", True),                  # escaped backslash then wildcard
    ("ÄÖÜ", "äöü", True),                       # unicode folding via str.lower()
    ("straße", "STRASSE", False),               # lower(), not casefold(): ß is not ss
    ("İstanbul", "i̇stanbul", True),             # dotted capital I lowers to i + combining dot
    (4688, 4688, True),
    (4688, "4688", True),                       # numeric string equals a Sigma number
    (4688, 4688.0, True),
    (4688, "4688x", False),
    (4688, True, False),
    ("4688", 4688, True),                       # Sigma string vs event number: its JSON text
    ("true", True, True),
    (True, True, True),
    (True, "TRUE", True),
    (True, 1, False),
    (False, False, True),
])
def test_plain_values(value: Any, event_value: Any, expected: bool) -> None:
    assert hit(sel("f", value), {"f": event_value}) is expected


def test_missing_field_never_matches_a_value() -> None:
    assert not hit(sel("f", "*"), {"g": "x"})
    assert not hit(sel("f", "x"), {})


def test_null_vs_missing() -> None:
    assert hit(sel("f", None), {})
    assert hit(sel("f", None), {"f": None})
    assert hit(sel("f", None), {"f": []})
    assert not hit(sel("f", None), {"f": ""})
    assert not hit(sel("f", None), {"f": 0})
    # not null
    assert hit({"sel": {"f": None}, "condition": "not sel"}, {"f": "x"})


def test_exists() -> None:
    assert hit(sel("f|exists", True), {"f": ""})
    # Spec: "the field exists in the event, be it empty or null" - a present null field exists.
    assert hit(sel("f|exists", True), {"f": None})
    assert not hit(sel("f|exists", False), {"f": None})
    assert hit(sel("f|exists", True), {"f": []})
    assert not hit(sel("f|exists", True), {})
    assert hit(sel("f|exists", False), {})
    assert not hit(sel("f|exists", False), {"f": 0})


def test_list_is_or_and_all_is_and() -> None:
    assert hit(sel("f", ["a", "b"]), {"f": "B"})
    assert not hit(sel("f", ["a", "b"]), {"f": "c"})
    assert hit(sel("f|contains|all", ["a", "b"]), {"f": "xAxBx"})
    assert not hit(sel("f|contains|all", ["a", "b"]), {"f": "xAx"})
    assert hit(sel("f|contains|all", ["only"]), {"f": "the only one"})  # |all with one value


def test_event_lists_match_any_member() -> None:
    assert hit(sel("f", "b"), {"f": ["a", "B"]})
    assert hit(sel("f|endswith", ".exe"), {"f": ["x.dll", "y.EXE"]})
    assert not hit(sel("f", "c"), {"f": ["a", "b"]})
    assert hit(sel("f", 5), {"f": [1, "5"]})
    assert hit(sel("f|cidr", "10.0.0.0/8"), {"f": ["192.168.1.1", "10.1.2.3"]})
    assert not hit(sel("f", "b"), {"f": []})


def test_contains_startswith_endswith() -> None:
    assert hit(sel("f|contains", "MiD"), {"f": "xxmidxx"})
    assert hit(sel("f|startswith", "Pre"), {"f": "prefix"})
    assert not hit(sel("f|startswith", "Pre"), {"f": "xprefix"})
    assert hit(sel("f|endswith", "Suf"), {"f": "xsuf"})
    assert hit(sel("f|contains", ""), {"f": "anything"})
    assert hit(sel("f|contains", "a*b"), {"f": "xxaZZbxx"})     # wildcard inside contains
    assert hit(sel("f|contains", "12"), {"f": 5123})            # an event number is matched as its text


def test_cased() -> None:
    assert hit(sel("f|cased", "AbC"), {"f": "AbC"})
    assert not hit(sel("f|cased", "AbC"), {"f": "abc"})
    assert hit(sel("f|contains|cased", "B"), {"f": "aBc"})
    assert not hit(sel("f|contains|cased", "B"), {"f": "abc"})


def test_regex_and_flags() -> None:
    assert hit(sel("f|re", "^a.c$"), {"f": "abc"})
    assert not hit(sel("f|re", "^a.c$"), {"f": "ABC"})          # regex is case-sensitive
    assert hit(sel("f|re|i", "^a.c$"), {"f": "ABC"})
    assert hit(sel("f|re", "b"), {"f": "abc"})                  # search, not fullmatch
    assert not hit(sel("f|re", "^a.c$"), {"f": "a\nc"})
    assert hit(sel("f|re|s", "^a.c$"), {"f": "a\nc"})
    assert not hit(sel("f|re", "^b$"), {"f": "a\nb"})
    assert hit(sel("f|re|m", "^b$"), {"f": "a\nb"})
    assert hit(sel("f|re", "^42$"), {"f": 42})                  # regex sees the number's text
    assert hit(sel("f|re", "(foo|bar)baz"), {"f": "xBARbaz"}) is False
    assert hit(sel("f|re", "(foo|bar)baz"), {"f": "xbarbaz"})


def test_cidr() -> None:
    assert hit(sel("ip|cidr", "10.0.0.0/8"), {"ip": "10.255.0.1"})
    assert not hit(sel("ip|cidr", "10.0.0.0/8"), {"ip": "11.0.0.1"})
    assert hit(sel("ip|cidr", "2001:db8::/32"), {"ip": "2001:DB8::1"})
    assert not hit(sel("ip|cidr", "2001:db8::/32"), {"ip": "10.0.0.1"})
    assert not hit(sel("ip|cidr", "10.0.0.0/8"), {"ip": "not an ip"})
    assert hit(sel("ip|cidr", ["192.168.0.0/16", "10.0.0.0/8"]), {"ip": "10.0.0.1"})


def test_base64_and_offsets() -> None:
    import base64

    assert hit(sel("f|base64", "hello"), {"f": base64.b64encode(b"hello").decode()})
    for prefix in (b"", b"a", b"ab", b"abc"):
        encoded = base64.b64encode(prefix + b"secret payload" + b"tail").decode()
        assert hit(sel("f|base64offset|contains", "secret payload"), {"f": encoded}), prefix
    assert not hit(sel("f|base64offset|contains", "secret payload"), {"f": base64.b64encode(b"other").decode()})


def test_wide_utf16() -> None:
    import base64

    wide = base64.b64encode("cmd".encode("utf-16le")).decode()
    assert hit(sel("f|wide|base64", "cmd"), {"f": wide})
    assert hit(sel("f|utf16le|base64", "cmd"), {"f": wide})
    assert hit(sel("f|utf16be|base64", "cmd"), {"f": base64.b64encode("cmd".encode("utf-16be")).decode()})
    # pySigma 1.5.1 prepends U+FEFF as text, so its |base64 encoded the UTF-8 bytes EF BB BF; the spec's BOM is FF FE
    # (loader.py replaces the UTF-16 modifiers), so the UTF-8-BOM form no longer matches.
    assert not hit(sel("f|utf16|base64", "cmd"), {"f": base64.b64encode("\ufeff".encode() + "cmd".encode("utf-16le")).decode()})
    for prefix in (b"", b"x", b"xy"):
        embedded = base64.b64encode(prefix + "cmd /c".encode("utf-16le") + b"tail").decode()
        assert hit(sel("f|wide|base64offset|contains", "cmd /c"), {"f": embedded}), prefix


def test_windash() -> None:
    for variant in ("-enc", "/enc", "\u2013enc", "\u2014enc", "\u2015enc"):
        assert hit(sel("f|windash|contains", " -enc "), {"f": f"powershell {variant} AAA"}), variant
    assert not hit(sel("f|windash|contains", " -enc "), {"f": "powershell +enc AAA"})


def test_numeric_comparisons() -> None:
    assert hit(sel("n|gt", 5), {"n": 6})
    assert not hit(sel("n|gt", 5), {"n": 5})
    assert hit(sel("n|gte", 5), {"n": "5"})
    assert hit(sel("n|lt", 5), {"n": 4.5})
    assert hit(sel("n|lte", 5), {"n": 5})
    assert not hit(sel("n|lt", 5), {"n": "abc"})
    assert not hit(sel("n|lt", 5), {})
    assert not hit(sel("n|gt", 0), {"n": True})


def test_neq() -> None:
    assert hit(sel("f|neq", "a"), {"f": "b"})
    assert not hit(sel("f|neq", "a"), {"f": "A"})
    assert hit(sel("f|neq", "a"), {})                           # pySigma: neq negates the item


def test_fieldref() -> None:
    assert hit(sel("a|fieldref", "b"), {"a": "x", "b": "x"})
    assert not hit(sel("a|fieldref", "b"), {"a": "x", "b": "X"})  # exact, like the SQL/ES backends
    assert not hit(sel("a|fieldref", "b"), {"a": "x"})
    assert hit(sel("a|fieldref", "b"), {"a": 5, "b": "5"})


_REF_VALUE = st.one_of(st.sampled_from(["", "x", "X", "xy", "yx", "xyz", "5", "a\\b"]), st.integers(-3, 7),
                       st.booleans(), st.none(), st.lists(st.sampled_from(["x", "xy", 5]), max_size=3))


@settings(max_examples=200, deadline=None)
@given(mode=st.sampled_from(["", "|startswith", "|endswith", "|contains"]), a=_REF_VALUE, b=_REF_VALUE,
       same=st.booleans(), absent=st.sampled_from([None, "a", "b"]))
def test_fieldref_inline_is_the_helper(mode: str, a: Any, b: Any, same: bool, absent: str | None) -> None:
    """Two text fields are compared inline in the generated code; every other pair goes to ``field_equals``.
    The answer is the helper's for every value kind, a field referencing itself, a missing field, and with the
    fields also read elsewhere in the rule (the inline form binds both names before either branch)."""
    from temporal_siem.detections.sigma.values import field_equals

    other = "a" if same else "b"
    event = {"a": a, "b": b}
    if absent is not None:
        del event[absent]
    expected = field_equals(event.get("a"), event.get(other), mode.lstrip("|") or "eq")
    assert hit(sel(f"a|fieldref{mode}", other), event) == expected
    both = {"sel": {f"a|fieldref{mode}": other}, "bsel": {"b|exists": True}, "asel": {"a|exists": True},
            "condition": "(asel or bsel) and sel"}
    assert hit(both, event) == (expected and bool(event))


def test_timestamp_parts() -> None:
    assert hit(sel("@timestamp|hour", 13), {"@timestamp": "2026-01-02T13:04:05Z"})
    assert not hit(sel("@timestamp|hour", 12), {"@timestamp": "2026-01-02T13:04:05Z"})
    assert hit(sel("@timestamp|minute", 4), {"@timestamp": "2026-01-02T13:04:05+00:00"})
    assert hit(sel("@timestamp|month", 1), {"@timestamp": "2026-01-02T13:04:05Z"})
    assert hit(sel("@timestamp|year", 2026), {"@timestamp": 1767359045})
    assert not hit(sel("@timestamp|day", 2), {"@timestamp": "garbage"})


def test_expand_with_pipeline_variable(tmp_path: Any) -> None:
    pipeline = tmp_path / "vars.yml"
    pipeline.write_text("name: vars\npriority: 20\nvars:\n  admins: [root, Administrator]\n"
                        "transformations:\n  - type: value_placeholders\n")
    rule = {"title": "t", "id": "5b4e2d1c-0000-4000-8000-000000000002", "logsource": {"product": "test"},
            "detection": {"sel": {"user|expand": "%admins%"}, "condition": "sel"}}
    built = SigmaEngine.from_yaml(yaml.safe_dump(rule), pipelines=[pipeline])
    assert built.match({"user": "ADMINISTRATOR"}) and built.match({"user": "root"})
    assert not built.match({"user": "guest"})
    # without the variable: the rule loads, never matches, and says why
    unresolved = SigmaEngine.from_yaml(yaml.safe_dump(rule))
    assert not unresolved.match({"user": "%admins%"})
    assert unresolved.ruleset.rules[0].warnings


def test_keywords() -> None:
    assert hit({"kw": ["mimikatz", "sekurlsa"], "condition": "kw"}, {"a": "x", "b": "run MIMIKATZ now"})
    assert hit({"kw": ["mimikatz"], "condition": "kw"}, {"a": ["x", "mimikatz"]})
    assert not hit({"kw": ["mimikatz"], "condition": "kw"}, {"a": "x"})
    assert hit({"kw": ["*evil*"], "condition": "kw"}, {"a": "so EVIL"})
    assert hit({"kw": [4444], "condition": "kw"}, {"port": 4444})          # a number keyword compares numbers
    assert not hit({"kw": ["true"], "condition": "kw"}, {"flag": True})   # string keywords search string values
    assert not hit({"kw": ["4444"], "condition": "kw"}, {"port": 4444})
    assert hit({"kw": ["4444"], "condition": "kw"}, {"msg": "port 4444 open"})
    assert hit({"kw": ["exact phrase"], "condition": "kw"}, {"msg": "an EXACT PHRASE inside"})  # keywords: anywhere


def test_conditions() -> None:
    det = {"sel_a": {"a": 1}, "sel_b": {"b": 1}, "filter": {"c": 1}}
    assert hit({**det, "condition": "sel_a and sel_b"}, {"a": 1, "b": 1})
    assert not hit({**det, "condition": "sel_a and sel_b"}, {"a": 1})
    assert hit({**det, "condition": "sel_a or sel_b"}, {"b": 1})
    assert hit({**det, "condition": "sel_a and not filter"}, {"a": 1})
    assert not hit({**det, "condition": "sel_a and not filter"}, {"a": 1, "c": 1})
    assert hit({**det, "condition": "(sel_a or sel_b) and not filter"}, {"b": 1})
    assert hit({**det, "condition": "1 of sel_*"}, {"b": 1})
    assert not hit({**det, "condition": "all of sel_*"}, {"b": 1})
    assert hit({**det, "condition": "all of sel_*"}, {"a": 1, "b": 1})
    assert hit({**det, "condition": "1 of them"}, {"c": 1})
    assert not hit({**det, "condition": "all of them"}, {"a": 1, "b": 1})
    assert hit({**det, "condition": "all of them"}, {"a": 1, "b": 1, "c": 1})
    assert hit({**det, "condition": "not 1 of sel_*"}, {"c": 1})
    assert hit({**det, "condition": "any of sel_*"}, {"a": 1})
    assert hit({**det, "condition": ["sel_a", "sel_b"]}, {"b": 1})  # a list of conditions is an OR


def test_list_of_maps_is_or() -> None:
    det = {"sel": [{"a": 1, "b": 2}, {"c": 3}], "condition": "sel"}
    assert hit(det, {"c": 3})
    assert hit(det, {"a": 1, "b": 2})
    assert not hit(det, {"a": 1})


def test_nested_and_pydantic_events() -> None:
    built = engine(sel("user.name", "alice"))
    assert built.match({"user": {"name": "Alice"}})
    assert built.match({"user.name": "alice"})

    from temporal_siem.kernel.schema import NormalizedEvent

    model = NormalizedEvent.model_validate({"@timestamp": "2026-01-01T00:00:00Z", "event": {"dataset": "json"},
                                            "user": {"name": "alice"}})
    assert built.match(model)


# Sigma spec: utf16le/wide and utf16be encode without a byte-order mark; utf16 prepends FF FE (UTF-16LE with BOM).
_B64_CASES = [
    ("utf16|base64", b"\xff\xfe" + "cmd".encode("utf-16le"), True),
    ("utf16|base64", "cmd".encode("utf-16le"), False),
    ("utf16|base64offset|contains", b"\xff\xfe" + "cmd /c whoami".encode("utf-16le"), True),
    ("utf16|base64offset|contains", b"x\xff\xfe" + "cmd".encode("utf-16le") + b"yz", True),
    ("utf16le|base64", "cmd".encode("utf-16le"), True),
    ("wide|base64", "cmd".encode("utf-16le"), True),
    ("wide|base64offset|contains", b"\xff\xfe" + "cmd".encode("utf-16le") + b"yy", True),
    ("utf16be|base64", "cmd".encode("utf-16be"), True),
    ("utf16be|base64offset|contains", b"\xfe\xff" + "cmd".encode("utf-16be") + b"q", True),
    ("utf16|base64", b"\xff\xfe" + "caf\u00e9".encode("utf-16le"), True),
    ("wide|base64", "caf\u00e9".encode("utf-16le"), True),
    ("utf16le|base64", "a*b?".encode("utf-16le"), True),
]


@pytest.mark.parametrize(("modifiers", "data", "expected"), _B64_CASES)
def test_utf16_base64_modifiers_encode_bytes(modifiers, data, expected) -> None:
    import base64

    value = "café" if b"\xe9" in data else ("a\\*b\\?" if b"*" in data else "cmd")  # escaped: literal * and ?
    assert hit(sel(f"f|{modifiers}", value), {"f": base64.b64encode(data).decode()}) is expected


_FRESH_SCRIPT = r"""
import base64
from temporal_siem.detections.sigma import SigmaEngine
RULE = "\n".join([
    "title: t",
    "logsource: {product: windows}",
    "detection:",
    "  sel: {f|utf16|base64offset|contains: 'ping \u00e9'}",
    "  condition: sel",
])
engine = SigmaEngine.from_yaml(RULE)
value = base64.b64encode(b"x\xff\xfe" + "ping \u00e9".encode("utf-16le") + b"yz").decode()
print(engine.ruleset.errors, len(engine.match({"f": value})))
"""


def test_the_library_api_has_the_exact_utf16_modifiers_in_a_fresh_interpreter() -> None:
    """``SigmaEngine.from_yaml`` in a process that imported nothing else: the loader's exact UTF-16 modifiers
    must apply (they did when importing the package imported the loader; a warm start no longer imports it).
    pySigma's own utf16 modifier refuses a non-ASCII value ("only allowed for valid Unicode strings")."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", _FRESH_SCRIPT], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[] 1"


@pytest.mark.parametrize(("field", "value", "text", "expected"), [
    # A wildcard inside a startswith/endswith/contains value keeps its meaning (the modifier only adds a "*"):
    # rsigma 0.23 takes "?" literally there, pySigma's backends do not.
    ("f|startswith", "a?c", "abcd", True),
    ("f|startswith", "a?c", "acd", False),
    ("f|endswith", "a?c", "xxabc", True),
    ("f|contains", "a?c", "xabcx", True),
    ("f|contains", "a*c", "xab-bcx", True),
    ("f|startswith", "a\\?c", "a?cd", True),
    ("f|startswith", "a\\?c", "abcd", False),
])
def test_wildcards_inside_modified_values(field: str, value: str, text: str, expected: bool) -> None:
    assert hit(sel(field, value), {"f": text}) is expected
