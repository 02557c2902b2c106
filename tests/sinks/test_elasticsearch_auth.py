"""Auth and TLS options of the Elasticsearch/OpenSearch sinks.

The test node has no x-pack (no security), so a TLS front end in the test stands where Elasticsearch's
security layer would: it terminates TLS with a certificate made here, demands the credentials
Elasticsearch would (``Authorization: ApiKey base64(id:key)`` or ``Basic``; 401 with the same error
body otherwise) and forwards to the real node. What is checked is what the sink sends and verifies.
"""

from __future__ import annotations

import base64
import http.client
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import pytest

from temporal_siem.sinks.base import SinkError
from temporal_siem.sinks.elasticsearch import ElasticsearchSink
from temporal_siem.sinks.opensearch import OpenSearchSink
from tests.sinks.certs import make_certificate

pytestmark = pytest.mark.services

API_KEY_ID, API_KEY_SECRET = "VuaCfGcBCdbkQm-e5aOx", "ui2lp2axTNmsyakw9tvNnw"
USER, PASSWORD = "tsiem_writer", "correct horse battery staple"


class _Front(BaseHTTPRequestHandler):
    upstream: str
    accepted: set[str]
    seen: list[str]
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _handle(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        authorization = self.headers.get("Authorization", "")
        self.seen.append(authorization)
        if authorization not in self.accepted:
            data = (b'{"error":{"type":"security_exception","reason":"unable to authenticate"},"status":401}')
            self.send_response(401)
            self.send_header("Content-Type", "application/json")
            self.send_header("WWW-Authenticate", 'ApiKey, Basic realm="security"')
            self.send_header("X-Elastic-Product", "Elasticsearch")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        target = urlsplit(self.upstream)
        connection = http.client.HTTPConnection(target.hostname or "127.0.0.1", target.port or 9200, timeout=30)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("authorization", "host", "connection")}
        connection.request(self.command, self.path, body=body or None, headers=headers)
        response = connection.getresponse()
        data = response.read()
        self.send_response(response.status)
        for key, value in response.getheaders():
            if key.lower() not in ("content-length", "transfer-encoding", "connection"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        connection.close()

    do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = _handle


@pytest.fixture(scope="module")
def secured(elasticsearch_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    ca, cert, key, fingerprint = make_certificate(tmp_path_factory.mktemp("tls"))
    accepted = {"ApiKey " + base64.b64encode(f"{API_KEY_ID}:{API_KEY_SECRET}".encode()).decode(),
                "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}
    seen: list[str] = []
    handler = type("Front", (_Front,), {"upstream": elasticsearch_url, "accepted": accepted, "seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield {"url": f"https://127.0.0.1:{server.server_address[1]}", "ca": ca, "fingerprint": fingerprint, "seen": seen}
    server.shutdown()
    server.server_close()


DOC = [{"@timestamp": "2024-01-01T00:00:00Z", "alert.id": "auth-1", "rule.id": "r"}]


@pytest.mark.parametrize("sink_class", [ElasticsearchSink, OpenSearchSink])
def test_api_key_over_tls_with_ca_file(secured: dict[str, Any], es_index: str, sink_class: type) -> None:
    sink = sink_class(hosts=secured["url"], index=es_index, api_key=f"{API_KEY_ID}:{API_KEY_SECRET}" if sink_class is ElasticsearchSink
                      else base64.b64encode(f"{API_KEY_ID}:{API_KEY_SECRET}".encode()).decode(),
                      ca_certs=secured["ca"], refresh="wait_for",
                      # The node behind the front end is Elasticsearch: no OpenSearch template (flat_object) there.
                      install_template=sink_class is ElasticsearchSink)
    sink.write(DOC)
    sink.close()
    assert sink.stats["delivered"] + sink.stats["duplicates"] == 1
    assert secured["seen"][-1].startswith("ApiKey ")


def test_encoded_api_key_basic_auth_and_fingerprint(secured: dict[str, Any], es_index: str) -> None:
    encoded = base64.b64encode(f"{API_KEY_ID}:{API_KEY_SECRET}".encode()).decode()
    by_encoded_key = ElasticsearchSink(hosts=secured["url"], index=es_index, api_key=encoded, ca_certs=secured["ca"])
    by_encoded_key.write(DOC)
    by_encoded_key.close()
    by_password = ElasticsearchSink(hosts=secured["url"], index=es_index, username=USER, password=PASSWORD,
                                    ssl_assert_fingerprint=secured["fingerprint"])
    by_password.write(DOC)
    by_password.close()
    assert by_password.stats["duplicates"] == 1
    assert secured["seen"][-1].startswith("Basic ")


def test_wrong_credentials_hold_the_stream(secured: dict[str, Any], es_index: str) -> None:
    sink = ElasticsearchSink(hosts=secured["url"], index=es_index, username=USER, password="wrong", ca_certs=secured["ca"],
                             max_retries=0)
    with pytest.raises(SinkError, match="401"):
        sink.write(DOC)
    sink.close()


def test_unverifiable_certificate_is_refused(secured: dict[str, Any], es_index: str) -> None:
    wrong_pin = ElasticsearchSink(hosts=secured["url"], index=es_index, api_key=f"{API_KEY_ID}:{API_KEY_SECRET}",
                                  ssl_assert_fingerprint="00" * 32, max_retries=0, request_timeout=5)
    with pytest.raises(SinkError):
        wrong_pin.write(DOC)
    wrong_pin.close()
    no_ca = ElasticsearchSink(hosts=secured["url"], index=es_index, api_key=f"{API_KEY_ID}:{API_KEY_SECRET}", max_retries=0,
                              request_timeout=5)
    with pytest.raises(SinkError, match=r"(?i)certificate"):
        no_ca.write(DOC)
    no_ca.close()
