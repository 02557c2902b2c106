"""Outage: the search server stopped for 30 s in the middle of a stream, then started again. The pipeline
must stop reading (backpressure, one batch in hand), resume by itself, and every alert must arrive exactly
once. Run against Elasticsearch and against OpenSearch (over HTTPS with basic auth: the sink reconnects
through TLS after the restart).

Each server runs a node of its own for this (instance "outage-<pid>" on free ports, removed afterwards), so
stopping it disturbs no other test.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import pytest

from temporal_siem.detections.alerts import RuleMeta, rule_alert
from temporal_siem.detections.base import Detector
from temporal_siem.ingest.base import Source
from temporal_siem.kernel.records import Origin, RawRecord
from temporal_siem.parsers.router import ParserRouter
from temporal_siem.pipeline import Pipeline
from temporal_siem.sinks.base import Sink, SinkError
from tests.conftest import ROOT
from tests.sinks.conftest import MemorySink
from tests.sinks.search_servers import SearchServer, opensearch_server, opensearch_service

OUTAGE_SECONDS = 30
BATCHES, BATCH_SIZE = 60, 50


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


#: A node of our own per test session (name and ports), so parallel runs on one machine never stop each other's.
INSTANCE = f"outage-{os.getpid()}"


def _elasticsearch_service(port: int, transport_port: int) -> Callable[[str], None]:
    def service(command: str) -> None:
        env = {**os.environ, "TSIEM_ES_INSTANCE": INSTANCE, "TSIEM_ES_HTTP_PORT": str(port),
               "TSIEM_ES_TRANSPORT_PORT": str(transport_port)}
        result = subprocess.run(["bash", str(ROOT / "scripts" / "services" / "elasticsearch.sh"), command],
                                env=env, capture_output=True, text=True, timeout=600)
        if result.returncode != 0:
            pytest.fail(f"elasticsearch ({INSTANCE}) {command} failed:\n{result.stdout}\n{result.stderr}", pytrace=False)
    return service


def _opensearch_service(port: int, transport_port: int) -> Callable[[str], None]:
    return lambda command: opensearch_service(INSTANCE, port, command, transport_port=transport_port)


@dataclass
class OutageServer:
    server: SearchServer
    service: Callable[[str], None]


@pytest.fixture(scope="module", params=["elasticsearch", "opensearch"])
def outage_server(request: pytest.FixtureRequest) -> Iterator[OutageServer]:
    request.getfixturevalue("elasticsearch_url" if request.param == "elasticsearch" else "opensearch")  # installs the jars
    port, transport_port = _free_port(), _free_port()
    if request.param == "elasticsearch":
        service = _elasticsearch_service(port, transport_port)
        service("up")
        outage = OutageServer(SearchServer("elasticsearch", f"http://127.0.0.1:{port}"), service)
    else:
        service = _opensearch_service(port, transport_port)
        service("up")
        outage = OutageServer(opensearch_server(INSTANCE, port), service)
    yield outage
    service("down")
    shutil.rmtree(ROOT / ".services" / request.param / INSTANCE, ignore_errors=True)
    (ROOT / ".services" / request.param / f".lock-{INSTANCE}").unlink(missing_ok=True)


class StreamSource(Source):
    """ECS events in batches, a little apart, as a live stream; remembers what was read and committed."""

    name = "stream"

    def __init__(self) -> None:
        self.read_batches = 0
        self.committed: list[int] = []

    def batches(self) -> Iterator[list[RawRecord]]:
        for b in range(BATCHES):
            self.read_batches += 1
            yield [RawRecord(orjson.dumps({"@timestamp": f"2025-01-01T00:{b % 60:02d}:{i % 60:02d}Z",
                                           "event": {"id": f"evt-{b}-{i}", "action": "login", "dataset": "test.stream"},
                                           "user": {"name": f"user{i}"}}),
                             Origin("stream", line=b * BATCH_SIZE + i), format_hint="ecs") for i in range(BATCH_SIZE)]
            time.sleep(0.1)

    def commit(self, batch: list[RawRecord]) -> None:
        self.committed.append(batch[0].origin.line or 0)


class EveryEventRule(Detector):
    rule = RuleMeta(id="00000000-0000-4000-8000-0000000000aa", title="Outage test rule", level="high")

    def process(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [rule_alert(self.rule, event) for event in events]


@pytest.mark.services
def test_outage_loses_and_duplicates_nothing(outage_server: OutageServer) -> None:
    server, service = outage_server.server, outage_server.service
    index = f"tsiem-outage-{uuid.uuid4().hex[:8]}"
    sink = server.sink(index=index, chunk_size=40, max_retries=2, initial_backoff=0.2, max_backoff=1.0, request_timeout=5)
    source = StreamSource()
    pipeline = Pipeline(source, ParserRouter("ecs", 1 << 20), EveryEventRule(), alert_sinks=[sink],
                        dead_letter=MemorySink(), retry_initial=0.5, retry_max=2.0)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            pipeline.run()
        except BaseException as exc:  # surfaced by the assertion below
            failure.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while len(source.committed) < 10 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(source.committed) >= 10, "the stream should be flowing before the outage"

    service("down")
    down_at = time.monotonic()
    time.sleep(2)
    read_during_outage = source.read_batches
    committed_during_outage = len(source.committed)
    time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - down_at)))
    # Backpressure: nothing more read or committed while the required sink is down.
    assert source.read_batches == read_during_outage
    assert len(source.committed) == committed_during_outage
    assert committed_during_outage < BATCHES
    assert pipeline.stats.sink_retries > 0
    service("up")

    thread.join(timeout=180)
    assert not thread.is_alive(), "the pipeline should resume by itself and finish"
    assert failure == []
    assert len(source.committed) == BATCHES
    expected = {rule_alert(EveryEventRule.rule, {"event.id": f"evt-{b}-{i}"})["alert.id"]
                for b in range(BATCHES) for i in range(BATCH_SIZE)}
    assert server.count(index) == len(expected) == BATCHES * BATCH_SIZE
    stored = server.documents(index)
    assert all(doc_id == document["alert"]["id"] for doc_id, document in stored.items())
    assert set(stored) == expected
    server.delete(index)


class AlwaysDown(Sink):
    name = "always_down"

    def write(self, documents: list[dict[str, Any]]) -> None:
        raise SinkError("connection refused")


def test_stop_during_backoff_returns_promptly_without_committing() -> None:
    source = StreamSource()
    pipeline = Pipeline(source, ParserRouter("ecs", 1 << 20), EveryEventRule(), alert_sinks=[AlwaysDown()],
                        dead_letter=MemorySink(), retry_initial=20.0, retry_max=30.0)
    errors: list[BaseException] = []
    thread = threading.Thread(target=lambda: _capture(pipeline.run, errors), daemon=True)
    thread.start()
    time.sleep(1.0)
    stopped = time.monotonic()
    pipeline.stop()
    thread.join(timeout=5)
    assert not thread.is_alive() and time.monotonic() - stopped < 2
    assert source.committed == [] and source.read_batches == 1
    assert len(errors) == 1 and isinstance(errors[0], SinkError)


def _capture(function: Any, errors: list[BaseException]) -> None:
    try:
        function()
    except BaseException as exc:
        errors.append(exc)
