"""The scopes topic a member creates carries the broker's time (LogAppendTime): a scope partition's clock decides
when a silent flag lapses and how long a wake holds (app/stream/marks.py), and must not follow whichever member's
clock runs ahead."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from confluent_kafka import TIMESTAMP_LOG_APPEND_TIME, Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource

from temporal_siem.stream.runtime import scopes_topic_name
from tests.daemon.helpers import wait_for
from tests.stream.helpers import configure, create_topics, end_time, produce_markers, produce_workload, workload

pytestmark = pytest.mark.services


def test_scope_messages_carry_the_brokers_time(kafka_bootstrap: str, tmp_path: Path) -> None:
    run = uuid.uuid4().hex[:8]
    topics = {f"idp-{run}": 1, f"infra-{run}": 1}
    create_topics(kafka_bootstrap, topics)
    group = f"g-{run}"
    daemon = configure(tmp_path, "t", kafka_bootstrap, group, list(topics))
    name = scopes_topic_name(group)
    try:
        daemon.start()
        wait_for(lambda: bool(daemon.health()["assigned"]), 90, "the member owning its partitions")
        messages = workload()[:40]
        idp, infra = list(topics)
        produce_workload(kafka_bootstrap, messages, idp, infra, keying="none")
        produce_markers(kafka_bootstrap, topics, end_time(messages))
        admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
        entries = next(iter(admin.describe_configs([ConfigResource("topic", name)]).values())).result(timeout=30)
        assert entries["message.timestamp.type"].value == "LogAppendTime"
        consumer = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": f"check-{run}", "enable.auto.commit": False})
        try:
            consumer.assign([TopicPartition(name, 0, 0)])
            found: list[int] = []
            wait_for(lambda: found.extend(m.timestamp()[0] for m in consumer.consume(50, timeout=1.0) if m.error() is None) or bool(found),
                     60, "a message on the scopes topic")
            assert set(found) == {TIMESTAMP_LOG_APPEND_TIME}
        finally:
            consumer.close()
    finally:
        daemon.stop()
