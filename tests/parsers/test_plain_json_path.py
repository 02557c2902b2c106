"""The router's plain-JSON path gives exactly what the general path gives.

``ParserRouter._parse_record`` parses a clean JSON object that no gated parser and no envelope claims in one
method (``JsonParser.parse_clean``, into the decoded object itself). These tests hold it to the general path
(decode, envelope walk, parser choice, masking scope, ``JsonParser.parse``) on generated records: the same
events, key order included, and the same dead letters, for flat and nested objects, secret-shaped keys and
values, envelope and gated keys, and bytes around or inside the JSON that the general path treats on its own
(space, a byte-order mark, NUL, invalid UTF-8, a cut record).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from temporal_siem.kernel.records import Origin, RawRecord
from temporal_siem.parsers import router as router_module
from temporal_siem.parsers.router import ParseResult, ParserRouter
from tests.conftest import record_calls

KEYS = ["CommandLine", "Image", "User", "UtcTime", "time", "ts", "date", "EventID", "a.b", "x", "Ünïcode",
        # what sends a record elsewhere: envelope keys, gated parsers' keys, ECS
        "Records", "data", "detail", "@timestamp", "eventSource", "uuid", "msg", "ecs.version",
        # secret-shaped names
        "password", "api_key", "Authorization", "client_secret", "token"]
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["2026-11-29 12:00:03.123", "2026-11-29T12:00:03Z", "1700000000", "not a time", "",
                     "C:\\Windows\\System32\\cmd.exe", "password=hunter2", "Bearer abc.def.ghi",
                     "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl", "postgres://u:p4ss@db/x", "token::elevate"]),
    st.text(max_size=20),
)
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                        st.dictionaries(st.sampled_from(KEYS), inner, max_size=3)),
                      max_leaves=8)
OBJECTS = st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=8)), VALUES, max_size=8)
FRAMES = st.sampled_from([
    lambda b: b, lambda b: b + b"\n", lambda b: b + b" \r\n", lambda b: b" " + b, lambda b: b"\xef\xbb\xbf" + b,
    lambda b: b + b"\x00", lambda b: b[:-1], lambda b: b + b"\xff", lambda b: b[:-1] + b',"k":"\xff"}',
    lambda b: b"[" + b + b"]",
])


def general(router: ParserRouter) -> ParserRouter:
    """The same router with the plain-JSON path off: every record through the general path."""
    router._plain = None
    return router


def parse(router: ParserRouter, data: bytes, hint: str | None = None) -> tuple[list[bytes], list[tuple[Any, ...]]]:
    result = ParseResult()
    router._parse_record(RawRecord(data, Origin("t", line=1), hint), "2026-12-07T00:00:00.000000Z", result)
    return ([orjson.dumps(e, option=orjson.OPT_PASSTHROUGH_SUBCLASS) for e in result.events],
            [(d.reason, d.stage, d.origin, d.raw, d.detail) for d in result.dead])


@settings(max_examples=400, deadline=None)
@given(OBJECTS, FRAMES, st.sampled_from([None, "auto", "json", "ecs"]), st.booleans())
def test_the_plain_path_parses_as_the_general_path(obj: dict[str, Any], frame: Any, hint: str | None, ascii_only: bool) -> None:
    # json, not orjson: integers past 64 bits, and \uXXXX escapes (ensure_ascii) that hide text from a byte scan
    data = frame(json.dumps(obj, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass"))
    assert parse(ParserRouter(), data, hint) == parse(general(ParserRouter()), data, hint)


@pytest.mark.parametrize("data", [
    b'{"EventID": 1, "UtcTime": "2026-11-29 12:00:03.123", "CommandLine": "cmd.exe /c whoami", "User": "CORP\\\\bob"}',
    b'{"Event": {"System": {"EventID": 4688}, "EventData": {"NewProcessName": "C:\\\\x.exe"}}, "time": 1700000000}',
])
def test_a_clean_plain_record_takes_the_plain_path(data: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    """Windows-shaped records, flat and nested, never reach ``decode`` (the general path's first step), and their
    events equal the general path's."""
    expected = parse(general(ParserRouter()), data)
    calls: list[bytes] = []
    monkeypatch.setattr(router_module, "decode", lambda raw: calls.append(raw) or router_module.orjson.loads(raw))
    assert parse(ParserRouter(), data) == expected
    assert calls == []
    assert orjson.loads(expected[0][0])["event.dataset"] == "json"


@pytest.mark.parametrize("data", [
    b'{"CommandLine": "net use x: /user:a password=hunter2", "EventID": 1}',  # secret-shaped: masked by the general path
    b'{"Records": [{"EventID": 1}]}',  # an envelope
    b'{"msg": "m", "level": "info"}',  # a gated parser's key (Temporal server)
])
def test_records_the_plain_path_must_not_take(data: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    expected = parse(general(ParserRouter()), data)
    calls: list[bytes] = []
    real = router_module.decode
    monkeypatch.setattr(router_module, "decode", lambda raw: calls.append(raw) or real(raw))
    assert parse(ParserRouter(), data) == expected
    assert b"hunter2" not in b"".join(expected[0])
    # the secret-shaped record is decoded once and handed on; the others go through decode() or the envelope walk
    assert len(calls) <= 1


SAMPLES = Path(__file__).resolve().parents[2] / "samples"
SAMPLE_LINES = [line for path in sorted(SAMPLES.rglob("*.jsonl")) for line in path.read_bytes().splitlines() if line.strip()]


def test_every_sample_line_parses_as_on_the_general_path() -> None:
    """Every format's records: those a specific parser claims must still reach it (by their keys or envelope)."""
    plain, reference = ParserRouter(), general(ParserRouter())
    assert len(SAMPLE_LINES) > 300
    for line in SAMPLE_LINES:
        assert parse(plain, line) == parse(reference, line), line[:200]


def test_keep_original_and_a_forced_format_take_the_general_path() -> None:
    assert ParserRouter(keep_original=True)._plain is None
    assert ParserRouter(format_name="json")._plain is None
    assert ParserRouter()._plain is not None


@pytest.mark.parametrize("line", [b'{"CommandLine": "run --password=hunter2", "Image": "x.exe"}',
                                  b'{"api_key": "0123456789abcdef", "User": "alice"}'])
def test_a_secret_shaped_record_is_scanned_once(line: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    """The plain path scans the bytes and hands a secret-shaped record to the general path with that scan:
    masking still does the checks it asks for, and the record's bytes are not scanned a second time."""
    from temporal_siem.kernel import secrets

    scanned = record_calls(monkeypatch, "scan_record", secrets, router_module)
    result = ParseResult()
    ParserRouter().parse_batch([RawRecord(line, Origin("t"))], result)
    assert scanned == [line]
    assert len(result.events) == 1 and "hunter2" not in orjson.dumps(result.events[0]).decode()
    assert "0123456789abcdef" not in orjson.dumps(result.events[0]).decode()


@pytest.mark.parametrize("data", [
    b'{"CommandLine": "powershell -c {whoami}", "Image": "x.exe"}',  # braces inside strings only
    b'{"CommandLine": "cmd [x]", "EventID": 1}',
    b'{"Image": "x.exe", "Parent": {"Image": "y.exe"}}',  # nested: flattened
    b'{"Image": "x.exe", "Tags": ["a", "b"]}',
    b'{"Image": "x.exe", "Tags": []}',
    b'{}',
])
def test_braces_in_the_bytes_decide_only_whether_values_are_type_checked(data: bytes) -> None:
    assert parse(ParserRouter(), data) == parse(general(ParserRouter()), data)


def test_a_flat_record_is_not_type_checked_value_by_value(monkeypatch: pytest.MonkeyPatch) -> None:
    """No "{" after the first and no "[" in the bytes: flat as decoded, without flatten_owned's pass over the
    values; a record with a bracket anywhere still gets it."""
    from temporal_siem.parsers import generic_json

    calls = record_calls(monkeypatch, "flatten_owned", generic_json)
    flat = b'{"EventID": 1, "UtcTime": "2026-11-29 12:00:03.123", "Image": "C:\\\\x.exe", "n": null, "f": 1.5, "b": true}'
    assert len(parse(ParserRouter(), flat)[0]) == 1 and calls == []
    assert len(parse(ParserRouter(), b'{"EventID": 1, "CommandLine": "a [b]"}')[0]) == 1 and len(calls) == 1
