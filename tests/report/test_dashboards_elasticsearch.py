"""The Kibana panels' aggregations run on alerts written by the real Elasticsearch sink, and count what they should.

Kibana itself cannot run here, but what its agg-based visualizations send is plain Elasticsearch aggregations
on the data view's fields: running those against the index the sink wrote (with the sink's own template)
proves every panel field exists, is aggregatable, and holds the alert values.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from elasticsearch import Elasticsearch

from temporal_siem.report.dashboards import DEFAULT_INDEX_PATTERN, kibana_objects
from temporal_siem.sinks.elasticsearch import ElasticsearchSink
from tests.report import synthetic

pytestmark = pytest.mark.services


@pytest.fixture(scope="module")
def indexed(elasticsearch_url: str) -> Iterator[tuple[Elasticsearch, str, list[dict[str, Any]]]]:
    index = DEFAULT_INDEX_PATTERN.rstrip("*") + f"-report-{uuid.uuid4().hex[:8]}"
    replay = synthetic.build(rule_alerts=120, correlations=4, hostile=False)
    sink = ElasticsearchSink(hosts=elasticsearch_url, index=index, refresh="wait_for")
    sink.open()
    sink.write(replay.alerts)
    sink.close()
    assert sink.take_rejected() == []
    client = Elasticsearch(elasticsearch_url)
    try:
        yield client, index, replay.alerts
    finally:
        client.indices.delete(index=index, ignore_unavailable=True)
        client.options(ignore_status=404).indices.delete_index_template(name=index)
        client.close()


def _es_aggs(aggs: list[dict[str, Any]]) -> dict[str, Any]:
    """The visualization's bucket aggregations, nested in order, as Elasticsearch aggregations."""
    root: dict[str, Any] = {}
    node = root
    for agg in aggs:
        params = agg["params"]
        if agg["type"] == "terms":
            body = {"terms": {"field": params["field"], "size": params["size"], "order": {"_count": params["order"]}}}
        elif agg["type"] == "date_histogram":
            body = {"date_histogram": {"field": params["field"], "fixed_interval": "1h", "min_doc_count": params["min_doc_count"]}}
        else:
            continue
        node[agg["id"]] = body
        node = body.setdefault("aggs", {})
    return root


def _first_level(result: dict[str, Any]) -> Counter[str]:
    (only,) = result.values()
    return Counter({str(b.get("key_as_string", b["key"])): b["doc_count"] for b in only["buckets"]})


def test_every_visualization_aggregates_the_alerts(indexed: tuple[Elasticsearch, str, list[dict[str, Any]]]) -> None:
    client, index, alerts = indexed
    visualizations = [o for o in kibana_objects(index) if o["type"] == "visualization"]
    assert len(visualizations) == 7
    for vis in visualizations:
        state = json.loads(vis["attributes"]["visState"])
        aggs = [a for a in state["aggs"] if a["schema"] != "metric"]
        response = client.search(index=index, size=0, aggs=_es_aggs(aggs), track_total_hits=True).body
        assert response["hits"]["total"]["value"] == len(alerts)
        first = aggs[0]
        buckets = _first_level(response["aggregations"])
        assert sum(buckets.values()) > 0, state["title"]
        if first["type"] == "terms":
            field = first["params"]["field"]
            expected: Counter[str] = Counter()
            for alert in alerts:
                value = alert.get(field)
                for item in value if isinstance(value, list) else [value]:
                    if item is not None:
                        expected[str(item)] += 1
            size = first["params"]["size"]
            assert len(buckets) == min(size, len(expected)), state["title"]
            assert all(expected[key] == count for key, count in buckets.items()), state["title"]
            left_out = [count for key, count in expected.items() if key not in buckets]
            assert not left_out or max(left_out) <= min(buckets.values()), state["title"]  # a true top-N (ties may go either way)
        else:
            assert sum(buckets.values()) == len(alerts)


def test_saved_search_columns_are_mapped(indexed: tuple[Elasticsearch, str, list[dict[str, Any]]]) -> None:
    client, index, _ = indexed
    search = next(o for o in kibana_objects(index) if o["type"] == "search")
    columns = search["attributes"]["columns"]
    mapping = client.indices.get_field_mapping(index=index, fields=columns).body[index]["mappings"]
    assert sorted(mapping) == sorted(columns)
    for column in columns:
        (leaf,) = mapping[column]["mapping"].values()
        assert leaf["type"] in ("keyword", "ip"), column
