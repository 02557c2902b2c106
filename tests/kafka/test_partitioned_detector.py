"""PartitionedDetector merges what its per-partition detectors report (no broker needed)."""

from __future__ import annotations

from typing import Any

from temporal_siem.detections.base import Detector
from temporal_siem.kernel.records import DeadLetter, Origin
from temporal_siem.stream.partitions import PartitionedDetector


class _Fixed(Detector):
    def __init__(self, rules: dict[str, Any], dead: list[DeadLetter]) -> None:
        self._rules = rules
        self._dead = dead

    def process(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return []

    def stats(self) -> dict[str, Any]:
        return {"rules": self._rules, "events": 2}

    def take_dead_letters(self) -> list[DeadLetter]:
        dead, self._dead = self._dead, []
        return dead


def test_rule_health_and_dead_letters_merge_across_partitions():
    made = iter([
        _Fixed({"r1": {"title": "R", "routed": 3, "evaluated": 2, "matched": 1, "missing_fields": ["a", "b"]}},
               [DeadLetter("correlation_late_event", "correlation", Origin("event 1"))]),
        _Fixed({"r1": {"title": "R", "routed": 4, "evaluated": 4, "matched": 0, "missing_fields": ["b"]},
                "r2": {"title": "S", "routed": 0, "evaluated": 0, "matched": 0, "missing_fields": []}}, []),
    ])
    detector = PartitionedDetector(lambda: next(made), lambda: None)
    detector.assigned([("t", 0), ("t", 1)])
    stats = detector.stats()
    assert stats["events"] == 4 and stats["partitions"] == 2
    assert stats["rules"]["r1"]["routed"] == 7 and stats["rules"]["r1"]["matched"] == 1
    assert stats["rules"]["r1"]["missing_fields"] == ["b"]
    assert set(stats["rules"]) == {"r1", "r2"}
    assert [d.reason for d in detector.take_dead_letters()] == ["correlation_late_event"]
    assert detector.take_dead_letters() == []
