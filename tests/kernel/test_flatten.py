from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from temporal_siem.kernel.flatten import TOO_DEEP, flatten, get_path, unflatten

keys = st.text(alphabet="abcxyz_", min_size=1, max_size=6)
scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=10)
nested = st.recursive(scalars, lambda inner: st.dictionaries(keys, inner, min_size=1, max_size=4), max_leaves=20)


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
