"""The contract every registered sink keeps, checked against its real server (or the protocol-exact HEC server).

For every entry of sinks/registry.py, built through the factory from a config entry as the daemon builds it:
- it encodes any document (hypothesis): each one is delivered, or handed back by ``take_rejected`` for the
  dead letters; ``write`` never raises for a document's content;
- it raises SinkError when its server is down (a closed local port in front of the real server: tests/sinks/gate.py);
- it never loses a batch: the batch refused during the outage, written again once the server is back, arrives
  whole, exactly once; the idempotent sinks (ids: elasticsearch, opensearch) take a re-delivered batch
  without a duplicate.
The ``file`` sink has no server, so the outage half does not apply to it (``NO_SERVER``).
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from temporal_siem.kernel.config import SinkConfig
from temporal_siem.sinks.base import Sink, SinkError
from temporal_siem.sinks.factory import build_sink
from temporal_siem.sinks.registry import SINKS
from tests.conftest import ROOT
from tests.sinks.gate import Gate
from tests.sinks.hec_server import HecServer
from tests.sinks.search_servers import SearchServer

pytestmark = pytest.mark.services

TOKEN = "00000000-0000-4000-8000-0000000000c7"
NO_SERVER = {"file"}  # no server to take down
IDEMPOTENT = {"elasticsearch", "opensearch"}  # a re-delivered document meets its own id
FAST_RETRIES = {"max_retries": 1, "initial_backoff": 0.01, "max_backoff": 0.02}


@dataclass
class Harness:
    """One sink wired to its server through a gate; ``delivered(n)`` waits for n documents and returns their alert ids."""

    config: dict[str, Any]
    delivered: Callable[[int], list[str]]
    gate: Gate | None = None
    sinks: list[Sink] = field(default_factory=list)

    def sink(self) -> Sink:
        sink = build_sink(SinkConfig.model_validate(self.config), "alerts", "contract")
        self.sinks.append(sink)
        return sink


def _poll(read: Callable[[], list[str]], expected: int, timeout: float = 20.0) -> list[str]:
    deadline = time.monotonic() + timeout
    found = read()
    while len(found) < expected and time.monotonic() < deadline:
        time.sleep(0.2)
        found = read()
    time.sleep(0.3)  # and nothing more arrives (a duplicate would)
    return read()


def _file(tmp_path: Path) -> Iterator[Harness]:
    path = tmp_path / "alerts.jsonl"

    def read() -> list[str]:
        lines = path.read_bytes().split(b"\n") if path.exists() else []  # not splitlines(): U+2028 may be in a string
        return [json.loads(line)["alert"]["id"] for line in lines if line]

    yield Harness({"type": "file", "path": str(path)}, lambda n: read())


def _bulk(server: SearchServer) -> Iterator[Harness]:
    index = f"tsiem-contract-{uuid.uuid4().hex[:10]}"
    scheme, _, address = server.url.partition("://")
    gate = Gate("127.0.0.1", int(address.rsplit(":", 1)[1]))

    def read() -> list[str]:
        try:
            return list(server.documents(index))
        except AssertionError:  # no such index yet
            return []

    yield Harness(server.config(hosts=[f"{scheme}://{gate.address}"], index=index, request_timeout=5, **FAST_RETRIES),
                  lambda n: _poll(read, n, 5), gate)
    server.delete(index)


def _splunk_hec() -> Iterator[Harness]:
    with HecServer(TOKEN) as server:
        gate = Gate("127.0.0.1", int(server.url.rsplit(":", 1)[1]))

        def read() -> list[str]:
            return [event["event"]["alert"]["id"] for event in list(server.state.events)]

        yield Harness({"type": "splunk_hec", "url": f"http://{gate.address}", "token": TOKEN, "timeout": 5, **FAST_RETRIES},
                      lambda n: _poll(read, n, 5), gate)


def _syslog(rsyslog_ports: dict[str, int]) -> Iterator[Harness]:
    marker = f"contract-{uuid.uuid4().hex[:10]}"
    log = ROOT / ".services" / "rsyslog" / "messages.log"
    gate = Gate("127.0.0.1", rsyslog_ports["tcp"])

    def read() -> list[str]:
        text = log.read_text("utf-8", "replace") if log.exists() else ""
        return [m.group(1) for line in text.split("\n") if f" {marker} " in line
                for m in [re.search(r' alert_id="([^"]*)"', line)] if m]

    yield Harness({"type": "syslog", "host": "127.0.0.1", "port": gate.port, "protocol": "tcp", "hostname": marker,
                   "timeout": 5, **FAST_RETRIES}, lambda n: _poll(read, n), gate)


def _kafka(kafka_bootstrap: str) -> Iterator[Harness]:
    from kafka import KafkaConsumer, TopicPartition
    from kafka.admin import KafkaAdminClient, NewTopic

    topic = f"tsiem-contract-{uuid.uuid4().hex[:10]}"
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
    gate = Gate(*kafka_bootstrap.rsplit(":", 1)[0:1], int(kafka_bootstrap.rsplit(":", 1)[1]))

    def delivered(expected: int) -> list[str]:
        consumer = KafkaConsumer(bootstrap_servers=kafka_bootstrap, enable_auto_commit=False, group_id=None,
                                 consumer_timeout_ms=20_000)
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ids: list[str] = []
        for record in consumer:
            ids.append(json.loads(record.value)["alert"]["id"])
            if len(ids) >= expected:
                break
        extra = consumer.poll(timeout_ms=1000)  # nothing beyond: no duplicates
        ids += [json.loads(r.value)["alert"]["id"] for batch in extra.values() for r in batch]
        consumer.close()
        return ids

    yield Harness({"type": "kafka", "bootstrap_servers": gate.address, "topic": topic, "bootstrap_timeout_ms": 3000,
                   "delivery_timeout_ms": 3000, "request_timeout_ms": 1500}, delivered, gate)
    admin.delete_topics([topic])
    admin.close()


@pytest.fixture(params=sorted(SINKS))
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    name = request.param
    setups: dict[str, Callable[[], Iterator[Harness]]] = {
        "file": lambda: _file(tmp_path),
        "elasticsearch": lambda: _bulk(SearchServer("elasticsearch", request.getfixturevalue("elasticsearch_url"))),
        "opensearch": lambda: _bulk(request.getfixturevalue("opensearch")),
        "splunk_hec": _splunk_hec,
        "syslog": lambda: _syslog(request.getfixturevalue("rsyslog_ports")),
        "kafka": lambda: _kafka(request.getfixturevalue("kafka_bootstrap")),
    }
    assert name in setups, f"sink {name!r} is registered but has no contract harness in {__file__}"
    setup = setups[name]()
    harness = next(setup)
    try:
        yield harness
    finally:
        for sink in harness.sinks:
            try:
                sink.close()
            except Exception:
                pass
        if harness.gate is not None:
            harness.gate.close()
        next(setup, None)


def _alerts(n: int, tag: str) -> list[dict[str, Any]]:
    return [{"@timestamp": "2024-05-01T10:00:00.000Z", "alert.id": f"{tag}-{i:03d}", "rule.id": "contract-rule",
             "rule.name": "Contract", "alert.level": "high", "user.name": f"user{i}"} for i in range(n)]


# -- the registry ------------------------------------------------------------------------------------


def test_every_entry_names_its_sink_and_a_strict_typed_config() -> None:
    for name, entry in SINKS.items():
        assert entry.config.model_fields["type"].default == name
        assert entry.config.model_config.get("extra") == "forbid", f"{name}: an unknown option must be an error"
        assert getattr(entry.sink, "name", None) == name
        for option, info in entry.config.model_fields.items():
            if option.endswith(("password", "token", "api_key")):
                assert SecretStr in (info.annotation, *getattr(info.annotation, "__args__", ())), f"{name}.{option} must be a SecretStr"


def test_only_serverless_sinks_skip_the_outage_contract() -> None:
    assert set(SINKS) >= NO_SERVER
    assert all(name in NO_SERVER for name in SINKS if name == "file")


# -- every sink ----------------------------------------------------------------------------------------

keys = st.sampled_from(["message", "user.name", "source.ip", "event.original", "tags", "labels.x", "@timestamp",
                        "event.action", "host.name", "error.message"]) | st.text(min_size=1, max_size=10)
scalars = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | st.floats(allow_nan=False)
           | st.text(max_size=30))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
                      max_leaves=8)
documents = st.dictionaries(keys, values, max_size=8).filter(lambda d: not any(k.split(".")[0] == "alert" for k in d))


def test_encodes_any_document(harness: Harness) -> None:
    if harness.gate is not None:
        harness.gate.open()
    sink = harness.sink()
    sink.open()
    written: list[str] = []
    rejected: list[str] = []

    @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(documents, min_size=1, max_size=4))
    def write(batch: list[dict[str, Any]]) -> None:
        batch = [{**document, "alert.id": uuid.uuid4().hex} for document in batch]
        sink.write(batch)
        written.extend(document["alert.id"] for document in batch)
        rejected.extend(document["alert.id"] for document, _ in sink.take_rejected())

    write()
    sink.flush()
    expected = Counter(written) - Counter(rejected)
    assert Counter(harness.delivered(sum(expected.values()))) == expected


def test_outage_raises_sink_error_and_the_retried_batch_arrives_whole_once(harness: Harness) -> None:
    if harness.gate is None:
        assert harness.config["type"] in NO_SERVER
        return
    sink = harness.sink()
    sink.open()  # a server down at start is not an error yet: the first write finds out
    first, second = _alerts(25, f"a{uuid.uuid4().hex[:6]}"), _alerts(10, f"b{uuid.uuid4().hex[:6]}")
    with pytest.raises(SinkError):
        sink.write(first)
    harness.gate.open()
    sink.write(first)  # what the pipeline does: the same batch again, once the server is back
    sink.write(second)
    sink.flush()
    expected = Counter(doc["alert.id"] for doc in [*first, *second])
    assert Counter(harness.delivered(len(expected))) == expected
    if harness.config["type"] in IDEMPOTENT:
        sink.write(first)  # a re-delivery (a restart before the commit) meets the ids already there
        assert Counter(harness.delivered(len(expected))) == expected
