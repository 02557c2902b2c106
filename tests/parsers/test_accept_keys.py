"""``Parser.accept_keys`` is a sound promise, and the router's key gate chooses the parser the full chain would.

The router skips every gated parser at once for a record with none of their keys (``ParserRouter._choose``). That
is only correct while each ``accepts`` says no to a record without one of its ``accept_keys``; these tests hold
every parser to it on every JSON record under ``samples/`` and on generated records built from the keys and
values the ``accepts`` functions read, and compare the gated choice with the plain walk of the chain.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from temporal_siem.kernel.records import RecordError
from temporal_siem.parsers.base import Parser
from temporal_siem.parsers.envelopes import unwrap_all
from temporal_siem.parsers.registry import PARSERS, detection_chain, get_parser
from temporal_siem.parsers.router import ParserRouter, decode

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


def sample_records() -> list[dict[str, Any]]:
    """Every JSON object of every sample file (lines and whole-file documents, envelopes unwrapped)."""
    records: list[dict[str, Any]] = []
    for path in sorted(SAMPLES.rglob("*.json*")):
        data = path.read_bytes()
        chunks = [data] if path.suffix == ".json" else data.splitlines()
        for chunk in chunks:
            try:
                decoded = decode(chunk)
                elements = unwrap_all(decoded) if not isinstance(decoded, str) else []
            except RecordError:
                continue
            records.extend(element for element, _ in elements if isinstance(element, dict))
    return records


RECORDS = sample_records()
GATED = [get_parser(name) for name in PARSERS if get_parser(name).accept_keys is not None]


def full_walk(record: dict[str, Any]) -> Parser | None:
    """The chain as it was before the gate: every ``accepts`` in order."""
    return next((parser for parser in detection_chain() if parser.accepts(record)), None)


def test_the_samples_cover_every_gated_parser() -> None:
    chosen = {type(full_walk(record)).__name__ for record in RECORDS}
    assert {type(parser).__name__ for parser in GATED} <= chosen
    assert len(RECORDS) > 100


@pytest.mark.parametrize("parser", GATED, ids=lambda parser: parser.name)
def test_a_sample_without_the_parsers_keys_is_never_accepted(parser: Parser) -> None:
    keys = parser.accept_keys or frozenset()
    accepted = [record for record in RECORDS if parser.accepts(record)]
    assert accepted, f"no sample is {parser.name}"
    for record in RECORDS:
        stripped = {key: value for key, value in record.items() if key not in keys}
        assert not parser.accepts(stripped), (parser.name, sorted(record)[:12])


def test_the_gate_chooses_what_the_full_chain_chooses_on_every_sample() -> None:
    router = ParserRouter()
    for record in RECORDS:
        assert router._choose(record, None) is full_walk(record)


def test_a_plain_json_record_skips_every_gated_parser() -> None:
    router = ParserRouter()
    windows = {"EventID": 1, "Channel": "Microsoft-Windows-Sysmon/Operational", "Image": "C:\\Windows\\cmd.exe"}
    assert windows.keys().isdisjoint(router._gate_keys)
    assert router._choose(windows, None) is get_parser("json")
    assert router._after_gate == [get_parser("json")]


# Keys and values the accepts functions read, so that generated records reach their every branch.
KEYS = sorted({key for parser in GATED for key in parser.accept_keys or ()} | {
    "eventName", "eventTime", "eventVersion", "logFiles", "detail-type", "agent", "message", "event", "event.kind",
    "event.action", "event.dataset", "event.category", "status", "userPrincipalName", "appId", "events", "name",
    "eventType", "published", "request", "time", "log_id", "logId", "level", "timestamp", "stack_trace", "fields",
    "ts", "service", "logging-call-at", "wf-namespace", "grpc_code", "Namespace", "TaskQueue", "WorkerID", "other",
})
SCALARS = st.one_of(
    st.sampled_from(["aws.kms", "SignInLogs", "ADFSSignInLogs", "admin#reports#activity", "io.temporal.worker", "io.grpc.x",
                     "temporal_sdk_core", "request", "response", "info", "type.googleapis.com/ccc_hosted_reporting.ActivityProto",
                     "x509: certificate signed by unknown authority", ""]),
    st.text(max_size=6), st.integers(), st.booleans(), st.none(),
)
NESTED = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=2),
        st.dictionaries(st.sampled_from(["applicationName", "metadata", "event", "@type", "activityId", "version", "x"]), inner, max_size=3),
    ),
    max_leaves=6,
)


@settings(max_examples=600, deadline=None)
@given(st.dictionaries(st.sampled_from(KEYS), NESTED, max_size=8))
def test_generated_records_keep_the_promise_and_the_choice(record: dict[str, Any]) -> None:
    for parser in GATED:
        if parser.accepts(record):
            assert not record.keys().isdisjoint(parser.accept_keys or ()), parser.name
    assert ParserRouter()._choose(record, None) is full_walk(record)


T = "2026-12-06T01:00:00Z"
#: One smallest accepted record per branch of each ``accepts`` (the samples do not reach every branch).
BRANCHES: list[tuple[str, dict[str, Any]]] = [
    ("aws_cloudtrail", {"eventSource": "kms.amazonaws.com", "eventName": "Decrypt", "eventTime": T}),
    ("aws_cloudtrail", {"eventSource": "kms.amazonaws.com", "eventName": "Decrypt", "eventVersion": "1.08"}),
    ("aws_cloudtrail", {"digestEndTime": T, "logFiles": []}),
    ("aws_cloudtrail", {"source": "aws.kms", "detail-type": "KMS CMK Rotation"}),
    ("entra_signin", {"category": "SignInLogs"}),
    ("entra_signin", {"Category": "ADFSSignInLogs"}),
    ("entra_signin", {"createdDateTime": T, "status": {}, "appId": "a"}),
    ("google_workspace", {"kind": "admin#reports#activity"}),
    ("google_workspace", {"id": {"applicationName": "login"}, "events": []}),
    ("google_workspace", {"protoPayload": {"metadata": {"event": [], "@type": "type.googleapis.com/ccc_hosted_reporting.ActivityProto"}}}),
    ("okta", {"uuid": "u", "eventType": "user.session.start", "published": T}),
    ("vault_audit", {"type": "request", "request": {}, "time": T}),
    ("temporal_cloud_audit", {"operation": "CreateNamespace", "log_id": "1"}),
    ("temporal_cloud_audit", {"operation": "CreateNamespace", "logId": "1"}),
    ("temporal_server", {"logger_name": "io.temporal.worker", "level": "WARN", "@timestamp": T}),
    ("temporal_server", {"loggerName": "io.grpc.netty", "level": "WARN", "timestamp": T}),
    ("temporal_server", {"target": "temporal_sdk_core", "fields": {}, "timestamp": T}),
    ("temporal_server", {"msg": "m", "level": "info", "ts": T, "service": "frontend"}),
    ("temporal_server", {"msg": "m", "level": "INFO", "time": T, "TaskQueue": "q"}),
    ("ecs", {"ecs.version": "8.11.0"}),
    ("ecs", {"ecs": {"version": "8.11.0"}}),
    ("ecs", {"agent": {"type": "filebeat"}, "message": "m", "@timestamp": T}),
    ("ecs", {"@timestamp": T, "event.kind": "event"}),
]


@pytest.mark.parametrize(("name", "record"), BRANCHES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(BRANCHES)])
def test_every_accepting_branch_carries_one_of_the_keys(name: str, record: dict[str, Any]) -> None:
    parser = get_parser(name)
    assert parser.accepts(record)
    assert not record.keys().isdisjoint(parser.accept_keys or ()), f"{name} accepts a record its accept_keys would skip"
    assert ParserRouter()._choose(record, None) is full_walk(record) is parser
