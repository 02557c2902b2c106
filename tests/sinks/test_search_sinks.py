"""The bulk-index sinks' contract, run against each real server: the Elasticsearch 8.19 node with the
``elasticsearch`` sink, the OpenSearch 2.19 node (HTTPS, security plugin, basic auth) with the ``opensearch``
sink (scripts/services/). What was stored is read back through the plain REST API (tests/sinks/search_servers.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from temporal_siem.kernel import metrics
from temporal_siem.kernel.config import SinksConfig
from temporal_siem.kernel.flatten import unflatten
from temporal_siem.sinks.base import SinkError
from temporal_siem.sinks.elasticsearch import BulkIndexSink, ElasticsearchSink
from temporal_siem.sinks.factory import OptionalSink, build_sinks
from temporal_siem.sinks.opensearch import OpenSearchSink
from tests.sinks.certs import make_certificate
from tests.sinks.conftest import MemorySink, replay
from tests.sinks.search_servers import SearchServer

pytestmark = pytest.mark.services

#: The vendor namespaces are one field each: ``flattened`` in Elasticsearch, ``flat_object`` in OpenSearch.
FLAT_TYPE = {"elasticsearch": "flattened", "opensearch": "flat_object"}


def test_replay_alerts_are_indexed_once_with_ecs_mappings(search_server: SearchServer, search_index: str) -> None:
    sink = search_server.sink(index=search_index, chunk_size=7, concurrency=2)
    event_sink = search_server.sink(role="events", index=f"{search_index}-events")
    reference, events = MemorySink(), MemorySink()
    dead = replay([sink, reference], [event_sink, events])
    assert [d for d in dead.documents if d["stage"] == "sink"] == []
    assert event_sink.stats["delivered"] == len(events.documents) and event_sink.stats["degraded"] == 0
    assert sink.stats["degraded"] == 0
    stored = search_server.documents(search_index)
    expected = {doc["alert.id"]: doc for doc in reference.documents}
    assert len(expected) == len(reference.documents), "alert ids are unique within a replay"
    assert set(stored) == set(expected)
    for alert_id, document in expected.items():
        assert stored[alert_id] == unflatten(document), alert_id
    assert search_server.count(f"{search_index}-events") == len({e["event.id"] for e in events.documents})
    mapping = search_server.mapping(search_index)
    assert mapping["@timestamp"]["type"] == "date"
    assert mapping["event"]["properties"]["severity"]["type"] == "long"
    assert mapping["event"]["properties"]["risk_score"]["type"] == "double"
    assert mapping["rule"]["properties"]["id"]["type"] == "keyword"
    assert mapping["alert"]["properties"]["id"]["type"] == "keyword"
    if "source" in mapping:
        assert mapping["source"]["properties"]["ip"]["type"] == "ip"
    assert mapping["alert"]["properties"]["source_event_ids"]["type"] == "keyword"
    # Unmodelled vendor strings map as keyword, never as text or dates guessed from content.
    dynamic_types = {leaf["type"] for leaf in _leaves(mapping) if "type" in leaf}
    assert "text" not in dynamic_types - {"text"} and "date" in dynamic_types
    for namespace in ("okta", "temporal_cloud", "aws"):
        if namespace in mapping:
            assert mapping[namespace]["type"] == FLAT_TYPE[search_server.kind], namespace
    # Searchable by the fields a SOC filters on.
    some = reference.documents[0]
    hits = search_server.search(search_index, {"term": {"rule.id": some["rule.id"]}})
    assert set(hits) == {d["alert.id"] for d in reference.documents if d["rule.id"] == some["rule.id"]}
    assert sink.stats["delivered"] == len(expected) and sink.stats["duplicates"] == 0


def _leaves(mapping: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for value in mapping.values():
        if "properties" in value:
            out.extend(_leaves(value["properties"]))
        else:
            out.append(value)
    return out


def test_redelivery_creates_no_duplicates(search_server: SearchServer, search_index: str,
                                          replay_alerts: list[dict[str, Any]]) -> None:
    sink = search_server.sink(index=search_index, refresh="wait_for", chunk_size=10)
    sink.open()
    sink.write(replay_alerts)
    sink.write(replay_alerts[: len(replay_alerts) // 2])  # the pipeline re-sending a batch after a crash
    sink.close()
    assert search_server.count(search_index) == len(replay_alerts)
    assert set(search_server.documents(search_index)) == {a["alert.id"] for a in replay_alerts}
    assert sink.stats["duplicates"] == len(replay_alerts) // 2


def test_mapping_conflicts_degrade_then_dead_letter_without_blocking(search_server: SearchServer, search_index: str) -> None:
    good = [{"@timestamp": "2024-01-01T00:00:00Z", "alert.id": f"ok{i}", "rule.id": "r", "user.name": "u"} for i in range(3)]
    # "user" is an object in ECS: the alert is kept with its core fields, the rest as stored text.
    conflicting = {"@timestamp": "2024-01-01T00:00:00Z", "alert.id": "conflict", "rule.id": "r", "user": "not-an-object",
                   "aws.cloudtrail.resources": ["arn:aws:kms:us-west-2:111122223333:key/1"]}
    # Even the core does not fit (rule must be an object): dead letter. (An object where a value is mapped,
    # say rule.id.nested, is refused by Elasticsearch but kept unindexed by OpenSearch's ignore_malformed.)
    hopeless = {"@timestamp": "2024-01-01T00:00:00Z", "alert.id": "hopeless", "rule": "not-an-object"}
    malformed_ip = {"@timestamp": "2024-01-01T00:00:00Z", "alert.id": "bad-ip", "rule.id": "r", "source.ip": "999.1.1.1"}
    vendor_shapes = [{"@timestamp": "2024-01-01T00:00:00Z", "alert.id": f"aws{i}", "rule.id": "r", **fields} for i, fields in
                     enumerate([{"aws.cloudtrail.resources.ARN": ["arn:1"], "aws.cloudtrail.resources.type": ["AWS::KMS::Key"]},
                                {"aws.cloudtrail.resources": ["arn:2"]}])]
    sink = search_server.sink(index=search_index, refresh="wait_for")
    sink.open()
    sink.write([*good, conflicting, hopeless, malformed_ip, *vendor_shapes])
    rejected = sink.take_rejected()
    assert [doc["alert.id"] for doc, _ in rejected] == ["hopeless"]
    assert "HTTP 400" in rejected[0][1] and "[rule]" in rejected[0][1]
    assert sink.stats["degraded"] == 2
    stored = search_server.documents(search_index)
    assert set(stored) == {"ok0", "ok1", "ok2", "conflict", "bad-ip", "aws0", "aws1"}
    assert stored["bad-ip"]["source"]["ip"] == "999.1.1.1"  # a malformed value is kept in _source, not lost
    kept = stored["conflict"]
    assert kept["rule"]["id"] == "r" and "_tsiem_mapping_conflict" in kept["tags"] and "user" not in kept
    assert json.loads(kept["event"]["original"])["user"] == "not-an-object"
    # Vendor namespaces: any shape, leaves searchable.
    assert search_server.search(search_index, {"term": {"aws.cloudtrail.resources.ARN": "arn:1"}}) == ["aws0"]


def test_pipeline_dead_letters_a_rejected_alert(search_server: SearchServer, search_index: str) -> None:
    """Through the pipeline: the refused alert reaches the dead-letter sink with the server's reason."""
    from temporal_siem.pipeline import Pipeline

    sink = search_server.sink(index=search_index)
    dead = MemorySink()
    pipeline = Pipeline.__new__(Pipeline)
    Pipeline.__init__(pipeline, source=None, router=None, detector=None, alert_sinks=[sink], dead_letter=dead)  # type: ignore[arg-type]
    sink.open()
    pipeline._write(sink, [{"@timestamp": "2024-01-01T00:00:00Z", "alert.id": "x1", "rule": "flat"},
                           {"@timestamp": "2024-01-01T00:00:00Z", "alert.id": "x2", "user.name": "nested"}])
    sink.close()
    assert len(dead.documents) == 1
    assert dead.documents[0]["stage"] == "sink" and dead.documents[0]["reason"] == f"{search_server.kind}_rejected"
    # Elasticsearch 8 says document_parsing_exception, OpenSearch 2 mapper_parsing_exception.
    assert dead.documents[0]["detail"].startswith("HTTP 400 ") and "parsing_exception" in dead.documents[0]["detail"]
    assert dead.documents[0]["origin_text"] == f"sink:{search_server.kind}"
    assert '"alert.id":"x1"' in dead.documents[0]["raw"]


def test_events_role_uses_event_id(search_server: SearchServer, search_index: str) -> None:
    events = [{"@timestamp": "2024-01-01T00:00:00Z", "event.id": f"e{i}", "event.dataset": "okta.system"} for i in range(5)]
    sink = search_server.sink(role="events", index=search_index, refresh="wait_for")
    sink.write(events)
    sink.write(events)
    assert set(search_server.documents(search_index)) == {f"e{i}" for i in range(5)}


def test_dead_letter_role_lets_the_server_assign_ids(search_server: SearchServer, search_index: str) -> None:
    letter = {"@timestamp": "2024-01-01T00:00:00Z", "reason": "parse_error", "stage": "parse", "raw": "{not json"}
    sink = search_server.sink(role="dead_letter", index=search_index, refresh="wait_for")
    sink.write([letter, letter])
    assert search_server.count(search_index) == 2
    assert search_server.mapping(search_index)["reason"]["type"] == "keyword"


def test_template_install_is_idempotent(search_server: SearchServer, search_index: str) -> None:
    for _ in range(2):
        sink = search_server.sink(index=search_index)
        sink.open()
        sink.close()
    template = search_server.template(search_index)
    assert template["index_patterns"] == [search_index]
    assert template["template"]["settings"]["index"]["mapping"]["ignore_malformed"] == "true"
    assert template["template"]["mappings"]["properties"]["okta"]["type"] == FLAT_TYPE[search_server.kind]


def test_factory_builds_required_and_optional_sinks(search_server: SearchServer, search_index: str) -> None:
    config = SinksConfig.model_validate({
        "alerts": [
            search_server.config(index=search_index, refresh="wait_for"),
            {"type": search_server.kind, "hosts": ["http://127.0.0.1:1"], "required": False, "max_retries": 0,
             "request_timeout": 1},
        ],
        "events": [],
        "dead_letter": {"type": "file", "path": "/dev/null"},
    })
    built = build_sinks(config)
    required, optional = built.alerts
    assert isinstance(required, BulkIndexSink) and required.name == search_server.kind
    assert isinstance(optional, OptionalSink)
    before = metrics.SINK_FAILURES.labels(search_server.kind)._value.get()
    every = [*built.alerts, *built.events, built.dead_letter]
    for sink in every:
        sink.open()
    documents = [{"@timestamp": "2024-01-01T00:00:00Z", "alert.id": "f1", "rule.id": "r"}]
    for sink in built.alerts:
        sink.write(documents)  # the optional, unreachable sink drops without raising
    assert metrics.SINK_FAILURES.labels(search_server.kind)._value.get() == before + 1
    assert isinstance(optional, OptionalSink) and optional.dropped_documents == 1
    assert search_server.count(search_index) == 1
    for sink in every:
        sink.close()


def test_unreachable_server_raises_sink_error() -> None:
    sink = ElasticsearchSink(hosts="http://127.0.0.1:1", max_retries=2, initial_backoff=0.01, max_backoff=0.02, request_timeout=2)
    sink.open()  # tolerated: the server may come later
    with pytest.raises(SinkError, match="elasticsearch: ConnectionError"):
        sink.write([{"alert.id": "a", "@timestamp": "2024-01-01T00:00:00Z"}])
    sink.close()
    bulk_only = ElasticsearchSink(hosts="http://127.0.0.1:1", install_template=False, max_retries=2, initial_backoff=0.01,
                                  max_backoff=0.02, request_timeout=2)
    with pytest.raises(SinkError, match=r"1 of 1 documents not accepted after 2 retries: ConnectionError"):
        bulk_only.write([{"alert.id": "a", "@timestamp": "2024-01-01T00:00:00Z"}])
    bulk_only.close()


def test_factory_reports_bad_options() -> None:
    config = SinksConfig.model_validate({"alerts": [{"type": "elasticsearch", "hots": ["x"]}]})
    with pytest.raises(ValueError, match=r"sinks.alerts\[0\].hots: unknown key"):
        build_sinks(config)
    with pytest.raises(ValueError, match="unknown sink type 'elastic'"):
        build_sinks(SinksConfig.model_validate({"alerts": [{"type": "elastic"}]}))


def test_opensearch_security_refuses_a_wrong_password_and_an_unknown_ca(opensearch: SearchServer, tmp_path: Path) -> None:
    """The real security plugin: a wrong password is a configuration error (SinkError naming HTTP 401, the
    stream holds), and so is a server certificate the sink cannot verify; with both right, it writes."""
    document = [{"@timestamp": "2024-01-01T00:00:00Z", "alert.id": "auth-1", "rule.id": "r"}]
    wrong = opensearch.sink(index="tsiem-test-auth", password="not-the-password", max_retries=1, initial_backoff=0.01)
    with pytest.raises(SinkError, match=r"opensearch: cannot install index template 'tsiem-test-auth': HTTP 401"):
        wrong.open()
    wrong.close()
    other_ca, *_ = make_certificate(tmp_path)  # a CA that did not sign the node's certificate
    untrusted = opensearch.sink(index="tsiem-test-auth", ca_certs=other_ca, max_retries=1, initial_backoff=0.01, request_timeout=5)
    untrusted.open()  # tolerated at start like any unreachable server
    with pytest.raises(SinkError, match=r"(?i)certificate verify failed"):
        untrusted.write(document)
    untrusted.close()
    plain = OpenSearchSink(hosts=opensearch.url.replace("https:", "http:"), index="tsiem-test-auth", max_retries=1,
                           initial_backoff=0.01, request_timeout=5)
    with pytest.raises(SinkError):
        plain.write(document)
    plain.close()
    right = opensearch.sink(index="tsiem-test-auth", refresh="wait_for")
    try:
        right.write(document)
        assert set(opensearch.documents("tsiem-test-auth")) == {"auth-1"}
    finally:
        right.close()
        opensearch.delete("tsiem-test-auth")
