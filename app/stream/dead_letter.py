"""The dead-letter topic: bad records go back to Kafka, as they arrived, with why and where in headers.

The value is the original record (full bytes, not the 4 KB excerpt of the JSON dead-letter document), so
a fixed parser can re-consume the topic as is. Headers: ``tsiem.reason``, ``tsiem.stage``,
``tsiem.detail``, ``tsiem.origin.topic``/``.partition``/``.offset`` (and ``.index`` for one element of a
batch envelope), ``tsiem.origin`` (human-readable). The original key and headers are kept.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable
from typing import Any

import orjson
from kafka import KafkaProducer
from kafka.errors import KafkaError
from temporal_siem.kernel.secrets import redact_raw, redact_text
from temporal_siem.sinks.base import Sink, SinkError

log = logging.getLogger("temporal_siem.stream.dead_letter")

#: Values above this go as their excerpt (the broker's default message limit is 1 MB).
MAX_VALUE_BYTES = 900 * 1024
HEADER_PREFIX = "tsiem."

RecordLookup = Callable[[str, int, int], Any]


class DeadLetterTopicSink(Sink):
    name = "kafka-dead-letter"

    def __init__(self, topic: str, connection: dict[str, Any], lookup: RecordLookup | None = None,
                 producer_options: dict[str, Any] | None = None) -> None:
        self.topic = topic
        self.connection = connection
        self.lookup = lookup
        self.producer_options = producer_options or {}
        self._producer: KafkaProducer | None = None
        self.sent = 0

    def open(self) -> None:
        if self._producer is None:
            self._producer = KafkaProducer(**self.connection, acks="all", linger_ms=5, request_timeout_ms=10000,
                                           delivery_timeout_ms=30000, max_block_ms=10000, **self.producer_options)

    def write(self, documents: list[dict[str, Any]]) -> None:
        if self._producer is None:
            self.open()
        assert self._producer is not None
        try:
            futures = [self._producer.send(self.topic, **self._message(doc)) for doc in documents]
            self._producer.flush(timeout=30)
            for future in futures:
                future.get(timeout=0)
        except KafkaError as exc:
            raise SinkError(f"dead-letter topic {self.topic}: {type(exc).__name__}: {exc}") from exc
        self.sent += len(documents)

    def _message(self, doc: dict[str, Any]) -> dict[str, Any]:
        origin = doc.get("origin") or {}
        original = None
        if self.lookup is not None and origin.get("topic") is not None:
            original = self.lookup(origin["topic"], int(origin.get("partition", -1)), int(origin.get("offset", -1)))
        value = redact_raw(self._value(doc, original))  # an output like any other: secrets masked (issue 15)
        headers: list[tuple[str, bytes]] = list(original.headers or []) if original is not None else []
        headers += [(HEADER_PREFIX + key, str(val).encode()) for key, val in (
            ("reason", doc.get("reason", "")), ("stage", doc.get("stage", "")), ("detail", redact_text(str(doc.get("detail", "")))[:1000]),
            ("origin", doc.get("origin_text", "")), ("raw_bytes", doc.get("raw_bytes", 0)))]
        for key in ("source", "topic", "partition", "offset", "index", "line"):
            if origin.get(key) is not None:
                headers.append((f"{HEADER_PREFIX}origin.{key}", str(origin[key]).encode()))
        if len(value) > MAX_VALUE_BYTES:
            value = value[:MAX_VALUE_BYTES]
            headers.append((HEADER_PREFIX + "truncated", b"true"))
        return {"value": value, "key": original.key if original is not None else None, "headers": headers}

    @staticmethod
    def _value(doc: dict[str, Any], original: Any) -> bytes:
        """The bad bytes themselves: the element when it is complete in the document, else the whole record."""
        if not doc.get("raw_truncated"):
            if "raw" in doc and (doc.get("raw") or original is None):
                return str(doc["raw"]).encode("utf-8")
            if "raw_base64" in doc:
                return base64.b64decode(doc["raw_base64"])
        if original is not None and original.value is not None:
            return bytes(original.value)
        # A sink rejection or a record no longer in hand: the dead-letter document itself.
        return orjson.dumps(doc, default=str)

    def close(self) -> None:
        if self._producer is not None:
            try:
                self._producer.close(timeout=10)
            except KafkaError as exc:
                log.warning("dead-letter producer close: %s", exc)
            self._producer = None
