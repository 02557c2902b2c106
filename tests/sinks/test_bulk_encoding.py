"""The bulk sinks send exactly the bytes of ``to_json_line`` (the nesting every other sink uses; its cached
key paths are tested in tests/kernel/test_flatten.py), the bulk action line is exactly the JSON it replaced,
and ``refresh_interval`` reaches the index template; no server needed."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from temporal_siem.sinks.base import to_json_line
from temporal_siem.sinks.elasticsearch import BulkClient, ElasticsearchSink
from temporal_siem.sinks.opensearch import OpenSearchSink


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
