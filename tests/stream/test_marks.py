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
    marks.observe("infra:0", 90_000 * S, False, 5_900)  # one partition wakes with a day of records in one poll
    # the other two are about to deliver records from just after 1,000 s: they must not be late
    assert marks.watermark(SOURCES) == 1_000 * S
    marks.observe("idp:0", 2_000 * S, False, 6_000)
    assert marks.watermark(SOURCES) == 1_000 * S  # infra:1 still holds: its owner's last word was before the wake


def test_a_partition_its_owner_keeps_calling_silent_stops_holding_once_the_others_have_settled() -> None:
    """What an empty or finished partition looks like: the windows of the others close (a daemon test: deletions
    on one topic, months of Okta records later on the other)."""
    marks = ScopeMarks(idle_seconds=3)
    _all_reported(marks, 0, 1_000 * S)
    for at in range(4_000, 20_000, 1_500):  # infra:1 is done; its owner repeats so every 1.5 s
        marks.observe("infra:1", 1_000 * S, True, at)
        marks.observe("idp:0", 9_000 * S, False, at)
        marks.observe("infra:0", 9_000 * S, False, at)
    assert marks.watermark(SOURCES) == 9_000 * S


def test_a_dead_members_silent_flag_lapses_so_its_unread_records_are_not_overtaken() -> None:
    marks = ScopeMarks(idle_seconds=3)
    _all_reported(marks, 1_000, 1_000 * S)
    for source in SOURCES:
        marks.observe(source, 1_000 * S, True, 4_500)  # a quiet spell; then infra:1's member is killed
    for at in range(5_000, 30_000, 500):  # the others wake and race ahead; infra:1's new records wait for a new owner
        marks.observe("idp:0", 50_000 * S, False, at)
        marks.observe("infra:0", 50_000 * S, at > 12_000, at)  # later silent, and repeated: infra:1 still holds
        assert marks.watermark(SOURCES) <= 1_000 * S, at
    marks.observe("infra:1", 1_200 * S, False, 30_000)  # its new owner delivers them
    assert marks.watermark(SOURCES) == 1_200 * S


def test_a_partition_that_never_had_a_record_holds_until_the_others_have_had_time_to_report() -> None:
    marks = ScopeMarks(idle_seconds=3)
    for source in SOURCES:
        marks.observe(source, NEVER, True, 1_000)  # started, nothing produced yet
    assert marks.watermark(SOURCES) == NEVER
    marks.observe("infra:0", 700 * S, False, 10_000)
    assert marks.watermark(SOURCES) == NEVER  # the others' first records are on their way
    marks.observe("idp:0", 650 * S, False, 11_000)
    assert marks.watermark(SOURCES) == NEVER
    marks.observe("infra:1", NEVER, True, 14_001)  # idle_seconds after the last source started, still empty
    assert marks.watermark(SOURCES) == 650 * S
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
    assert owned.due({"idp:0"}, 1_040.0) == []
    assert owned.due({"idp:0"}, 1_046.0) == [("idp:0", 5 * S, True)]  # repeated every 15 s: scope partitions let it lapse


# -- the property the tests above sample ---------------------------------------------------------------------------
_burst = st.lists(st.tuples(st.integers(0, len(SOURCES) - 1), st.integers(0, 200), st.integers(0, 40_000)), min_size=1, max_size=25)


@settings(max_examples=300, deadline=None)
@given(bursts=st.lists(_burst, min_size=1, max_size=6), quiet_ms=st.integers(3_100, 20_000))
def test_bursty_producers_never_make_an_in_order_record_late(bursts: list[Any], quiet_ms: int) -> None:
    """Producers write bursts to every partition, with quiet spells between them (every owner says its partition is
    silent, and repeats it); within a burst each partition's records are in event-time order but the partitions move
    at any pace (one may be a day ahead of another), and the clock moves 0-0.2 s between reports, so every burst is
    read within idle_seconds of its start. No record is older than the highest watermark seen before it (the scope
    partition's watermark only grows)."""
    grace = 60 * S
    marks = ScopeMarks(idle_seconds=3)
    latest = {source: 1_000 * S for source in SOURCES}
    clock, highest = 0, NEVER
    for source in SOURCES:
        marks.observe(source, latest[source] - grace, False, clock)
    for burst in bursts:
        quiet_start = clock + 100
        for at in range(quiet_start, quiet_start + quiet_ms, 1_400):
            for source in SOURCES:
                marks.observe(source, latest[source] - grace, True, at)
            highest = max(highest, marks.watermark(SOURCES))
        clock = quiet_start + quiet_ms
        for index, gap_ms, advance_s in burst[: 3_000 // 201]:  # within idle_seconds of the burst's start
            clock += gap_ms
            source = SOURCES[index]
            record_time = latest[source] + advance_s * S
            assert record_time >= highest, "an in-order record would be late"
            latest[source] = record_time
            marks.observe(source, record_time - grace, False, clock)
            highest = max(highest, marks.watermark(SOURCES))
