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


def test_windows_events_exported_as_evtx_json_take_their_time_created() -> None:
    """evtx_dump's JSON (SigmaHQ's regression samples, most EVTX tooling) nests the record time under
    Event.System.TimeCreated: without it such events had no @timestamp, so correlation windows, --from/--to and
    the sinks had none. Both of evtx_dump's attribute spellings; a top-level time key still comes first."""
    from temporal_siem.kernel.records import Origin, RawRecord
    from temporal_siem.parsers.router import ParserRouter

    system = {"EventID": 1, "Channel": "Microsoft-Windows-Sysmon/Operational"}
    for created in ({"TimeCreated": {"#attributes": {"SystemTime": "2026-08-12T17:57:52.7644224Z"}}},
                    {"TimeCreated_attributes": {"SystemTime": "2026-08-12T17:57:52.7644224Z"}},
                    {"TimeCreated": {"SystemTime": "2026-08-12T17:57:52.7644224Z"}}):
        record = {"Event": {"System": {**system, **created}, "EventData": {"UtcTime": "2026-08-12 17:57:52.754"}}}
        raw = orjson.dumps(record)
        (event,) = ParserRouter().parse(RawRecord(raw, Origin("t", line=1))).events
        assert event["@timestamp"] == "2026-08-12T17:57:52.764422Z", created
    record = {"time": "2026-01-01T00:00:00Z", "Event": {"System": {"TimeCreated": {"#attributes": {"SystemTime": "2026-08-12T17:57:52Z"}}}}}
    raw = orjson.dumps(record)
    (event,) = JsonParser().parse(orjson.loads(raw), raw)
    assert event["@timestamp"] == "2026-01-01T00:00:00.000000Z"
