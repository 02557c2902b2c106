"""Kafka sink against the real broker: the alerts topic consumed back, keys = rule ids."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from kafka import KafkaConsumer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

from temporal_siem.kernel.flatten import unflatten
from temporal_siem.sinks.base import SinkError
from temporal_siem.sinks.kafka import KafkaSink

pytestmark = pytest.mark.services


def _consume_all(bootstrap: str, topic: str, expected: int, timeout_s: float = 20.0) -> list[Any]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False,
                             consumer_timeout_ms=int(timeout_s * 1000), group_id=None)
    partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    records = []
    for record in consumer:
        records.append(record)
        if len(records) >= expected:
            break
    # Nothing beyond the expected count either (no duplicates): read what else is there briefly.
    extra = consumer.poll(timeout_ms=1000)
    records.extend(r for batch in extra.values() for r in batch)
    consumer.close()
    return records


@pytest.fixture
def topic(kafka_bootstrap: str) -> str:
    name = f"tsiem-test-alerts-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    admin.create_topics([NewTopic(name, num_partitions=3, replication_factor=1)])
    admin.close()
    return name


def test_alerts_consumed_back_keyed_by_rule_id(kafka_bootstrap: str, topic: str, replay_alerts: list[dict[str, Any]]) -> None:
    sink = KafkaSink(bootstrap_servers=kafka_bootstrap, topic=topic)
    sink.open()
    sink.write(replay_alerts)
    sink.write([])  # nothing to do
    sink.close()
    records = _consume_all(kafka_bootstrap, topic, len(replay_alerts))
    assert len(records) == len(replay_alerts)
    by_id = {a["alert.id"]: a for a in replay_alerts}
    seen = set()
    for record in records:
        value = json.loads(record.value)
        alert = by_id[value["alert"]["id"]]
        assert record.key == alert["rule.id"].encode()
        assert dict(record.headers)["id"] == alert["alert.id"].encode()
        assert value == json.loads(json.dumps(unflatten(alert), default=str))
        seen.add(alert["alert.id"])
    assert seen == set(by_id)
    # Same key, same partition: each rule's alerts stay in order.
    partitions_by_rule: dict[bytes, set[int]] = {}
    for record in records:
        partitions_by_rule.setdefault(record.key, set()).add(record.partition)
    assert all(len(p) == 1 for p in partitions_by_rule.values())


def test_oversized_record_is_dead_lettered_not_blocking(kafka_bootstrap: str, topic: str) -> None:
    sink = KafkaSink(bootstrap_servers=kafka_bootstrap, topic=topic, max_request_size=10_000)
    docs = [{"alert.id": "small", "rule.id": "r"}, {"alert.id": "huge", "rule.id": "r", "message": "x" * 20_000}]
    sink.write(docs)
    rejected = sink.take_rejected()
    sink.close()
    assert [doc["alert.id"] for doc, _ in rejected] == ["huge"] and "max_request_size" in rejected[0][1]
    records = _consume_all(kafka_bootstrap, topic, 1, timeout_s=10)
    assert [json.loads(r.value)["alert"]["id"] for r in records] == ["small"]


def test_unreachable_broker_raises_sink_error() -> None:
    sink = KafkaSink(bootstrap_servers="127.0.0.1:1", topic="t", delivery_timeout_ms=2000, request_timeout_ms=1000, bootstrap_timeout_ms=2000)
    with pytest.raises(SinkError, match="kafka"):
        sink.write([{"alert.id": "a", "rule.id": "r"}])
    sink.close()
