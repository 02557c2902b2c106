"""The acceptance of the stream daemon (issue: stateful detection on a real stream engine), with the real broker:
the same records through `replay` and through 1, 2 and 3 daemons give the same alert id set, rule and correlation
(an SSO burst spans the identity-provider topic and the other one), whatever the producer keys by; and the same
under kill -9 and a member joining, with Elasticsearch holding each alert once."""

from __future__ import annotations

import signal
import time
import uuid
from pathlib import Path

import pytest
from elasticsearch import Elasticsearch
from kafka import KafkaConsumer

from tests.daemon.helpers import wait_for
from tests.stream.helpers import (
    Message,
    alert_ids_of,
    configure,
    create_topics,
    end_time,
    produce_markers,
    produce_workload,
    read_jsonl,
    replay_alert_ids,
    wait_for_alerts,
    workload,
)

pytestmark = pytest.mark.services


@pytest.fixture(scope="module")
def messages() -> list[Message]:
    return workload()


@pytest.fixture(scope="module")
def expected(messages: list[Message], tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    ids = replay_alert_ids(messages, tmp_path_factory.mktemp("replay"))
    assert len(ids) > 100
    return ids


def _topics(run: str) -> dict[str, int]:
    return {f"idp-{run}": 3, f"infra-{run}": 4}


@pytest.mark.parametrize(("members", "keying"), [(1, "user"), (2, "random"), (3, "none"), (2, "mixed")])
def test_daemons_raise_exactly_the_replay_alerts(kafka_bootstrap: str, tmp_path: Path, messages: list[Message], expected: set[str],
                                                 members: int, keying: str) -> None:
    run = uuid.uuid4().hex[:8]
    topics = _topics(run)
    create_topics(kafka_bootstrap, topics)
    daemons = [configure(tmp_path, f"m{i}", kafka_bootstrap, f"g-{run}", list(topics)) for i in range(members)]
    try:
        for daemon in daemons:
            daemon.start()
        idp, infra = list(topics)
        produce_workload(kafka_bootstrap, messages, idp, infra, keying=keying)
        produce_markers(kafka_bootstrap, topics, end_time(messages))
        wait_for_alerts(daemons, expected, timeout=120)
        time.sleep(2)  # nothing extra may follow
        got = alert_ids_of(*daemons)
        assert got == expected, f"missing {len(expected - got)}, extra {len(got - expected)}"
        correlations = {d["alert"]["id"] for d in read_jsonl(*(d.alerts for d in daemons)) if d["alert"]["type"] == "correlation"}
        assert len(correlations) >= 10
    finally:
        codes = [daemon.stop() for daemon in daemons]
    assert codes == [0] * members


def test_kill_9_and_a_member_joining_lose_nothing_and_add_nothing(kafka_bootstrap: str, elasticsearch_url: str, tmp_path: Path,
                                                                  messages: list[Message], expected: set[str]) -> None:
    """Member a is killed before its first checkpoint (a 60 s commit interval: nothing of it is committed); member b
    after several checkpoints; member c joins mid-stream. The alerts of the survivors and of Elasticsearch are the
    replay's, each once."""
    run = uuid.uuid4().hex[:8]
    topics = _topics(run)
    create_topics(kafka_bootstrap, topics)
    index = f"stream-alerts-{run}"
    es = (elasticsearch_url, index)
    group = f"g-{run}"
    a = configure(tmp_path, "a", kafka_bootstrap, group, list(topics), elasticsearch=es, stream={"commit_interval_seconds": 60.0})
    b = configure(tmp_path, "b", kafka_bootstrap, group, list(topics), elasticsearch=es)
    c = configure(tmp_path, "c", kafka_bootstrap, group, list(topics), elasticsearch=es)
    b2 = configure(tmp_path, "b2", kafka_bootstrap, group, list(topics), elasticsearch=es)
    everyone = [a, b, c, b2]
    idp, infra = list(topics)
    half = len(messages) // 2
    try:
        a.start()
        b.start()
        # Both must own input partitions before data arrives: a rebalance commits the revoked partitions, which
        # would give member a a checkpoint before its kill.
        wait_for(lambda: bool(a.health()["assigned"]) and bool(b.health()["assigned"]), 90, "two members owning input partitions")
        produce_workload(kafka_bootstrap, messages[:half], idp, infra, keying="mixed")
        wait_for(lambda: bool(alert_ids_of(b)), 60, "member b delivering alerts")
        wait_for(lambda: a.health()["records_read"] > 0, 30, "member a reading its share")
        time.sleep(1.0)
        assert not a.alerts.exists() or not a.alerts.read_bytes(), "member a checkpointed (its sinks were flushed) before the kill"
        a.kill9()  # never checkpointed: whatever it read is read again by the survivors
        c.start()  # joins mid-stream
        produce_workload(kafka_bootstrap, messages[half:], idp, infra, keying="mixed", seed=11)
        wait_for(lambda: len(alert_ids_of(b, c)) > len(expected) // 2, 90, "survivors catching up")
        b.kill9()  # after its checkpoints: its state comes back from the changelog topics
        b2.start()
        produce_markers(kafka_bootstrap, topics, end_time(messages))
        wait_for_alerts([a, b, c, b2], expected, timeout=300)  # a loaded CI machine: b2 restores b's changelog first
        time.sleep(2)
        got = alert_ids_of(*everyone)
        assert got == expected, f"missing {len(expected - got)}, extra {len(got - expected)}"
        client = Elasticsearch(elasticsearch_url)
        client.indices.refresh(index=index)
        stored = [hit["_id"] for hit in _scan(client, index)]
        assert len(stored) == len(set(stored)) == len(expected)
        assert set(stored) == expected
    finally:
        for daemon in everyone:
            daemon.ensure_stopped() if daemon.proc is None or daemon.proc.poll() is not None else daemon.stop(signal.SIGTERM)


def _scan(client: Elasticsearch, index: str) -> list[dict[str, object]]:
    hits: list[dict[str, object]] = []
    page = client.search(index=index, size=1000, query={"match_all": {}}, sort=["_doc"], source=False)
    hits.extend(page["hits"]["hits"])
    while len(page["hits"]["hits"]) == 1000:
        page = client.search(index=index, size=1000, query={"match_all": {}}, sort=["_doc"], source=False,
                             search_after=page["hits"]["hits"][-1]["sort"])
        hits.extend(page["hits"]["hits"])
    return hits


def test_exactly_once_to_an_alerts_topic(kafka_bootstrap: str, tmp_path: Path, messages: list[Message], expected: set[str]) -> None:
    """With processing_guarantee exactly-once, a read_committed consumer of alerts_topic sees each alert once,
    even though a member was killed mid-stream (its open transaction is aborted, its successor redoes it)."""
    run = uuid.uuid4().hex[:8]
    topics = _topics(run)
    create_topics(kafka_bootstrap, topics)
    alerts_topic = f"alerts-{run}"
    stream = {"alerts_topic": alerts_topic}
    first = configure(tmp_path, "x1", kafka_bootstrap, f"g-{run}", list(topics), guarantee="exactly-once", stream=stream)
    second = configure(tmp_path, "x2", kafka_bootstrap, f"g-{run}", list(topics), guarantee="exactly-once", stream=stream)
    idp, infra = list(topics)
    try:
        first.start()
        second.start()
        produce_workload(kafka_bootstrap, messages[: len(messages) // 2], idp, infra, keying="none")
        wait_for(lambda: bool(alert_ids_of(first, second)), 60, "alerts from the exactly-once members")
        first.kill9()
        produce_workload(kafka_bootstrap, messages[len(messages) // 2:], idp, infra, keying="none", seed=5)
        produce_markers(kafka_bootstrap, topics, end_time(messages))
        wait_for_alerts([first, second], expected, timeout=150)
        committed = _read_committed(kafka_bootstrap, alerts_topic, len(expected))
        assert len(committed) == len(set(committed)) == len(expected)
        assert set(committed) == expected
    finally:
        first.ensure_stopped()
        assert second.stop() == 0


def _read_committed(bootstrap: str, topic: str, expected: int, timeout: float = 60.0) -> list[str]:
    import orjson

    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None,
                             isolation_level="read_committed")
    ids: list[str] = []
    deadline = time.monotonic() + timeout
    quiet_until = None
    try:
        while time.monotonic() < deadline:
            batch = consumer.poll(timeout_ms=500)
            for records in batch.values():
                ids.extend(str(orjson.loads(r.value)["alert.id"]) for r in records)
            if len(ids) >= expected:
                quiet_until = quiet_until or time.monotonic() + 3  # then make sure nothing more follows
                if time.monotonic() > quiet_until:
                    break
    finally:
        consumer.close()
    return ids
