"""``client: confluent-kafka``: the consumer on librdkafka (C), for throughput. Same contract as
:class:`ingest.kafka.source.KafkaSource` (one batch per partition, commit after the sinks, the same
rebalance listener); only the consuming client differs. The dead-letter and state producers stay on
kafka-python: they are off the hot path.

Rebalance callbacks run inside ``consume()`` on the calling thread, so the listener may block freely.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from temporal_siem.ingest.kafka.client import librdkafka_options
from temporal_siem.ingest.kafka.source import KafkaSource
from temporal_siem.kernel import metrics
from temporal_siem.kernel.records import Origin, RawRecord

log = logging.getLogger("ingest.kafka.confluent")


@dataclass(frozen=True, slots=True)
class _Original:
    """The parts of a consumed message the dead-letter topic re-uses (kafka-python's attribute names)."""

    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]


class ConfluentKafkaSource(KafkaSource):
    name = "kafka"

    def connect(self) -> Any:
        if self.consumer is None:
            options = {**librdkafka_options(self.cfg), "group.id": self.cfg.group_id, "enable.auto.commit": False,
                       "auto.offset.reset": self.cfg.auto_offset_reset, "session.timeout.ms": self.cfg.session_timeout_ms,
                       "heartbeat.interval.ms": max(self.cfg.session_timeout_ms // 4, 250),
                       "max.poll.interval.ms": 300000, **self.consumer_options}
            consumer = Consumer(options, logger=logging.getLogger("confluent_kafka"))
            topics = [self.formats.subscription_pattern()] if self.formats.has_patterns else list(self.formats.names)
            consumer.subscribe(topics, on_assign=self._assign_cb, on_revoke=self._revoke_cb, on_lost=self._lost_cb)
            self.consumer = consumer
        return self.consumer

    def close(self) -> None:
        if self.consumer is not None:
            try:
                self.consumer.close()
            except (KafkaException, RuntimeError) as exc:
                log.warning("consumer close: %s", exc)
            self.consumer = None

    def batches(self) -> Iterator[list[RawRecord]]:
        consumer = self.connect()
        timeout = self.cfg.poll_timeout_ms / 1000
        while not self._stop.is_set():
            try:
                messages = consumer.consume(num_messages=self.cfg.max_poll_records, timeout=timeout)
            except KafkaException as exc:
                self.last_error = f"consume: {exc}"
                log.warning("consume failed: %s", exc)
                self._stop.wait(1.0)
                continue
            self.last_poll = time.monotonic()
            grouped: dict[tuple[str, int], list[Any]] = {}
            for message in messages:
                error = message.error()
                if error is not None:
                    if error.code() != KafkaError._PARTITION_EOF:
                        self.last_error = str(error)
                        log.warning("consumer error: %s", error)
                    continue
                grouped.setdefault((message.topic(), message.partition()), []).append(message)
            if not messages:
                self.last_error = None
            self._update_lag_confluent(grouped)
            for (topic, partition), batch in grouped.items():
                self.current = (topic, partition)
                self.current_next_offset = batch[-1].offset() + 1
                self._in_hand = {(topic, partition, m.offset()): m for m in batch}
                hint = self.formats.hint(topic)
                yield [RawRecord(m.value() or b"", Origin("kafka", offset=m.offset(), topic=topic, partition=partition), hint) for m in batch]
            self._in_hand = {}

    def record(self, topic: str, partition: int, offset: int) -> Any:
        message = self._in_hand.get((topic, partition, offset))
        if message is None:
            return None
        return _Original(message.key(), message.value(), list(message.headers() or []))

    def commit(self, batch: list[RawRecord]) -> None:
        if not batch or self.consumer is None:
            return
        origin = batch[-1].origin
        assert origin.topic is not None and origin.partition is not None
        next_offset = max(r.origin.offset or 0 for r in batch) + 1
        if self.before_commit is not None:
            self.before_commit()
        where = (origin.topic, origin.partition)
        try:
            self.consumer.commit(offsets=[TopicPartition(where[0], where[1], next_offset)], asynchronous=False)
            self.commits += 1
        except KafkaException as exc:
            self.last_error = f"commit: {exc}"
            log.warning("offset commit for %s[%d]@%d failed: %s", where[0], where[1], next_offset, exc)
            return
        if self.listener is not None and where in self.assignment:
            self.listener.committed(where, next_offset)

    # -- rebalance callbacks (inside consume(), on this thread) ---------------------------------------
    def _assign_cb(self, consumer: Any, partitions: list[Any]) -> None:
        wanted = sorted((tp.topic, tp.partition) for tp in partitions)
        self.assignment |= set(wanted)
        log.info("partitions assigned: %s", ", ".join(f"{t}[{p}]" for t, p in wanted) or "none")
        seeks = self.listener.assigned(wanted) if self.listener is not None else {}
        for tp in partitions:
            if (tp.topic, tp.partition) in seeks:
                tp.offset = seeks[(tp.topic, tp.partition)]
        consumer.assign(partitions)

    def _revoke_cb(self, consumer: Any, partitions: list[Any]) -> None:
        self._on_revoked(partitions, lost=False)
        consumer.unassign()

    def _lost_cb(self, consumer: Any, partitions: list[Any]) -> None:
        self._on_revoked(partitions, lost=True)
        consumer.unassign()

    def _update_lag_confluent(self, grouped: dict[tuple[str, int], list[Any]]) -> None:
        consumer = self.consumer
        if consumer is None:
            return
        for topic, partition in list(self.assignment):
            batch = grouped.get((topic, partition))
            try:
                _, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), cached=True)
            except KafkaException:
                continue
            if high is None or high < 0:
                continue
            if batch:
                position = batch[-1].offset() + 1
            else:
                positions = consumer.position([TopicPartition(topic, partition)])
                position = positions[0].offset if positions and positions[0].offset >= 0 else None
            if position is not None:
                metrics.CONSUMER_LAG.labels(topic, str(partition)).set(max(high - position, 0))
