"""Event-time marks (app/stream/marks.py): the watermark a scope partition computes from what the input partitions'
owners report, and what an owner reports. The defects these pin were found by the kill -9 / member-joining
acceptance test losing correlation alerts: a quiet spell whose end let the first source to wake set the watermark
alone; a dead member's "silent" flag letting the watermark run past records nobody had read yet; a mark read just
before an eager rebalance forgotten, so scope partitions waited forever for it."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from temporal_siem.detections.scoped import NEVER
from temporal_siem.stream.marks import OwnedMarks, ScopeMarks

S = 1_000_000  # a second of event time, in microseconds
SOURCES = ["idp:0", "infra:0", "infra:1"]


def _all_reported(marks: ScopeMarks, at_ms: int, value: int) -> None:
    for source in SOURCES:
        marks.observe(source, value, False, at_ms)


def test_the_first_source_to_wake_after_a_quiet_spell_does_not_set_the_watermark_alone() -> None:
    marks = ScopeMarks(idle_seconds=3)
    _all_reported(marks, 1_000, 1_000 * S)
    for source in SOURCES:  # nothing to read for a while: every owner says so
        marks.observe(source, 1_000 * S, True, 5_000)
    marks.observe("infra:0", 90_000 * S, False, 8_000)  # one partition wakes with a day of records in one poll
    watermark = marks.watermark(SOURCES)
    # the other two are about to deliver records from just after 1,000 s: they must not be late
    assert watermark <= 1_000 * S + 8 * S


def test_a_silent_partition_moves_on_with_the_clock_and_does_not_stop_the_windows() -> None:
    marks = ScopeMarks(idle_seconds=30)
    _all_reported(marks, 0, 1_000 * S)
    marks.observe("idp:0", 1_000 * S, True, 40_000)  # silent since its last report at 0 ms
    marks.observe("infra:0", 5_000 * S, False, 600_000)
    marks.observe("infra:1", 5_000 * S, False, 600_000)
    assert marks.watermark(SOURCES) == 1_000 * S + 600 * S  # ten minutes of silence: ten minutes further
    marks.observe("infra:1", 5_000 * S, False, 10_000_000)
    assert marks.watermark(SOURCES) == 5_000 * S  # then the others' marks decide again


def test_a_dead_members_silent_flag_lets_the_watermark_pass_its_partition_only_as_fast_as_the_clock() -> None:
    marks = ScopeMarks(idle_seconds=3)
    _all_reported(marks, 1_000, 1_000 * S)
    marks.observe("infra:1", 1_000 * S, True, 4_500)  # its owner's last word, then kill -9
    for at in range(5_000, 20_000, 500):  # the survivors race ahead; the dead member's records wait for a new owner
        marks.observe("idp:0", 50_000 * S, False, at)
        marks.observe("infra:0", 50_000 * S, False, at)
    assert marks.watermark(SOURCES) <= 1_000 * S + 19 * S


def test_a_partition_that_never_had_a_record_holds_until_the_others_have_had_time_to_report() -> None:
    marks = ScopeMarks(idle_seconds=3)
    for source in SOURCES:
        marks.observe(source, NEVER, True, 1_000)  # started, nothing produced yet
    assert marks.watermark(SOURCES) == NEVER
    marks.observe("infra:0", 700 * S, False, 10_000)
    assert marks.watermark(SOURCES) == NEVER  # the others' first records are on their way
    marks.observe("idp:0", 650 * S, False, 11_000)
    assert marks.watermark(SOURCES) == NEVER
    marks.tick(14_001)  # idle_seconds after the last source started reporting
    assert marks.watermark(SOURCES) == 650 * S  # infra:1 is still empty: it no longer holds
    assert ScopeMarks(3).watermark(SOURCES) == NEVER  # a source never heard of holds


def test_marks_come_back_from_the_store_and_a_broken_entry_is_dropped() -> None:
    marks = ScopeMarks(idle_seconds=3)
    _all_reported(marks, 2_000, 7 * S)
    marks.observe("idp:0", 9 * S, True, 2_500)
    again = ScopeMarks.from_state(marks.to_state(), 3)
    assert again.watermark(SOURCES) == marks.watermark(SOURCES)
    assert (again.entries, again.clock_ms, again.hold_ms) == (marks.entries, marks.clock_ms, marks.hold_ms)
    for hostile in (None, [], "x", {"e": []}, {"e": {"idp:0": [1, "no", 2]}, "c": "late"}, {"e": {"idp:0": [1, True]}}):
        assert ScopeMarks.from_state(hostile, 3).entries == {}


def test_a_mark_read_just_before_an_eager_rebalance_is_sent_after_it() -> None:
    owned = OwnedMarks(idle_seconds=30, heartbeat_seconds=5)
    assert owned.due({"infra:0"}, 100.0) == []  # nothing read yet
    owned.get("infra:0").mark = 42 * S  # the end marker, read just before the rebalance
    assert owned.due(set(), 100.1) == []  # every partition revoked (eager): nothing to send for them
    assert owned.due({"infra:0"}, 100.2) == [("infra:0", 42 * S, False)]  # given back: its mark goes out


def test_a_partition_taken_back_is_silent_only_after_idle_seconds_of_this_ownership() -> None:
    owned = OwnedMarks(idle_seconds=30, heartbeat_seconds=5)
    owned.get("idp:0").mark = 5 * S
    owned.get("idp:0").active_at = 0.0
    assert owned.due({"idp:0"}, 1_000.0) == [("idp:0", 5 * S, False)]
    assert owned.due({"idp:0"}, 1_006.0) == [("idp:0", 5 * S, False)]  # heartbeat, not silent
    assert owned.due({"idp:0"}, 1_031.0) == [("idp:0", 5 * S, True)]  # 30 s of this ownership without a record


# -- the property the test above sample: an in-order partition's records are never late -----------------------------
_step = st.tuples(st.integers(0, len(SOURCES) - 1), st.booleans(), st.integers(0, 500), st.integers(0, 30))


@settings(max_examples=300, deadline=None)
@given(steps=st.lists(_step, min_size=1, max_size=80))
def test_no_record_of_an_in_order_partition_is_late_while_its_silences_are_shorter_than_its_grace(steps: list[Any]) -> None:
    """Each source's records come in event-time order (0-30 s apart); its owner reports mark = latest - grace after
    each record, or says it is silent; the broker clock moves 0-0.5 s between reports. Whatever the interleaving,
    no record is older than the watermark computed before it arrives, as long as no source stays silent longer
    than its grace (here 60 s; 80 steps of at most 0.5 s)."""
    grace = 60 * S
    marks = ScopeMarks(idle_seconds=3)
    latest = {source: 1_000 * S for source in SOURCES}
    clock = 0
    for source in SOURCES:
        marks.observe(source, latest[source] - grace, False, clock)
    for index, silent, gap_ms, advance_s in steps:
        clock += gap_ms
        source = SOURCES[index]
        if silent:
            marks.observe(source, latest[source] - grace, True, clock)
            continue
        record_time = latest[source] + advance_s * S
        assert record_time >= marks.watermark(SOURCES), "an in-order record would be late"
        latest[source] = record_time
        marks.observe(source, record_time - grace, False, clock)
