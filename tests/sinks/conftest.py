"""Fixtures for the sink tests: the alerts of a real replay of samples/, and throwaway index names."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from temporal_siem.detections.factory import build_detector
from temporal_siem.ingest.replay import ReplaySource
from temporal_siem.parsers.router import ParserRouter
from temporal_siem.pipeline import Pipeline
from temporal_siem.sinks.base import Sink
from tests.conftest import SAMPLES, start_service
from tests.sinks.search_servers import SearchServer, opensearch_server


class MemorySink(Sink):
    """Keeps what it is given (the reference to compare a network sink with)."""

    name = "memory"

    def __init__(self) -> None:
        self.documents: list[dict[str, Any]] = []

    def write(self, documents: list[dict[str, Any]]) -> None:
        self.documents.extend(documents)


def replay(alert_sinks: list[Sink], event_sinks: list[Sink] | None = None, dead_letter: Sink | None = None,
           batch_size: int = 200) -> MemorySink:
    """samples/ through the parsers and the built-in rules into the given sinks; returns the dead letters."""
    dead = dead_letter if isinstance(dead_letter, MemorySink) else MemorySink()
    pipeline = Pipeline(ReplaySource([str(SAMPLES)], batch_size=batch_size), ParserRouter("auto", 8 * 1024 * 1024),
                        build_detector([], builtin_rules=True), alert_sinks=alert_sinks, event_sinks=event_sinks or [],
                        dead_letter=dead_letter or dead, retry_initial=0.1, retry_max=1.0)
    pipeline.run()
    return dead


@pytest.fixture(scope="session")
def replay_alerts() -> list[dict[str, Any]]:
    memory = MemorySink()
    replay([memory])
    assert len(memory.documents) >= 20, "the samples should raise alerts through the built-in rules"
    return memory.documents


@pytest.fixture(scope="session")
def opensearch() -> SearchServer:
    """The shared OpenSearch node: HTTPS with the security plugin, basic auth (scripts/services/opensearch.sh)."""
    start_service("opensearch")
    return opensearch_server()


@pytest.fixture(scope="session", params=["elasticsearch", "opensearch"])
def search_server(request: pytest.FixtureRequest) -> SearchServer:
    """Each real search server in turn, with the matching sink type: the contract both must keep."""
    if request.param == "opensearch":
        server: SearchServer = request.getfixturevalue("opensearch")
        return server
    return SearchServer("elasticsearch", request.getfixturevalue("elasticsearch_url"))


@pytest.fixture
def search_index(search_server: SearchServer) -> Iterator[str]:
    name = f"tsiem-test-{uuid.uuid4().hex[:10]}"
    yield name
    search_server.delete(name, f"{name}-events")


@pytest.fixture
def es_index(elasticsearch_url: str) -> Iterator[str]:
    from elasticsearch import Elasticsearch

    name = f"tsiem-test-{uuid.uuid4().hex[:10]}"
    yield name
    client = Elasticsearch(elasticsearch_url)
    for index in (name, f"{name}-events"):
        client.options(ignore_status=404).indices.delete(index=index)
        client.options(ignore_status=404).indices.delete_index_template(name=index)
    client.close()
