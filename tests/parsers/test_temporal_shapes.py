"""Temporal logs as deployments write them (issue 14): SDK workers of every language, collectors' prefixes, CLI output.

Each line's shape follows what people paste from real deployments (names, addresses and times changed).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from temporal_siem.kernel.flatten import unflatten
from temporal_siem.kernel.records import Origin, RawRecord
from temporal_siem.kernel.schema import validate_event
from temporal_siem.parsers.envelopes import strip_collector_prefix
from temporal_siem.parsers.router import ParserRouter

SERVER_JSON = ('{"level":"error","ts":"2025-03-04T10:15:30.123Z","msg":"Authorization error","service":"frontend",'
               '"error":"Token is expired","logging-call-at":"/temporal/common/authorization/interceptor.go:149"}')
GO_TLS = ('rpc error: code = Unavailable desc = connection error: desc = "transport: authentication handshake failed: '
          'tls: failed to verify certificate: x509: certificate signed by unknown authority"')


def parse_all(*lines: str | dict[str, Any]) -> list[dict[str, Any]]:
    router = ParserRouter()
    events: list[dict[str, Any]] = []
    for number, line in enumerate(lines, 1):
        data = line.encode() if isinstance(line, str) else orjson.dumps(line)
        result = router.parse(RawRecord(data, Origin("worker.log", line=number)))
        assert not result.dead, result.dead[0].as_dict()
        for event in result.events:
            assert event["event.dataset"] == "temporal.server"
            validate_event(unflatten(event))
        events.extend(result.events)
    return events


def parse(line: str | dict[str, Any]) -> dict[str, Any]:
    (event,) = parse_all(line)
    return event


# (line, expected error.type, expected event.reason or None) -- TLS failures in every shape
TLS_LINES = [
    # Rust core SDK (Python / TypeScript / .NET / Ruby workers): tracing fmt lines
    ('2025-03-04T10:15:30.123456Z  WARN temporal_client::retry: gRPC call poll_workflow_task_queue retried 5 times '
     'error=Status { code: Unavailable, message: "error trying to connect: invalid peer certificate: UnknownIssuer", '
     'source: Some(tonic::transport::Error(Transport, hyper::Error(Connect, Custom { kind: InvalidData, error: InvalidCertificate(UnknownIssuer) }))) }',
     "unknown_authority", "peer certificate rejected"),
    ('2025-03-04T10:15:31.000001Z ERROR temporal_sdk_core::worker: Worker poll failed error=Status { code: Unavailable, '
     'message: "error trying to connect: received fatal alert: UnknownCA", source: None }',
     "unknown_authority", "local certificate rejected by peer"),
    ('2025-03-04T10:15:32.5Z  WARN poll_workflow_task{task_queue="payments"}: temporal_client::retry: retrying '
     'error=Status { code: Unavailable, message: "tls handshake eof: invalid peer certificate: Expired" }',
     "expired", "peer certificate rejected"),
    ('2025-03-04T10:15:33Z ERROR temporal_client: client connect failed error=tonic::transport::Error(Transport, '
     'Ssl(Error { code: ErrorCode(1), cause: Some(Ssl(ErrorStack([Error { code: 167772294, library: "SSL routines", '
     'function: "tls_post_process_server_certificate", reason: "certificate verify failed", file: "ssl/statem/statem_clnt.c" }]))) }))',
     "bad_certificate", "peer certificate rejected"),
    ('RuntimeError: Failed client connect: Server connection error: tonic::transport::Error(Transport, hyper::Error(Connect, '
     'Custom { kind: InvalidData, error: InvalidCertificate(UnknownIssuer) }))', "unknown_authority", None),
    ('grpc._channel._InactiveRpcError: <_InactiveRpcError of RPC that terminated with: status = StatusCode.UNAVAILABLE '
     'details = "failed to connect to all addresses; last error: UNKNOWN: ipv4:10.0.0.5:7233: Ssl handshake failed: '
     'SSL_ERROR_SSL: error:1000007d:SSL routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED"', "bad_certificate", None),
    # Java SDK: log line, then the exception lines under it
    ('2025-03-04 10:15:34.120 [Workflow Poller taskQueue="payments", namespace="payments-prod": 1] WARN  '
     'i.t.internal.worker.Poller - Failure in poller thread: io.grpc.StatusRuntimeException: UNAVAILABLE: io exception',
     None, None),
    ('Caused by: javax.net.ssl.SSLHandshakeException: PKIX path building failed: sun.security.provider.certpath.'
     'SunCertPathBuilderException: unable to find valid certification path to requested target', "unknown_authority", None),
    ('Caused by: io.netty.handler.codec.DecoderException: javax.net.ssl.SSLHandshakeException: Received fatal alert: bad_certificate',
     "bad_certificate", "local certificate rejected by peer"),
    ('Caused by: java.security.cert.CertificateExpiredException: NotAfter: Sat Mar 01 00:00:00 UTC 2025', "expired", None),
    ('javax.net.ssl.SSLHandshakeException: No subject alternative names matching IP address 10.0.0.5 found', "name_mismatch", None),
    ('2025-03-04 10:15:35,002 ERROR [main] io.temporal.serviceclient.WorkflowServiceStubsImpl - '
     'javax.net.ssl.SSLHandshakeException: Received fatal alert: certificate_expired', "expired", "local certificate rejected by peer"),
    ('2025-03-04T10:15:36.001+01:00  WARN 4242 --- [  main] i.t.internal.worker.Poller               : '
     'Failure in poller: io.grpc.StatusRuntimeException: UNAVAILABLE: io exception javax.net.ssl.SSLHandshakeException: '
     'Received fatal alert: unknown_ca', "unknown_authority", "local certificate rejected by peer"),
    # zap console with spaces instead of tabs, and without a timestamp
    ('2025-03-04T10:15:37.000Z    ERROR    rpc/interceptor/telemetry.go:412    service failures    '
     '{"operation": "PollWorkflowTaskQueue", "error": "' + GO_TLS.replace('"', '\\"') + '"}', "unknown_authority", None),
    ('ERROR\tFailed to poll for task.\t{"Namespace": "default", "error": "connection error: desc = \\"transport: authentication '
     'handshake failed: tls: failed to verify certificate: x509: certificate has expired or is not yet valid: current time '
     '2025-03-04T10:15:38Z is after 2025-03-01T00:00:00Z\\""}', "expired", None),
    # temporal CLI / tctl / tcld
    ('Error: failed reaching server: last connection error: connection error: desc = "transport: authentication handshake '
     'failed: tls: failed to verify certificate: x509: certificate has expired or is not yet valid: current time '
     '2025-03-04T10:15:39Z is after 2025-03-01T00:00:00Z"', "expired", None),
    ('time=2025-03-04T10:15:40.000Z level=ERROR msg="failed reaching server: connection error: desc = \\"error reading server '
     'preface: remote error: tls: bad certificate\\""', "bad_certificate", "local certificate rejected by peer"),
    ('tcld: error: rpc error: code = Unavailable desc = connection error: desc = "transport: authentication handshake failed: '
     'x509: certificate is valid for *.tmprl.cloud, not payments.example.com"', "name_mismatch", None),
    # TypeScript SDK DefaultLogger, Python logging's default format, Ruby's Logger, .NET console logging
    ('2025-03-04T10:15:42.000Z [WARN] Failed to poll for task { sdkComponent: \'worker\', taskQueue: \'payments\', error: '
     '\'TransportError: tonic::transport::Error(Transport, hyper::Error(Connect, Custom { kind: InvalidData, error: '
     'InvalidCertificate(UnknownIssuer) }))\' }', "unknown_authority", None),
    ('WARNING:temporalio.worker._workflow:Failed polling workflow task: received fatal alert: BadCertificate',
     "bad_certificate", "local certificate rejected by peer"),
    ('W, [2025-03-04T10:15:43.123456 #4242]  WARN -- temporalio: Worker poll failed: invalid peer certificate: Expired',
     "expired", None),
    ('warn: Temporalio.Worker.TemporalWorker[0] Poll failed: The remote certificate is invalid according to the validation '
     'procedure: RemoteCertificateNameMismatch', "name_mismatch", None),
    # Node (TypeScript SDK's own connection) and .NET wordings
    ('2025-03-04T10:15:41.000Z ERROR temporal_client::raw: connect failed error=Error: unable to verify the first certificate',
     "unknown_authority", None),
]


@pytest.mark.parametrize("line, cause, reason", TLS_LINES, ids=[f"line{i}" for i in range(len(TLS_LINES))])
def test_tls_failures_in_every_shape(line, cause, reason):
    event = parse(line)
    if cause is None:
        assert event.get("tls.established") is not False
        return
    assert event["error.type"] == cause, event
    assert event["tls.established"] is False and event["event.action"] == "tls-handshake-failed"
    assert event["event.outcome"] == "failure"
    if reason:
        assert event["event.reason"] == reason


def test_rust_tracing_fields():
    event = parse(TLS_LINES[0][0])
    assert event["@timestamp"] == "2025-03-04T10:15:30.123456Z" and event["log.level"] == "warn"
    assert event["log.logger"] == "temporal_client::retry" and event["event.provider"] == "temporal-sdk"
    assert event["message"] == "gRPC call poll_workflow_task_queue retried 5 times"
    assert event["error.message"].startswith("Status { code: Unavailable")
    assert event["temporal_server.format"] == "rust-tracing"


def test_java_lines_and_exception_lines_under_them_share_the_time():
    header, caused = TLS_LINES[6][0], TLS_LINES[7][0]
    frame = "\tat io.grpc.stub.ClientCalls.toStatusRuntimeException(ClientCalls.java:271)"
    more = "\t... 27 more"
    first, second, third, fourth = parse_all(header, frame, caused, more)
    assert first["@timestamp"] == "2025-03-04T10:15:34.120000Z" and first["log.logger"] == "i.t.internal.worker.Poller"
    assert first["temporal.namespace"] == "payments-prod" and first["temporal_server.format"] == "java-text"
    assert second["event.action"] == "java-stack-frame" and fourth["event.action"] == "java-stack-frame"
    assert third["@timestamp"] == first["@timestamp"] and third["temporal_server.time_source"] == "previous record"
    assert third["error.type"] == "unknown_authority"


def test_line_without_any_time_uses_receive_time_and_says_so():
    from temporal_siem.parsers.temporal_server import TemporalServerParser

    line = TLS_LINES[15][0]
    (event,) = TemporalServerParser().parse(line, line.encode())
    assert event["temporal_server.time_source"] == "received" and event["event.provider"] == "temporal-cli"


def test_logback_time_of_day_only():
    events = parse_all(SERVER_JSON, "10:15:42.007 [main] ERROR io.temporal.internal.worker.Poller - Failure in poller thread")
    assert events[1]["@timestamp"] == "2025-03-04T10:15:42.007000Z" and events[1]["log.level"] == "error"


def test_logstash_json_with_stack_trace():
    record = {"@timestamp": "2025-03-04T11:15:43.123+01:00", "@version": "1", "message": "Failure in poller thread",
              "logger_name": "io.temporal.internal.worker.Poller", "thread_name": "Workflow Poller", "level": "WARN",
              "level_value": 30000, "Namespace": "payments-prod",
              "stack_trace": "io.grpc.StatusRuntimeException: UNAVAILABLE: io exception\n\tat io.grpc.stub.ClientCalls.toStatusRuntimeException"
                             "(ClientCalls.java:271)\nCaused by: javax.net.ssl.SSLHandshakeException: PKIX path building failed: "
                             "sun.security.provider.certpath.SunCertPathBuilderException: unable to find valid certification path to "
                             "requested target\n\t... 27 more"}
    event = parse(record)
    assert event["@timestamp"] == "2025-03-04T10:15:43.123000Z" and event["error.type"] == "unknown_authority"
    assert event["temporal.namespace"] == "payments-prod" and event["event.provider"] == "temporal-sdk"
    assert "ClientCalls.java" not in event["error.message"] and "ClientCalls.java" in event["error.stack_trace"]


def test_rust_json_tracing():
    record = {"timestamp": "2025-03-04T10:15:44.000Z", "level": "WARN", "target": "temporal_client::retry",
              "fields": {"message": "retrying", "error": "Status { code: Unavailable, message: \"invalid peer certificate: UnknownIssuer\" }"}}
    event = parse(record)
    assert event["error.type"] == "unknown_authority" and event["log.logger"] == "temporal_client::retry"


@pytest.mark.parametrize("prefix", [
    "temporal  | ",
    "temporal-frontend-1  | ",
    "2025-03-04T10:15:30.123456789Z ",
    "2025-03-04T10:15:30.123456789Z stdout F ",
    "[pod/temporal-frontend-7d9c/frontend] ",
    "Mar  4 10:15:30 host-1 temporal-server[1234]: ",
    "<134>Mar  4 10:15:30 host-1 temporal-server[1234]: ",
    "<134>1 2025-03-04T10:15:30.123Z host-1 temporal-server 1234 - - ",
    "2025-03-04T10:15:30+0000 host-1 temporal-server[1234]: ",
])
def test_server_json_behind_collector_prefixes(prefix):
    event = parse(prefix + SERVER_JSON)
    assert event["event.action"] == "authorization-error" and event["error.type"] == "jwt_expired"
    assert event["@timestamp"] == "2025-03-04T10:15:30.123000Z"


def test_text_line_behind_a_prefix():
    event = parse("temporal  | " + TLS_LINES[0][0])
    assert event["error.type"] == "unknown_authority"


def test_other_apps_lines_stay_dead_letters():
    router = ParserRouter()
    for line in ("2025-03-04T10:15:30Z INFO nginx started", "ERROR  disk full", "web  | GET / 200",
                 "Mar  4 10:15:30 host-1 cron[1]: job done"):
        result = router.parse(RawRecord(line.encode(), Origin("other.log", line=1)))
        assert not result.events and result.dead, line


# -- properties --------------------------------------------------------------------------------------------------------

TLS_ERRORS = st.sampled_from([
    ("invalid peer certificate: UnknownIssuer", "unknown_authority"),
    ("received fatal alert: UnknownCA", "unknown_authority"),
    ("InvalidCertificate(Expired)", "expired"),
    ("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: unable to get local issuer certificate", "unknown_authority"),
    ("tls: failed to verify certificate: x509: certificate signed by unknown authority", "unknown_authority"),
    ("remote error: tls: expired certificate", "expired"),
    ("x509: certificate is valid for a.example.com, not b.example.com", "name_mismatch"),
])
WORDS = st.text(alphabet=st.characters(whitelist_categories=("Ll", "Lu", "Nd"), whitelist_characters=" ._-"), max_size=40)
SHAPES = st.sampled_from([
    "{ts}  WARN temporal_client::retry: {msg} error=Status {{ code: Unavailable, message: \"{err}\" }}",
    "{ts} ERROR [main] io.temporal.internal.worker.Poller - {msg} {err}",
    "{ts}    ERROR    {msg}    {{\"error\": \"{err}\"}}",
    "Caused by: javax.net.ssl.SSLHandshakeException: {err}",
    "Error: failed reaching server: {err}",
    "temporal  | {ts}  WARN temporal_client::retry: {msg} error={err}",
    "{ts} [WARN] {msg} {{ sdkComponent: 'worker', error: '{err}' }}",
    "WARNING:temporalio.worker._workflow:{msg} {err}",
    "W, [{ts} #7]  WARN -- temporalio: {msg} {err}",
])


@settings(max_examples=150, deadline=None)
@given(SHAPES, TLS_ERRORS, WORDS, st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)))
def test_property_tls_cause_survives_every_shape(shape, tls, words, when):
    text, cause = tls
    ts = when.strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z"
    line = shape.format(ts=ts, msg=words.replace('"', "").strip() or "call failed", err=text)
    event = parse(line)
    assert event["error.type"] == cause and event["tls.established"] is False


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["", "temporal  | ", "2025-03-04T10:15:30Z ", "ERROR\t", "2025-03-04T10:15:30Z  WARN temporal_client: ",
                        "Caused by: ", "Error: "]), st.text(max_size=200))
def test_property_any_tail_parses_or_dead_letters(prefix, tail):
    result = ParserRouter().parse(RawRecord((prefix + tail).encode("utf-8", "replace"), Origin("fuzz", line=1)))
    assert result.events or result.dead
    for event in result.events:
        orjson.dumps(event)


@given(st.text(max_size=100))
def test_property_prefix_stripping_only_removes_a_prefix(line):
    inner = strip_collector_prefix(line)
    assert inner is None or (line.endswith(inner) and len(inner) < len(line))


_TS = "2025-03-04T10:15:30.123Z  WARN "
_HOSTILE = {
    "rust targets": _TS + "a::" * 20_000, "java dots": _TS + "[main] " + "a." * 30_000, "class name": "A" * 60_000 + "x",
    "package dots": "a." * 30_000 + "Exception", "json braces": _TS + 'temporal {"' * 10_000,
    "namespace fields": _TS + "namespace=" * 6_000, "compose bars": "a | " * 15_000 + "temporal",
    "thread bracket": "2025-03-04 10:15:30.123 [" + "x" * 60_000,
}


@pytest.mark.parametrize("name", sorted(_HOSTILE))
def test_new_shapes_parse_hostile_lines_in_bounded_time(name):
    """Every pattern of the new shapes is anchored or possessive; a child process bounds a regression in time."""
    import subprocess
    import sys

    code = ("import sys\nfrom temporal_siem.kernel.records import Origin, RawRecord\n"
            "from temporal_siem.parsers.router import ParserRouter\n"
            "result = ParserRouter().parse(RawRecord(sys.stdin.read().encode(), Origin('x.log', line=1)))\n"
            "print(len(result.events) + len(result.dead))\n")
    done = subprocess.run([sys.executable, "-c", code], input=_HOSTILE[name], capture_output=True, text=True, timeout=15)
    assert done.returncode == 0 and done.stdout.strip() == "1", done.stderr
