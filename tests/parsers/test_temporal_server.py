"""Temporal server parser: zap JSON, zap console, grpc-go and Go SDK text lines."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from temporal_siem.kernel.flatten import unflatten
from temporal_siem.kernel.records import Origin, RawRecord
from temporal_siem.kernel.schema import validate_event
from temporal_siem.parsers.router import ParserRouter
from temporal_siem.parsers.temporal_server import jwt_cause, tls_cause
from tests.parsers.golden_harness import parse_file, sample_files

ROUTER = ParserRouter()


def parse(record: dict[str, Any] | str) -> dict[str, Any]:
    data = record.encode() if isinstance(record, str) else orjson.dumps(record)
    result = ROUTER.parse(RawRecord(data, Origin("server.log", line=3)))
    assert not result.dead, result.dead[0].as_dict()
    (event,) = result.events
    assert event["event.dataset"] == "temporal.server"
    validate_event(unflatten(event))
    return event


def zap(**fields: Any) -> dict[str, Any]:
    base = {"level": "info", "ts": "2025-03-04T10:15:30.123Z", "msg": "hello", "logging-call-at": "x.go:1", "service": "frontend"}
    return base | {k.replace("_", "-") if k not in ("grpc_code",) else k: v for k, v in fields.items()}


@pytest.mark.parametrize("ts, expected", [
    ("2025-03-04T10:15:30.123Z", "2025-03-04T10:15:30.123000Z"),
    ("2025-03-04T11:15:30.123+0100", "2025-03-04T10:15:30.123000Z"),
    ("2025-03-04T05:15:30.123-0500", "2025-03-04T10:15:30.123000Z"),
    ("2025-03-04T10:15:30.123+00:00", "2025-03-04T10:15:30.123000Z"),
])
def test_zap_timestamps(ts, expected):
    assert parse(zap(ts=ts))["@timestamp"] == expected


def test_unparseable_ts_is_dead_lettered_with_origin():
    result = ROUTER.parse(RawRecord(orjson.dumps(zap(ts="not a time")), Origin("server.log", line=9)))
    assert not result.events and result.dead[0].reason == "no timestamp" and str(result.dead[0].origin) == "server.log:9"


@pytest.mark.parametrize("caller, name, path, line", [
    ("interceptor.go:149", "interceptor.go", None, 149),
    ("/temporal/common/authorization/interceptor.go:149", "interceptor.go", "/temporal/common/authorization/interceptor.go", 149),
    ("weird", "weird", None, None),
])
def test_logging_call_at_basename_and_full_path(caller, name, path, line):
    event = parse(zap(logging_call_at=caller))
    assert event["log.origin.file.name"] == name
    assert event.get("log.origin.file.path") == path and event.get("log.origin.file.line") == line


def test_common_tags():
    event = parse(zap(level="error", msg="service failures", operation="StartWorkflowExecution", grpc_code="Unavailable", error="boom",
                      wf_namespace="payments", wf_namespace_id="ns-1", wf_id="wf", wf_run_id="run", stacktrace="goroutine 1"))
    assert event["event.action"] == "StartWorkflowExecution" and event["temporal.operation"] == "StartWorkflowExecution"
    assert event["error.code"] == "Unavailable" and event["error.message"] == "boom" and event["error.stack_trace"] == "goroutine 1"
    ids = (event["temporal.namespace"], event["temporal.namespace_id"], event["temporal.workflow_id"], event["temporal.run_id"])
    assert ids == ("payments", "ns-1", "wf", "run")
    assert event["service.name"] == "temporal-frontend" and event["temporal.service"] == "frontend"
    assert event["event.outcome"] == "failure" and event["log.level"] == "error"
    assert "temporal_server.stacktrace" not in event  # kept once, in error.stack_trace


@pytest.mark.parametrize("error, cause", [
    ("Token is expired", "jwt_expired"),
    ("token is expired", "jwt_expired"),
    ("TOKEN IS EXPIRED", "jwt_expired"),
    ("token has invalid claims: token is expired", "jwt_expired"),
    ("Token used before issued", "jwt_not_yet_valid"),
    ("Token is not valid yet", "jwt_not_yet_valid"),
    ("crypto/rsa: verification error", "jwt_invalid_signature"),
    ("crypto/ecdsa: verification error", "jwt_invalid_signature"),
    ("signature is invalid", "jwt_invalid_signature"),
    ("signing method HS256 is invalid", "jwt_invalid_signature"),
    ("unexpected signing method: HS256 for algorithm: RS256", "jwt_invalid_signature"),
    ("RSA key not found for key ID: abc", "jwt_key_not_found"),
    ("ECDSA key not found for key ID: abc", "jwt_key_not_found"),
    ('malformed token - no "kid" header', "jwt_malformed"),
    ("token contains an invalid number of segments", "jwt_malformed"),
    ("unexpected authorization token format", "jwt_malformed"),
    ("unexpected name in authorization token", "jwt_malformed"),
    ("audience mismatch", "jwt_audience_mismatch"),
    ("invalid token with no claims", "jwt_invalid_claims"),
    ('unexpected value type of "sub" claim', "jwt_invalid_claims"),
    ("Request unauthorized.", "unauthorized"),
])
def test_authorization_errors(error, cause):
    event = parse(zap(level="error", msg="Authorization error", error=error))
    assert event["event.action"] == "authorization-error"
    assert event["event.category"] == ["authentication"] and event["event.type"] == ["denied"] and event["event.outcome"] == "failure"
    assert event["error.type"] == cause and event["error.message"] == error
    assert (event.get("temporal.auth_method") == "jwt") == (cause != "unauthorized")


def test_jwks_fetch_error_keeps_trailing_space_message():
    event = parse(zap(level="error", msg="error during initial retrieval of token keys: ", error="x509: certificate signed by unknown authority"))
    assert event["event.action"] == "jwks-fetch-error" and event["message"] == "error during initial retrieval of token keys: "


@pytest.mark.parametrize("text, cause", [
    ("tls: failed to verify certificate: x509: certificate signed by unknown authority", "unknown_authority"),
    ('x509: certificate signed by unknown authority (possibly because of "x" while trying to verify candidate authority certificate "c")',
     "unknown_authority"),
    ("remote error: tls: unknown certificate authority", "unknown_authority"),
    ("x509: certificate has expired or is not yet valid: current time 2025-03-04T10:17:12Z is after 2025-03-01T00:00:00Z", "expired"),
    ("x509: certificate has expired or is not yet valid: current time 2025-03-04T10:17:12Z is before 2025-03-05T00:00:00Z", "not_yet_valid"),
    ("x509: certificate has expired or is not yet valid", "expired"),
    ("remote error: tls: expired certificate", "expired"),
    ("remote error: tls: bad certificate", "bad_certificate"),
    ("x509: certificate specifies an incompatible key usage", "bad_certificate"),
    ("remote error: tls: revoked certificate", "revoked"),
    ("x509: certificate is valid for a.example.com, not b.example.com", "name_mismatch"),
    ("tls: client didn't provide a certificate", "no_certificate"),
    ("remote error: tls: certificate required", "no_certificate"),
    ("remote error: tls: alert(116)", "no_certificate"),
    ("remote error: tls: handshake failure", "handshake_failure"),
    ("tls: first record does not look like a TLS handshake", "not_tls"),
    ("connection refused", None),
    ("Token is expired", None),
])
def test_tls_causes(text, cause):
    assert tls_cause(text) == cause


def test_jwt_cause_ignores_unrelated_text():
    assert jwt_cause("context deadline exceeded") is None


def test_internode_tls_failure_in_zap_error():
    error = 'rpc error: code = Unavailable desc = connection error: desc = "error reading server preface: remote error: tls: expired certificate"'
    event = parse(zap(level="warn", msg="Unable to call matching.", address="10.42.0.15:7235", error=error))
    assert event["event.action"] == "tls-handshake-failed" and event["error.type"] == "expired"
    assert event["tls.established"] is False and event["event.reason"] == "local certificate rejected by peer"
    assert event["destination.ip"] == "10.42.0.15" and event["destination.port"] == 7235


def test_tls_success_line():
    event = parse(zap(level="debug", msg="successfully established incoming TLS connection", server_name="fe.example.com", name="worker-cn"))
    assert event["tls.established"] is True and event["tls.client.server_name"] == "fe.example.com"
    assert event["tls.client.x509.subject.common_name"] == ["worker-cn"]


@pytest.mark.parametrize("msg, action, not_after, md5, names", [
    ("certificate with thumbprint=9f2c6a1e4b7d0c3f8a5e2d1b6c9f0a7e has expired on 2025-03-03 23:59:59 +0000 UTC, IsCA=false, "
     "DNS=[frontend.temporal.svc frontend]",
     "certificate-expired", "2025-03-03T23:59:59.000000Z", "9F2C6A1E4B7D0C3F8A5E2D1B6C9F0A7E", ["frontend.temporal.svc", "frontend"]),
    ("certificate with thumbprint=aa will expire on 2025-03-18 12:00:00.5 +0100 CET, IsCA=true, DNS=[]",
     "certificate-expiring", "2025-03-18T11:00:00.500000Z", "AA", None),
])
def test_certificate_expiry(msg, action, not_after, md5, names):
    event = parse(zap(level="warn", msg=msg))
    assert event["event.action"] == action and event["tls.server.x509.not_after"] == not_after
    assert event["tls.server.hash.md5"] == md5 and event.get("tls.server.x509.alternative_names") == names


@pytest.mark.parametrize("msg, action, etype, outcome", [
    ("Register namespace succeeded", "namespace-registered", "creation", "success"),
    ("Update namespace succeeded", "namespace-updated", "change", "success"),
    ("Namespace is deleted.", "namespace-deleted", "deletion", "success"),
    ("Unable to delete namespace from persistence.", "namespace-delete-failed", "deletion", "failure"),
])
def test_namespace_operations(msg, action, etype, outcome):
    event = parse(zap(msg=msg, wf_namespace="orders", wf_namespace_id="id-1"))
    assert (event["event.action"], event["event.type"], event["event.outcome"]) == (action, [etype], outcome)
    assert event["event.category"] == ["configuration"] and event["temporal.namespace"] == "orders"


def test_grpc_server_handshake_ipv6_peer():
    line = ('2025/03/04 10:17:13 INFO: [core] [Server #3] grpc: Server.Serve failed to create ServerTransport: connection error: desc = '
            '"ServerHandshake(\\"[2001:db8::17]:50211\\") failed: tls: failed to verify certificate: x509: certificate signed by unknown authority"')
    event = parse(line)
    assert event["source.ip"] == "2001:db8::17" and event["source.port"] == 50211
    assert event["event.provider"] == "grpc-go" and event["error.type"] == "unknown_authority"
    assert event["error.message"] == "tls: failed to verify certificate: x509: certificate signed by unknown authority"
    assert event["event.category"] == ["network"] and event["event.type"] == ["connection", "denied"]


def test_old_grpc_warning_prefix_before_date():
    event = parse('WARNING: 2021/06/01 08:00:00 grpc: Server.Serve failed to complete security handshake from "192.0.2.61:60001": EOF')
    assert event["@timestamp"] == "2021-06-01T08:00:00.000000Z" and event["log.level"] == "warn"
    assert event["source.ip"] == "192.0.2.61" and event["error.type"] == "handshake_failure"


def test_sdk_worker_line():
    event = parse('2025/03/04 10:18:05 WARN  Failed to poll for task. Namespace payments-prod TaskQueue q WorkerID 1@h@ Error connection error: '
                  'desc = "error reading server preface: remote error: tls: unknown certificate authority"')
    assert event["event.provider"] == "temporal-sdk" and event["temporal.namespace"] == "payments-prod"
    assert event["error.type"] == "unknown_authority" and event["event.reason"] == "local certificate rejected by peer"


def test_console_format():
    event = parse('2025-03-04T10:30:05.250+0100\tERROR\tauthorization/interceptor.go:149\tAuthorization error\t'
                  '{"service": "frontend", "error": "Token is expired"}')
    assert event["@timestamp"] == "2025-03-04T09:30:05.250000Z" and event["log.level"] == "error"
    assert event["error.type"] == "jwt_expired" and event["log.origin.file.line"] == 149
    assert event["temporal_server.format"] == "console"


def test_console_format_without_fields_or_caller():
    event = parse("2025-03-04T10:30:05.250Z\tINFO\tRegister namespace succeeded")
    assert event["event.action"] == "namespace-registered"


def test_bearer_tokens_redacted_everywhere():
    event = parse(zap(level="error", msg="Authorization error for Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlcw",
                      error="bad header Authorization: Bearer abcdefghijklmnopqrstuvwxyz", token="raw-secret-value"))
    text = orjson.dumps(event).decode()
    assert "eyJhbGciOiJSUzI1NiJ9" not in text and "abcdefghijklmnopqrstuvwxyz" not in text and "raw-secret-value" not in text


@pytest.mark.parametrize("line", ["hello world", "<134>Mar  4 10:00:00 host app: something"])
def test_unrelated_text_is_dead_lettered(line):
    result = ROUTER.parse(RawRecord(line.encode(), Origin("x.log", line=2)))
    assert not result.events and result.dead[0].reason == "no parser accepts the text line"


def test_wrong_typed_values_do_not_crash():
    event = parse(zap(msg=["not", "a", "string"], service={"x": 1}, error=5, logging_call_at=None, address=["1.2.3.4"]))
    assert event["error.message"] == "5" and "temporal.service" not in event


def test_every_sample_validates_against_the_schema():
    total = 0
    for path in sample_files("temporal_server"):
        events, dead = parse_file(path)
        assert not dead
        for event in events:
            validate_event(event)
        total += len(events)
    assert total >= 40


def test_sdk_slog_json_tls_failure():
    event = parse({"time": "2025-03-04T10:21:00.412345678Z", "level": "WARN", "msg": "Failed to poll for task.", "Namespace": "payments-prod",
                   "TaskQueue": "q", "WorkerID": "1@h@", "Error": 'connection error: desc = "transport: authentication handshake failed: '
                   'tls: failed to verify certificate: x509: certificate signed by unknown authority"'})
    assert event["@timestamp"] == "2025-03-04T10:21:00.412345Z" and event["log.level"] == "warn"
    assert event["event.provider"] == "temporal-sdk" and event["temporal.namespace"] == "payments-prod"
    assert event["error.type"] == "unknown_authority" and event["tls.established"] is False
    assert event["temporal_server.TaskQueue"] == "q" and event["temporal_server.format"] == "slog-json"


def test_sdk_slog_logfmt_line():
    event = parse('time=2025-03-04T10:21:05.001+01:00 level=ERROR msg="Failed to poll for task." Namespace=payments-prod TaskQueue=q '
                  'WorkerID=2@h@ Error="connection error: desc = \\"error reading server preface: remote error: tls: expired certificate\\""')
    assert event["@timestamp"] == "2025-03-04T09:21:05.001000Z" and event["event.outcome"] == "failure"
    assert event["message"] == "Failed to poll for task." and event["error.type"] == "expired"
    assert event["event.reason"] == "local certificate rejected by peer" and event["temporal_server.WorkerID"] == "2@h@"


def test_logfmt_without_sdk_keys_is_not_ours():
    result = ROUTER.parse(RawRecord(b'time=2025-03-04T10:21:05Z level=INFO msg="some other app"', Origin("x.log", line=1)))
    assert not result.events and result.dead[0].reason == "no parser accepts the text line"


@pytest.mark.parametrize("error, cause, key", [
    ("Unrecognized key ID key-2024-07. Current key ID is key-2025-01.", "codec_unknown_key", "key-2024-07"),
    ("failed to decode: no encryption key id", "codec_missing_key_id", None),
    ("cipher: message authentication failed", "codec_decrypt_failed", None),
])
def test_codec_failures(error, cause, key):
    event = parse({"time": "2025-03-04T10:21:15Z", "level": "ERROR", "msg": "Activity error.", "Namespace": "p", "Error": error})
    assert event["error.type"] == cause and event.get("temporal.key.id") == key and event["event.outcome"] == "failure"
    text = parse(f"2025/03/04 10:18:00 ERROR Activity error. Namespace p Error {error}")
    assert text["error.type"] == cause and text.get("temporal.key.id") == key


def test_dev_server_slog_lines():
    event = parse('time=2025-03-04T10:30:00.000Z level=INFO msg="Register namespace succeeded" service=frontend wf-namespace=default '
                  'logging-call-at=namespace_handler.go:274')
    assert event["event.action"] == "namespace-registered" and event["event.provider"] == "temporal-server"
    assert event["temporal.namespace"] == "default" and event["log.origin.file.line"] == 274
    json_event = parse({"time": "2025-03-04T10:30:00Z", "level": "ERROR", "msg": "Authorization error", "service": "frontend", "error": "Token is expired"})
    assert json_event["error.type"] == "jwt_expired" and json_event["event.provider"] == "temporal-server"


# -- ReDoS (issue 15 item 2): the logfmt pair scanner must be linear in the line ---------------------------------------

_HOSTILE_LINES = {
    "word run": "time=2025-03-04T10:15:30Z level=WARN msg=x Namespace=default " + "a" * 60_000,
    "unterminated escaped quotes": "time=2025-03-04T10:15:30Z level=WARN msg=x Namespace=default " + 'k="\\" ' * 10_000,
    "keys without values": "time=2025-03-04T10:15:30Z level=WARN msg=x Namespace=default " + "a.b-c" * 12_000 + "=",
}


@pytest.mark.parametrize("name", sorted(_HOSTILE_LINES))
def test_logfmt_hostile_line_parses_in_bounded_time(name):
    """Run in a child so a regression fails after a bound instead of stalling the suite (the quadratic scan took > 20 s)."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from temporal_siem.kernel.records import Origin, RawRecord\n"
        "from temporal_siem.parsers.router import ParserRouter\n"
        "line = sys.stdin.read()\n"
        "result = ParserRouter().parse(RawRecord(line.encode(), Origin('x.log', line=1)))\n"
        "print(len(result.events))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], input=_HOSTILE_LINES[name], capture_output=True, text=True, timeout=15)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "1"


def test_logfmt_pairs_keep_their_values():
    from temporal_siem.parsers.temporal_server import _logfmt

    fields = _logfmt('time=t level=INFO msg="a \\"q\\" b" k.e-y=v empty= bare word x="unterminated tail')
    assert fields["msg"] == 'a "q" b' and fields["k.e-y"] == "v" and fields["empty"] == ""
    assert "bare" not in fields and fields["x"] == '"unterminated'


# CPython 3.11.0-3.11.4 mis-match a possessive repeat of a group that backtracks inside (gh-100061, gh-106052;
# fixed in 3.11.5): ``(?:[\w$]*+\.)*+`` failed on every dotted Java class name there, so Debian 12's stock
# python3 (3.11.2) dead-lettered netty's "Caused by: io.netty...Exception" lines. Groups are atomic instead.
@pytest.mark.parametrize("line, cls", [
    ("Caused by: io.netty.handler.codec.DecoderException: javax.net.ssl.SSLHandshakeException: Received fatal alert: bad_certificate",
     "io.netty.handler.codec.DecoderException"),
    ("javax.net.ssl.SSLHandshakeException: PKIX path building failed", "javax.net.ssl.SSLHandshakeException"),
    ('Exception in thread "main" io.grpc.StatusRuntimeException: UNAVAILABLE: io exception', "io.grpc.StatusRuntimeException"),
])
def test_java_exception_lines_parse_on_every_311_release(line: str, cls: str) -> None:
    from temporal_siem.parsers.temporal_server import _EXCEPTION_LINE

    match = _EXCEPTION_LINE.match(line)
    assert match is not None and match.group("cls") == cls
    event = parse(line)  # an event, not a dead letter
    assert cls in str(event.get("error.message"))


@pytest.mark.parametrize("pattern, text, expected", [
    ("_LOGFMT_QUOTED", '"a \\" b" rest', '"a \\" b"'),
    ("_RUST_TARGET", "h2::proto::connection: connection error", "h2::proto::connection: "),
])
def test_grouped_repeats_match_on_every_311_release(pattern: str, text: str, expected: str) -> None:
    import temporal_siem.parsers.temporal_server as module

    found = getattr(module, pattern).search(text)
    assert found is not None and found.group(0) == expected
