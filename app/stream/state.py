"""Correlation state snapshots in a compacted Kafka topic, one key per group/topic/partition.

Why a topic and not the committed-offset metadata: the broker caps offset metadata at 4 KB
(``offset.metadata.max.bytes``), and open correlation windows are easily larger. A compacted topic keeps
exactly the latest snapshot per key, survives every consumer, and is readable by whichever group member
is assigned the partition next. Each snapshot carries the offset it is valid at (every record below it
is inside the state), so the next owner resumes from exactly there.
"""

from __future__ import annotations

import logging
import time
import zlib
from dataclasses import dataclass
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from temporal_siem.ingest.kafka.client import ensure_topic

log = logging.getLogger("temporal_siem.stream.state")

FORMAT_VERSION = b"1"
MAX_SNAPSHOT_BYTES = 16 * 1024 * 1024
#: Uncompressed limit of one snapshot, on both sides: a larger state is not written, and a record of the state
#: topic that inflates beyond it (a 1 MB zlib bomb inflates to 1 GiB) is ignored as damaged after reading at
#: most this much.
MAX_STATE_BYTES = 128 * 1024 * 1024


class SnapshotTooLarge(ValueError):
    """A snapshot that inflates past MAX_STATE_BYTES."""


def inflate(payload: bytes, limit: int = MAX_STATE_BYTES) -> bytes:
    """zlib-decompress at most ``limit`` bytes; SnapshotTooLarge if there is more, zlib.error if damaged."""
    inflater = zlib.decompressobj()
    state = inflater.decompress(payload, limit)
    if inflater.unconsumed_tail or (not inflater.eof and inflater.decompress(b"", 1)):
        raise SnapshotTooLarge(f"inflates past the limit of {limit} bytes")
    if not inflater.eof:
        raise zlib.error("incomplete compressed snapshot")
    return state


@dataclass(frozen=True, slots=True)
class Snapshot:
    """State of one partition's detector, valid at ``offset`` (the next record to process)."""

    group: str
    topic: str
    partition: int
    offset: int
    state: bytes


def snapshot_key(group: str, topic: str, partition: int) -> bytes:
    # Topic names cannot contain "/", group ids can: parse from the right.
    return f"{group}/{topic}/{partition}".encode()


def parse_key(key: bytes) -> tuple[str, str, int] | None:
    try:
        group, topic, partition = key.decode("utf-8").rsplit("/", 2)
        return group, topic, int(partition)
    except (UnicodeDecodeError, ValueError):
        return None


class StateStore:
    """Writes and reads snapshots. The reader is a group-less consumer assigned the whole state topic."""

    def __init__(self, topic: str, group: str, connection: dict[str, Any]) -> None:
        self.topic = topic
        self.group = group
        self.connection = connection
        self._producer: KafkaProducer | None = None

    def ensure_topic(self) -> None:
        """Create the compacted topic if it is missing (one partition: few keys, read whole on assignment)."""
        ensure_topic(self.connection, self.topic, partitions=1, configs={
            "cleanup.policy": "compact", "max.message.bytes": str(MAX_SNAPSHOT_BYTES + 65536),
            "min.compaction.lag.ms": "0", "segment.ms": "3600000"})

    @property
    def producer(self) -> KafkaProducer:
        if self._producer is None:
            self._producer = KafkaProducer(**self.connection, acks="all", max_request_size=MAX_SNAPSHOT_BYTES + 65536,
                                           request_timeout_ms=15000, delivery_timeout_ms=30000)
        return self._producer

    def save(self, topic: str, partition: int, offset: int, state: bytes) -> bool:
        """Write one snapshot and wait for the broker's acknowledgement. False if it was too large."""
        if len(state) > MAX_STATE_BYTES:
            log.error("correlation state of %s[%d] is %d bytes (limit %d): not snapshotted; the next owner replays from "
                      "the previous snapshot", topic, partition, len(state), MAX_STATE_BYTES)
            return False
        payload = zlib.compress(state, 3)
        if len(payload) > MAX_SNAPSHOT_BYTES:
            log.error("correlation state of %s[%d] is %d bytes compressed (limit %d): not snapshotted; the next owner "
                      "replays from the previous snapshot", topic, partition, len(payload), MAX_SNAPSHOT_BYTES)
            return False
        headers = [("offset", str(offset).encode()), ("version", FORMAT_VERSION), ("written", str(int(time.time() * 1000)).encode())]
        self.producer.send(self.topic, key=snapshot_key(self.group, topic, partition), value=payload, headers=headers).get(timeout=30)
        return True

    def load(self, partitions: set[tuple[str, int]], timeout_s: float = 20.0) -> dict[tuple[str, int], Snapshot]:
        """The latest snapshot for each wanted (topic, partition) of this group, read to the topic's end."""
        if not partitions:
            return {}
        reader = KafkaConsumer(**self.connection, group_id=None, enable_auto_commit=False,
                               fetch_max_bytes=MAX_SNAPSHOT_BYTES * 2, max_partition_fetch_bytes=MAX_SNAPSHOT_BYTES + 65536)
        found: dict[tuple[str, int], Snapshot] = {}
        try:
            ids = reader.partitions_for_topic(self.topic) or set()
            tps = [TopicPartition(self.topic, p) for p in sorted(ids)]
            if not tps:
                return {}
            reader.assign(tps)
            reader.seek_to_beginning(*tps)
            ends = reader.end_offsets(tps)
            deadline = time.monotonic() + timeout_s
            while any(reader.position(tp) < ends[tp] for tp in tps):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"state topic {self.topic} not read to its end within {timeout_s}s")
                for records in reader.poll(timeout_ms=500).values():
                    for record in records:
                        self._take(record, partitions, found)
        finally:
            reader.close(autocommit=False)
        return found

    def _take(self, record: Any, wanted: set[tuple[str, int]], found: dict[tuple[str, int], Snapshot]) -> None:
        parsed = parse_key(record.key or b"")
        if parsed is None or parsed[0] != self.group or (parsed[1], parsed[2]) not in wanted:
            return
        where = (parsed[1], parsed[2])
        if record.value is None:  # tombstone: the state was cleared
            found.pop(where, None)
            return
        headers = dict(record.headers or [])
        try:
            offset = int(headers["offset"])
            state = inflate(record.value)
        except (KeyError, ValueError, zlib.error) as exc:  # SnapshotTooLarge is a ValueError
            log.warning("ignoring a damaged snapshot for %s[%d] at state offset %d: %s", where[0], where[1], record.offset, exc)
            return
        found[where] = Snapshot(self.group, where[0], where[1], offset, state)

    def close(self) -> None:
        if self._producer is not None:
            self._producer.close(timeout=10)
            self._producer = None
