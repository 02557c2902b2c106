"""The ruleset remembers the lane of an unrouted event by the values its logsource tagger reads (``Channel``,
``EventID``). Memoised or not, the lane must be the one the event's tag admits, whatever order events arrive in,
and values that compare equal yet read differently (``True`` and ``1``, ``1.0``) must not share an entry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from temporal_siem.detections.sigma.ruleset import Ruleset

SIGMAHQ = Path(__file__).parent / "data" / "sigmahq"
_CACHED: list[Ruleset] = []

CHANNELS = ["Microsoft-Windows-Sysmon/Operational", "microsoft-windows-sysmon/operational", "Security", "System",
            "Application", "Elsewhere", 1, None, True]
EVENT_IDS = [1, "1", 1.0, " 1 ", True, False, 0, 11, 23, 4688, "4688", 4688.0, 1.5, None, "x", 2**70, -0.0, [1]]


def _ruleset() -> Ruleset:
    if not _CACHED:
        _CACHED.append(Ruleset.from_paths([SIGMAHQ], builtin_rules=False))
    return _CACHED[0]


def _admitted(ruleset: Ruleset, event: dict[str, Any]) -> tuple[int, ...]:
    """The unrouted rules the event's tag admits, computed from the tagger alone (no lane memo, no lane cache)."""
    assert ruleset.tagger is not None
    tag = ruleset.tagger.tag(event)
    return tuple(r.index for r in ruleset.rules
                 if r.datasets is None and (tag is None or r.logsource is None or tag.admits(r.logsource)))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.fixed_dictionaries({}, optional={"Channel": st.sampled_from(CHANNELS),
                                                    "EventID": st.sampled_from(EVENT_IDS)}), min_size=1, max_size=12))
@example([{"Channel": "Microsoft-Windows-Sysmon/Operational", "EventID": 1},
          {"Channel": "Microsoft-Windows-Sysmon/Operational", "EventID": True}])
@example([{"Channel": "Microsoft-Windows-Sysmon/Operational", "EventID": True},
          {"Channel": "Microsoft-Windows-Sysmon/Operational", "EventID": 1}])
def test_memoised_lane_is_the_lane_the_tag_admits(events: list[dict[str, Any]]) -> None:
    ruleset = _ruleset()
    for _ in range(2):  # the second pass reads the memo the first filled
        for event in events:
            assert ruleset.lane_for(event).rules == _admitted(ruleset, event), event


def test_the_memo_stays_bounded(monkeypatch) -> None:
    from temporal_siem.detections.sigma import ruleset as ruleset_module

    monkeypatch.setattr(ruleset_module, "_LANE_CACHE_LIMIT", 10)
    ruleset = Ruleset.from_paths([SIGMAHQ], builtin_rules=False)
    for n in range(50):  # ever new values: tagged afresh once the memo is full
        event = {"Channel": "Security", "EventID": 10_000 + n}
        assert ruleset.lane_for(event).rules == _admitted(ruleset, event)
    assert len(ruleset._lane_by_tag_values) == 10
