"""``ParserRouter.parse_batch`` gives what ``parse`` gives record by record, except one ``event.ingested`` per batch.

The pipeline and the ``replay --workers`` processes parse a batch in one call; these tests hold it to the
record-by-record path on every sample line and on hostile records (too large, broken JSON, empty envelopes, more
events than a record may give, arrays with bad members, text lines), in any order: same events in the same order,
the same dead letters, the same count of records that gave events.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from temporal_siem.kernel.records import Origin, RawRecord
from temporal_siem.parsers.router import ParseResult, ParserRouter

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
LINES = [line for path in sorted(SAMPLES.rglob("*.jsonl")) for line in path.read_bytes().splitlines() if line.strip()][:400]
HOSTILE = [
    b"x" * 5_000,  # past the small router's record limit below
    b'{"broken": ',
    b"[]",
    b"[" + b",".join([b'{"msg": "m", "level": "info", "time": "2025-01-01T00:00:00Z"}'] * 12) + b"]",  # > 10 events
    b'[{"eventVersion": "1.08"}, 7, "text", {"uuid": "u", "eventType": "x", "published": "2025-01-01T00:00:00Z"}]',
    b'{"Records": [{"eventSource": "kms.amazonaws.com", "eventName": "Decrypt", "eventTime": "2025-01-01T00:00:00Z"}]}',
    b"\xff\xfe not utf-8",
    b"\x00binary",
    b"2025-01-01T00:00:00.000Z\tINFO\tplain text line",
    b"   ",
    b'{"password": "hunter2", "user": "alice", "time": "2025-01-01T00:00:00Z"}',
    # plain JSON (the batch loop's own path): flat, nested, enriched, and one the path leaves to the general one
    b'{"EventID": 1, "Channel": "Microsoft-Windows-Sysmon/Operational", "Image": "C:\\\\x.exe", "UtcTime": "2025-01-01 00:00:00.000"}',
    b'{"a": {"b": [1, {"c": "d"}]}, "ts": 1700000000}',
    b'{"user_agent.original": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) '
    b'Chrome/120.0.0.0 Safari/537.36", "time": "2025-01-01T00:00:00Z"}',
    b' {"lead": "space"}',
    b'{"event.id": "own", "msg": "m"}',
]


def records(data: list[bytes]) -> list[RawRecord]:
    return [RawRecord(item, Origin("batch", line=n + 1)) for n, item in enumerate(data)]


def without_ingested(events: list[dict[str, Any]]) -> list[bytes]:
    return [orjson.dumps({k: v for k, v in event.items() if k != "event.ingested"}) for event in events]


def one_by_one(router: ParserRouter, batch: list[RawRecord]) -> tuple[list[dict[str, Any]], list[Any], int]:
    events: list[dict[str, Any]] = []
    dead: list[Any] = []
    parsed = 0
    for record in batch:
        result = router.parse(record)
        parsed += bool(result.events)
        events.extend(result.events)
        dead.extend(result.dead)
    return events, dead, parsed


def small_router(grouped: bool) -> ParserRouter:
    """``grouped``: even a batch of two records that mixes formats is parsed one format after another (as batches
    of ``group_min_records`` and more are), then put back in order."""
    router = ParserRouter(max_record_bytes=4_096, max_events_per_record=10)
    if grouped:
        router.group_min_records = 2
    return router


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(LINES + HOSTILE), max_size=25), st.booleans())
def test_a_batch_parses_as_its_records_one_by_one(data: list[bytes], grouped: bool) -> None:
    router = small_router(grouped)
    batch = records(data)
    expected_events, expected_dead, expected_parsed = one_by_one(router, batch)
    earlier = object()
    result = ParseResult(dead=[earlier])  # what the source dead-lettered before: kept first
    parsed = router.parse_batch(batch, result)
    assert parsed == expected_parsed
    assert without_ingested(result.events) == without_ingested(expected_events)
    assert result.dead[0] is earlier
    assert [(d.reason, d.stage, d.origin, d.raw, d.detail) for d in result.dead[1:]] == \
           [(d.reason, d.stage, d.origin, d.raw, d.detail) for d in expected_dead]
    assert len({event["event.ingested"] for event in result.events}) <= 1


def test_a_record_over_the_event_limit_loses_only_its_own_events() -> None:
    router = ParserRouter(max_events_per_record=10)
    good = b'{"msg": "m", "level": "info", "time": "2025-01-01T00:00:00Z", "service": "frontend", "ts": 1}'
    # one element (a Workspace activity), eleven events: the limit is met while parsing, not while unwrapping
    activity = {"kind": "admin#reports#activity", "id": {"time": "2025-02-11T19:02:10Z", "uniqueQualifier": "1", "applicationName": "login"},
                "actor": {"email": "erin@example.com"}, "events": [{"type": "login", "name": "login_failure"}] * 11}
    many = orjson.dumps(activity)
    assert len(router.parse(RawRecord(many, Origin("one"))).dead) == 1
    result = ParseResult()
    parsed = router.parse_batch(records([good, many, good]), result)
    assert parsed == 2 and len(result.events) == 2
    assert [d.reason for d in result.dead] == ["too many events in one record"]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(LINES + HOSTILE), max_size=25), st.booleans())
def test_ends_cut_a_batch_into_each_records_own_events_and_dead_letters(data: list[bytes], grouped: bool) -> None:
    """The daemon answers per record (offsets, marks) from one parsed poll: ``ends`` must say where each record's
    events and dead letters end, exactly as ``parse`` of that record alone gives them."""
    router = small_router(grouped)
    batch = records(data)
    result = ParseResult()
    ends: list[tuple[int, int]] = []
    router.parse_batch(batch, result, ends)
    assert len(ends) == len(batch)
    start_event = start_dead = 0
    for record, (end_event, end_dead) in zip(batch, ends, strict=True):
        alone = router.parse(record)
        assert without_ingested(result.events[start_event:end_event]) == without_ingested(alone.events)
        assert [(d.reason, d.origin, d.detail) for d in result.dead[start_dead:end_dead]] == [(d.reason, d.origin, d.detail) for d in alone.dead]
        start_event, start_dead = end_event, end_dead
    assert (start_event, start_dead) == (len(result.events), len(result.dead))


def test_a_large_mixed_batch_is_parsed_grouped_and_given_back_in_order() -> None:
    """A batch of every sample format interleaved (past ``group_min_records``) takes the grouped path, and gives
    the events and dead letters of the records one by one, in the records' order, with ``ends`` per record."""
    router = ParserRouter(max_record_bytes=4_096, max_events_per_record=10)
    by_format: dict[bytes, list[bytes]] = {}
    for line in LINES + HOSTILE:
        by_format.setdefault(line[:8], []).append(line)
    interleaved = [group[i] for i in range(max(map(len, by_format.values()))) for group in by_format.values() if i < len(group)]
    batch = records(interleaved)
    assert len(batch) >= router.group_min_records
    assert router_order_changes(batch)
    expected_events, expected_dead, expected_parsed = one_by_one(router, batch)
    result = ParseResult()
    ends: list[tuple[int, int]] = []
    assert router.parse_batch(batch, result, ends) == expected_parsed
    assert without_ingested(result.events) == without_ingested(expected_events)
    assert [(d.reason, d.origin, d.detail) for d in result.dead] == [(d.reason, d.origin, d.detail) for d in expected_dead]
    assert ends[-1] == (len(result.events), len(result.dead)) and len(ends) == len(batch)
    assert [end for end, _ in ends] == sorted(end for end, _ in ends)


def router_order_changes(batch: list[RawRecord]) -> bool:
    from temporal_siem.parsers.router import _grouped_order

    return _grouped_order(batch) is not None
