from __future__ import annotations

import copy
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from temporal_siem.kernel import flatten as flatten_module
from temporal_siem.kernel.flatten import MAX_KEY_PARTS, TOO_DEEP, flatten, get_path, unflatten

keys = st.text(alphabet="abcxyz_", min_size=1, max_size=6)
scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=10)
nested = st.recursive(scalars, lambda inner: st.dictionaries(keys, inner, min_size=1, max_size=4), max_leaves=20)


@settings(deadline=None)  # timing is not what this checks; a first example on a busy machine can take 200 ms
@given(st.dictionaries(keys, nested, max_size=5))
def test_unflatten_inverts_flatten_for_dicts_of_scalars(doc):
    assert unflatten(flatten(doc)) == doc


def test_object_arrays_flatten_like_elasticsearch():
    flat = flatten({"target": [{"type": "User", "id": "1"}, {"type": "AppInstance", "id": "2"}], "tags": ["a", "b"]})
    assert flat == {"target.type": ["User", "AppInstance"], "target.id": ["1", "2"], "tags": ["a", "b"]}


def test_too_deep_is_kept_as_marker_not_lost_silently():
    doc: dict = {}
    node = doc
    for _ in range(40):
        node["a"] = {}
        node = node["a"]
    node["leaf"] = 1
    flat = flatten(doc)
    assert list(flat.values()) == [TOO_DEEP]


def test_unflatten_keeps_colliding_keys_dotted():
    nested = unflatten({"event": "x", "event.id": "1"})
    assert nested == {"event": "x", "event.id": "1"}


def test_get_path_reads_flat_and_nested():
    assert get_path({"a.b": 1}, "a.b") == 1
    assert get_path({"a": {"b": 2}}, "a.b") == 2
    assert get_path({"a": {"b": 2}}, "a.c") is None


def _reference_unflatten(flat: dict[str, Any]) -> dict[str, Any]:
    """The nesting as first written (split every key, every time): the oracle for the cached one."""
    nested: dict[str, Any] = {}
    for key, value in flat.items():
        if key.startswith("@") or "." not in key:
            if key in nested and isinstance(nested[key], dict) and isinstance(value, dict):
                nested[key].update(value)
            elif key not in nested or not isinstance(nested[key], dict):
                nested[key] = value
            else:
                nested[key]["value"] = value
            continue
        path = key.split(".")
        if len(path) > MAX_KEY_PARTS:
            nested[key] = value
            continue
        node = nested
        for part in path[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                nested[key] = value
                break
            node = child
        else:
            node[path[-1]] = value
    return nested


#: Few key parts, so keys collide: "a" as a value and "a.b" as a path, "@timestamp", empty parts, too deep.
_parts = st.sampled_from(["a", "b", "c", "@t", "", "value", "é", "x y"])
_keys = st.one_of(
    st.lists(_parts, min_size=1, max_size=4).map(".".join),
    st.just(".".join(["k"] * (MAX_KEY_PARTS + 1))),
    st.text(max_size=6),
)
_scalars = st.one_of(st.text(max_size=8), st.integers(), st.integers(min_value=2**64, max_value=2**70), st.floats(),
                     st.booleans(), st.none(), st.just("\ud800"))
_values = st.recursive(_scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                         st.dictionaries(_keys, inner, max_size=3)), max_leaves=6)
_documents = st.dictionaries(_keys, _values, max_size=10)


@settings(max_examples=500, deadline=None)
@given(document=_documents)
@example(document={"a": {}, "a.a.a": None, "a.a": -9223372036854775809})
@example(document={"event": "x", "event.id": "1", "event.kind": {"a": 1}, "a.b": 1, "a": {"z": 2}, "a.b.c": 3})
def test_unflatten_is_the_reference_nesting_in_the_same_key_order(document: dict[str, Any]) -> None:
    expected = _reference_unflatten(copy.deepcopy(document))
    got = unflatten(copy.deepcopy(document))
    assert repr(got) == repr(expected)  # repr: key order too, at every level
    again = unflatten(copy.deepcopy(document))  # the second time every key's path comes from the cache
    assert repr(again) == repr(expected)


def test_unflatten_without_the_key_cache_is_the_same(monkeypatch: Any) -> None:
    """Past MAX_CACHED_KEYS the paths are computed every time, with the same result, and nothing is cached."""
    monkeypatch.setattr(flatten_module, "_KEY_PATHS", {})
    monkeypatch.setattr(flatten_module, "MAX_CACHED_KEYS", 0)
    document = {"@timestamp": "t", "event.kind": "alert", "a.b.c": 1, "a": {"z": 2}, "event": "scalar"}
    assert repr(unflatten(copy.deepcopy(document))) == repr(_reference_unflatten(copy.deepcopy(document)))
    assert flatten_module._KEY_PATHS == {}
