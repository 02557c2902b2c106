"""One detector per assigned partition, its state saved and restored as the partition moves.

Correlation windows only see the events of their own partition; the scale-out contract (docs/operations.md)
is that producers key records by the correlation key (user, namespace...) so one group's events share a
partition. The state of a partition is snapshotted with the offset it is valid at: on revoke, on shutdown,
and every ``snapshot_interval_seconds`` after a commit; the next owner restores it and resumes there.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from temporal_siem.detections.base import Detector
from temporal_siem.kernel.records import DeadLetter
from temporal_siem.stream.state import StateStore

log = logging.getLogger("temporal_siem.stream.partitions")

Partition = tuple[str, int]
#: (partition, next offset after the batch) of the batch being processed.
BatchPosition = Callable[[], tuple[Partition, int] | None]
CommittedOffsets = Callable[[list[Partition]], dict[Partition, int]]


class PartitionedDetector(Detector):
    """Routes each batch to its partition's detector; implements the source's PartitionListener."""

    def __init__(self, make_detector: Callable[[], Detector], position: BatchPosition, *, store: StateStore | None = None,
                 committed_offsets: CommittedOffsets | None = None, snapshot_interval: float = 30.0,
                 max_replay_records: int = 1_000_000) -> None:
        self.make_detector = make_detector
        self.position = position
        self.store = store
        self.committed_offsets = committed_offsets
        self.snapshot_interval = snapshot_interval
        self.max_replay_records = max_replay_records
        self.detectors: dict[Partition, Detector] = {}
        self.absorbed: dict[Partition, int] = {}
        self._last_saved: dict[Partition, float] = {}
        self._has_snapshot: set[Partition] = set()
        self._template: Detector | None = None
        self.snapshots_saved = 0
        self.snapshots_restored = 0

    def _detector(self, partition: Partition) -> Detector:
        detector = self.detectors.get(partition)
        if detector is None:
            detector = self.detectors[partition] = self.make_detector()
            self._last_saved.setdefault(partition, time.monotonic())
        return detector

    # -- Detector --------------------------------------------------------------------------------
    def process(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        where = self.position()
        if where is None:
            raise RuntimeError("PartitionedDetector.process outside a partition batch")
        partition, next_offset = where
        alerts = self._detector(partition).process(events)
        self.absorbed[partition] = next_offset
        return alerts

    def finish(self) -> list[dict[str, Any]]:
        alerts: list[dict[str, Any]] = []
        for detector in self.detectors.values():
            alerts.extend(detector.finish())
        return alerts

    def stats(self) -> dict[str, Any]:
        merged: dict[str, Any] = {"partitions": len(self.detectors), "snapshots_saved": self.snapshots_saved,
                                  "snapshots_restored": self.snapshots_restored}
        rules: dict[str, dict[str, Any]] = {}
        for detector in self.detectors.values():
            for key, value in detector.stats().items():
                if isinstance(value, int | float) and not isinstance(value, bool):
                    merged[key] = merged.get(key, 0) + value
                elif key == "rules" and isinstance(value, dict):
                    _merge_rule_stats(rules, value)
        if rules:
            merged["rules"] = rules
        return merged

    def take_dead_letters(self) -> list[DeadLetter]:
        dead: list[DeadLetter] = []
        for detector in self.detectors.values():
            dead.extend(detector.take_dead_letters())
        return dead

    def rule_titles(self) -> dict[str, str]:
        if self._template is None:
            self._template = next(iter(self.detectors.values()), None) or self.make_detector()
        return self._template.rule_titles()

    # -- PartitionListener -------------------------------------------------------------------------
    def assigned(self, partitions: list[Partition]) -> dict[Partition, int]:
        snapshots = self.store.load(set(partitions)) if self.store is not None else {}
        committed = self.committed_offsets([p for p in partitions if p in snapshots]) if snapshots and self.committed_offsets else {}
        seeks: dict[Partition, int] = {}
        for partition in partitions:
            detector = self.detectors[partition] = self.make_detector()
            self._last_saved[partition] = time.monotonic()
            snap = snapshots.get(partition)
            if snap is None:
                continue
            self._has_snapshot.add(partition)
            commit = committed.get(partition)
            if commit is not None and commit - snap.offset > self.max_replay_records:
                log.warning("snapshot of %s[%d] is %d records behind the commit (limit %d): starting with empty state",
                            partition[0], partition[1], commit - snap.offset, self.max_replay_records)
                continue
            detector.restore(snap.state)
            self.snapshots_restored += 1
            self.absorbed[partition] = snap.offset
            if commit != snap.offset:
                # Behind: replay to rebuild the windows (re-raised alerts keep their ids). Ahead: those
                # records were delivered before the snapshot was written, only their commit was lost.
                seeks[partition] = snap.offset
            log.info("restored state of %s[%d] at offset %d (%d bytes; committed %s)", partition[0], partition[1],
                     snap.offset, len(snap.state), commit)
        return seeks

    def revoked(self, partitions: list[Partition], lost: bool) -> None:
        for partition in partitions:
            if not lost:
                self._save(partition)
            self.detectors.pop(partition, None)
            self.absorbed.pop(partition, None)
            self._last_saved.pop(partition, None)

    def committed(self, partition: Partition, next_offset: int) -> None:
        if time.monotonic() - self._last_saved.get(partition, 0.0) >= self.snapshot_interval:
            self._save(partition)

    def abandon(self) -> None:
        """Forget every partition without saving: a batch was processed but not delivered, so the state
        is ahead of what the sinks have; the next owner restores the previous snapshot and replays."""
        self.detectors.clear()
        self.absorbed.clear()

    def _save(self, partition: Partition) -> None:
        detector = self.detectors.get(partition)
        offset = self.absorbed.get(partition)
        self._last_saved[partition] = time.monotonic()
        if self.store is None or detector is None or offset is None:
            return
        state = detector.snapshot()
        if not state and partition not in self._has_snapshot:
            return
        try:
            if self.store.save(partition[0], partition[1], offset, state):
                self._has_snapshot.add(partition)
                self.snapshots_saved += 1
        except Exception as exc:  # the data is safe in Kafka; only the resume point of the state is older
            log.error("snapshot of %s[%d] at %d failed: %s", partition[0], partition[1], offset, exc)


def _merge_rule_stats(into: dict[str, dict[str, Any]], rules: dict[str, Any]) -> None:
    """Per-rule health across partitions: counters add up; a field is missing only if missing everywhere it was routed."""
    for rule_id, entry in rules.items():
        if not isinstance(entry, dict):
            continue
        total = into.get(rule_id)
        if total is None:
            into[rule_id] = {k: (list(v) if isinstance(v, list) else v) for k, v in entry.items()}
            continue
        for key, value in entry.items():
            if isinstance(value, int | float) and not isinstance(value, bool) and isinstance(total.get(key), int | float):
                total[key] = total[key] + value
        if entry.get("routed") and isinstance(entry.get("missing_fields"), list) and isinstance(total.get("missing_fields"), list):
            if total.get("routed", 0) == entry.get("routed"):
                total["missing_fields"] = list(entry["missing_fields"])
            else:
                total["missing_fields"] = [f for f in total["missing_fields"] if f in entry["missing_fields"]]
