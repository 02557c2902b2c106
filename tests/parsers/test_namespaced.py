"""``namespaced``: a vendor record under ``prefix.*``, exactly ``flatten(redact(record), prefix + ".")`` minus the
keys the parser already set, in that order. Every vendor parser ends with it, and it has two fast paths (a record
the secret scan found clean skips the checks; no key in common with the event is copied in one ``update``) that
must give what the plain definition gives, key order included (outputs are compared byte for byte)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from temporal_siem.kernel.flatten import flatten
from temporal_siem.kernel.secrets import BOTH, clean_record, redact
from temporal_siem.parsers.common import namespaced

KEYS = st.sampled_from(["a", "b", "id", "name", "password", "token", "x.y", "value", "Value", "c"])
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.sampled_from(["", "v", "secret-ish", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"]))
JSON = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(KEYS, inner, max_size=4)), max_leaves=12)
RECORDS = st.dictionaries(KEYS, JSON, max_size=6)
EXISTING = st.dictionaries(st.sampled_from(["event.id", "p.a", "p.b", "p.x.y", "p.id", "p.c.a", "user.name"]), st.integers(), max_size=4)


def without_nulls(value: Any) -> Any:
    """What ``drop_nulls`` flattens: null members of objects and lists left out (a list's own, not those of a
    list inside it), and an object whose members were all null gives no key at all (an empty object as written
    stays, as ``flatten`` keeps it)."""
    if isinstance(value, dict):
        kept = {k: _gone_if_emptied(v, without_nulls(v)) for k, v in value.items() if v is not None}
        return {k: v for k, v in kept.items() if v is not _GONE}
    if isinstance(value, list):  # a list's own null members; a list inside it is kept as it is
        return [v if isinstance(v, list) else without_nulls(v) for v in value if v is not None]
    return value


_GONE: Any = object()


def _gone_if_emptied(original: Any, cleaned: Any) -> Any:
    return _GONE if isinstance(original, dict) and original and not cleaned else cleaned


def expected(record: dict[str, Any], existing: dict[str, Any], drop_nulls: bool) -> list[tuple[str, Any]]:
    out = dict(existing)
    redacted = redact(record)
    for key, value in flatten(without_nulls(redacted) if drop_nulls else redacted, "p.").items():
        out.setdefault(key, value)
    return list(out.items())


@settings(max_examples=300, deadline=None)
@given(RECORDS, EXISTING, st.booleans(), st.booleans())
def test_namespaced_is_flatten_of_redact_without_overwriting(record: dict[str, Any], existing: dict[str, Any],
                                                               clean: bool, drop_nulls: bool) -> None:
    if clean and redact(record) != record:
        return  # the scan never calls a record with secret-shaped content clean
    event = dict(existing)
    with clean_record(b"", 0 if clean else BOTH):
        namespaced("p", record, event, drop_nulls=drop_nulls)
    assert list(event.items()) == expected(record, existing, drop_nulls)


def test_a_key_the_parser_set_is_kept_and_keeps_its_place() -> None:
    event = {"p.b": "parser", "user.name": "u"}
    with clean_record(b"", 0):
        namespaced("p", {"a": 1, "b": 2, "c": {"d": 3}}, event)
    assert list(event.items()) == [("p.b", "parser"), ("user.name", "u"), ("p.a", 1), ("p.c.d", 3)]


def test_a_list_of_flat_objects_becomes_columns_in_first_seen_key_order() -> None:
    """Okta's targets and Entra's policies: objects of scalars, flattened to one list per key (nulls left out
    with ``drop_nulls``, as Okta pads), keys in the order first seen; a list with anything else in it (a scalar
    member, a nested value) takes the general path and gives the same shape."""
    record = {"target": [{"id": "1", "type": None, "alternateId": "a"}, {"type": "user", "id": "2", "extra": 3}],
              "mixed": [{"id": "x"}, "loose"], "nested": [{"id": "y", "detail": {"k": "v"}}]}
    event: dict[str, Any] = {}
    with clean_record(b"", 0):
        namespaced("p", record, event, drop_nulls=True)
    assert list(event.items()) == [
        ("p.target.id", ["1", "2"]), ("p.target.alternateId", ["a"]), ("p.target.type", ["user"]), ("p.target.extra", [3]),
        ("p.mixed", ["loose"]), ("p.mixed.id", ["x"]),
        ("p.nested.id", ["y"]), ("p.nested.detail.k", ["v"]),
    ]
    kept: dict[str, Any] = {}
    with clean_record(b"", 0):
        namespaced("p", {"target": [{"id": "1", "type": None}]}, kept)
    assert kept == {"p.target.id": ["1"], "p.target.type": [None]}
