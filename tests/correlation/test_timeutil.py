"""Event-time parsing and formatting: exact microseconds, round trips, and only BadTimestamp on bad input."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from temporal_siem.detections.correlation.timeutil import BadTimestamp, format_micros, parse_micros

moments = st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1))


@given(moment=moments, digits=st.sampled_from([0, 1, 3, 6, 9]))
def test_parse_is_exact_to_the_microsecond(moment: datetime, digits: int) -> None:
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    fraction = f"{moment.microsecond:06d}000"[:digits]
    if digits:
        text += "." + fraction
    expected = moment.replace(microsecond=int(fraction[:6].ljust(6, "0")) if digits else 0, tzinfo=UTC)
    assert parse_micros(text + "Z") == (expected - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


@given(moment=moments)
def test_format_round_trips(moment: datetime) -> None:
    micros = parse_micros(moment.replace(tzinfo=UTC).isoformat())
    assert parse_micros(format_micros(micros)) == micros


@given(text=st.text(max_size=40))
def test_arbitrary_text_parses_or_raises_bad_timestamp(text: str) -> None:
    try:
        parse_micros(text)
    except BadTimestamp:
        pass


@pytest.mark.parametrize("value", ["2026-02-30T00:00:00Z", "2026-01-01T00:00:00.\uff11Z", "", "Z" * 25, float("nan"), {}, None, 1e300, -1e20])
def test_invalid_timestamps_raise(value: object) -> None:
    with pytest.raises(BadTimestamp):
        parse_micros(value)


@pytest.mark.parametrize("value", [1.797693134862316e302, -1.797693134862316e302, 1.7976931348623157e308, 10**400,
                                   -(10**30), 253402300800.0])
def test_epoch_numbers_far_outside_the_calendar_are_bad_timestamps_not_crashes(value: float) -> None:
    """Found by the hostile-event property test: 1.8e302 seconds times a million is inf, and round(inf) raised
    OverflowError out of the correlation engine."""
    with pytest.raises(BadTimestamp):
        parse_micros(value)


def test_epoch_numbers_at_the_edges_of_the_calendar_still_parse() -> None:
    assert parse_micros(253402300799.5) == 253402300799500000
    assert parse_micros(-62135596800) == (datetime(1, 1, 1, tzinfo=UTC) - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
