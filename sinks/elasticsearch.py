"""``elasticsearch``: bulk indexing of alerts (or events, or dead letters) with an ECS index template.

Delivery is exactly-once per document id: every action is ``create`` with ``_id`` = ``alert.id`` (events:
``event.id``), so a batch re-sent after a failure or a restart only meets 409 conflicts, which count as
delivered. Per-item outcomes decide the rest: 429 / 5xx / cluster blocks are retried with backoff (the
whole request too on connection errors), and when retries run out the sink raises SinkError so the
pipeline holds its input (backpressure). A document whose fields clash with the index mapping is indexed
again with only its core fields (time, ids, rule, alert) and the whole document as stored text, tagged
``_tsiem_mapping_conflict``, so an alert stays visible; only if that fails too does it go to the
dead-letter output via ``take_rejected``. Neither blocks the stream.

The OpenSearch sink (sinks/opensearch.py) is this class with the opensearch-py client behind ``BulkClient``.
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal

import orjson
from pydantic import Field, SecretStr

from temporal_siem.kernel.backoff import Backoff
from temporal_siem.sinks.base import Sink, SinkError, to_json_line
from temporal_siem.sinks.delivery import secret
from temporal_siem.sinks.options import SinkOptions, check_role, resolve
from temporal_siem.sinks.templates import dead_letter_template, index_template

log = logging.getLogger("temporal_siem.sinks.elasticsearch")

#: Defaults per role: which index and which field is the document id.
ROLE_DEFAULTS: dict[str, tuple[str, str | None]] = {
    "alerts": ("tsiem-alerts", "alert.id"),
    "events": ("tsiem-events", "event.id"),
    "dead_letter": ("tsiem-dead-letter", None),
}
DELIVERED = frozenset({200, 201, 409})  # 409: the id exists, i.e. delivered by an earlier attempt
RETRYABLE_ITEM = frozenset({403, 408, 429, 500, 502, 503, 504})  # 403: cluster block (disk watermark)
MAX_REASON = 500


def root_cause(body: Any) -> str:
    """The innermost ``caused_by`` reason of an error body: the outer one is often only "template after
    composition is invalid" where the inner one names the field and the type the server does not know."""
    error = body.get("error") if isinstance(body, dict) else None
    found = ""
    while isinstance(error, dict):
        if error.get("reason"):
            found = f"{error.get('type', 'error')}: {error['reason']}"
        error = error.get("caused_by")
    return found


class TransientError(Exception):
    """The request as a whole failed in a way worth retrying (connection, timeout, 429, 5xx)."""


class PermanentError(Exception):
    """The server refused the request itself (bad credentials, bad URL): retrying the same will not help."""


class BulkClient(ABC):
    """The few calls the sink needs, so Elasticsearch and OpenSearch share one code path."""

    @abstractmethod
    def bulk(self, body: bytes, refresh: str | None) -> dict[str, Any]:
        """POST _bulk with an NDJSON body; the response filtered to errors and item status/error."""

    @abstractmethod
    def put_index_template(self, name: str, body: dict[str, Any]) -> None: ...

    @abstractmethod
    def create_data_stream(self, name: str) -> None: ...

    @abstractmethod
    def data_stream_api_missing(self, name: str) -> str | None:
        """Why the server cannot serve data streams (no ``_data_stream`` API), or None if it can."""

    @abstractmethod
    def close(self) -> None: ...


@dataclass(frozen=True)
class ConnectionOptions:
    """Where and how to connect; secrets already unwrapped."""

    hosts: list[str]
    api_key: str | None = None
    username: str | None = None
    password: str | None = None
    ca_certs: str | None = None
    ssl_assert_fingerprint: str | None = None
    verify_certs: bool = True
    client_cert: str | None = None
    client_key: str | None = None
    request_timeout: float = 30.0


def _ndjson_bytes_serializer() -> Any:
    from elasticsearch.serializer import NdjsonSerializer

    class NdjsonBytes(NdjsonSerializer):
        """Passes a body that is already NDJSON bytes (ends with a newline) through without a copy."""

        def dumps(self, data: Any) -> bytes:
            if isinstance(data, bytes) and data.endswith(b"\n"):
                return data
            return super().dumps(data)  # type: ignore[no-any-return]

    return NdjsonBytes()


class ElasticsearchClient(BulkClient):
    def __init__(self, connection: ConnectionOptions) -> None:
        from elasticsearch import Elasticsearch

        c = connection
        api_key, username, password, request_timeout = c.api_key, c.username, c.password, c.request_timeout
        ca_certs, ssl_assert_fingerprint, verify_certs = c.ca_certs, c.ssl_assert_fingerprint, c.verify_certs
        client_cert, client_key, hosts = c.client_cert, c.client_key, c.hosts

        options: dict[str, Any] = {"request_timeout": request_timeout, "max_retries": 0, "retry_on_timeout": False}
        if api_key:
            options["api_key"] = tuple(api_key.split(":", 1)) if ":" in api_key else api_key
        elif username:
            options["basic_auth"] = (username, password or "")
        if ca_certs:
            options["ca_certs"] = ca_certs
        if ssl_assert_fingerprint:
            options["ssl_assert_fingerprint"] = ssl_assert_fingerprint
        if not verify_certs:
            options["verify_certs"] = False
        if client_cert:
            options["client_cert"] = client_cert
            options["client_key"] = client_key
        # The bulk body is NDJSON bytes already: the client's NDJSON serializer would copy it into a new
        # buffer line by line (a few microseconds per alert, megabytes per request); handed over as is.
        options["serializers"] = {"application/x-ndjson": _ndjson_bytes_serializer()}
        self.client = Elasticsearch(hosts, **options)

    def _call(self, function: Any, **kwargs: Any) -> Any:
        from elastic_transport import ConnectionError as TransportConnectionError
        from elastic_transport import ConnectionTimeout
        from elasticsearch import ApiError

        try:
            return function(**kwargs)
        except (TransportConnectionError, ConnectionTimeout) as exc:
            detail = str(getattr(exc, "message", "") or exc)[:MAX_REASON]  # str(exc) is only "TLS error"
            raise TransientError(f"{type(exc).__name__}: {detail}") from exc
        except ApiError as exc:
            status = exc.meta.status
            if status in (408, 413, 429) or status >= 500:
                raise TransientError(f"HTTP {status}: {str(exc)[:MAX_REASON]}") from exc
            cause = root_cause(exc.body)
            raise PermanentError(f"HTTP {status}: {str(exc)[:MAX_REASON]}" + (f" (cause: {cause[:MAX_REASON]})" if cause else "")) from exc

    def bulk(self, body: bytes, refresh: str | None) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"operations": body, "filter_path": "errors,items.*.status,items.*.error"}
        if refresh:
            kwargs["refresh"] = refresh
        response = self._call(self.client.bulk, **kwargs)
        body_: dict[str, Any] = response.body
        return body_

    def put_index_template(self, name: str, body: dict[str, Any]) -> None:
        self._call(self.client.indices.put_index_template, name=name, **body)

    def create_data_stream(self, name: str) -> None:
        from elasticsearch import BadRequestError

        try:
            self._call(self.client.indices.create_data_stream, name=name)
        except PermanentError as exc:
            cause = exc.__cause__
            if not (isinstance(cause, BadRequestError) and "already_exists" in str(cause)):
                raise

    def data_stream_api_missing(self, name: str) -> str | None:
        return probe_data_stream_api(self._call, self.client.indices.get_data_stream, name)

    def close(self) -> None:
        self.client.close()


def probe_data_stream_api(call: Any, get_data_stream: Any, name: str) -> str | None:
    """GET _data_stream/<name>: 200, or 404 because that stream does not exist yet, means the API is there.
    A server without it (Elasticsearch without its data-streams module answers 405 "Incorrect HTTP method")
    would still auto-create a data stream from the template on the first write, but nothing could list,
    create or delete it: half-working, hence refused up front."""
    try:
        call(get_data_stream, name=name)
    except PermanentError as exc:
        text = str(exc)
        if text.startswith("HTTP 404") and "index_not_found" in text:
            return None
        return text
    return None


@dataclass(slots=True)
class _Item:
    position: int
    action: bytes
    source: bytes
    degraded: bool = False


#: Kept when a document's fields clash with the mapping: enough to find, triage and count the alert.
CORE_ROOTS = frozenset({"@timestamp", "event", "rule", "alert", "threat", "tags"})
MAPPING_CONFLICT_TAG = "_tsiem_mapping_conflict"


def degraded(document: dict[str, Any], reason: str) -> dict[str, Any]:
    """The core fields, the whole document as JSON text in ``event.original`` (stored, not indexed), a tag."""
    core = {k: v for k, v in document.items() if k.split(".", 1)[0] in CORE_ROOTS and k != "event.original"}
    tags = core.get("tags")
    core["tags"] = [*(tags if isinstance(tags, list) else [tags] if tags else []), MAPPING_CONFLICT_TAG]
    core["event.original"] = to_json_line(document)[:-1].decode("utf-8")
    core["error.message"] = reason
    return core


class BulkIndexConfig(SinkOptions):
    """Options of the Elasticsearch-API sinks (``elasticsearch``, ``opensearch``)."""

    hosts: list[str] | str = Field("http://127.0.0.1:9200", description="A URL or a list of URLs.")
    index: str | None = Field(None, description="Index (or data stream) name; default by role: `tsiem-alerts`, `tsiem-events`, `tsiem-dead-letter`.")
    id_field: str | None = Field(
        "", description="Field used as the document `_id`; empty: by role (`alert.id`, `event.id`, none for dead letters); null: none.")
    data_stream: bool = Field(False, description="Write to a data stream named `index`.")
    install_template: bool = Field(True, description="Install the index template (mappings generated from the schema) at open.")
    template_name: str | None = Field(None, description="Template name; default: the index name.")
    template_patterns: list[str] | None = Field(None, description="Index patterns of the template; default: exactly `[index]`.")
    template_priority: int = Field(200, description="Template priority.")
    shards: int | None = Field(None, description="Primary shards; default: the server's.")
    replicas: int | None = Field(None, description="Replicas; default: the server's.")
    api_key: SecretStr | None = Field(None, description="`id:key` or the base64 encoded key (Elasticsearch); sent as `Authorization: ApiKey` (OpenSearch).")
    username: str | None = Field(None, description="Basic auth user.")
    password: SecretStr | None = Field(None, description="Basic auth password.")
    ca_certs: str | None = Field(None, description="CA file to verify the server.")
    ssl_assert_fingerprint: str | None = Field(None, description="The server certificate's SHA-256 fingerprint, instead of a CA.")
    verify_certs: bool = Field(True, description="Verify the server certificate.")
    client_cert: str | None = Field(None, description="Client certificate (mutual TLS).")
    client_key: str | None = Field(None, description="Client certificate key (mutual TLS).")
    chunk_size: int = Field(
        1000, ge=1, description="Documents per bulk request at most (1000: a pipeline batch in one request; "
                                "fewer, larger requests cost the server less CPU per alert).")
    max_chunk_bytes: int = Field(5 * 1024 * 1024, ge=1024, description="Bytes per bulk request at most.")
    concurrency: int = Field(2, ge=1, description="Bulk requests in flight.")
    max_retries: int = Field(5, ge=0, description="Retries of refused items before `SinkError`.")
    initial_backoff: float = Field(0.5, description="First retry delay, seconds (doubling, with jitter).")
    max_backoff: float = Field(10.0, description="Longest retry delay, seconds.")
    request_timeout: float = Field(30.0, description="Seconds per request.")
    refresh: str | None = Field(None, description="Bulk `refresh` parameter (`wait_for` for tests and demos).")
    refresh_interval: str | None = Field(
        None, description="`index.refresh_interval` in the template (e.g. `30s`): how soon new alerts become searchable; "
                          "longer is ~15 % less server CPU per alert when indexing fast; default: the server's (1s).")


class ElasticsearchConfig(BulkIndexConfig):
    """``elasticsearch`` sink options."""

    type: Literal["elasticsearch"] = "elasticsearch"


class BulkIndexSink(Sink):
    """Elasticsearch-API bulk indexing; subclasses choose the client library."""

    name: ClassVar[str] = "elasticsearch"
    #: The server's mapping type for an object of any shape stored as one field (see sinks/templates).
    flat_type: ClassVar[str] = "flattened"
    config_model: ClassVar[type[BulkIndexConfig]] = ElasticsearchConfig

    def __init__(self, config: BulkIndexConfig | None = None, /, *, role: str = "alerts", **options: Any) -> None:
        c = resolve(self.config_model, config, options)
        check_role(self.name, role)
        default_index, default_id = ROLE_DEFAULTS[role]
        self.hosts = [c.hosts] if isinstance(c.hosts, str) else list(c.hosts)
        self.role = role
        self.index = c.index or default_index
        self.id_field = default_id if c.id_field == "" else c.id_field
        self.data_stream = c.data_stream
        self.install_template = c.install_template
        self.template_name = c.template_name or self.index
        self.template_patterns = list(c.template_patterns or [])
        self.template_priority = c.template_priority
        self.shards = c.shards
        self.replicas = c.replicas
        self.chunk_size = c.chunk_size
        self.max_chunk_bytes = c.max_chunk_bytes
        self.concurrency = c.concurrency
        self.backoff = Backoff(c.max_retries, c.initial_backoff, c.max_backoff)
        self.refresh = c.refresh
        self.refresh_interval = c.refresh_interval
        self.connection = ConnectionOptions(self.hosts, secret(c.api_key), c.username, secret(c.password), c.ca_certs,
                                            c.ssl_assert_fingerprint, c.verify_certs, c.client_cert, c.client_key,
                                            c.request_timeout)
        self._action_no_id = orjson.dumps({"create": {"_index": self.index}}) + b"\n"
        self._action_head = self._action_no_id[:-3] + b',"_id":'
        self._client: BulkClient | None = None
        self._templates_installed = False
        self._pool: ThreadPoolExecutor | None = None
        self._rejected: list[tuple[dict[str, Any], str]] = []
        self._lock = threading.Lock()
        self.stats = {"delivered": 0, "duplicates": 0, "rejected": 0, "degraded": 0, "retried_items": 0, "requests": 0}

    def _make_client(self) -> BulkClient:
        return ElasticsearchClient(self.connection)

    # -- lifecycle ---------------------------------------------------------------------------------

    def open(self) -> None:
        """Connect and install the index template; a server that is down now is retried on write."""
        if self._client is None:
            self._client = self._make_client()
            self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix=f"tsiem-{self.name}")
        try:
            self._ensure_templates()
        except TransientError as exc:
            log.warning("%s: server unavailable at start (%s); templates installed on first write", self.name, exc)

    def _ensure_templates(self) -> None:
        if self._templates_installed or not self.install_template:
            return
        assert self._client is not None
        pattern = self.template_patterns or [self.index]  # exact: another sink's "<index>-events" must not match
        body = (dead_letter_template(pattern, data_stream=self.data_stream, priority=self.template_priority)
                if self.role == "dead_letter" else
                index_template(pattern, data_stream=self.data_stream, shards=self.shards, replicas=self.replicas,
                               priority=self.template_priority, flat_type=self.flat_type,
                               extra_settings={"index.refresh_interval": self.refresh_interval} if self.refresh_interval else None))
        try:
            if self.data_stream:
                missing = self._client.data_stream_api_missing(self.index)
                if missing is not None:
                    raise SinkError(
                        f"{self.name}: data_stream is true but {', '.join(self.hosts)} has no data stream API ({missing}). "
                        "Elasticsearch serves data streams through its data-streams module (part of every Elastic "
                        "distribution, absent from a node assembled from Maven Central jars); OpenSearch has them "
                        "built in. Set data_stream: false to write to a plain index.")
            self._client.put_index_template(self.template_name, body)
            if self.data_stream:
                self._client.create_data_stream(self.index)
        except PermanentError as exc:
            raise SinkError(f"{self.name}: cannot install index template {self.template_name!r}: {exc}") from exc
        self._templates_installed = True

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        if self._client is not None:
            self._client.close()
            self._client = None

    def take_rejected(self) -> list[tuple[dict[str, Any], str]]:
        rejected, self._rejected = self._rejected, []
        return rejected

    # -- delivery ----------------------------------------------------------------------------------

    def _encode(self, position: int, document: dict[str, Any], degraded: bool = False) -> _Item:
        doc_id = document.get(self.id_field) if self.id_field else None
        # The bytes of orjson.dumps({"create": {"_index": index, "_id": id}}), without building that dict.
        action = (self._action_no_id if doc_id in (None, "")
                  else self._action_head + orjson.dumps(str(doc_id)[:512]) + b"}}\n")
        if self.data_stream and "@timestamp" not in document:
            document = {**document, "@timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")}
        return _Item(position, action, to_json_line(document), degraded)

    def _chunks(self, items: Iterable[_Item]) -> Iterator[list[_Item]]:
        current: list[_Item] = []
        size = 0
        for item in items:
            item_size = len(item.action) + len(item.source)
            if current and (len(current) >= self.chunk_size or size + item_size > self.max_chunk_bytes):
                yield current
                current, size = [], 0
            current.append(item)
            size += item_size
        if current:
            yield current

    def _dispatch(self, chunks: Iterator[list[_Item]]) -> Iterator[list[tuple[_Item, int, str]]]:
        """At most ``concurrency`` requests in flight; the next chunk is encoded while they are."""
        assert self._pool is not None
        in_flight: deque[Future[list[tuple[_Item, int, str]]]] = deque()
        for chunk in chunks:
            if len(in_flight) >= self.concurrency:
                yield in_flight.popleft().result()
            in_flight.append(self._pool.submit(self._send, chunk))
        while in_flight:
            yield in_flight.popleft().result()

    def _send(self, chunk: list[_Item]) -> list[tuple[_Item, int, str]]:
        """(item, status, reason) for each item; status 0 when the whole request failed transiently."""
        assert self._client is not None
        body = b"".join(part for item in chunk for part in (item.action, item.source))
        try:
            response = self._client.bulk(body, self.refresh)
        except TransientError as exc:
            return [(item, 0, str(exc)) for item in chunk]
        with self._lock:
            self.stats["requests"] += 1
        results = response.get("items") or []
        if len(results) != len(chunk):
            return [(item, 0, f"bulk response had {len(results)} items for {len(chunk)} actions") for item in chunk]
        outcomes = []
        for item, result in zip(chunk, results, strict=True):
            outcome: dict[str, Any] = next(iter(result.values()), {})
            status = int(outcome.get("status", 0))
            error = outcome.get("error")
            reason = ""
            if error:
                reason = f"{error.get('type', 'error')}: {error.get('reason', '')}"[:MAX_REASON] if isinstance(error, dict) else str(error)
            outcomes.append((item, status, reason))
        return outcomes

    def write(self, documents: list[dict[str, Any]]) -> None:
        if not documents:
            return
        if self._client is None:
            self.open()
        self._rejected = []  # a retried batch re-derives its rejects; never report them twice
        try:
            self._ensure_templates()
        except TransientError as exc:
            raise SinkError(f"{self.name}: {exc}") from exc
        pending: Iterable[_Item] = (self._encode(i, doc) for i, doc in enumerate(documents))
        delays = self.backoff.delays()
        last_reason = ""
        while True:
            retry: list[_Item] = []
            again: list[_Item] = []
            for outcomes in self._dispatch(self._chunks(pending)):
                for item, status, reason in outcomes:
                    if status in DELIVERED:
                        self.stats["delivered" if status != 409 else "duplicates"] += 1
                    elif status == 0 or status in RETRYABLE_ITEM:
                        retry.append(item)
                        last_reason = reason or f"HTTP {status}"
                    elif self.role != "dead_letter" and not item.degraded and status == 400 and "parsing_exception" in reason:
                        # Fields clash with the index mapping: index the core (ids, rule, time) with the whole
                        # document kept as text, so the alert is still searchable; dead-letter only if that fails.
                        self.stats["degraded"] += 1
                        log.warning("%s: %s does not fit the mapping (%s); indexing its core fields", self.name,
                                    documents[item.position].get(self.id_field or "", "a document"), reason)
                        again.append(self._encode(item.position, degraded(documents[item.position], reason), degraded=True))
                    else:
                        self.stats["rejected"] += 1
                        self._rejected.append((documents[item.position], f"{self.name}_rejected: HTTP {status} {reason}"))
            if again:
                pending = [*again, *retry]
                continue
            if not retry:
                return
            pending = retry
            self.stats["retried_items"] += len(retry)
            delay = next(delays, None)
            if delay is None:
                raise SinkError(f"{self.name}: {len(retry)} of {len(documents)} documents not accepted after "
                                f"{self.backoff.attempts} retries: {last_reason}")
            log.info("%s: %d documents to retry in %.2fs (%s)", self.name, len(retry), delay, last_reason)
            self.backoff.pause(delay)


class ElasticsearchSink(BulkIndexSink):
    """Elasticsearch 8.x through the official ``elasticsearch`` client."""

    name: ClassVar[str] = "elasticsearch"
