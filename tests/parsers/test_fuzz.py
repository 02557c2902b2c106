"""No parser raises on hostile input: every record is normalized or dead-lettered with a reason."""

from __future__ import annotations

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from temporal_siem.kernel.records import Origin, RawRecord
from temporal_siem.parsers.registry import PARSERS
from temporal_siem.parsers.router import ParserRouter

json_scalars = st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**64 - 1) | st.floats(allow_nan=False) | st.text(max_size=40)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=6), max_leaves=30)
FORMATS = ["auto", *sorted(PARSERS)]

# Keys the parsers look for, so generated objects reach deep into each parser rather than bouncing off detection.
KNOWN_KEYS = [
    "eventSource", "eventName", "eventID", "eventTime", "errorCode", "userIdentity", "requestParameters", "responseElements",
    "category", "properties", "time", "resultType", "callerIpAddress", "kind", "id", "events", "actor", "ipAddress",
    "uuid", "eventType", "published", "outcome", "client", "target", "type", "request", "response", "auth", "error",
    "operation", "log_id", "logId", "emit_time", "emitTime", "principal", "status", "details", "raw_details",
    "ts", "level", "msg", "logging-call-at", "@timestamp", "event", "source", "user", "tls",
    "detail-type", "detail", "digestEndTime", "logFiles", "Category", "debugContext", "securityContext", "Level",
    "sourceIPAddress", "tlsDetails", "resources", "serviceEventDetails",
    "x_forwarded_for", "xForwardedFor", "rawDetails", "caller_ip_address", "user_email", "version", "service", "wf-namespace",
    "Namespace", "TaskQueue", "Error", "ecs.version", "logs", "kinesis",
]
known_objects = st.dictionaries(st.sampled_from(KNOWN_KEYS), json_values, min_size=1, max_size=12)


def _check(router: ParserRouter, data: bytes) -> None:
    result = router.parse(RawRecord(data, Origin("fuzz", line=1)))
    for dead in result.dead:
        assert dead.reason and dead.origin.source == "fuzz"
    for event in result.events:
        assert isinstance(event, dict)
        orjson.dumps(event, default=str)  # serializable
    assert result.events or result.dead


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(FORMATS), known_objects)
def test_known_shaped_objects(format_name, obj):
    _check(ParserRouter(format_name), orjson.dumps(obj))


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(FORMATS), json_values)
def test_arbitrary_json(format_name, value):
    _check(ParserRouter(format_name), orjson.dumps(value))


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(FORMATS), st.binary(min_size=1, max_size=300))
def test_arbitrary_bytes(format_name, data):
    if not data.strip():
        data = b"x" + data
    _check(ParserRouter(format_name), data)


@settings(max_examples=20, deadline=None)
@given(st.sampled_from(FORMATS), st.integers(min_value=50, max_value=3000))
def test_deep_nesting(format_name, depth):
    _check(ParserRouter(format_name), b"[" * depth + b"]" * depth)
    _check(ParserRouter(format_name), b'{"a":' * depth + b"1" + b"}" * depth)


@settings(max_examples=10, deadline=None)
@given(st.sampled_from(FORMATS), st.sampled_from(KNOWN_KEYS))
def test_huge_strings(format_name, key):
    _check(ParserRouter(format_name), orjson.dumps({key: "A" * 2_000_000, "eventType": "x" * 100_000}))
