"""``temporal-siem replay PATH... --to-kafka TOPIC``: files into a topic, one message per log record.

Batch envelopes (CloudTrail ``Records``, Entra ``records``, JSON arrays, CloudWatch/EventBridge/Pub/Sub
wrappers) are split into one message per element, because that is how these logs arrive on Kafka in
practice and because each element may belong to a different user. The key is the record's user (or
namespace...): the first present of ``KEY_FIELDS`` in the parsed event, or no key when none is present or the
record does not parse (it is still produced: the daemon dead-letters it with its offset). It spreads load and
keeps one user's records in order; the daemon re-keys by state scope itself, so detection does not rely on it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from kafka import KafkaProducer

from temporal_siem.ingest.replay import ReplaySource
from temporal_siem.kernel.records import Origin, RawRecord, RecordError
from temporal_siem.parsers.envelopes import unwrap
from temporal_siem.parsers.router import ParserRouter, decode

#: Correlation key precedence (ECS fields of the parsed event).
KEY_FIELDS = ("user.name", "user.email", "user.id", "temporal.namespace", "client.user.name", "source.ip")


@dataclass
class ProduceStats:
    records: int = 0
    keyed: int = 0
    unparsed: int = 0
    bytes: int = 0
    elapsed: float = 0.0


class RateLimiter:
    """At most ``rate`` messages a second, smoothed (a token bucket of one second)."""

    def __init__(self, rate: float | None) -> None:
        self.rate = rate
        self._allowance = rate or 0.0
        self._last = time.monotonic()

    def wait(self) -> None:
        if not self.rate:
            return
        now = time.monotonic()
        self._allowance = min(self.rate, self._allowance + (now - self._last) * self.rate)
        self._last = now
        if self._allowance < 1.0:
            time.sleep((1.0 - self._allowance) / self.rate)
            self._last = time.monotonic()
            self._allowance = 0.0
        else:
            self._allowance -= 1.0


def split_record(record: RawRecord) -> Iterator[bytes]:
    """The messages one framed record becomes: envelope elements, or the record itself."""
    try:
        decoded = decode(record.data)
    except RecordError:
        yield record.data
        return
    if isinstance(decoded, str):
        yield record.data
        return
    try:
        elements = list(unwrap(decoded))
    except RecordError:
        yield record.data
        return
    if len(elements) == 1 and elements[0][1] is None and elements[0][0] is decoded:
        yield record.data
        return
    for element, _ in elements:
        yield element.encode() if isinstance(element, str) else orjson.dumps(element)


def correlation_key(router: ParserRouter, data: bytes, key_fields: tuple[str, ...] = KEY_FIELDS) -> bytes | None:
    result = router.parse(RawRecord(data, Origin("produce")))
    for event in result.events:
        for field in key_fields:
            value = event.get(field)
            if isinstance(value, list):
                value = value[0] if value else None
            if value not in (None, ""):
                return str(value).encode()
    return None


def produce_files(paths: Iterable[str], topic: str, connection: dict[str, Any], *, rate: float | None = None,
                  format_name: str = "auto", key_fields: tuple[str, ...] = KEY_FIELDS,
                  max_record_bytes: int = 8 * 1024 * 1024) -> ProduceStats:
    """Produce every record of the files to ``topic`` and wait until the broker acknowledged all of them."""
    stats = ProduceStats()
    started = time.perf_counter()
    router = ParserRouter(format_name, max_record_bytes)
    limiter = RateLimiter(rate)
    producer = KafkaProducer(**connection, acks="all", linger_ms=20, batch_size=256 * 1024, compression_type="gzip",
                             max_request_size=max(1024 * 1024, min(max_record_bytes, 8 * 1024 * 1024)))
    try:
        source = ReplaySource(list(paths), batch_size=500, max_record_bytes=max_record_bytes)
        for batch in source.batches():
            for record in batch:
                for message in split_record(record):
                    key = correlation_key(router, message, key_fields)
                    limiter.wait()
                    producer.send(topic, value=message, key=key)
                    stats.records += 1
                    stats.bytes += len(message)
                    stats.keyed += key is not None
                    stats.unparsed += key is None
        producer.flush(timeout=120)
    finally:
        producer.close(timeout=30)
    stats.elapsed = time.perf_counter() - started
    return stats


def replay_to_kafka(paths: list[str], topic: str, settings: Any, format_name: str, *, rate: float | None = None) -> int:
    """The CLI branch of ``replay --to-kafka``: 0 when every record was acknowledged, 1 on a Kafka failure, 2 on bad options."""
    import sys

    from kafka.errors import KafkaError

    from temporal_siem.ingest.kafka.client import KafkaConfigError, connection_options

    if rate is not None and rate <= 0:
        print("error: --rate must be positive", file=sys.stderr)
        return 2
    try:
        connection = connection_options(settings.ingest.kafka)
    except KafkaConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        stats = produce_files(paths, topic, connection, rate=rate, format_name=format_name,
                              max_record_bytes=settings.parsing.max_record_bytes)
    except KafkaError as exc:
        print(f"error: producing to {topic}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(f"produced {stats.records} records ({stats.bytes} bytes, {stats.keyed} keyed, {stats.unparsed} without key) "
          f"to {topic} in {stats.elapsed:.2f}s", file=sys.stderr)
    return 0
