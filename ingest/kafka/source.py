"""The consumer-group source: one batch per partition per poll, offsets committed after the sinks.

Why one partition per batch: correlation state is kept per partition (so it can move with the partition
on a rebalance), and a batch that never mixes partitions lets the detector for exactly that partition see
it. Commits happen in ``commit`` — the pipeline calls it only once every sink acknowledged the batch —
so a crash re-delivers at most the batches in flight (at-least-once).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError
from kafka.structs import OffsetAndMetadata

from temporal_siem.ingest.base import Source
from temporal_siem.kernel import metrics
from temporal_siem.kernel.backoff import Backoff
from temporal_siem.kernel.config import KafkaConfig
from temporal_siem.kernel.records import Origin, RawRecord

log = logging.getLogger("ingest.kafka.source")

#: A Kafka partition: (topic, partition number). The one definition; the daemon and stream import it.
Partition = tuple[str, int]


class PartitionListener(Protocol):
    """What the daemon does when partitions move. ``revoked`` runs inside poll (before the partitions
    are released); ``assigned`` runs on the consuming thread before any record of them is processed."""

    def assigned(self, partitions: list[Partition]) -> dict[Partition, int]:
        """Prepare state for new partitions; return offsets to resume from where they differ from the commit."""
        ...

    def revoked(self, partitions: list[Partition], lost: bool) -> None:
        """Save (revoked) or drop (lost: another member may own them already) the partitions' state."""
        ...

    def committed(self, partition: Partition, next_offset: int) -> None:
        """Offsets up to ``next_offset`` are durable; a chance to snapshot state."""
        ...


class TopicFormats:
    """Topic name -> parser format hint, from the configured names and patterns (first match wins)."""

    def __init__(self, cfg: KafkaConfig) -> None:
        if not cfg.topics:
            raise ValueError("ingest.kafka.topics is empty: name at least one topic (name: or pattern:)")
        self._rules: list[tuple[re.Pattern[str], str]] = []
        for i, topic in enumerate(cfg.topics):
            if bool(topic.name) == bool(topic.pattern):
                raise ValueError(f"ingest.kafka.topics[{i}]: give exactly one of name or pattern")
            try:
                regex = re.compile(re.escape(topic.name) if topic.name else str(topic.pattern))
            except re.error as exc:
                raise ValueError(f"ingest.kafka.topics[{i}].pattern: {exc}") from exc
            self._rules.append((regex, topic.format))
        self.names = [t.name for t in cfg.topics if t.name]
        self.has_patterns = any(t.pattern for t in cfg.topics)
        self._cache: dict[str, str | None] = {}

    def subscription_pattern(self) -> str:
        return "^(?:" + "|".join(f"(?:{regex.pattern})" for regex, _ in self._rules) + ")$"

    def hint(self, topic: str) -> str | None:
        if topic not in self._cache:
            fmt = next((fmt for regex, fmt in self._rules if regex.fullmatch(topic)), "auto")
            self._cache[topic] = None if fmt == "auto" else fmt
        return self._cache[topic]


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, source: KafkaSource) -> None:
        self.source = source

    def on_partitions_revoked(self, revoked: Any) -> None:
        self.source._on_revoked(revoked, lost=False)

    def on_partitions_lost(self, lost: Any) -> None:
        self.source._on_revoked(lost, lost=True)

    def on_partitions_assigned(self, assigned: Any) -> None:
        self.source._on_assigned(assigned)


class KafkaSource(Source):
    name = "kafka"

    def __init__(self, cfg: KafkaConfig, connection: dict[str, Any], *, listener: PartitionListener | None = None,
                 before_commit: Callable[[], None] | None = None, consumer_options: dict[str, Any] | None = None) -> None:
        self.cfg = cfg
        self.formats = TopicFormats(cfg)
        self.listener = listener
        self.before_commit = before_commit
        self.connection = connection
        self.consumer_options = consumer_options or {}
        self.consumer: KafkaConsumer | None = None
        self.current: Partition | None = None
        self.current_next_offset = 0
        self.assignment: set[Partition] = set()
        self.last_poll = time.monotonic()
        self.last_error: str | None = None
        self.commits = 0
        self._in_hand: dict[tuple[str, int, int], Any] = {}
        self._pending: set[Partition] = set()
        self._stop = threading.Event()

    # -- lifecycle ---------------------------------------------------------------------------
    def connect(self) -> KafkaConsumer:
        if self.consumer is None:
            self.consumer = KafkaConsumer(
                **self.connection, group_id=self.cfg.group_id, enable_auto_commit=False,
                auto_offset_reset=self.cfg.auto_offset_reset, max_poll_records=self.cfg.max_poll_records,
                session_timeout_ms=self.cfg.session_timeout_ms, heartbeat_interval_ms=max(self.cfg.session_timeout_ms // 4, 250),
                request_timeout_ms=30000, **self.consumer_options)
            if self.formats.has_patterns:
                self.consumer.subscribe(pattern=self.formats.subscription_pattern(), listener=_Rebalance(self))
            else:
                self.consumer.subscribe(topics=self.formats.names, listener=_Rebalance(self))
        return self.consumer

    def stop(self) -> None:
        """Return from batches() after the batch in hand (safe from a signal handler)."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def close(self) -> None:
        """Leave the group. The revoke callback runs once more here: state is snapshotted, nothing is committed."""
        if self.consumer is not None:
            try:
                self.consumer.close(autocommit=False, timeout_ms=10000)
            except KafkaError as exc:
                log.warning("consumer close: %s", exc)
            self.consumer = None

    # -- reading -----------------------------------------------------------------------------
    def _connect_when_kafka_answers(self) -> KafkaConsumer | None:
        """The daemon may start before its brokers, or during an outage: wait with backoff, never give up
        (supervisors restart-looping a daemon help nobody); None if stopped meanwhile."""
        delays = Backoff(None, 1.0, 30.0, jitter=False).delays()
        while not self._stop.is_set():
            try:
                return self.connect()
            except (KafkaTimeoutError, KafkaConnectionError) as exc:
                self.last_error = f"connect: {type(exc).__name__}: {exc}"
                delay = next(delays)
                log.warning("Kafka is not reachable (%s): retrying in %.0f s", exc, delay)
                self._stop.wait(delay)
        return None

    def batches(self) -> Iterator[list[RawRecord]]:
        consumer = self._connect_when_kafka_answers()
        if consumer is None:
            return
        timeout = self.cfg.poll_timeout_ms
        poll_backoff = Backoff(None, 0.5, 10.0, jitter=False)
        delays = poll_backoff.delays()
        while not self._stop.is_set():
            try:
                polled = consumer.poll(timeout_ms=timeout)
            except KafkaError as exc:
                self.last_error = f"poll: {type(exc).__name__}: {exc}"
                delay = next(delays)
                log.warning("poll failed (%s); retrying in %.1fs", self.last_error, delay)
                self._stop.wait(delay)
                continue
            delays = poll_backoff.delays()
            self.last_poll = time.monotonic()
            self.last_error = None
            if self._pending:
                polled = self._prepare_assigned(polled)
            self._update_lag(polled)
            for tp, records in polled.items():
                if not records:
                    continue
                self.current = (tp.topic, tp.partition)
                self.current_next_offset = records[-1].offset + 1
                self._in_hand = {(r.topic, r.partition, r.offset): r for r in records}
                hint = self.formats.hint(tp.topic)
                yield [RawRecord(r.value if r.value is not None else b"",
                                 Origin("kafka", offset=r.offset, topic=r.topic, partition=r.partition), hint)
                       for r in records]
            self._in_hand = {}

    def batch_position(self) -> tuple[Partition, int] | None:
        """The partition of the batch in hand and the offset after it."""
        return (self.current, self.current_next_offset) if self.current is not None else None

    def record(self, topic: str, partition: int, offset: int) -> Any:
        """The consumer record behind a raw record of the batch in hand (for the dead-letter topic: key, headers, full value)."""
        return self._in_hand.get((topic, partition, offset))

    def commit(self, batch: list[RawRecord]) -> None:
        if not batch or self.consumer is None:
            return
        origin = batch[-1].origin
        assert origin.topic is not None and origin.partition is not None and origin.offset is not None
        next_offset = max(r.origin.offset or 0 for r in batch) + 1
        if self.before_commit is not None:
            self.before_commit()
        where = (origin.topic, origin.partition)
        try:
            self.consumer.commit({TopicPartition(*where): OffsetAndMetadata(next_offset, "", -1)})
            self.commits += 1
        except KafkaError as exc:
            # The next commit of this partition covers these offsets too; after a rebalance the new owner
            # re-reads them (at-least-once, duplicates carry the same alert ids).
            self.last_error = f"commit: {type(exc).__name__}: {exc}"
            log.warning("offset commit for %s[%d]@%d failed: %s", where[0], where[1], next_offset, exc)
            return
        if self.listener is not None and where in self.assignment:
            self.listener.committed(where, next_offset)

    # -- rebalance (kafka-python: on the consumer's IO thread, while batches() waits in poll) ------
    def _on_assigned(self, assigned: Any) -> None:
        """Pause the new partitions and return at once: this runs on the IO loop that also sends the
        heartbeats, so reading their state here could cost the membership. batches() prepares them."""
        partitions = sorted((tp.topic, tp.partition) for tp in assigned)
        self.assignment |= set(partitions)
        log.info("partitions assigned: %s", ", ".join(f"{t}[{p}]" for t, p in partitions) or "none")
        if self.listener is None or self.consumer is None or not partitions:
            return
        self._pending |= set(partitions)
        self.consumer.pause(*(TopicPartition(t, p) for t, p in partitions))

    def _prepare_assigned(self, polled: dict[Any, list[Any]]) -> dict[Any, list[Any]]:
        """Restore state of newly assigned partitions (main thread), seek where it says, then resume."""
        assert self.consumer is not None and self.listener is not None
        pending = sorted(self._pending & self.assignment)
        self._pending.clear()
        seeks = self.listener.assigned(pending)
        kept = {}
        for tp, records in polled.items():
            where = (tp.topic, tp.partition)
            if where in pending and records:
                # Fetched before the pause took effect: read them again from the right place.
                seeks.setdefault(where, records[0].offset)
                continue
            kept[tp] = records
        tps = [TopicPartition(t, p) for t, p in pending]
        for (topic, partition), offset in seeks.items():
            self.consumer.seek(TopicPartition(topic, partition), offset)
        self.consumer.resume(*tps)
        return kept

    def _on_revoked(self, revoked: Any, lost: bool) -> None:
        partitions = sorted((tp.topic, tp.partition) for tp in revoked)
        log.info("partitions %s: %s", "lost" if lost else "revoked", ", ".join(f"{t}[{p}]" for t, p in partitions) or "none")
        self.assignment -= set(partitions)
        self._pending -= set(partitions)
        for topic, partition in partitions:
            try:
                metrics.CONSUMER_LAG.remove(topic, str(partition))
            except KeyError:
                pass
        if self.listener is not None and partitions:
            self.listener.revoked(partitions, lost)

    def _update_lag(self, polled: dict[Any, list[Any]]) -> None:
        consumer = self.consumer
        if consumer is None:
            return
        for topic, partition in list(self.assignment):
            tp = TopicPartition(topic, partition)
            records = polled.get(tp)
            try:
                high = consumer.highwater(tp)
                if high is None:
                    continue
                position = records[-1].offset + 1 if records else consumer.position(tp, timeout_ms=0)
            except (KafkaError, AssertionError, ValueError):
                continue
            if position is not None:
                metrics.CONSUMER_LAG.labels(topic, str(partition)).set(max(high - position, 0))
