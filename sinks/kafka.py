"""``kafka``: alerts to a topic, keyed by rule id, through an idempotent producer with acks=all.

Keying by ``rule.id`` keeps each rule's alerts in order on one partition. ``write`` waits for every
record's acknowledgement; the idempotent producer removes the duplicates its own retries would make,
and PartialBatch makes a pipeline retry send only the records not yet acknowledged. A record too large
for the broker is refused for its content and goes to the dead letters; anything else (broker down,
delivery timeout) raises SinkError so the pipeline holds its input.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from temporal_siem.sinks.base import Sink, SinkError, to_json_line
from temporal_siem.sinks.delivery import PartialBatch, secret

log = logging.getLogger("temporal_siem.sinks.kafka")

#: Per role: default topic and the field that keys the record.
ROLE_DEFAULTS: dict[str, tuple[str, str | None]] = {
    "alerts": ("temporal-siem-alerts", "rule.id"),
    "events": ("temporal-siem-events", "event.id"),
    "dead_letter": ("temporal-siem-dead-letter", None),
}


class KafkaSink(Sink):
    name: ClassVar[str] = "kafka"

    def __init__(self, bootstrap_servers: list[str] | str = "127.0.0.1:9092", topic: str | None = None, *,
                 role: str = "alerts", key_field: str | None = "", client_id: str = "temporal-siem-sink",
                 compression_type: str | None = None, linger_ms: int = 10, batch_size: int = 256 * 1024,
                 max_request_size: int = 1048576,
                 delivery_timeout_ms: int = 30000, request_timeout_ms: int = 15000, bootstrap_timeout_ms: int = 30000,
                 security_protocol: str = "PLAINTEXT", ssl_cafile: str | None = None, ssl_certfile: str | None = None,
                 ssl_keyfile: str | None = None, ssl_password: Any = None, ssl_check_hostname: bool = True,
                 sasl_mechanism: str | None = None, sasl_username: str | None = None, sasl_password: Any = None) -> None:
        if role not in ROLE_DEFAULTS:
            raise ValueError(f"kafka sink: role must be one of {sorted(ROLE_DEFAULTS)}, not {role!r}")
        default_topic, default_key = ROLE_DEFAULTS[role]
        self.topic = topic or default_topic
        self.key_field = default_key if key_field == "" else key_field
        self.id_field = {"alerts": "alert.id", "events": "event.id"}.get(role)
        servers = [bootstrap_servers] if isinstance(bootstrap_servers, str) else list(bootstrap_servers)
        self.flush_timeout = (delivery_timeout_ms + request_timeout_ms) / 1000
        self.config: dict[str, Any] = {
            "bootstrap_servers": servers, "client_id": client_id, "acks": "all", "enable_idempotence": True,
            "linger_ms": linger_ms, "batch_size": batch_size, "compression_type": compression_type, "max_request_size": max_request_size,
            "delivery_timeout_ms": delivery_timeout_ms, "request_timeout_ms": request_timeout_ms,
            "bootstrap_timeout_ms": bootstrap_timeout_ms, "max_block_ms": delivery_timeout_ms,
            "security_protocol": security_protocol, "ssl_cafile": ssl_cafile, "ssl_certfile": ssl_certfile,
            "ssl_keyfile": ssl_keyfile, "ssl_password": secret(ssl_password), "ssl_check_hostname": ssl_check_hostname,
        }
        if sasl_mechanism:
            self.config.update(sasl_mechanism=sasl_mechanism, sasl_plain_username=sasl_username,
                               sasl_plain_password=secret(sasl_password))
        self.max_request_size = max_request_size
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
