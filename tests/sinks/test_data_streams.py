"""``data_stream: true`` against each real server.

OpenSearch 2.19 has data streams built in: the sink writes alerts into one, exactly once per id within a
backing index. The Elasticsearch node of scripts/services/elasticsearch.sh is assembled from Maven Central
jars without the data-streams module: it would auto-create a data stream from the template on the first
write, but has no ``_data_stream`` API to create, list or delete one. The sink must refuse that up front
with a message that says so, and leave nothing behind (no template that would turn the index name into a
stream nobody can manage)."""

from __future__ import annotations

from typing import Any

import pytest

from temporal_siem.sinks.base import SinkError
from tests.sinks.search_servers import SearchServer

pytestmark = pytest.mark.services


def test_elasticsearch_without_the_data_streams_module_is_refused_clearly(elasticsearch_url: str, es_index: str) -> None:
    server = SearchServer("elasticsearch", elasticsearch_url)
    sink = server.sink(index=es_index, data_stream=True)
    with pytest.raises(SinkError) as refused:
        sink.open()
    message = str(refused.value)
    assert message.startswith("elasticsearch: data_stream is true but http://127.0.0.1:")
    assert "has no data stream API (HTTP 405" in message and "data-streams module" in message
    assert "Set data_stream: false" in message
    with pytest.raises(SinkError, match="has no data stream API"):  # and on write, if open was not called
        server.sink(index=es_index, data_stream=True).write([{"alert.id": "a", "@timestamp": "2024-01-01T00:00:00Z"}])
    sink.close()
    # Nothing half-made: no template, no index, no backing index.
    assert server.request("GET", f"/_index_template/{es_index}", ok=(404,))["status"] == 404
    assert server.request("GET", f"/_cat/indices/*{es_index}*?format=json&expand_wildcards=all") == []


def test_opensearch_data_stream_exactly_once(opensearch: SearchServer, replay_alerts: list[dict[str, Any]]) -> None:
    name = "tsiem-test-ds-alerts"
    opensearch.delete(name)
    try:
        sink = opensearch.sink(index=name, data_stream=True, refresh="wait_for", chunk_size=25)
        sink.open()
        sink.write(replay_alerts)
        sink.write(replay_alerts)  # re-delivery: 409 per id within the backing index
        sink.close()
        assert sink.stats["delivered"] == len(replay_alerts) and sink.stats["duplicates"] == len(replay_alerts)
        stream = opensearch.request("GET", f"/_data_stream/{name}")["data_streams"][0]
        assert stream["name"] == name and stream["template"] == name
        assert stream["timestamp_field"]["name"] == "@timestamp"
        backing = [index["index_name"] for index in stream["indices"]]
        assert len(backing) == 1 and backing[0].startswith(f".ds-{name}-")
        assert set(opensearch.documents(name)) == {a["alert.id"] for a in replay_alerts}
        assert opensearch.mapping(backing[0])["@timestamp"]["type"] == "date"
        # A document without @timestamp gets the time of writing (a data stream refuses it otherwise).
        late = opensearch.sink(index=name, data_stream=True, refresh="wait_for")
        late.write([{"alert.id": "no-timestamp", "rule.id": "r"}])
        late.close()
        assert "@timestamp" in opensearch.documents(name)["no-timestamp"]
    finally:
        opensearch.delete(name)
