"""The ``json`` parser: any JSON object as it is, its ``@timestamp`` from the first of ``TIME_KEYS`` (in that
order) whose value parses. The keys present are found with one set intersection; the choice must be the
ordered probe's whatever keys a record holds, whatever their values (unparseable, null, nested, numbers)."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from temporal_siem.kernel.flatten import flatten_json
from temporal_siem.parsers.common import format_timestamp, parse_timestamp
from temporal_siem.parsers.generic_json import TIME_KEYS, JsonParser

_TIME_VALUE = st.one_of(
    st.sampled_from(["2026-11-29 12:00:03.123", "2026-11-29T12:00:03Z", "not a time", "", "1/9/2007 9:41:00 AM",
                     "2026-13-45T99:00:00Z", "Apr 12, 2021 18:58:30 PM"]),
    st.none(), st.integers(0, 2_000_000_000_000), st.booleans(), st.just({"seconds": 1700000000, "nanos": 5}),
    st.just([1, 2]), st.just({"x": 1}),
)


def _reference(event: dict[str, Any]) -> str | None:
    """The ordered probe: the first key of TIME_KEYS present with a value that parses."""
    for key in TIME_KEYS:
        value = event.get(key)
        if value is None:
            continue
        dt = parse_timestamp(value)
        if dt is not None:
            return format_timestamp(dt)
    return None


@settings(max_examples=400, deadline=None)
@given(times=st.dictionaries(st.sampled_from(TIME_KEYS), _TIME_VALUE, max_size=5),
       other=st.dictionaries(st.sampled_from(["msg", "host", "Timestamp", "TIME", "user.name"]), st.text(max_size=6), max_size=3))
def test_timestamp_is_the_first_time_key_that_parses(times: dict[str, Any], other: dict[str, Any]) -> None:
    record = {**other, **times}
    raw = orjson.dumps(record)
    (event,) = JsonParser().parse(orjson.loads(raw), raw)
    flat = flatten_json(orjson.loads(raw))  # the probe reads the flattened record ({"seconds": ..} is two keys)
    expected = _reference(flat)
    if expected is None:
        assert event.get("@timestamp") == flat.get("@timestamp")  # kept as it came (or absent)
    else:
        assert event["@timestamp"] == expected
    assert event["event.dataset"] == "json" and len(event["event.id"]) == 32


def test_a_later_key_answers_when_the_first_does_not_parse() -> None:
    record = {"timestamp": "garbage", "UtcTime": "2026-11-29 12:00:03.123", "time": None}
    raw = orjson.dumps(record)
    (event,) = JsonParser().parse(dict(record), raw)
    assert event["@timestamp"] == "2026-11-29T12:00:03.123000Z"
