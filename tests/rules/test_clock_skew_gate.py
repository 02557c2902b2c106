"""The clock-skew enricher's text gate (``_ReplayGate``) answers exactly as the datetime path would.

The gate skips the datetime work for "our own stamp on an old record" (every event of a file replay) by comparing
texts. It may only ever say "quiet" where the datetime path gives no skew; these tests hold it to that on times
around every bound (to the microsecond), on near-canonical texts that parse differently (ISO week dates, second 60+,
non-ASCII digits, a space for the ``T``), and through ``ClockSkew.enrich`` with a fixed clock.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from temporal_siem.detections.enrichment import clock_skew
from temporal_siem.detections.enrichment.base import as_datetime
from temporal_siem.detections.enrichment.clock_skew import _CANONICAL, LIVE_WINDOW_S, OUR_STAMP_TOLERANCE_S, ClockSkew, _ReplayGate
from temporal_siem.kernel.timestamps import format_timestamp

NOW = datetime(2026, 12, 6, 1, 59, 59, 999_999, tzinfo=UTC)
BOUNDS = (0.0, OUR_STAMP_TOLERANCE_S, LIVE_WINDOW_S)


def skew_without_gate(ingested: Any, timestamp: Any, now: datetime) -> float | None:
    """The datetime path of ``ClockSkew.enrich`` for an event with no ``event.created`` (the oracle)."""
    when = as_datetime(timestamp)
    if when is None:
        return None
    stamp = as_datetime(ingested)
    if stamp is None or not ClockSkew._trust_ingested(stamp, when, now):
        return None
    return round((stamp - when).total_seconds(), 3)


def near_bounds() -> st.SearchStrategy[datetime]:
    """NOW moved to within a few microseconds of each bound, either side, or anywhere within two hours."""
    edge = st.builds(lambda bound, sign, jitter: NOW + timedelta(seconds=sign * bound, microseconds=jitter),
                     st.sampled_from(BOUNDS), st.sampled_from((-1, 1)), st.integers(-3, 3))
    anywhere = st.builds(lambda us: NOW + timedelta(microseconds=us), st.integers(-2 * 3600 * 10**6, 2 * 3600 * 10**6))
    return st.one_of(edge, anywhere)


MUTATIONS = ("W", "6", "9", " ", "\u0663", "x", "+", "")


def mutated(text: str, position: int, replacement: str) -> str:
    """One character replaced (or removed): texts that look like ours and may parse to another time or to none."""
    position %= len(text)
    return text[:position] + replacement + text[position + 1:]


stamp_texts = st.one_of(
    near_bounds().map(format_timestamp),
    st.builds(mutated, near_bounds().map(format_timestamp), st.integers(0, 26), st.sampled_from(MUTATIONS)),
    st.sampled_from(["2026-W49-7T01:59:59.999999Z", "2026-12-06T01:59:60.000000Z", "2026-12-06 01:59:59.999999Z",
                     "2026-12-06T01:59:59Z", "2026-12-06T01:59:59.999999+00:00", "not a time", ""]),
    st.none(), st.integers(), st.text(max_size=30),
)


@settings(max_examples=1500, deadline=None)
@given(stamp_texts, stamp_texts)
@example("2026-12-06T01:59:59.999999Z", "2026-W49-7T01:00:00.000000Z")  # a week date: Dec 6, live, yet sorts after
@example("2026-12-06T01:57:59.999999Z", "2025-01-01T00:00:00.000000Z")  # exactly 120 s: still our stamp
@example("2026-12-06T01:57:60.000000Z", "2025-01-01T00:00:00.000000Z")  # reads as 01:57:59.000000: not ours
@example("2026-12-06T01:59:59.999999Z", "2026-12-06T00:59:59.999999Z")  # exactly 3600 s: still live
@example("2026-12-06T01:59:59.999999Z", "2026-12-06T00:59:59.999998Z")  # a microsecond past: not live
def test_gate_says_quiet_only_where_the_datetime_path_gives_no_skew(ingested: Any, timestamp: Any) -> None:
    if _ReplayGate(NOW).quiet(ingested, timestamp):
        assert skew_without_gate(ingested, timestamp, NOW) is None


@settings(max_examples=300, deadline=None)
@given(near_bounds(), near_bounds())
@example(NOW - timedelta(seconds=OUR_STAMP_TOLERANCE_S), NOW - timedelta(days=30))  # the stamp bounds are inclusive
@example(NOW + timedelta(seconds=OUR_STAMP_TOLERANCE_S), NOW + timedelta(days=30))
@example(NOW, NOW - timedelta(seconds=LIVE_WINDOW_S))  # so are the live ones
@example(NOW, NOW + timedelta(seconds=LIVE_WINDOW_S, microseconds=1))
def test_gate_answers_for_every_canonical_replay_event(stamp: datetime, when: datetime) -> None:
    """Where both texts are ours, the gate is the whole answer: quiet exactly when the datetime path is quiet."""
    ingested, timestamp = format_timestamp(stamp), format_timestamp(when)
    ours = abs((NOW - stamp).total_seconds()) <= OUR_STAMP_TOLERANCE_S
    live = abs((NOW - when).total_seconds()) <= LIVE_WINDOW_S
    assert _ReplayGate(NOW).quiet(ingested, timestamp) == (ours and not live)
    assert (skew_without_gate(ingested, timestamp, NOW) is None) == (ours and not live)


class _FixedClock(datetime):
    @classmethod
    def now(cls, tz: Any = None) -> datetime:  # type: ignore[override]
        return NOW


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(stamp_texts, stamp_texts), max_size=6))
def test_enrich_gives_what_the_datetime_path_gives(pairs: list[tuple[Any, Any]]) -> None:
    events = [{"event.ingested": ingested, "@timestamp": timestamp} for ingested, timestamp in pairs]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(clock_skew, "datetime", _FixedClock)
        ClockSkew("auto").enrich(events)
    for event, (ingested, timestamp) in zip(events, pairs, strict=True):
        if ingested is None:
            assert "temporal.clock_skew_seconds" not in event
            continue
        assert event.get("temporal.clock_skew_seconds") == skew_without_gate(ingested, timestamp, NOW)


def plain_quiet(gate: _ReplayGate, ingested: Any, timestamp: Any) -> bool:
    """The gate's answer as it was before it remembered a batch's stamp: every check, every time."""
    if (ingested.__class__ is not str or timestamp.__class__ is not str
            or not (gate.stamp_low <= ingested <= gate.stamp_high)
            or gate.live_low <= timestamp <= gate.live_high):
        return False
    return _CANONICAL.fullmatch(ingested) is not None and _CANONICAL.fullmatch(timestamp) is not None


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2), stamp_texts), max_size=8), st.lists(stamp_texts, min_size=3, max_size=3))
@example([(2, "2026-12-06T03:00:00.000000Z")], ["x", "x", None])  # a fresh gate's memory must not stand for None
@example([(0, None), (2, "2026-12-06T03:00:00.000000Z")], ["2026-12-06T01:59:59.999999Z", "x", None])
def test_one_gate_over_a_batch_answers_every_check_every_time(rows: list[tuple[int, Any]], stamps: list[Any]) -> None:
    """A gate remembers the last stamp found to be ours (by identity: a batch shares one stamp object). Reused over
    events that share, alternate or merely equal stamps, or lack one, each answer is the memory-less one."""
    gate = _ReplayGate(NOW)
    for which, timestamp in rows:
        ingested = stamps[which]
        copy = ingested[:1] + ingested[1:] if isinstance(ingested, str) else ingested  # equal, maybe not identical
        for stamp in (ingested, copy, ingested):
            assert gate.quiet(stamp, timestamp) == plain_quiet(gate, stamp, timestamp), (stamp, timestamp)


def test_a_replayed_record_is_decided_by_the_gate_and_a_live_one_is_not() -> None:
    gate = _ReplayGate(NOW)
    ours = format_timestamp(NOW - timedelta(seconds=1))
    assert gate.quiet(ours, "2025-01-01T00:00:00.000000Z")
    assert not gate.quiet(ours, format_timestamp(NOW - timedelta(minutes=9)))  # live: the skew is computed
    assert not gate.quiet(format_timestamp(NOW - timedelta(minutes=6)), "2025-01-01T00:00:00.000000Z")  # not ours
