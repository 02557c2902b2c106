"""``kafka``: alerts to a topic, keyed by rule id, through an idempotent producer with acks=all.

Keying by ``rule.id`` keeps each rule's alerts in order on one partition. ``write`` waits for every
record's acknowledgement; the idempotent producer removes the duplicates its own retries would make,
and PartialBatch makes a pipeline retry send only the records not yet acknowledged. A record too large
for the broker is refused for its content and goes to the dead letters; anything else (broker down,
delivery timeout) raises SinkError so the pipeline holds its input.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar, Literal

from pydantic import Field, SecretStr

from temporal_siem.sinks.base import Sink, SinkError, to_json_line
from temporal_siem.sinks.delivery import PartialBatch, secret
from temporal_siem.sinks.options import SinkOptions, check_role, resolve

log = logging.getLogger("temporal_siem.sinks.kafka")

#: Per role: default topic and the field that keys the record.
ROLE_DEFAULTS: dict[str, tuple[str, str | None]] = {
    "alerts": ("temporal-siem-alerts", "rule.id"),
    "events": ("temporal-siem-events", "event.id"),
    "dead_letter": ("temporal-siem-dead-letter", None),
}


class KafkaSinkConfig(SinkOptions):
    """``kafka`` sink options; the security options are those of ``ingest.kafka``."""

    type: Literal["kafka"] = "kafka"
    bootstrap_servers: list[str] | str = Field("127.0.0.1:9092", description="`host:port` or a list of them.")
    topic: str | None = Field(None, description="Topic; default by role: `temporal-siem-alerts`, `temporal-siem-events`, `temporal-siem-dead-letter`.")
    key_field: str | None = Field("", description="Field whose value keys the record; empty: by role (`rule.id`, `event.id`, none); null: no key.")
    client_id: str = Field("temporal-siem-sink", description="Kafka client id.")
    compression_type: Literal["gzip", "snappy", "lz4", "zstd"] | None = Field(None, description="Producer compression.")
    linger_ms: int = Field(10, description="Producer `linger.ms`.")
    batch_size: int = Field(256 * 1024, description="Producer batch size, bytes.")
    max_request_size: int = Field(1048576, description="Larger records go to the dead letters.")
    delivery_timeout_ms: int = Field(30000, description="Time for a record to be acknowledged before `SinkError`.")
    request_timeout_ms: int = Field(15000, description="Producer request timeout.")
    bootstrap_timeout_ms: int = Field(30000, description="Time to reach a broker at connect.")
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field("PLAINTEXT", description="As `ingest.kafka.security_protocol`.")
    ssl_cafile: str | None = Field(None, description="CA file.")
    ssl_certfile: str | None = Field(None, description="Client certificate.")
    ssl_keyfile: str | None = Field(None, description="Client certificate key.")
    ssl_password: SecretStr | None = Field(None, description="Password of the client key.")
    ssl_check_hostname: bool = Field(True, description="Verify the broker's host name.")
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(None, description="SASL mechanism.")
    sasl_username: str | None = Field(None, description="SASL user.")
    sasl_password: SecretStr | None = Field(None, description="SASL password.")


class KafkaSink(Sink):
    name: ClassVar[str] = "kafka"

    def __init__(self, config: KafkaSinkConfig | None = None, /, *, role: str = "alerts", **options: Any) -> None:
        c = resolve(KafkaSinkConfig, config, options)
        check_role("kafka sink", role)
        default_topic, default_key = ROLE_DEFAULTS[role]
        self.topic = c.topic or default_topic
        self.key_field = default_key if c.key_field == "" else c.key_field
        self.id_field = {"alerts": "alert.id", "events": "event.id"}.get(role)
        servers = [c.bootstrap_servers] if isinstance(c.bootstrap_servers, str) else list(c.bootstrap_servers)
        self.flush_timeout = (c.delivery_timeout_ms + c.request_timeout_ms) / 1000
        self.config: dict[str, Any] = {
            "bootstrap_servers": servers, "client_id": c.client_id, "acks": "all", "enable_idempotence": True,
            "linger_ms": c.linger_ms, "batch_size": c.batch_size, "compression_type": c.compression_type,
            "max_request_size": c.max_request_size, "delivery_timeout_ms": c.delivery_timeout_ms,
            "request_timeout_ms": c.request_timeout_ms, "bootstrap_timeout_ms": c.bootstrap_timeout_ms,
            "max_block_ms": c.delivery_timeout_ms, "security_protocol": c.security_protocol, "ssl_cafile": c.ssl_cafile,
            "ssl_certfile": c.ssl_certfile, "ssl_keyfile": c.ssl_keyfile, "ssl_password": secret(c.ssl_password),
            "ssl_check_hostname": c.ssl_check_hostname,
        }
        if c.sasl_mechanism:
            self.config.update(sasl_mechanism=c.sasl_mechanism, sasl_plain_username=c.sasl_username,
                               sasl_plain_password=secret(c.sasl_password))
        self.max_request_size = c.max_request_size
        self._producer: Any = None
        self._progress = PartialBatch()
        self._rejected: list[tuple[dict[str, Any], str]] = []
        self.sent = 0

    def _connect(self) -> Any:
        from kafka import KafkaProducer
        from kafka.errors import KafkaError

        try:
            return KafkaProducer(**{k: v for k, v in self.config.items() if v is not None})
        except KafkaError as exc:
            raise SinkError(f"kafka {self.config['bootstrap_servers']}: {type(exc).__name__}: {exc}") from exc

    def open(self) -> None:
        if self._producer is None:
            try:
                self._producer = self._connect()
            except SinkError as exc:
                log.warning("%s; retried on write", exc)

    def take_rejected(self) -> list[tuple[dict[str, Any], str]]:
        rejected, self._rejected = self._rejected, []
        return rejected

    def write(self, documents: list[dict[str, Any]]) -> None:
        from kafka.errors import KafkaError, MessageSizeTooLargeError

        if not documents:
            return
        if self._producer is None:
            self._producer = self._connect()
        sent: list[tuple[int, Any]] = []
        for position in self._progress.pending(documents):
            document = documents[position]
            value = to_json_line(document)[:-1]
            key_value = document.get(self.key_field) if self.key_field else None
            key = str(key_value).encode() if key_value not in (None, "") else None
            headers = [("id", str(document[self.id_field]).encode())] if self.id_field and self.id_field in document else []
            if len(value) + len(key or b"") + 512 > self.max_request_size:
                self._rejected.append((document, f"kafka_rejected: record of {len(value)} bytes exceeds max_request_size"))
                self._progress.delivered(position)
                continue
            try:
                sent.append((position, self._producer.send(self.topic, value=value, key=key, headers=headers)))
            except MessageSizeTooLargeError as exc:
                self._rejected.append((document, f"kafka_rejected: {exc}"))
                self._progress.delivered(position)
            except KafkaError as exc:
                raise SinkError(f"kafka {self.topic}: {type(exc).__name__}: {exc}") from exc
        try:
            self._producer.flush(timeout=self.flush_timeout)
        except KafkaError as exc:
            log.warning("kafka %s: flush: %s", self.topic, exc)
        failures: list[str] = []
        for position, future in sent:
            if future.is_done and future.succeeded():
                self._progress.delivered(position)
                self.sent += 1
            elif future.is_done and isinstance(future.exception, MessageSizeTooLargeError):
                self._rejected.append((documents[position], f"kafka_rejected: {future.exception}"))
                self._progress.delivered(position)
            else:
                failures.append(str(future.exception) if future.is_done else "no acknowledgement before the delivery timeout")
        if failures:
            raise SinkError(f"kafka {self.topic}: {len(failures)} of {len(documents)} records not acknowledged: {failures[0]}")
        self._progress.complete()

    def flush(self) -> None:
        if self._producer is not None:
            self._producer.flush(timeout=self.flush_timeout)

    def close(self) -> None:
        if self._producer is not None:
            try:
                self._producer.close(timeout=self.flush_timeout)
            finally:
                self._producer = None
