"""A replay keeps bounded alerts for its table (unless the HTML report needs them all)."""

from __future__ import annotations

import random

from temporal_siem import console
from temporal_siem.commands.replay import AlertKeeper

LEVELS = {"informational": 1, "low": 21, "medium": 47, "high": 73, "critical": 99}


def alerts(n: int, seed: int = 3) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        level = rng.choice(list(LEVELS))
        out.append({"alert.level": level, "event.severity": LEVELS[level], "@timestamp": f"2025-01-01T00:{i // 60 % 60:02d}:{i % 60:02d}Z",
                    "alert.id": str(i)})
    return out


def test_bounded_keeper_shows_the_same_top_rows_as_keeping_everything():
    everything = alerts(5000)
    keeper = AlertKeeper(keep_all=False)
    for start in range(0, len(everything), 137):
        keeper.add(everything[start:start + 137])
    assert keeper.count == 5000
    assert len(keeper.alerts) <= 4 * console.MAX_TABLE_ROWS + 137
    top = [a["alert.id"] for a in console.most_important(keeper.alerts, console.MAX_TABLE_ROWS)]
    assert top == [a["alert.id"] for a in console.most_important(everything, console.MAX_TABLE_ROWS)]
    assert keeper.max_severity == max(a["event.severity"] for a in everything)


def test_report_keeper_keeps_everything():
    keeper = AlertKeeper(keep_all=True)
    keeper.add(alerts(1000))
    assert len(keeper.alerts) == 1000
