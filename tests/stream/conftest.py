"""Fixtures the scoped-detection tests share: the shipped rule set and the events of every file in samples/."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from temporal_siem.detections.factory import build_ruleset
from temporal_siem.detections.sigma.ruleset import Ruleset
from temporal_siem.ingest.replay import ReplaySource
from temporal_siem.parsers.router import ParserRouter

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def ruleset() -> Ruleset:
    return build_ruleset([])


@pytest.fixture(scope="module")
def sample_events() -> list[dict[str, Any]]:
    router = ParserRouter()
    events: list[dict[str, Any]] = []
    for batch in ReplaySource([str(ROOT / "samples")], batch_size=500, max_record_bytes=8 * 1024 * 1024).batches():
        for record in batch:
            events.extend(router.parse(record).events)
    return events
