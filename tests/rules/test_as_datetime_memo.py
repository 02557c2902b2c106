"""``as_datetime`` remembers the last text it parsed (enrichers read the same ``@timestamp`` in turn): the memo
must never answer for another value."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from temporal_siem.detections.enrichment.base import as_datetime
from temporal_siem.kernel.timestamps import parse_timestamp

texts = st.one_of(st.sampled_from(["2026-01-02T03:04:05Z", "2026-01-02 03:04:05.123", "1700000000", "nope", "",
                                   "2026-01-02T03:04:05+01:00"]), st.text(max_size=30))
values = st.one_of(texts, st.integers(min_value=-10**12, max_value=10**12), st.none(),
                   st.just(datetime(2026, 1, 2, tzinfo=UTC)), st.just({"seconds": 5, "nanos": 7}))


@settings(max_examples=300, deadline=None)
@given(sequence=st.lists(values, max_size=12), repeat=st.lists(st.integers(min_value=0, max_value=11), max_size=12))
def test_memo_answers_only_for_the_same_text(sequence: list, repeat: list[int]) -> None:
    calls = list(sequence) + [sequence[i] for i in repeat if i < len(sequence)]  # the same objects again, interleaved
    for value in calls:
        expected = parse_timestamp(value) if not isinstance(value, datetime) else value
        assert as_datetime(value) == expected


def test_equal_text_that_is_another_object_is_parsed_again() -> None:
    first = "".join(["2026-01-02T03:04:05", "Z"])
    assert as_datetime(first) == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert as_datetime("2026-01-02T03:04:06Z") == datetime(2026, 1, 2, 3, 4, 6, tzinfo=UTC)
    assert as_datetime(first) == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
