"""A batch that mixes datasets is matched one dataset after another (kinder to the CPU's caches), but what the
detector gives must not depend on it: the same alerts, in the events' order, as one event at a time, with the
shipped pack's correlations and enrichers seeing the events in their order."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from temporal_siem.detections.factory import build_detector
from temporal_siem.detections.sigma.detector import _grouped_order
from temporal_siem.kernel.records import Origin, RawRecord
from temporal_siem.parsers.router import ParseResult, ParserRouter

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


def interleaved_events() -> list[dict[str, Any]]:
    by_file = [path.read_bytes().splitlines() for path in sorted(SAMPLES.rglob("*.jsonl"))]
    lines = [group[i] for i in range(max(map(len, by_file))) for group in by_file if i < len(group) and group[i].strip()]
    result = ParseResult()
    ParserRouter().parse_batch([RawRecord(line, Origin("s", line=n)) for n, line in enumerate(lines, 1)], result)
    return result.events


def comparable(alerts: list[dict[str, Any]]) -> list[bytes]:
    return [orjson.dumps(alert, option=orjson.OPT_SORT_KEYS) for alert in alerts]


@pytest.mark.parametrize("correlations", [True, False])
def test_a_mixed_batch_gives_what_its_events_give_one_at_a_time(correlations: bool) -> None:
    """Without correlations only the events with hits are visited again: they must still come in order."""
    events = interleaved_events()
    assert _grouped_order(events) is not None  # a mixed batch: the grouped path
    whole = build_detector([], builtin_rules=True)
    alone = build_detector([], builtin_rules=True)
    if not correlations:
        whole.correlation = alone.correlation = None
    batch_alerts = whole.process([dict(event) for event in events]) + whole.finish()
    single_alerts = [alert for event in events for alert in alone.process([dict(event)])] + alone.finish()
    assert len(batch_alerts) > 20
    assert any(a.get("alert.type") == "correlation" for a in batch_alerts) == correlations
    assert comparable(batch_alerts) == comparable(single_alerts)
    assert whole.stats()["rules"] == alone.stats()["rules"]
