"""``opensearch``: the Elasticsearch sink's code path with the opensearch-py client (OpenSearch 2.x / 3.x).

The Elasticsearch 8 client refuses to talk to a server that is not Elasticsearch, hence a second client
behind the same BulkClient interface; batching, retries, ids and dead-lettering are shared.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from temporal_siem.sinks.elasticsearch import (
    MAX_REASON,
    BulkClient,
    BulkIndexConfig,
    BulkIndexSink,
    ConnectionOptions,
    PermanentError,
    TransientError,
    probe_data_stream_api,
    root_cause,
)


class OpenSearchClient(BulkClient):
    def __init__(self, connection: ConnectionOptions) -> None:
        from opensearchpy import OpenSearch

        c = connection
        api_key, username, password, request_timeout = c.api_key, c.username, c.password, c.request_timeout
        ca_certs, ssl_assert_fingerprint, verify_certs = c.ca_certs, c.ssl_assert_fingerprint, c.verify_certs
        client_cert, client_key, hosts = c.client_cert, c.client_key, c.hosts

        options: dict[str, Any] = {"timeout": request_timeout, "max_retries": 0, "retry_on_timeout": False}
        if username:
            options["http_auth"] = (username, password or "")
        if api_key:
            options["headers"] = {"Authorization": f"ApiKey {api_key}"}
        if ca_certs:
            options["ca_certs"] = ca_certs
        if ssl_assert_fingerprint:
            options["ssl_assert_fingerprint"] = ssl_assert_fingerprint
        if any(host.startswith("https") for host in hosts):
            options["use_ssl"] = True
        options["verify_certs"] = verify_certs
        if client_cert:
            options["client_cert"] = client_cert
            options["client_key"] = client_key
        self.client = OpenSearch(hosts, **options)

    def _call(self, function: Any, **kwargs: Any) -> Any:
        from opensearchpy.exceptions import ConnectionError as OpenSearchConnectionError
        from opensearchpy.exceptions import TransportError

        try:
            return function(**kwargs)
        except OpenSearchConnectionError as exc:  # includes timeouts and TLS failures
            raise TransientError(f"{type(exc).__name__}: {str(exc)[:MAX_REASON]}") from exc
        except TransportError as exc:
            status = exc.status_code if isinstance(exc.status_code, int) else 0
            if status in (0, 408, 413, 429) or status >= 500:
                raise TransientError(f"HTTP {status}: {str(exc)[:MAX_REASON]}") from exc
            cause = root_cause(exc.info)
            raise PermanentError(f"HTTP {status}: {str(exc)[:MAX_REASON]}" + (f" (cause: {cause[:MAX_REASON]})" if cause else "")) from exc

    def bulk(self, body: bytes, refresh: str | None) -> dict[str, Any]:
        params: dict[str, Any] = {"filter_path": "errors,items.*.status,items.*.error"}
        if refresh:
            params["refresh"] = refresh
        response: dict[str, Any] = self._call(self.client.bulk, body=body, params=params)
        return response

    def put_index_template(self, name: str, body: dict[str, Any]) -> None:
        self._call(self.client.indices.put_index_template, name=name, body=body)

    def create_data_stream(self, name: str) -> None:
        try:
            self._call(self.client.indices.create_data_stream, name=name)
        except PermanentError as exc:
            if "already_exists" not in str(exc) and "already exists" not in str(exc):
                raise

    def data_stream_api_missing(self, name: str) -> str | None:
        return probe_data_stream_api(self._call, self.client.indices.get_data_stream, name)

    def close(self) -> None:
        self.client.close()


class OpenSearchConfig(BulkIndexConfig):
    """``opensearch`` sink options (the same as ``elasticsearch``)."""

    type: Literal["opensearch"] = "opensearch"


class OpenSearchSink(BulkIndexSink):
    name: ClassVar[str] = "opensearch"
    flat_type: ClassVar[str] = "flat_object"  # OpenSearch 2.7+; it has no ``flattened``
    config_model: ClassVar[type[BulkIndexConfig]] = OpenSearchConfig

    def _make_client(self) -> BulkClient:
        return OpenSearchClient(self.connection)
