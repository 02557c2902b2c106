"""A bounded-time fuzz target over the whole path: raw bytes -> parse -> detect -> encode (every sink encoder).

Records are generated from the hostile classes of issue 15 (depth, long dotted keys, secrets, huge and odd
values, broken JSON) mixed with real samples; whatever comes in, the path raises nothing, every output is
one valid JSON document, and no secret of the corpus survives.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from temporal_siem.detections.factory import build_detector
from temporal_siem.kernel.records import Origin, RawRecord
from temporal_siem.parsers.router import ParserRouter
from temporal_siem.sinks.base import to_json_line
from temporal_siem.sinks.splunk_hec import SplunkHecSink
from temporal_siem.sinks.syslog import SyslogSink
from tests.conftest import SAMPLES
from tests.hostile.records import deep_list, deep_object, dotted_key
from tests.hostile.secret_corpus import KEYED, TEXT, leaks

SAMPLE_LINES = [line for path in sorted(SAMPLES.glob("*/*.jsonl")) for line in path.read_bytes().splitlines()[:3]
                if line.startswith(b"{")]
DETECTOR = build_detector([], builtin_rules=True)
ROUTER = ParserRouter(keep_original=True)
ENCODERS = [to_json_line, SyslogSink(payload="json").format, SyslogSink(payload="cef").format,
            SplunkHecSink(url="http://127.0.0.1:8088", token="token").encode]

secret_values = st.sampled_from([v for _, v in KEYED])
secret_texts = st.sampled_from([t for t, _ in TEXT])
scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70), st.floats(),
                    st.text(max_size=30), secret_texts)
keys = st.one_of(st.text(max_size=12), st.sampled_from([k for k, _ in KEYED]), st.just("raw_details"))
json_values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                           st.dictionaries(keys, inner, max_size=4)), max_leaves=12)


def _dumps(value: Any) -> bytes:
    """Generated JSON as it may arrive: big integers, lone surrogates and non-ASCII written raw."""
    return json.dumps(value, ensure_ascii=False, default=str).encode("utf-8", "surrogatepass")


@st.composite
def hostile_records(draw: Any) -> bytes:
    base = orjson.loads(draw(st.sampled_from(SAMPLE_LINES))) if draw(st.booleans()) else {}
    if not isinstance(base, dict):
        base = {}
    kind = draw(st.sampled_from(["fields", "deep", "dotted", "broken", "text", "array"]))
    if kind == "fields":
        base.update(draw(st.dictionaries(keys, json_values, max_size=5)))
        return _dumps(base)
    if kind == "deep":
        base["raw_details"] = "@@"
        fragment = draw(st.sampled_from([deep_list, deep_object]))(draw(st.integers(min_value=30, max_value=400)))
        return orjson.dumps(base).replace(b'"@@"', fragment.encode())
    if kind == "dotted":
        base["raw_details"] = "@@"
        return orjson.dumps(base).replace(b'"@@"', dotted_key(draw(st.integers(min_value=1, max_value=400))).encode())
    if kind == "broken":
        data = orjson.dumps(base) + draw(secret_texts).encode()
        return data[: draw(st.integers(min_value=0, max_value=len(data)))]
    if kind == "text":
        return ("2025-03-04T10:30:00.000Z\tINFO\tx.go:1\t" + draw(st.text(max_size=80)) + " " + draw(secret_texts)).encode(
            "utf-8", "surrogatepass")
    return _dumps([base, draw(st.dictionaries(keys, json_values, max_size=3))])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(records=st.lists(hostile_records(), min_size=1, max_size=4))
def test_parse_detect_encode_never_fails_and_never_leaks(records: list[bytes]) -> None:
    events: list[dict[str, Any]] = []
    documents: list[dict[str, Any]] = []
    for i, raw in enumerate(records):
        result = ROUTER.parse(RawRecord(raw, Origin("fuzz", line=i)))
        events.extend(result.events)
        documents.extend(d.as_dict() for d in result.dead)
    documents.extend(events)
    documents.extend(DETECTOR.process(events))
    for document in documents:
        for encode in ENCODERS:
            payload = encode(document)
            assert leaks(payload) == [], (document, payload[:300])
        json.loads(to_json_line(document))
