"""The bulk sinks' fast encoder sends exactly the bytes of ``to_json_line`` (the nesting every other sink
uses), the bulk action line is exactly the JSON it replaced, and ``refresh_interval`` reaches the index
template; no server needed."""

from __future__ import annotations

import copy
from typing import Any

import orjson
from hypothesis import example, given, settings
from hypothesis import strategies as st

from temporal_siem.kernel.flatten import MAX_KEY_PARTS, unflatten
from temporal_siem.sinks import elasticsearch
from temporal_siem.sinks.base import to_json_line
from temporal_siem.sinks.elasticsearch import BulkClient, ElasticsearchSink, json_line, nest
from temporal_siem.sinks.opensearch import OpenSearchSink

#: Few key parts, so keys collide: "a" as a value and "a.b" as a path, "@timestamp", empty parts, too deep.
parts = st.sampled_from(["a", "b", "c", "@t", "", "value", "é", "x y"])
keys = st.one_of(
    st.lists(parts, min_size=1, max_size=4).map(".".join),
    st.just(".".join(["k"] * (MAX_KEY_PARTS + 1))),
    st.text(max_size=6),
)
scalars = st.one_of(st.text(max_size=8), st.integers(), st.integers(min_value=2**64, max_value=2**70), st.floats(),
                    st.booleans(), st.none(), st.just("\ud800"))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(keys, inner, max_size=3)), max_leaves=6)
documents = st.dictionaries(keys, values, max_size=10)


@settings(max_examples=500, deadline=None)
@given(document=documents)
def test_nest_is_unflatten_in_the_same_key_order(document: dict[str, Any]) -> None:
    expected = unflatten(copy.deepcopy(document))
    got = nest(copy.deepcopy(document))
    assert repr(got) == repr(expected)  # repr: key order too, at every level


@settings(max_examples=500, deadline=None)
@given(document=documents)
# found by hypothesis: the huge integer sent the fast path to its fallback after nesting had already grown the
# document's inner dict {} (nesting shares it), and the fallback nested that changed document again
@example(document={"a": {}, "a.a.a": None, "a.a": -9223372036854775809})
def test_json_line_is_to_json_line(document: dict[str, Any]) -> None:
    assert json_line(copy.deepcopy(document)) == to_json_line(copy.deepcopy(document))


def test_json_line_without_the_key_cache_is_the_same(monkeypatch: Any) -> None:
    """Past MAX_CACHED_KEYS the paths are computed every time, with the same result."""
    monkeypatch.setattr(elasticsearch, "_KEY_PATHS", {})
    monkeypatch.setattr(elasticsearch, "MAX_CACHED_KEYS", 0)
    document = {"@timestamp": "t", "event.kind": "alert", "a.b.c": 1, "a": {"z": 2}, "event": "scalar"}
    assert json_line(document) == to_json_line(document)
    assert elasticsearch._KEY_PATHS == {}


@settings(max_examples=200, deadline=None)
@given(index=st.text(min_size=1, max_size=10), doc_id=st.one_of(st.text(max_size=600), st.integers(), st.none()))
def test_action_line_is_the_create_action(index: str, doc_id: Any) -> None:
    sink = ElasticsearchSink(index=index)
    action: dict[str, Any] = {"_index": index}
    if doc_id not in (None, ""):
        action["_id"] = str(doc_id)[:512]
    item = sink._encode(0, {"alert.id": doc_id, "rule.id": "r"})
    assert item.action == orjson.dumps({"create": action}) + b"\n"
    assert item.source == to_json_line({"alert.id": doc_id, "rule.id": "r"})


class _TemplateOnly(BulkClient):
    def __init__(self) -> None:
        self.templates: dict[str, dict[str, Any]] = {}

    def bulk(self, body: bytes, refresh: str | None) -> dict[str, Any]:
        raise AssertionError("no bulk request expected")

    def put_index_template(self, name: str, body: dict[str, Any]) -> None:
        self.templates[name] = body

    def create_data_stream(self, name: str) -> None: ...

    def data_stream_api_missing(self, name: str) -> str | None:
        return None

    def close(self) -> None: ...


def test_refresh_interval_is_a_template_setting_and_absent_by_default(monkeypatch: Any) -> None:
    for sink_class in (ElasticsearchSink, OpenSearchSink):
        client = _TemplateOnly()
        monkeypatch.setattr(sink_class, "_make_client", lambda self, client=client: client)
        sink_class(index="tuned", refresh_interval="30s").open()
        sink_class(index="plain").open()
        assert client.templates["tuned"]["template"]["settings"]["index.refresh_interval"] == "30s"
        assert "index.refresh_interval" not in client.templates["plain"]["template"]["settings"]  # the server's default
