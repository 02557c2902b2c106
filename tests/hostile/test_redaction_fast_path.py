"""Issue 19: the per-record scan (``secrets.scan_record``) only decides how much checking a record needs, so it
must never change what comes out. Every generated record is parsed twice: as shipped (the scan decides), and with
the scan forced to ask for every check (the full walk, as before the scan existed); events, ``event.original`` and
dead letters must be identical. Records carry secrets under keys, inside strings and in nested lists, and are
written in encodings a byte scan could miss: ``\\uXXXX`` escapes of plain letters (``\\u0070assword``), ``\\/``,
ASCII-only JSON and bytes that are not UTF-8."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from temporal_siem.kernel import records, secrets
from temporal_siem.kernel.records import RAW_EXCERPT_BYTES, Origin, RawRecord
from temporal_siem.parsers.router import ParseResult, ParserRouter
from tests.conftest import SAMPLES, record_calls
from tests.hostile.secret_corpus import KEYED, TEXT

SECRET_KEYS = [key for key, _ in KEYED] + ["Authorization", "x-vault-token", "api_key", "SAMLResponse", "token",
                                           "client_secret", "passphrase", "credentials"]
BENIGN_KEYS = ["user", "msg", "time", "token_ttl", "key_id", "accessor", "name", "value", "key", "header", "headers",
               "path", "data", "CommandLine", "Image", "note"]
SECRET_TEXT = [text for text, _ in TEXT] + ["Bearer abcdefgh12345678", "https://u:pw@host/x", "s." + "A" * 24,
                                            'x {"password": "p4ss"} y', 'k="v" token=abc123']
BENIGN_TEXT = ["hello", "C:\\Windows\\System32\\cmd.exe", "2025-01-01T00:00:00Z", "a=b c=d", "GET /index.html", ""]


def _base_records() -> list[dict[str, Any]]:
    """One JSON record of each sample file, so every parser (and its vendor namespace) is exercised."""
    records = []
    for path in sorted(SAMPLES.glob("*/*.json*")):
        if path.parent.name == "scenarios":
            continue
        text = path.read_bytes().strip()
        try:
            first = orjson.loads(text) if path.suffix == ".json" else orjson.loads(text.splitlines()[0])
        except orjson.JSONDecodeError:
            continue
        if isinstance(first, dict):
            records.append(first)
    return records


BASES = _base_records()

keys = st.one_of(st.sampled_from(SECRET_KEYS), st.sampled_from(BENIGN_KEYS),
                 st.text(st.characters(min_codepoint=0x20, max_codepoint=0x17f), min_size=1, max_size=12))
strings = st.one_of(st.sampled_from(SECRET_TEXT), st.sampled_from(BENIGN_TEXT), st.text(max_size=20),
                    st.builds(lambda a, b: a + b, st.sampled_from(SECRET_TEXT), st.sampled_from(BENIGN_TEXT)))
scalars = st.one_of(strings, st.integers(-10, 10**6), st.booleans(), st.none())
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(keys, inner, max_size=5),
        st.builds(lambda n, v: {"name": n, "value": v}, st.sampled_from(SECRET_KEYS + BENIGN_KEYS), inner),
    ),
    max_leaves=12,
)


def _encode_string(text: str, escape: list[bool]) -> str:
    """A JSON string literal with some characters written as ``\\uXXXX`` (and ``/`` as ``\\/``)."""
    out = []
    for i, char in enumerate(text):
        if escape[i % len(escape)] if escape else False:
            out.append("\\/" if char == "/" else f"\\u{ord(char):04x}")
        elif char in '"\\' or ord(char) < 0x20:
            out.append(orjson.dumps(char).decode()[1:-1])
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def _encode(value: Any, escape: list[bool]) -> str:
    if isinstance(value, dict):
        return "{" + ",".join(f"{_encode_string(str(k), escape)}:{_encode(v, escape)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_encode(v, escape) for v in value) + "]"
    if isinstance(value, str):
        return _encode_string(value, escape)
    return orjson.dumps(value).decode()


@st.composite
def raw_records(draw: st.DrawFn) -> bytes:
    base = dict(draw(st.sampled_from(BASES)))
    payload = draw(st.dictionaries(keys, values, min_size=1, max_size=5))
    where = draw(st.sampled_from(["top", "inside"]))
    nested = [k for k, v in base.items() if isinstance(v, dict)]
    if where == "inside" and nested:
        key = draw(st.sampled_from(nested))
        base[key] = {**base[key], **payload}
    else:
        base.update({k: v for k, v in payload.items() if k not in base})
    encoding = draw(st.sampled_from(["orjson", "ascii", "escaped"]))
    if encoding == "orjson":
        data = orjson.dumps(base)
    elif encoding == "ascii":  # non-ASCII as \u escapes, as Python's json module writes by default
        import json

        data = json.dumps(base).encode()
    else:
        data = _encode(base, draw(st.lists(st.booleans(), min_size=1, max_size=7))).encode()
    if draw(st.integers(0, 9)) == 0:  # not UTF-8: a dead letter, whose raw excerpt is masked too
        cut = draw(st.integers(0, len(data)))
        data = data[:cut] + draw(st.sampled_from([b"\xff", b"\xc3(", b"\xed\xa0\x80"])) + data[cut:]
    return data


@st.composite
def text_lines(draw: st.DrawFn) -> bytes:
    """Plain text records (Temporal server console lines), where ``key=value`` text becomes fields."""
    text = draw(strings)
    shape = draw(st.sampled_from([
        "2025-03-04T10:30:00.000Z\tINFO\tx.go:1\t{}\t{{\"service\": \"frontend\"}}",
        "time=2025-03-04T10:30:00Z level=info msg=\"{}\" namespace=default",
        "{}",
    ]))
    return shape.format(text.replace("\n", " ")).encode("utf-8", "surrogatepass")


@contextmanager
def full_walk() -> Iterator[None]:
    real = secrets.scan_record
    secrets.scan_record = lambda data: secrets.BOTH  # type: ignore[assignment]
    try:
        yield
    finally:
        secrets.scan_record = real  # type: ignore[assignment]


def _dead_letter(doc: dict[str, Any]) -> dict[str, Any]:
    """Undecodable raw bytes the scan finds clean are kept as they are (``raw_base64``), where the full walk must
    decode them (with U+FFFD for each bad byte) to mask them: the same content, compared as that text."""
    raw = base64.b64decode(doc.pop("raw_base64")) if "raw_base64" in doc else doc.pop("raw").encode("utf-8", "surrogatepass")
    return doc | {"raw text": raw.decode("utf-8", "replace")}


def _outputs(data: bytes) -> list[Any]:
    out: list[Any] = []
    for keep_original in (False, True):
        result = ParserRouter(keep_original=keep_original).parse(RawRecord(data, Origin("t", 1)))
        out.append([{k: v for k, v in event.items() if k != "event.ingested"} for event in result.events])
        out.append([_dead_letter(dead.as_dict()) for dead in result.dead])
    return out


def _same_both_ways(data: bytes) -> None:
    records.RAW_EXCERPT_BYTES = 1 << 30  # whole raw records: a cut would fall at different places in the two forms
    try:
        fast = _outputs(data)
        with full_walk():
            full = _outputs(data)
    finally:
        records.RAW_EXCERPT_BYTES = RAW_EXCERPT_BYTES
    assert orjson.dumps(fast, option=orjson.OPT_NON_STR_KEYS) == orjson.dumps(full, option=orjson.OPT_NON_STR_KEYS)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=raw_records())
def test_fast_path_redacts_json_records_as_the_full_walk(data: bytes) -> None:
    _same_both_ways(data)


@settings(max_examples=150, deadline=None)
@given(data=text_lines())
def test_fast_path_redacts_text_lines_as_the_full_walk(data: bytes) -> None:
    _same_both_ways(data)


@pytest.mark.parametrize("data", [
    b'{"\\u0070assword": "hunter2hunter2", "msg": "x"}',
    b'{"note": "connect postgres:\\/\\/app:pw@db\\/x"}',
    b'{"headers": [{"name": "\\u0041uthorization", "value": "Basic Zm9vOmJhcg=="}]}',
    b'{"inner": "{\\"pass\\u0077ord\\": \\"x\\"}"}',
    b'{"password": "x\xff"}',
    b'{"list": [[{"client_secret": "LEAK"}]], "t": "Bearer abcdefgh12345678"}',
    # not UTF-8, and a key the string scan finds secret-ish but the key rule does not: the full walk re-serialized
    # the dead letter's JSON (compact), the fast path kept it as it came (hypothesis found it)
    b'{"\xffRecords": [{"a": 1}], "token_ttl": []}',
])
def test_fast_path_on_escapes_the_byte_scan_cannot_read(data: bytes) -> None:
    _same_both_ways(data)


# --- the batch scan (secrets.scan_records): one Hyperscan call for a whole batch --------------------------------


def _holds(batch: int, own: int) -> bool:
    return batch & own == own


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(datas=st.lists(st.one_of(raw_records(), text_lines(), st.sampled_from([b"", b"{}", b"x"])), min_size=2, max_size=12))
def test_the_batch_scan_asks_for_every_check_each_record_scan_asks_for(datas: list[bytes]) -> None:
    """Never fewer checks than a record's own scan (a missing one would let a secret through unmasked); more only
    where a match crosses from one record into the next."""
    batch = secrets.scan_records(datas)
    own = [secrets.scan_record(data) for data in datas]
    assert all(_holds(b, o) for b, o in zip(batch, own, strict=True)), (batch, own)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(datas=st.lists(st.one_of(raw_records(), text_lines()), min_size=2, max_size=8))
def test_a_batch_parses_as_its_records_one_by_one(datas: list[bytes]) -> None:
    """parse_batch (the batch scan) against parse per record (each its own scan): same events and dead letters."""
    records.RAW_EXCERPT_BYTES = 1 << 30
    try:
        router = ParserRouter()
        batch = [RawRecord(data, Origin("t", n)) for n, data in enumerate(datas, 1)]
        result = ParseResult()
        router.parse_batch(batch, result)
        one_by_one = [router.parse(record) for record in batch]
    finally:
        records.RAW_EXCERPT_BYTES = RAW_EXCERPT_BYTES

    def strip(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: v for k, v in e.items() if k != "event.ingested"} for e in events]

    assert strip(result.events) == strip([e for r in one_by_one for e in r.events])
    assert [d.as_dict() for d in result.dead] == [d.as_dict() for r in one_by_one for d in r.dead]


def test_the_batch_scan_equals_each_record_scan_on_the_samples() -> None:
    lines = [line for path in sorted(SAMPLES.rglob("*.json*")) for line in path.read_bytes().splitlines() if line.strip()]
    assert len(lines) > 100
    assert secrets.scan_records(lines) == [secrets.scan_record(line) for line in lines]


def test_a_url_password_cut_off_by_a_record_end_is_found_mid_batch() -> None:
    """``\\Z`` in a record pattern is the end of that record: in the joined batch, its newline."""
    datas = [b'{"a": 1}', b'{"msg": "dial postgres://app:pw', b'{"b": 2}']
    assert secrets.scan_record(datas[1]) & secrets.TEXT
    assert secrets.scan_records(datas) == [0, secrets.scan_record(datas[1]), 0]


def test_past_its_match_budget_the_batch_is_scanned_record_by_record(monkeypatch: pytest.MonkeyPatch) -> None:
    """A hostile batch (a record of endless ``\\u`` escapes) must not cost a callback per match: past the budget
    (64 + 8 a record) the scan stops and each record is scanned on its own (which stops at its first hit)."""
    datas = [b'{"a": "' + b"\\u0041" * 500 + b'"}', b'{"b": 1}', b'{"password": "x"}']
    expected = [secrets.scan_record(data) for data in datas]
    calls = record_calls(monkeypatch, "scan_record", secrets)
    assert secrets.scan_records(datas) == expected
    assert calls == datas  # gave up: record by record
    calls.clear()
    assert secrets.scan_records(datas[1:]) == expected[1:]
    assert calls == []  # within the budget: the batch's own scan decided


def test_parse_batch_scans_a_clean_batch_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The router takes each record's checks from the batch scan: no per-record scan (~0.5 us a call) is left."""
    from temporal_siem.parsers import router as router_module

    calls = record_calls(monkeypatch, "scan_record", router_module)
    lines = [orjson.dumps({"EventID": 1, "Image": f"C:\\x{n}.exe", "UtcTime": "2025-01-01 00:00:00.000"}) for n in range(50)]
    result = ParseResult()
    ParserRouter().parse_batch([RawRecord(line, Origin("t", n)) for n, line in enumerate(lines, 1)], result)
    assert len(result.events) == 50 and not result.dead
    assert calls == []


def test_a_large_record_is_scanned_on_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    """A record past BLOCK_RECORD_MAX is not copied into the joined batch: it gets its own scan, the rest one."""
    big = b'{"note": "' + b"x" * (secrets.BLOCK_RECORD_MAX + 10) + b' password=hunter2"}'
    datas = [b'{"a": 1}', big, b'{"token": "abc"}', b"plain text"]
    expected = [secrets.scan_record(data) for data in datas]
    calls = record_calls(monkeypatch, "scan_record", secrets)
    assert secrets.scan_records(datas) == expected
    assert calls == [big]


def test_json_text_with_nothing_to_mask_is_kept_as_written() -> None:
    """redact_text masks JSON text by its structure; when nothing in it is secret it returns the text itself, with
    its spacing and key order, not a re-serialized copy (a masked one is still re-serialized)."""
    with secrets.clean_record(b"", secrets.BOTH):
        text = '{"token_ttl": [],  "b": {"c": 1}}'
        assert secrets.redact_text(text) is text
        masked = secrets.redact_text('{"password": "hunter2", "b": 1}')
    assert "hunter2" not in masked and orjson.loads(masked) == {"password": secrets.REDACTED, "b": 1}
