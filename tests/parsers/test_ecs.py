"""ECS passthrough: kept as is, flattened, loosely validated."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from temporal_siem.kernel.records import Origin, RawRecord
from temporal_siem.kernel.schema import validate_event
from temporal_siem.parsers.router import ParserRouter
from tests.parsers.golden_harness import parse_file, sample_files

ROUTER = ParserRouter()


def parse(record: dict[str, Any], fmt: str = "auto") -> dict[str, Any]:
    router = ROUTER if fmt == "auto" else ParserRouter(fmt)
    result = router.parse(RawRecord(orjson.dumps(record), Origin("ecs.jsonl", line=1)))
    assert not result.dead, result.dead[0].as_dict()
    (event,) = result.events
    return event


def test_nested_and_dotted_are_the_same_event():
    nested = parse({"@timestamp": "2025-09-01T12:00:00Z", "event": {"id": "e1", "action": "a", "category": ["network"]}, "source": {"ip": "192.0.2.1"}})
    dotted = parse({"@timestamp": "2025-09-01T12:00:00Z", "event.id": "e1", "event.action": "a", "event.category": ["network"], "source.ip": "192.0.2.1"})
    for event in (nested, dotted):
        event.pop("event.ingested")
    assert nested == dotted
    assert nested["event.dataset"] == "ecs" and nested["event.kind"] == "event"


def test_invalid_enum_values_are_kept():
    event = parse({"@timestamp": "2025-09-01T12:00:00Z", "event": {"category": "lateral_movement", "type": ["weird"], "outcome": "maybe", "kind": "alert"}})
    assert event["event.category"] == ["lateral_movement"] and event["event.type"] == ["weird"]
    assert event["event.outcome"] == "maybe" and event["event.kind"] == "alert"


def test_normalizations():
    event = parse({"@timestamp": "2025-09-01T14:00:00.5+02:00", "ecs": {"version": "8.11.0"}, "event": {"id": 42},
                   "error": {"code": 400}, "source": {"ip": "proxy.example.com"}, "destination": {"ip": "[2001:db8::1]:443"}})
    assert event["@timestamp"] == "2025-09-01T12:00:00.500000Z"
    assert event["event.id"] == "42" and event["error.code"] == "400"
    assert "source.ip" not in event and event["source.address"] == "proxy.example.com"
    assert event["destination.ip"] == "2001:db8::1"


def test_ecs_version_without_timestamp_is_dead_lettered():
    result = ROUTER.parse(RawRecord(b'{"ecs.version":"8.0.0","message":"x"}', Origin("ecs.jsonl", line=3)))
    assert not result.events and result.dead[0].reason == "no timestamp" and str(result.dead[0].origin) == "ecs.jsonl:3"


def test_secrets_redacted():
    event = parse({"@timestamp": "2025-09-01T12:00:00Z", "event": {"action": "x"}, "user": {"password": "hunter2"},
                   "message": "Authorization: Bearer abcdefghijklmnopqrstuvwxyz012345"})
    assert event["user.password"] == "[REDACTED]" and "abcdefghijklmnop" not in event["message"]


@pytest.mark.parametrize("record", [{"@timestamp": "2025-09-01T12:00:00Z", "msg": "plain"}, {"event": {"action": "x"}}])
def test_not_ecs_falls_through_to_json(record):
    assert parse(record)["event.dataset"] == "json"


def test_every_sample_validates():
    for path in sample_files("ecs"):
        events, dead = parse_file(path)
        assert not dead and events
        for event in events:
            validate_event(event)


def _filebeat(message: str, **extra: Any) -> dict[str, Any]:
    return {"@timestamp": "2025-09-02T08:00:00.120Z", "message": message, "ecs": {"version": "8.0.0"},
            "log": {"offset": 10, "file": {"path": "/var/log/x.log"}}, "host": {"name": "vault-1"},
            "agent": {"type": "filebeat", "version": "8.15.0"}, "input": {"type": "filestream"}} | extra


def test_shipped_vault_line_is_opened():
    line = orjson.dumps({"time": "2025-09-02T08:00:00.000123Z", "type": "request", "auth": {"display_name": "approle-ci"},
                         "request": {"id": "r-1", "operation": "update", "mount_type": "transit", "path": "transit/decrypt/k",
                                     "remote_address": "10.0.0.9"}}).decode()
    event = parse(_filebeat(line))
    assert event["event.dataset"] == "hashicorp_vault.audit" and event["event.id"] == "r-1:request" and event["temporal.action"] == "transit.decrypt"
    assert event["@timestamp"] == "2025-09-02T08:00:00.000123Z"  # the record's own time, not the shipper's
    assert event["host.name"] == "vault-1" and event["log.file.path"] == "/var/log/x.log" and event["agent.type"] == "filebeat"


def test_shipped_text_line_is_opened():
    line = ('2025/09/02 08:00:02 INFO: [core] grpc: Server.Serve failed to create ServerTransport: connection error: '
            'desc = "ServerHandshake(\\"203.0.113.80:44110\\") failed: EOF"')
    event = parse(_filebeat(line))
    assert event["event.dataset"] == "temporal.server" and event["source.ip"] == "203.0.113.80"


def test_unclaimed_or_already_parsed_wrappers_stay_ecs():
    assert parse(_filebeat("sshd[1]: Accepted publickey for deploy"))["event.dataset"] == "ecs"
    parsed = _filebeat('{"level":"error","ts":"2025-09-02T08:00:01Z","msg":"Authorization error","service":"frontend"}',
                       event={"action": "already-parsed", "dataset": "x"})
    assert parse(parsed)["event.action"] == "already-parsed"
    broken = _filebeat('{"time":"never","type":"request","request":{}}')  # claimed by Vault, fails there: kept as shipped
    assert parse(broken)["message"].startswith('{"time"')


def test_shipper_without_ecs_block():
    record = _filebeat('{"level":"info","ts":"2025-09-02T08:00:01Z","msg":"Register namespace succeeded","service":"frontend","logging-call-at":"a.go:1"}')
    del record["ecs"]
    assert parse(record)["event.action"] == "namespace-registered"
