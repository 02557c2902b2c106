"""The real search servers the bulk-index sinks are checked against, behind one small interface.

``SearchServer`` knows how to build the matching sink (``elasticsearch`` or ``opensearch``, with the
server's URL, credentials and CA) and how to look at what was stored through the plain REST API, so the
same contract tests run against both without trusting the sink's own client library to verify itself.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import urllib3

from temporal_siem.sinks.elasticsearch import BulkIndexSink, ElasticsearchSink
from temporal_siem.sinks.opensearch import OpenSearchSink
from tests.conftest import ROOT

OPENSEARCH_HOME = ROOT / ".services" / "opensearch"


@dataclass
class SearchServer:
    kind: str  # "elasticsearch" or "opensearch": the sink type too
    url: str
    username: str | None = None
    password: str | None = None
    ca_certs: str | None = None
    _http: urllib3.PoolManager = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._http = urllib3.PoolManager(ca_certs=self.ca_certs, cert_reqs="CERT_REQUIRED" if self.ca_certs else "CERT_NONE",
                                         timeout=urllib3.Timeout(30))

    @property
    def auth(self) -> dict[str, Any]:
        """The sink options that reach this server (credentials, CA)."""
        options: dict[str, Any] = {}
        if self.username:
            options.update(username=self.username, password=self.password)
        if self.ca_certs:
            options["ca_certs"] = self.ca_certs
        return options

    def sink(self, **options: Any) -> BulkIndexSink:
        cls: type[BulkIndexSink] = OpenSearchSink if self.kind == "opensearch" else ElasticsearchSink
        return cls(hosts=self.url, **{**self.auth, **options})

    def config(self, **options: Any) -> dict[str, Any]:
        """A sinks.* config entry for this server."""
        return {"type": self.kind, "hosts": [self.url], **self.auth, **options}

    def request(self, method: str, path: str, body: Any = None, *, ok: tuple[int, ...] = (200, 201)) -> Any:
        headers = {"Content-Type": "application/json"}
        if self.username:
            token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        data = json.dumps(body).encode() if body is not None else None
        response = self._http.request(method, self.url + path, body=data, headers=headers)
        payload = json.loads(response.data) if response.data else None
        if response.status not in ok:
            raise AssertionError(f"{self.kind} {method} {path}: HTTP {response.status} {response.data[:500]!r}")
        return payload

    def documents(self, index: str) -> dict[str, dict[str, Any]]:
        self.request("POST", f"/{index}/_refresh")
        hits = self.request("POST", f"/{index}/_search", {"size": 10000, "query": {"match_all": {}}})["hits"]["hits"]
        return {hit["_id"]: hit["_source"] for hit in hits}

    def search(self, index: str, query: dict[str, Any]) -> list[str]:
        self.request("POST", f"/{index}/_refresh")
        return [hit["_id"] for hit in self.request("POST", f"/{index}/_search", {"size": 10000, "query": query})["hits"]["hits"]]

    def count(self, index: str) -> int:
        self.request("POST", f"/{index}/_refresh")
        return int(self.request("GET", f"/{index}/_count")["count"])

    def mapping(self, index: str) -> dict[str, Any]:
        found = self.request("GET", f"/{index}/_mapping")
        properties: dict[str, Any] = next(iter(found.values()))["mappings"]["properties"]
        return properties

    def template(self, name: str) -> dict[str, Any]:
        template: dict[str, Any] = self.request("GET", f"/_index_template/{name}")["index_templates"][0]["index_template"]
        return template

    def delete(self, *names: str) -> None:
        for name in names:
            self.request("DELETE", f"/_data_stream/{name}", ok=(200, 404, 405, 400))
            self.request("DELETE", f"/{name}", ok=(200, 404))
            self.request("DELETE", f"/_index_template/{name}", ok=(200, 404))


def opensearch_service(instance: str = "default", http_port: int = 9210, command: str = "up", security: bool = True,
                       transport_port: int | None = None) -> None:
    """Start (or stop) an OpenSearch node through scripts/services/opensearch.sh; fail loudly if it cannot."""
    env = {**os.environ, "TSIEM_OS_INSTANCE": instance, "TSIEM_OS_HTTP_PORT": str(http_port),
           "TSIEM_OS_TRANSPORT_PORT": str(transport_port or http_port + 100), "TSIEM_OS_SECURITY": "1" if security else "0"}
    result = subprocess.run(["bash", str(ROOT / "scripts" / "services" / "opensearch.sh"), command],
                            env=env, capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        pytest.fail(f"opensearch ({instance}) {command} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}", pytrace=False)


def opensearch_server(instance: str = "default", http_port: int = 9210) -> SearchServer:
    """The node's generated credentials and CA (scripts/services/opensearch.sh writes them at first start)."""
    auth = OPENSEARCH_HOME / instance / "auth.env"
    ca = OPENSEARCH_HOME / "tls" / "ca.pem"
    if not auth.exists() or not ca.exists():
        pytest.fail(f"OpenSearch's generated credentials or CA are missing ({auth}, {ca})", pytrace=False)
    env = dict(line.split("=", 1) for line in Path(auth).read_text().splitlines() if "=" in line)
    return SearchServer("opensearch", f"https://127.0.0.1:{http_port}", env["OPENSEARCH_USERNAME"],
                        env["OPENSEARCH_PASSWORD"], str(ca))

